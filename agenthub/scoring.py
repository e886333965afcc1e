"""Answer scoring shared by envs that grade answers and by reward modules: SQuAD-style
normalisation, exact match and token F1 (scores in [0, 1])."""

from __future__ import annotations

import re
import string
from collections import Counter


def normalise_answer(text: str) -> list[str]:
    """SQuAD-style answer normalisation: lower case, no punctuation or articles."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when both normalise to the same words, else 0.0."""
    return float(normalise_answer(prediction) == normalise_answer(truth))


def f1(prediction: str, truth: str) -> float:
    """Harmonic mean of word precision and recall after normalisation (two empties: 1.0)."""
    predicted, expected = normalise_answer(prediction), normalise_answer(truth)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected or common == 0:
        return float(predicted == expected)
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)
