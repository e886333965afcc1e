"""Transcripts in report.html: what each episode shows, the caps that keep big runs
openable, escaping of hostile env/model text (a property test), and the page in a real
headless Chromium (screenshot, DOM, the CSS-only success/failure/error filter)."""

import html
import os
import shutil
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agenthub.evaluation import evaluate
from agenthub.report import Report, write_eval_report
from agenthub.types import Trajectory, Turn, read_trajectories, tool_calls_message

EXAMPLES = int(os.environ.get("AGENTHUB_HYPOTHESIS_EXAMPLES", "30"))
HOSTILE = "<script>alert(1)</script>"
MARK = "zebra-quartz-7319"


def episode(task_id="task-a", seed=0, *, success=True, stop_reason="terminated", error=None, text=MARK,
            tool="submit_answer", arguments=None, reasoning="", task_turns=1):
    """A small hand-made episode: a system prompt, then `task_turns` tool-call turns."""
    action = tool_calls_message([(tool, arguments if arguments is not None else {"answer": text})], "c",
                                content=f"I will answer {text}")
    if reasoning:
        action["reasoning"] = reasoning
    turns = [Turn(observation=[{"role": "system", "content": "You are tested."},
                               {"role": "user", "content": f"Question for {text}"}] if k == 0
                  else [{"role": "tool", "tool_call_id": "c_0", "content": f"tool says {text}"}],
                  action=action, reward=0.25 * (k + 1), reward_components={"progress": 0.5, "win": float(success)},
                  terminated=k == task_turns - 1)
             for k in range(task_turns)]
    return Trajectory(env_id="test/x-v0", task_id=task_id, seed=seed, agent="hand", turns=turns,
                      outcome=float(success), success=success, stop_reason=stop_reason, error=error,
                      final_observation=[{"role": "tool", "tool_call_id": "c_0", "content": f"final {text}"}])


class Tags(HTMLParser):
    def __init__(self, page):
        super().__init__()
        self.tags = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def render(trajectories, **limits):
    report = Report("transcripts")
    report.transcripts(trajectories, **limits)
    return report.render()


def test_an_episode_shows_messages_calls_reasoning_rewards_stop_reason_and_error():
    page = render([episode(reasoning="thinking about the answer", task_turns=2),
                   episode("task-b", 1, success=False, stop_reason="max_turns"),
                   episode("task-b", 2, success=False, stop_reason="error", error="Error: env crashed on step 3")])
    for text in (f"Question for {MARK}", f"I will answer {MARK}", f"tool says {MARK}", f"final {MARK}",
                 "submit_answer", "thinking about the answer", "progress: 0.500, win: 1.000", "reward 0.500",
                 "max_turns", "Error: env crashed on step 3", "answers c_0", "1/1 succeeded", "0/2 succeeded, 1 errors"):
        assert text in html.unescape(page), text
    assert '"answer": "zebra-quartz-7319"' in html.unescape(page)  # arguments pretty-printed as JSON
    for role in ("system", "user", "assistant", "tool"):
        assert f'class="msg {role}"' in page
    assert page.count('class="episode success"') == 1 and page.count('class="episode failure"') == 1
    assert page.count('class="episode error"') == 1
    for kind, n in (("all", 3), ("success", 1), ("failure", 1), ("error", 1)):
        assert f"{kind} ({n})" in page


def test_a_timeout_is_an_error_as_evaluation_counts_it():
    page = render([episode(success=False, stop_reason="timeout")])
    assert 'class="episode error"' in page and "error (1)" in page


def test_big_runs_are_capped_per_task_in_all_and_per_text():
    many = [episode("task-a", s) for s in range(12)] + [episode("task-b", s) for s in range(4)]
    page = render(many, per_task=5, limit=7)
    assert page.count('<details class="episode') == 7  # 5 of task-a, then 2 of task-b
    assert "7 of 12 episodes not shown" in page and "2 of 4 episodes not shown" in page
    assert "Showing 7 of 16 episodes" in page
    page = render([episode(f"t{i}", text="z" * 1000) for i in range(10)], budget=6000)  # ~4,000 characters each
    assert page.count('<details class="episode') == 2 and "Showing 2 of 10 episodes" in page
    huge = "x" * 10_000
    page = render([episode(text=huge, reasoning="r" * 5000, arguments={"blob": "y" * 9000})], max_chars=1000)
    assert huge not in page and "r" * 1001 not in page and "y" * 1001 not in page
    for dropped in (9014, 9013, 9006):  # "I will answer ", "Question for ", "final " + 10,000 x
        assert f"{dropped} more characters not shown" in page
    assert "4000 more characters not shown" in page  # the reasoning
    assert len(page) < 40_000


def test_any_message_shape_renders_and_nothing_raises():
    t = episode()
    t.turns[0].observation = ["not a message", {"role": "robot", "content": [{"type": "image"}, 3]},
                              {"role": "user", "content": None}]
    t.turns[0].action = {"role": "assistant", "content": "ok", "tool_calls": ["bad", {"function": {"name": "f",
                                                                                                 "arguments": "{no"}}]}
    t.final_observation = None
    page = html.unescape(render([t]))
    assert "'not a message'" in page and '"type": "image"' in page and "{no" in page and "'bad'" in page


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(st.text(min_size=1, max_size=40) | st.sampled_from([HOSTILE, "</script><img src=x onerror=alert(1)>", "\ud83d<b>",
                                               "]]><!--", "&amp;&lt;", "</details></section>"]))
