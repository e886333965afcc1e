"""Env sessions on Ray actors, on a real local Ray cluster (2 CPUs): episodes play the
same as in-process, an actor killed mid-episode is survived, and `agenthub eval --ray`
joins a running cluster."""

import json
import os
import sys
import time
import uuid

import pytest

ray = pytest.importorskip("ray", reason="Ray support needs the ray extra")

import agenthub  # noqa: E402
from agenthub.agents import CallableAgent, load_agent  # noqa: E402
from agenthub.env import Env  # noqa: E402
from agenthub.ray_runner import RayEnvPool, run_episodes_ray  # noqa: E402
from agenthub.runner import Episode, run_episodes  # noqa: E402
from agenthub.types import read_trajectories  # noqa: E402


class CoinFlipEnv(Env):
    """Not deterministic: a lost actor cannot be replaced by replaying it."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": f"coin {uuid.uuid4()}"}], {}

    def step(self, action):
        return [{"role": "user", "content": f"coin {uuid.uuid4()}"}], 0.0, False, False, {}


class HangingEnv(CoinFlipEnv):
    def step(self, action):
        time.sleep(600)

    def oracle_actions(self):
        return ["wait"]


class WhereEnv(CoinFlipEnv):
    """Says which process it runs in."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "Say go."}], {"admissible_actions": ["go", "stay"]}

    def step(self, action):
        return [{"role": "user", "content": "done"}], 1.0, True, False, {
            "pid": os.getpid(), "success": True, "outcome": 1.0, "admissible_actions": ["go", "stay"]}


agenthub.register("test/ray-coin-flip-v0", CoinFlipEnv, max_turns=4)
agenthub.register("test/ray-where-v0", WhereEnv, max_turns=2)
agenthub.register_suite("test/ray-where", "test/ray-where-v0", train=20, test=4)
agenthub.register("test/ray-hang-v0", HangingEnv, max_turns=4)
# Registered here, not by a plugin: the spec travels to the actors with the class itself.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Killer:
    """An agent that kills the actor its env lives in before the turns listed (of one sample)."""

    name = "killer"

    def __init__(self, kill_before_turns, sample, act=None):
        self.kill_before_turns, self.sample = set(kill_before_turns), sample
        self.inner = act or load_agent("oracle").act
        self.pids = []

    def act(self, messages, ctx):
        if ctx.sample == self.sample:
            self.pids.append(ctx.env.worker["pid"])
            if ctx.turn in self.kill_before_turns:
                _kill(ctx.env.actor)
        return self.inner(messages, ctx)


def _kill(actor):
    """`ray.kill`, then wait until the actor is gone (the kill itself is asynchronous)."""
    ray.kill(actor, no_restart=True)
    while True:
        try:
            ray.get(actor.__ray_ready__.remote())
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _played(trajectory):
    return [(t.observation, t.action, t.reward) for t in trajectory.turns]


def test_envs_play_on_actors_as_they_do_in_process(cluster):
    episodes = [Episode("tools/guess-number-v0", seed=s) for s in range(6)]
    local = run_episodes(episodes, load_agent("oracle"), concurrency=2)
    with RayEnvPool(size=4) as pool:
        assert pool.size == 2  # the cluster has 2 CPUs, one per env
        env = pool.make("tools/guess-number-v0")
        assert env.worker["pid"] != os.getpid() and env.tools == agenthub.make("tools/guess-number-v0").tools
        env.close()
        remote = run_episodes(episodes, load_agent("oracle"), concurrency=4, make_env=pool.make)
    assert all(t.success and t.stop_reason == "terminated" for t in remote)
    assert [_played(t) for t in remote] == [_played(t) for t in local]


def test_killed_actor_mid_episode_is_replaced_and_the_episode_resumes(cluster):
    episodes = [Episode("tools/guess-number-v0", seed=3, sample=k) for k in range(4)]
    undisturbed = run_episodes(episodes[:1], load_agent("oracle"))[0]
    agent = Killer(kill_before_turns=[2], sample=1)
    trajs = run_episodes_ray(episodes, agent, concurrency=2)
    assert len(set(agent.pids)) == 2  # the episode moved to a new worker process after turn 2
    assert all(t.success and t.stop_reason == "terminated" for t in trajs)
    assert _played(trajs[1]) == _played(undisturbed)


