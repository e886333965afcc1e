"""A step after the episode ended answers with an error and repeats how it ended: a
truncated episode stays truncated (not terminated, which would tell a value-bootstrapping
learner the state was terminal), success and outcome stay what they were."""

import pytest

import agenthub

GUESS_1 = '<tool_call>{"name": "guess", "arguments": {"number": 1}}</tool_call>'


def _end(env, actions):
    for action in actions:
        result = env.step(action)
        if result[2] or result[3]:
            return result
    raise AssertionError("the episode did not end")


@pytest.mark.parametrize("env_id, how", [("tools/guess-number-v0", "truncated"), ("tools/guess-number-v0", "won"),
                                         ("tools/compute-v0", "truncated"), ("tools/compute-v0", "won")])
def test_steps_after_the_end_repeat_how_it_ended(env_id, how):
    env = agenthub.make(env_id, max_turns=2 if how == "truncated" else None)
    env.reset(seed=3)
    actions = [GUESS_1, "", GUESS_1] if how == "truncated" else env.oracle_actions()
    _, _, terminated, truncated, info = _end(env, actions)
    assert (terminated, truncated) == ((False, True) if how == "truncated" else (True, False))
    for late in ["look", GUESS_1, {"role": "assistant", "content": None}, 42]:
        obs, reward, late_terminated, late_truncated, late_info = env.step(late)
        assert (late_terminated, late_truncated) == (terminated, truncated)
        assert reward == 0.0 and late_info["action_error"].startswith("the episode is over")
        assert (late_info["success"], late_info["outcome"]) == (info["success"], info["outcome"])
        assert obs and all(isinstance(m["content"], str) for m in obs)
    env.reset(seed=4)  # a reset starts afresh
    assert env.step(GUESS_1)[2:4] == (False, False)
    env.close()
