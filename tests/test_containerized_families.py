"""The env families with their own images (TextWorld, ALFWorld, web: MiniWoB in headless
Chromium) run in their containers exactly as in-process: for the same seed the container
gives the same observations, oracle actions, rewards and infos, and the oracle wins
through it. Real Docker and the real engines; each family's image is built once per
machine if missing (a few minutes, in the fixture, not the test). Skips only where no
Docker daemon answers, or where the in-process side cannot run."""

import docker
import pytest

import agenthub
from agenthub.sandbox.images import family_deps_tag, image_for_env
from conftest import docker_problem, run_cli

# env id -> (seed, env kwargs); the web task types into fields and clicks, in the container's
# browser; ALFWorld is asked for generated games, which the container has too (no official data)
CASES = {
    "textworld/w2-o3-q4-v0": (100, {}),
    "alfworld/pick-and-place-v0": (3, {"data": "synthetic"}),
    "web/login-user-v0": (7, {}),
}


@pytest.fixture(scope="module", params=list(CASES))
def family_env(request):
    """(env id, its image's tag), the image built first if missing."""
    env_id = request.param
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    try:
        agenthub.make(env_id, **CASES[env_id][1]).close()
    except agenthub.AgentHubError as e:
        pytest.skip(f"{env_id} cannot run in-process here, so there is nothing to compare with: {e}")
    return env_id, image_for_env(env_id)


def play_oracle(env, seed):
    """Everything the env says in one oracle episode (the oracle computed by the env itself)."""
    first = env.reset(seed=seed)
    actions = env.oracle_actions()
    return [first, actions, *[env.step(action) for action in actions]]


def test_container_plays_the_same_episode_as_in_process(family_env):
    env_id, image = family_env
    seed, kwargs = CASES[env_id]
    local = agenthub.make(env_id, **kwargs)
    try:
        expected = play_oracle(local, seed)
    finally:
        local.close()
    remote = agenthub.make(env_id, sandbox="docker", **kwargs)
    try:
        assert remote.image_digest == docker.from_env().images.get(image).id
        assert remote.tools == local.tools
        episode = play_oracle(remote, seed)
    finally:
        remote.close()
    _, reward, terminated, truncated, info = episode[-1]
    assert terminated and not truncated and info["success"] and reward > 0
    assert episode == expected


def test_sandbox_build_env_builds_the_family_image_on_its_dependency_image():
    """`agenthub sandbox build --env ID` prints the family image's tag; that image sits on
    the family's dependency image (Chromium, TextWorld...), whose tag does not change with
    the source, so a source change rebuilds only the layers above it."""
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    result = run_cli("sandbox", "build", "--env", "textworld/w2-o3-q4-v0", timeout=600)
    assert result.returncode == 0, result.stderr
    tag = result.stdout.strip().splitlines()[-1]
    assert tag.startswith("agenthub/textworld:")
    client = docker.from_env()
    layers = {layer["Id"] for layer in client.images.get(tag).history()}
    assert client.images.get(family_deps_tag("textworld")).id in layers
