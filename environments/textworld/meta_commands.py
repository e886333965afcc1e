"""Which player commands the env keeps from the story: out-of-game commands and chains.

TextWorld tracks a game's state in Python, from the actions the story reports (see
`textworld.envs.wrappers.tw_inform7`), and derives the admissible commands from that
copy. A command that rewinds or replaces the story's own state without an in-world
action (`restart`, `restore`, `undo`, or `oops` re-running a corrected command) leaves
the two apart for the rest of the episode: the game restarts while the admissible list
still offers `drop latchkey`. Other out-of-world commands change what later
observations look like (`superbrief`), write files on the host (`script`), or switch on
TextWorld's own instrumentation (`tw-extra-infos`, `print_state` prints the whole world
state). None of them is part of playing the game, so the env refuses them. Several commands
in one line (`open basket. take latchkey`) are refused too: the story runs them all,
but TextWorld's tracking misses some (`inventory, close cabinet` closes the cabinet in
the story, not in the tracked state), and one command is one turn.

The story's parser (Inform 6/7 on the Z-machine) decides what a player's text runs, so
the check reads the text the way that parser does:
- one line may hold several commands: Inform starts a new one after `.`, `,` or `then`
  (`look. restart`, `look,restart`, `look then restart`); every clause is checked, and
  other punctuation and `and` count as breaks too, so the check errs on the side of
  refusing;
- a word is looked up by its first 9 Z-characters only (z8 dictionary entries are 6
  bytes), so `superbriefing`, `transcripts` and `tw-extra-infosxx` are the commands
  `superbrief`, `transcript` and `tw-extra-infos`;
- input is case-insensitive.
"""

from __future__ import annotations

import re

# The verbs of Inform 7's out-of-world actions (Standard Rules, 6M62) and the parser's own
# words (undo, oops): the first word of a clause the parser runs outside the game world.
INFORM_META = (
    "quit", "q", "save", "restore", "restart", "verify", "script", "transcript", "unscript", "noscript",
    "superbrief", "short", "verbose", "long", "brief", "normal", "notify", "pronouns", "nouns", "version",
    "score", "full", "fullscore", "undo", "oops", "o",
)
# TextWorld's instrumentation, compiled into every TextWorld story (world2inform7.py).
TEXTWORLD_META = ("tw-extra-infos", "tw-trace-actions", "tw-print", "print_state", "restrict", "enable", "disable")
# Inform's testing commands, present in stories compiled with TEXTWORLD_I6_DEBUG (purloin takes any object).
INFORM_DEBUG = ("purloin", "abstract", "gonear", "showme", "showverb", "showheap", "tree", "actions", "rules",
                "scenes", "trace", "random", "relations", "responses", "scope", "test", "glklist")

DICTIONARY_ZCHARS = 9  # z4+ dictionary words: 6 bytes of 5-bit Z-characters
_ALPHABET_A2 = set("0123456789.,!?_#'\"/\\-:()")  # one shift Z-character + the character
_CLAUSE_BREAKS = re.compile(r"""[.,;:!?"]|\b(?:then|and)\b""")
_COMMAND_BREAKS = re.compile(r"[.,]|\bthen\b")  # where Inform's parser starts another command


def dictionary_form(word: str) -> str:
    """`word` as the Z-machine compares it with its dictionary: lower case, cut after 9
    Z-characters (a-z cost one, digits and most punctuation two, anything else four)."""
    used, kept = 0, []
    for char in word.lower():
        used += 1 if "a" <= char <= "z" else 2 if char in _ALPHABET_A2 else 4
        if used > DICTIONARY_ZCHARS:
            break
        kept.append(char)
    return "".join(kept)


META_FORMS = frozenset(dictionary_form(w) for w in INFORM_META + TEXTWORLD_META + INFORM_DEBUG)


def commands_in(line: str) -> list[str]:
    """The commands the story would run for `line`: 'look. open box' -> ['look', 'open box']."""
    return [c.strip() for c in _COMMAND_BREAKS.split(line.lower()) if c.strip()]


def meta_command(command: str) -> str | None:
    """The first clause of `command` that the story would run outside the game world
    (e.g. 'restart' in 'look. restart'), or None when every clause is an in-game command."""
    for clause in _CLAUSE_BREAKS.split(command.lower()):
        words = clause.split()
        if words and dictionary_form(words[0]) in META_FORMS:
            return clause.strip()
    return None
