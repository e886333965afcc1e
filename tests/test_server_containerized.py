"""Containerised envs: `agenthub.make(env_id, sandbox="docker")` runs the env server in a
real container (no network; unix socket) and gives the same episodes as in-process;
`close()` removes the container; a warm pool hands out started containers and replaces
dead ones. Skips only where no Docker daemon answers."""

import time

import docker
import pytest

import agenthub
from agenthub.agents import load_agent
from agenthub.client import RemoteEnv, Unauthorized
from agenthub.containerized import container_pool
from agenthub.runner import Episode, run_episodes

ENV_ID = "tools/guess-number-v0"


def transcript(env, seed):
    """Reset with `seed` and play the oracle's solution (computed in-process)."""
    oracle = agenthub.make(ENV_ID)
    oracle.reset(seed=seed)
    actions = oracle.oracle_actions()
    return [env.reset(seed=seed)] + [env.step(action) for action in actions]


def test_containerized_env_matches_in_process_and_close_removes_it(docker_image):
    env = agenthub.make(ENV_ID, sandbox="docker")
    try:
        container_id = env.container.box.container.id
        assert env.image_digest.startswith("sha256:")
        for seed in (0, 3):
            assert transcript(env, seed) == transcript(agenthub.make(ENV_ID), seed)
        assert env.tools == agenthub.make(ENV_ID).tools
        network = docker.from_env().containers.get(container_id).attrs["HostConfig"]["NetworkMode"]
        assert network == "none"
    finally:
        env.close()
    assert docker.from_env().containers.list(all=True, filters={"id": container_id}) == []
    assert not env.container.socket_dir.exists()


def test_the_container_socket_needs_the_containers_own_token(docker_image, monkeypatch):
    monkeypatch.delenv("AGENTHUB_SERVER_TOKEN", raising=False)
    monkeypatch.delenv("AGENTHUB_SERVER_TOKEN_FILE", raising=False)
    env = agenthub.make(ENV_ID, sandbox="docker")
    try:
        url, token = env.container.url, env.container.token
        assert len(token) >= 32 and token not in " ".join(docker.from_env().containers.get(
            env.container.box.container.id).attrs["Config"]["Cmd"])  # not on a command line `ps` shows
        for wrong in (None, "not-the-token", token[:-1]):  # any local user can reach the socket
            with pytest.raises(Unauthorized):
                RemoteEnv(url, token=wrong)
        assert env.reset(seed=0)[0] == agenthub.make(ENV_ID).reset(seed=0)[0]  # the owner's session plays
    finally:
        env.close()


def test_trajectories_record_the_image_they_ran_in(docker_image):
    def make_in_docker(env_id, **kwargs):
        return agenthub.make(env_id, sandbox="docker", **kwargs)

    [trajectory] = run_episodes([Episode(ENV_ID, seed=2)], load_agent("oracle"), make_env=make_in_docker)
    assert trajectory.success
    assert trajectory.provenance["image_digest"] == docker.from_env().images.get(docker_image).id


def test_max_turns_and_env_kwargs_reach_the_container(docker_image):
    env = agenthub.make(ENV_ID, sandbox="docker", max_turns=2, low=1, high=8)
    try:
        obs, _ = env.reset(seed=1)
        assert "between 1 and 8" in obs[-1]["content"]
        env.step("100")
        assert env.step("100")[3] is True  # truncated at 2 turns
    finally:
        env.close()


def test_other_backends_are_refused_in_one_line():
    with pytest.raises(agenthub.AgentHubError, match="run on the docker backend"):
        agenthub.make(ENV_ID, sandbox="bwrap")


def test_warm_pool_of_env_containers(docker_image):
    client = docker.from_env()
    with container_pool(ENV_ID, size=1, check_interval=0.2) as pool:
        assert pool.wait_ready(timeout=120)
        env = agenthub.make(ENV_ID, sandbox="docker", pool=pool)
        try:
            assert pool.hits == 1
            assert transcript(env, 5) == transcript(agenthub.make(ENV_ID), 5)
        finally:
            env.close()
        assert pool.wait_ready(timeout=120)  # refilled
        idle = pool._idle[0]
        client.containers.get(idle.box.container.id).kill()  # an idle member dies
        deadline = time.monotonic() + 60
        while idle in pool._idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.replaced == 1 and pool.wait_ready(timeout=120)
        assert pool._idle[0].is_alive()
        remaining = [m.box.container.id for m in pool._idle]
    for container_id in remaining + [idle.box.container.id]:
        assert client.containers.list(all=True, filters={"id": container_id}) == []
