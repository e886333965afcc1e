"""A MiniWoB task page in its own headless Chromium, launched for a closed network.

miniwob's launcher adds only --headless, --disable-gpu and --no-sandbox. Without the
other flags below Chromium keeps trying to reach Google (updates, sync, QUIC,
background fetches), and without SE_OFFLINE Selenium may try to download a driver. So
the driver is created here, from Debian's `chromium` + `chromium-driver` (or the
binaries named by MINIWOB_CHROME_BINARY / MINIWOB_CHROMEDRIVER), and miniwob's
`SeleniumInstance` runs the task page in it: seeding, starting episodes, the DOM walk,
reading the reward.

Every browser gets a private temporary directory (its profile, and TMPDIR for
everything Chromium writes, such as its singleton sockets) and its own process group.
`close` kills that group (chromedriver and every Chromium process it started) and any
process still carrying that TMPDIR, then deletes the directory. The env closes what is
still open when it is garbage-collected or the interpreter exits, and the browsers of
a process killed outright are reaped when the next browser starts. A training run
opens and closes thousands of browsers: one leaked process or directory per episode
would take the machine down. Killing rather than asking the browser to quit takes
milliseconds instead of a second, and the browser holds nothing worth saving.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from agenthub.errors import AgentHubError

INSTALL_HINT = "apt-get install chromium chromium-driver; pip install 'agenthub[web]'"
try:
    import psutil
    from miniwob.constants import WINDOW_HEIGHT, WINDOW_WIDTH
    from miniwob.selenium_instance import SeleniumInstance
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError as e:
    raise AgentHubError(f"web envs need the {e.name} package: {INSTALL_HINT}") from e

DIR_PREFIX = "agenthub-chromium-"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # /dev/shm is tiny in containers
    f"--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}",
)


def browser_binaries() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or a one-line error saying how to get them."""
    chrome = os.environ.get("MINIWOB_CHROME_BINARY") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("MINIWOB_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chrome or not driver:
        missing = " and ".join(name for name, path in (("Chromium", chrome), ("ChromeDriver", driver)) if not path)
        raise AgentHubError(f"web envs need {missing}: {INSTALL_HINT}")
    return chrome, driver


class TaskPage(SeleniumInstance):
    """One MiniWoB task (e.g. "click-button") open in its own browser."""

    def __init__(self, task: str, episode_time_limit_s: float):
        super().__init__(index=0, subdomain=task, headless=True)
        self.record_screenshots = False  # screenshots are taken on request only
        self.episode_time_limit_s = episode_time_limit_s
        self.service: Service | None = None
        self.private_dir = tempfile.mkdtemp(prefix=DIR_PREFIX)
        me = psutil.Process()
        Path(self.private_dir, "owner").write_text(f"{me.pid} {me.create_time()}")

    def create_driver(self) -> None:
        chrome, chromedriver = browser_binaries()
        os.environ["SE_OFFLINE"] = "true"
        options = webdriver.ChromeOptions()
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.private_dir}/profile"):
            options.add_argument(flag)
        options.binary_location = chrome
        # chromedriver leads a new process group, which Chromium's processes join
        self.service = Service(executable_path=chromedriver, env={**os.environ, "TMPDIR": self.private_dir},
                               popen_kw={"start_new_session": True})
        try:
            self.driver = webdriver.Chrome(service=self.service, options=options)
            self.driver.get(self.url)
            WebDriverWait(self.driver, 10).until(
                expected_conditions.element_to_be_clickable((By.ID, self.SYNC_SCREEN_ID)))
            self.inner_width, self.inner_height = self.driver.execute_script(
                "return [window.innerWidth, window.innerHeight];")
            # MiniWoB ends an episode after 10 s; an LLM may think longer than that per turn.
            self.driver.execute_script(f"core.EPISODE_MAX_TIME = {int(self.episode_time_limit_s * 1000)};")
        except Exception:
            self.close()
            raise

    def processes(self) -> list[psutil.Process]:
        """This browser's running processes (see `_processes`)."""
        group = self.service.process.pid if self.service is not None and self.service.process else None
        return _processes(self.private_dir, group)

    def close(self) -> None:
        """Kill chromedriver and every process it started; delete the private directory."""
        self.died = True
        chromedriver = self.service.process if self.service is not None else None
        if chromedriver is not None and chromedriver.returncode is None:
            try:  # the whole group at once: also a process Chromium is starting right now
                os.killpg(chromedriver.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _kill(self.private_dir, chromedriver.pid)  # and those outside the group
            chromedriver.wait(timeout=10)  # our child: reap it
        shutil.rmtree(self.private_dir, ignore_errors=True)


def _processes(private_dir: str, group: int | None) -> list[psutil.Process]:
    """The running processes of the browser that owns `private_dir`: those in its
    process `group` and those carrying TMPDIR=private_dir (Chromium's crash handler
    leaves the group; the zygote's children drop the environment but stay in the group).
    An exited process stays a zombie until init reaps it (up to a second or two here):
    it holds no memory, so it does not count."""
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        if "chrom" not in (proc.info["name"] or "") or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if (group is not None and os.getpgid(proc.pid) == group) or \
                    proc.environ().get("TMPDIR") == private_dir:
                found.append(proc)
        except (OSError, psutil.Error):  # gone meanwhile
            pass
    return found


def _kill(private_dir: str, group: int | None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (running := _processes(private_dir, group)) and time.monotonic() < deadline:
        for proc in running:
            try:
                proc.kill()
            except psutil.Error:
                pass
        time.sleep(0.01)


def reap_orphans() -> int:
    """Kill the browsers, and delete the directories, of processes that died without
    closing them (SIGKILL, the OOM killer); returns how many. A dead browser's group id
    may have been reused, so orphans are found by their TMPDIR only: that is the browser
    process itself, chromedriver and the crash handler, and the others exit with the
    browser process."""
    reaped = 0
    for owner_file in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*/owner"):
        try:
            pid, started = owner_file.read_text().split()
            if psutil.Process(int(pid)).create_time() == float(started):
                continue  # its owner is alive
        except psutil.NoSuchProcess:
            pass
        except (OSError, ValueError):  # being created or removed right now
            continue
        _kill(str(owner_file.parent), None)
        _remove_orphan_dir(owner_file.parent)
        reaped += 1
    return reaped


def _remove_orphan_dir(private_dir: Path, timeout: float = 10) -> None:
    """Delete a dead browser's directory, its owner file last: a renderer may still be
    writing there for a moment, and what is left must stay findable by the next reap."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for entry in private_dir.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                elif entry.name != "owner":
                    entry.unlink(missing_ok=True)
            if [e.name for e in private_dir.iterdir()] == ["owner"]:
                shutil.rmtree(private_dir, ignore_errors=True)
                return
            time.sleep(0.05)
    except FileNotFoundError:  # another process reaped it at the same time
        pass


def open_task_page(task: str, episode_time_limit_s: float = 600.0) -> TaskPage:
    reap_orphans()
    page = TaskPage(task, episode_time_limit_s)
    page.create_driver()
    return page