def test_hostile_text_anywhere_stays_text(text):
    """Whatever an env or model writes into a task id, message, reasoning, tool name,
    tool argument or error, the page has exactly the elements of a benign page and the
    text reads back unchanged."""
    benign = render([episode("t", text="plain", tool="plain", reasoning="plain", error="plain")])
    page = render([episode(text, text=text, tool=text, reasoning=text, error=text,
                           arguments={text: text})])
    assert Tags(page).tags == Tags(benign).tags
    assert text in html.unescape(page)


def test_lone_surrogates_reach_the_file(tmp_path):
    report = Report("s")
    report.transcripts([episode("task-\udc00", text="half \ud83d")])
    report.write(tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "task-\\udc00" in page and "half \\ud83d" in page


# --- a real browser -------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is missing (pip install 'agenthub[web]')")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chrome or not driver_path:
        pytest.skip("Chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # no download of a driver: there is no network
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--window-size=1200,1600",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver, path):
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000


def test_an_eval_report_in_chromium_shows_a_known_episode(browser, tmp_path):
    from selenium.webdriver.common.by import By

    evaluate("tools/guess-number:test", "oracle", tmp_path, episodes=3, progress=False)
    known = read_trajectories(tmp_path / "trajectories.jsonl")[0]
    browser.get((tmp_path / "report.html").as_uri())
    task = next(d for d in browser.find_elements(By.CSS_SELECTOR, "details.task")
                if d.find_element(By.TAG_NAME, "summary").text.startswith(known.task_id))
    task.find_element(By.TAG_NAME, "summary").click()
    task.find_element(By.CSS_SELECTOR, "details.episode > summary").click()
    browser.execute_script("arguments[0].scrollIntoView()", task)  # the screenshot shows the transcript
    _screenshot(browser, tmp_path / "report.png")
    shown = task.find_element(By.CSS_SELECTOR, "details.episode").text  # visible text only
    call = known.turns[0].action["tool_calls"][0]["function"]
    assert call["name"] == "guess" and "tool call guess" in shown
    assert known.final_observation[-1]["content"] in shown  # e.g. "37: correct"
    assert known.messages()[1]["content"] in shown  # the task's prompt
    assert "win:" in shown and "terminated" in shown


def test_hostile_text_is_text_in_chromium_and_the_filter_works(browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    trajectories = [episode("task-a", 0, text=HOSTILE, tool="</script><img src=x onerror=alert(2)>"),
                    episode("task-a", 1, success=False), episode("task-b", 0, success=False),
                    episode("task-c", 0, success=False, stop_reason="error", error=HOSTILE)]
    results = {"target": HOSTILE, "agent": "hand", "episodes": 4, "success_rate": 0.25, "mean_return": 0.0,
               "mean_turns": 1, "errors": 1, "duration_s": 1.0, "pass_at_k": {"1": 0.25}, "per_task": [
                   {"task_id": t, "samples": 1, "successes": 0, "success_rate": 0, "mean_return": 0,
                    "mean_turns": 1, "stop_reasons": {}} for t in ("task-a", "task-b", "task-c")]}
    write_eval_report(tmp_path / "report.html", results, trajectories)
    browser.get((tmp_path / "report.html").as_uri())
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
    assert HOSTILE in browser.title
    body = browser.find_element(By.TAG_NAME, "body").get_attribute("textContent")
    assert body.count(HOSTILE) >= 3  # the title, a message, the error
    assert "</script><img src=x onerror=alert(2)>" in body

    def visible(selector):
        return [e for e in browser.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]

    def open_all():
        for summary in visible("details.task:not([open]) > summary"):
            summary.click()

    open_all()
    assert len(visible("details.episode")) == 4
    for kind, tasks, episodes in (("failure", 2, 2), ("success", 1, 1), ("error", 1, 1)):
        browser.find_element(By.CSS_SELECTOR, f'label[for$="-{kind}"]').click()
        open_all()
        assert len(visible("details.task")) == tasks, kind
        shown = visible("details.episode")
        assert len(shown) == episodes and all(kind in e.get_attribute("class").split() for e in shown), kind
    _screenshot(browser, tmp_path / "filtered.png")
    browser.find_element(By.CSS_SELECTOR, 'label[for$="-all"]').click()
    assert len(visible("details.episode")) == 4


def test_a_training_report_shows_the_latest_rollouts_and_its_evaluations(tmp_path):
    from agenthub.trainers.report import write_train_report
    from agenthub.types import write_trajectories

    write_trajectories(tmp_path / "rollouts" / "step-000001.jsonl", [episode(text="old-rollout")])
    write_trajectories(tmp_path / "rollouts" / "step-000002.jsonl",
                       [episode("task-r", s, text="new-rollout") for s in range(5)])
    evaluate("tools/guess-number:test", "oracle", tmp_path / "eval" / "free", episodes=2, progress=False)
    write_train_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "Recent rollouts (step-000002)" in page and "new-rollout" in page and "old-rollout" not in page
    assert "3 of 5 episodes not shown" in page  # two per task for rollouts
    assert "Evaluation (free)" in page and "tool call <code>guess</code>" in page
    assert page.count('class="transcripts"') == 2 and 'name="filter-1"' in page  # each section filters alone
