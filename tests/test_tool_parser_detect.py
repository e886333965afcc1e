"""The tool parser is picked from the model's chat template (issue 15 item 4).

`detect_tool_parser` reads the template's text, then the tokenizer's special tokens;
every real template in tests/data/chat_templates/ maps to the parser vLLM uses for that
family, and the variants of each sign (a Llama 4 `<|python_start|>`, a template that
only names `<|python_tag|>`, named templates, a token-only sign) are read too. The
rendering side (the picked parser reads the template's own calls back, the explicit
option wins, the choice is said once) is in tests/test_chat_templates.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agenthub.tool_parsers import TOOL_PARSERS, detect_tool_parser

DATA = Path(__file__).parent / "data" / "chat_templates"
EXPECTED = {
    "qwen2.5-instruct.jinja": "hermes",
    "qwen3.jinja": "hermes",
    "llama3.1-json.jinja": "llama3_json",
    "llama3.2-pythonic.jinja": "pythonic",
    "mistral-parallel.jinja": "mistral",
    "smollm2.jinja": None,  # no tool support: ChatFormat then uses hermes for its own tools prompt
}


def test_every_template_in_the_test_data_is_covered():
    assert sorted(p.name for p in DATA.glob("*.jinja")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_templates_map_to_their_familys_parser(name):
    found, why = detect_tool_parser((DATA / name).read_text())
    assert found == EXPECTED[name], why
    assert found is None or found in TOOL_PARSERS
    assert why  # always says why, also when nothing tells


@pytest.mark.parametrize("template, expected", [
    # Llama 4 wraps pythonic calls in <|python_start|>...<|python_end|>
    ("{{ '<|header_start|>assistant<|header_end|>' }}{{ '<|python_start|>[' + call.name + '()]<|python_end|>' }}",
     "pythonic"),
    # a Llama 3.x template that only shows <|python_tag|> (built-in tools), no ipython text
    ("{%- if builtin_tools %}{{- '<|python_tag|>' + tool_call.name }}{%- endif %}<|eot_id|>", "llama3_json"),
    # the ipython role alone (tool results) marks Llama 3's JSON format
    ("{%- if message.role == 'ipython' %}{{ '<|start_header_id|>ipython<|end_header_id|>' }}{%- endif %}",
     "llama3_json"),
    # Mistral v11 spelling: [TOOL_CALLS]name[ARGS]{...}
    ("{{- '[TOOL_CALLS]' + tool.function.name + '[ARGS]' + tool.function.arguments|tojson }}", "mistral"),
    # a template with both the Hermes tag and a mention of Python: the tag wins
    ("{# answer python questions too #}<tool_call>{{ call | tojson }}</tool_call>", "hermes"),
    ("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", None),
    ("", None),
    (None, None),
])
def test_variants_of_each_sign(template, expected):
    assert detect_tool_parser(template)[0] == expected


def test_named_templates_use_the_tool_use_one():
    default = "{% for m in messages %}{{ m.content }}{% endfor %}"
    tool_use = "{% for m in messages %}<tool_call>{{ m.tool_calls | tojson }}</tool_call>{% endfor %}"
    assert detect_tool_parser({"default": default, "tool_use": tool_use})[0] == "hermes"
    # HF's saved form: a list of {"name", "template"}
    listed = [{"name": "default", "template": default}, {"name": "tool_use", "template": "[TOOL_CALLS]"}]
    assert detect_tool_parser(listed)[0] == "mistral"
    assert detect_tool_parser({"default": default})[0] is None


@pytest.mark.parametrize("token, expected", [
    ("[TOOL_CALLS]", "mistral"), ("<tool_call>", "hermes"), ("<|python_tag|>", "llama3_json"),
    ("<|python_start|>", "pythonic"),
])
def test_the_tokenizers_special_tokens_tell_when_the_template_does_not(token, expected):
    plain = "{% for m in messages %}{{ m.role }}: {{ m.content }}{% endfor %}"
    found, why = detect_tool_parser(plain, ["<s>", "</s>", token])
    assert found == expected and token in why
    # the template's own sign wins over a token
    assert detect_tool_parser("<tool_call>{{ x }}</tool_call>", [token])[0] == "hermes"


def test_model_agents_and_the_training_config_take_a_tool_parser(micro_model):
    pytest.importorskip("torch")
    from agenthub.agents import load_agent
    from agenthub.errors import AgentHubError
    from agenthub.trainers.config import load_config

    assert load_agent(f"hf:{micro_model}").tool_parser == "hermes"  # our template writes <tool_call> blocks
    assert load_agent(f"hf:{micro_model}?tool_parser=pythonic").tool_parser == "pythonic"
    with pytest.raises(AgentHubError, match="unknown tool parser 'qwen9'"):
        load_agent(f"hf:{micro_model}?tool_parser=qwen9")
    cfg = load_config(None, {"model": str(micro_model), "suite": "tools/guess-number",
                             "rollout": {"tool_parser": "mistral"}})
    assert cfg.rollout.tool_parser == "mistral"
