"""The computed memory table (bench/memory.py, issue 15 item 7): parameter counts of the
published shapes, and the orderings the README's table relies on."""

import importlib.util
import sys
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_memory",
                                              Path(__file__).resolve().parents[1] / "bench" / "memory.py")
memory = sys.modules["bench_memory"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
spec.loader.exec_module(memory)


@pytest.mark.parametrize("shape, published", zip(memory.SHAPES, [0.49e9, 1.54e9, 7.61e9]))
def test_parameter_counts_match_the_published_models(shape, published):
    assert shape.parameters() == pytest.approx(published, rel=0.01)


def test_lora_parameters_of_the_default_targets():
    # Qwen2.5-0.5B, r=8 on q,k,v,o: 24 layers x 8 x ((896+896) x 2 + (896+128) x 2)
    assert memory.SHAPES[0].lora_parameters(8) == 24 * 8 * (1792 * 2 + 1024 * 2)


def test_orderings():
    rows = memory.table(80, 8)
    by = {(r["model"], r["method"], r["dtype"], r["checkpointing"]): r for r in rows}
    for shape in memory.SHAPES:
        m = shape.name
        assert by[(m, "lora", "bfloat16", False)]["states_gib"] < by[(m, "full", "bfloat16", False)]["states_gib"]
        for method, dtype in (("full", "float32"), ("full", "bfloat16"), ("lora", "bfloat16")):
            plain, ckpt = by[(m, method, dtype, False)], by[(m, method, dtype, True)]
            assert ckpt["activations_gib_per_1k_tokens"] < plain["activations_gib_per_1k_tokens"]
            assert ckpt["max_tokens_per_micro_batch"] >= plain["max_tokens_per_micro_batch"]
    assert by[("7B (Qwen2.5-7B)", "full", "bfloat16", True)]["max_tokens_per_micro_batch"] == 0  # 16 B/param > 80 GB
    assert by[("7B (Qwen2.5-7B)", "lora", "bfloat16", True)]["max_tokens_per_micro_batch"] > 8192
    assert "does not fit" in memory.markdown(rows, 80)
