"""Training configs: YAML into typed objects, overrides, and one-line errors."""

from pathlib import Path

import pytest

from agenthub.errors import AgentHubError
from agenthub.trainers.config import AlgorithmConfig, LoraConfig, TrainConfig, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "trainers" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert isinstance(config, TrainConfig) and config.suite and config.model


def test_shipped_configs_cover_the_recipes():
    names = {p.stem for p in CONFIGS}
    assert {"textworld-grpo", "textworld-rloo", "textworld-gra", "textworld-spa", "swe-gra",
            "searchqa-igpo", "demo"} <= names


def test_yaml_and_overrides_become_typed_objects(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nsuite: s\nrollout: {mode: choice}\nalgorithm: {estimator: rloo}\n")
    config = load_config(path, ["loss.kl_coef=0.01", "rollout.group_size=4", "lora={r: 4}", "optim.betas=[0.9, 0.95]",
                                "sft.tasks=10", "eval=null"])
    assert config.rollout.mode == "choice" and config.rollout.group_size == 4
    assert config.algorithm == AlgorithmConfig(estimator="rloo")
    assert config.loss.kl_coef == 0.01 and isinstance(config.loss.kl_coef, float)
    assert config.lora == LoraConfig(r=4)
    assert config.optim.betas == (0.9, 0.95)
    assert config.sft is not None and config.sft.tasks == 10 and config.sft.epochs == 1
    assert config.eval is None


def test_model_settings_of_issue_15():
    config = load_config(None, ["lora={r: 4, merge: false}", "dtype=bfloat16", "report_to=[tensorboard, wandb]",
                                "model=smollm2-135m-instruct"], base={"model": "m", "suite": "s"})
    assert config.lora == LoraConfig(r=4, merge=False) and config.dtype == "bfloat16"
    assert config.report_to == ["tensorboard", "wandb"] and config.model == "smollm2-135m-instruct"
    defaults = load_config(None, base={"model": "m", "suite": "s"})
    assert defaults.report_to == ["tensorboard"] and defaults.dtype == "auto" and defaults.lora is None
    assert LoraConfig().merge is True
    with pytest.raises(AgentHubError, match="dtype must be one of auto, float32, bfloat16"):
        load_config(None, ["dtype=fp16"], base={"model": "m", "suite": "s"})


@pytest.mark.parametrize("overrides, message", [
    (["rollout.tempreture=1"], "unknown setting 'rollout.tempreture'; did you mean 'temperature'?"),
    (["rollout.mode=beam"], "rollout.mode must be one of free, choice; got 'beam'"),
    (["rollout.group_size=many"], "rollout.group_size must be int, got 'many'"),
    (["steps=true"], "steps must be int, got True"),
    (["optim.betas=[0.9]"], "optim.betas must have 2 items"),
    (["rollout=3"], "rollout must be a mapping"),
    (["steps"], "must look like KEY=VALUE"),
    (["rollout.task_range=[300, 300]"], "rollout.task_range must be [start, end) with 0 <= start < end"),
    (["rollout.task_range=[-1, 5]"], "rollout.task_range must be [start, end)"),
    (["rollout.task_range=[1]"], "rollout.task_range must have 2 items"),
])
def test_mistakes_are_one_clear_line(overrides, message):
    with pytest.raises(AgentHubError) as e:
        load_config(None, overrides, base={"model": "m", "suite": "s"})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_required_and_missing_file(tmp_path):
    with pytest.raises(AgentHubError, match="missing required setting 'suite'"):
        load_config(None, ["model=m"])
    with pytest.raises(AgentHubError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(AgentHubError, match="must be a YAML mapping"):
        load_config(tmp_path / "list.yaml")
