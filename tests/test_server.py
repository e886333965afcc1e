"""The env server and RemoteEnv: same episodes as in-process, errors as errors, 64
concurrent clients, the capacity cap, and reaping of vanished and idle sessions. Real
uvicorn server (in a thread, or as `agenthub serve` in a subprocess), real WebSockets."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from gymnasium.utils.env_checker import check_env

import agenthub
from agenthub.client import RemoteEnv, RemoteEnvError, ServerAtCapacity
from agenthub.env import Env
from agenthub.server import EnvServer, ServerThread
from server_process import served  # noqa: F401  (a fixture)

ENV_ID = "tools/guess-number-v0"


class BrokenEnv(Env):
    """Raises inside step; sleeps on request, to hit the server's op timeout."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "go"}], {}

    def step(self, action):
        if action.text == "slow":
            time.sleep(2)
        raise ZeroDivisionError("the env divided by zero")


agenthub.register("testserver/broken-v0", entry_point=BrokenEnv, max_turns=5)


class SlowEnv(Env):
    """Sleeps as long as asked (reset options {"sleep": s}, step "sleep S", oracle_actions
    0.6 s) and records the most calls ever inside one instance at once, and whether
    close() ever ran while a call was inside."""

    lock = threading.Lock()
    most = closes = 0
    closed_during_call = False
    inside = 0  # per instance, once set on it

    def _enter(self, seconds):
        with SlowEnv.lock:
            self.inside += 1
            SlowEnv.most = max(SlowEnv.most, self.inside)
        time.sleep(seconds)
        with SlowEnv.lock:
            self.inside -= 1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._enter(float((options or {}).get("sleep", 0)))
        return [{"role": "user", "content": "go"}], {}

    def step(self, action):
        self._enter(float(action.text.split()[-1]))
        return [{"role": "user", "content": "ok"}], 0.0, False, False, {}

    def oracle_actions(self):
        self._enter(0.6)
        return ["sleep 0"]

    def close(self):
        with SlowEnv.lock:
            SlowEnv.closed_during_call |= self.inside > 0
            SlowEnv.closes += 1


agenthub.register("testserver/slow-v0", entry_point=SlowEnv, max_turns=50)


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def play(env, seed):
    """Play one oracle episode on `env` and on an in-process twin; return both transcripts."""
    local = agenthub.make(ENV_ID)
    remote_steps, local_steps = [env.reset(seed=seed)], [local.reset(seed=seed)]
    for action in local.oracle_actions():
        remote_steps.append(env.step(action))
        local_steps.append(local.step(action))
    return remote_steps, local_steps


def test_remote_env_matches_in_process_and_reports_schema():
    with ServerThread(EnvServer(ENV_ID)) as url:
        env = RemoteEnv(url, ENV_ID)
        assert env.tools == agenthub.make(ENV_ID).tools and env.max_turns == 10
        for seed in (0, 7):
            remote, local = play(env, seed)
            assert remote == local
            assert remote[-1][2] is True and remote[-1][4]["success"] is True
        assert env.step("5")[4]["action_error"].startswith("the episode is over")  # contract holds remotely
        check_env(env, skip_render_check=True)
        env.close()
        env.close()
        with pytest.raises(RemoteEnvError, match="closed"):
            env.reset(seed=0)
        assert httpx.get(url + "/schema").json()["env_id"] == ENV_ID
        assert httpx.get(url + "/health").json()["sessions"] == 0
        with pytest.raises(RemoteEnvError, match="serves tools/guess-number-v0"):
            RemoteEnv(url, "textworld/other-v0")


def test_async_twins():
    with ServerThread(EnvServer(ENV_ID)) as url:
        envs = [RemoteEnv(url) for _ in range(4)]

        async def main():
            firsts = await asyncio.gather(*(env.areset(seed=s) for s, env in enumerate(envs)))
            steps = await asyncio.gather(*(env.astep("32") for env in envs))
            return firsts, steps

        firsts, steps = asyncio.run(main())
        for seed, ((obs, info), step) in enumerate(zip(firsts, steps)):
            local = agenthub.make(ENV_ID)
            assert (obs, info) == local.reset(seed=seed)
            assert step == local.step("32")
        for env in envs:
            env.close()


def test_env_errors_come_back_as_errors():
    with ServerThread(EnvServer("testserver/broken-v0", op_timeout=0.5)) as url:
        env = RemoteEnv(url)
        env.reset(seed=0)
        with pytest.raises(RemoteEnvError, match="ZeroDivisionError: the env divided by zero"):
            env.step("anything")
        with pytest.raises(RemoteEnvError, match="no oracle"):
            env.oracle_actions()
        assert env.reset(seed=1)[0] == [{"role": "user", "content": "go"}]  # the session survives
        with pytest.raises(RemoteEnvError, match="took over 0.5s and is still running inside the env, so this "
                                                 "session is closed and its env discarded"):
            env.step("slow")
        with pytest.raises(RemoteEnvError, match="closed this session|ended"):
            env.reset(seed=1)  # never a second call into the env the slow step still runs in
        env.close()


