"""The one progress-bar helper (agenthub.progress) as its callers use it."""

from agenthub.agents import load_agent
from agenthub.progress import progress_bar
from agenthub.runner import Episode, run_episodes


def test_bar_advances_with_and_without_a_new_description(capsys):
    for enabled in (True, False):
        with progress_bar(enabled, "steps", 3) as advance:
            advance()
            advance("loss 0.5")
            advance(description="loss 0.25")


def test_runner_shows_a_bar_and_still_returns_every_episode():
    episodes = [Episode("tools/guess-number-v0", seed) for seed in range(3)]
    trajectories = run_episodes(episodes, load_agent("oracle"), concurrency=2, progress="episodes")
    assert [t.seed for t in trajectories] == [0, 1, 2] and all(t.success for t in trajectories)