def test_actor_lost_twice_or_unreplayable_marks_the_episode_error_and_the_run_goes_on(cluster):
    episodes = [Episode("tools/guess-number-v0", seed=s, sample=k) for s, k in [(0, 0), (1, 1), (2, 0)]]
    episodes.append(Episode("test/ray-coin-flip-v0", seed=0, sample=2))
    guesser = Killer(kill_before_turns=[1, 2], sample=1)
    flipper = Killer(kill_before_turns=[2], sample=2, act=lambda messages, ctx: "flip")

    def act(messages, ctx):
        return (flipper if ctx.sample == 2 else guesser).act(messages, ctx)

    trajs = run_episodes_ray(episodes, CallableAgent(act, "killers"), concurrency=2)
    assert trajs[1].stop_reason == "error" and "no retry is left" in trajs[1].error
    assert trajs[3].stop_reason == "error" and "not deterministic" in trajs[3].error
    assert [t.stop_reason for t in (trajs[0], trajs[2])] == ["terminated", "terminated"]
    assert trajs[0].success and trajs[2].success


def test_a_hung_env_times_out_and_its_actor_is_replaced(cluster):
    episodes = [Episode("test/ray-hang-v0", seed=0), Episode("tools/guess-number-v0", seed=1)]
    # one actor: the second episode needs the hung one's replacement, whose start (seconds on a
    # loaded machine) counts against its budget
    with RayEnvPool(size=1) as pool:
        trajs = run_episodes(episodes, load_agent("oracle"), concurrency=1, timeout=20.0, make_env=pool.make)
    assert trajs[0].stop_reason == "timeout", trajs[0].error
    assert trajs[1].success and trajs[1].stop_reason == "terminated"


def test_training_plays_its_rollouts_on_actors(cluster, tmp_path):
    """`agenthub train --ray`: the policy stays here, every rollout's env lives in a worker."""
    pytest.importorskip("transformers")
    from agenthub.trainers.config import load_config
    from agenthub.trainers.grpo import train
    from agenthub.trainers.model_init import init_model

    model = init_model(tmp_path / "model", "tiny", ["Say go.", "go", "stay", "done"] * 50, hidden_size=64,
                       intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                       vocab_size=300)
    cfg = load_config(base={"model": str(model), "suite": "test/ray-where", "steps": 2, "tensorboard": False,
                            "rollout": {"mode": "choice", "group_size": 2, "tasks_per_step": 2, "concurrency": 2,
                                        "max_new_tokens": 4, "max_context": 256},
                            "eval": {"episodes": 4, "modes": ["choice"], "concurrency": 2}})
    results = train(cfg, tmp_path / "run", progress=False, ray="local")  # "local": this process's cluster
    assert results["choice"]["episodes"] == 4 and results["choice"]["errors"] == 0
    rollouts = [t for step in (1, 2)
                for t in read_trajectories(tmp_path / "run" / "rollouts" / f"step-{step:06d}.jsonl")]
    pids = {turn.info["pid"] for t in rollouts for turn in t.turns}
    assert len(rollouts) == 8 and pids and os.getpid() not in pids  # 2 steps x 2 tasks x 2 samples


def test_eval_cli_joins_a_running_ray_cluster(cluster, cli, tmp_path):
    address = ray.get_runtime_context().gcs_address  # as `ray start --head` prints it
    r = cli("eval", "tools/guess-number-v0", "--agent", "oracle", "--episodes", "3", "--ray", address,
            "--concurrency", "2", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert results["episodes"] == 3 and results["success_rate"] == 1.0 and results["errors"] == 0


def test_eval_cli_unreachable_ray_address_is_one_line(cli, tmp_path):
    r = cli("eval", "tools/guess-number-v0", "--agent", "oracle", "--episodes", "1", "--ray", "127.0.0.1:1",
            "--out", str(tmp_path))
    assert r.returncode == 2 and "cannot reach a Ray cluster" in r.stderr and "Traceback" not in r.stderr