@pytest.mark.parametrize("slow_op", [
    lambda env: env.reset(seed=0, options={"sleep": 0.6}),
    lambda env: env.step("sleep 0.6"),
    lambda env: env.oracle_actions(),
], ids=["reset", "step", "oracle_actions"])
def test_an_op_past_its_timeout_never_shares_the_env_with_another_call(slow_op):
    SlowEnv.most = SlowEnv.closes = 0
    SlowEnv.closed_during_call = False
    server = EnvServer("testserver/slow-v0", op_timeout=0.2)
    with ServerThread(server) as url:
        env = RemoteEnv(url)
        env.reset(seed=0)
        with pytest.raises(RemoteEnvError, match="took over 0.2s and is still running inside the env, so this "
                                                 "session is closed and its env discarded; open a new session"):
            slow_op(env)
        for later_op in (lambda: env.reset(seed=1), lambda: env.step("sleep 0")):
            with pytest.raises(RemoteEnvError, match="op timeout|ended|closed"):
                later_op()
        assert server.health()["sessions"] == 0 and server.health()["timed_out"] == 1
        other = RemoteEnv(url)  # the server itself goes on
        assert other.reset(seed=0)[0] == [{"role": "user", "content": "go"}]
        other.close()
        assert wait_until(lambda: server.health()["stale_calls"] == 0 and SlowEnv.closes >= 3)
        env.close()
    assert SlowEnv.most == 1  # never two calls inside an env at once...
    assert not SlowEnv.closed_during_call  # ...and the stale one was not closed under the call


def test_stale_calls_do_not_starve_other_sessions():
    server = EnvServer("testserver/slow-v0", max_sessions=2, op_timeout=0.2)  # two worker threads
    with ServerThread(server) as url:
        for _ in range(2):  # each leaves a call stuck in a worker for 3 s
            env = RemoteEnv(url)
            with pytest.raises(RemoteEnvError, match="took over 0.2s"):
                env.step("sleep 3")
            env.close()
        start = time.monotonic()
        env = RemoteEnv(url)  # its env is made, and its ops run, on threads the stuck calls do not hold
        assert env.step("sleep 0")[0] == [{"role": "user", "content": "ok"}]
        assert time.monotonic() - start < 2
        env.close()
        assert server.health()["stale_calls"] == 2
        assert wait_until(lambda: server.health()["stale_calls"] == 0)


def test_idle_session_is_reaped():
    server = EnvServer(ENV_ID, idle_timeout=0.4)
    with ServerThread(server) as url:
        env = RemoteEnv(url)
        env.reset(seed=0)
        assert wait_until(lambda: server.health()["sessions"] == 0)
        assert server.reaped == 1
        with pytest.raises(RemoteEnvError, match="idle"):
            env.step("32")
        env.close()


def test_64_concurrent_clients_and_the_capacity_cap(served):
    url = served("--max-sessions", "64")
    connected = threading.Barrier(65)
    results, errors = {}, []

    def client(i):
        try:
            env = RemoteEnv(url, ENV_ID)
        except Exception as e:  # reported through `errors`; unblock the barrier anyway
            errors.append(e)
            connected.abort()
            return
        try:
            connected.wait(timeout=120)
            results[i] = [play(env, seed=100 * i + k) for k in range(2)]
        except Exception as e:
            errors.append(e)
        finally:
            env.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    connected.wait(timeout=120)  # all 64 hold a session now
    with pytest.raises(ServerAtCapacity, match="64 of 64 sessions"):
        RemoteEnv(url)
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == 64
    for episodes in results.values():
        for remote, local in episodes:
            assert remote == local and remote[-1][4]["success"] is True
    assert wait_until(lambda: httpx.get(url + "/health").json()["sessions"] == 0)
    RemoteEnv(url).close()  # capacity is free again


CLIENT_THEN_HANG = """
import sys, time, agenthub
env = agenthub.RemoteEnv(sys.argv[1])
env.reset(seed=0)
env.step("32")
print("mid-episode", flush=True)
time.sleep(600)
"""


def test_vanished_client_session_is_reaped(served):
    url = served()
    client = subprocess.Popen([sys.executable, "-c", CLIENT_THEN_HANG, url], stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "mid-episode"
    assert httpx.get(url + "/health").json()["sessions"] == 1
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    assert wait_until(lambda: httpx.get(url + "/health").json()["sessions"] == 0)


def test_serve_cli_errors_are_one_line(cli):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = cli("serve", ENV_ID, "--port", str(port), timeout=60)
    finally:
        busy.close()
    assert r.returncode == 2
    assert r.stderr.strip() == f"agenthub: error: port {port} on 127.0.0.1 is in use; pick another with --port"
    r = cli("serve", "tools/no-such-env-v0", "--port", "0", timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown env id" in r.stderr
