"""The env server's shared-secret token, against real `agenthub serve` processes: it
must be set to listen beyond loopback or on a unix socket; with one set, a session (and
/schema) without it or with a wrong one is refused with one clear line, and RemoteEnv
sends it from its argument, $AGENTHUB_SERVER_TOKEN or $AGENTHUB_SERVER_TOKEN_FILE."""

from __future__ import annotations

import httpx
import pytest

from agenthub.auth import is_loopback, load_token, token_matches, token_required
from agenthub.client import RemoteEnv, Unauthorized
from server_process import ENV_ID, start_server, stop_server

TOKEN = "s3cret-token-for-tests"
NO_TOKEN = {"AGENTHUB_SERVER_TOKEN": None, "AGENTHUB_SERVER_TOKEN_FILE": None}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in NO_TOKEN:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    procs = []

    def start(*args, env=None):
        proc, url = start_server(*args, env={**NO_TOKEN, **(env or {})})
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        stop_server(proc)


def play_one_step(url, **kwargs):
    env = RemoteEnv(url, ENV_ID, **kwargs)
    try:
        env.reset(seed=0)
        return env.step("32")
    finally:
        env.close()


@pytest.mark.parametrize("where", [["--host", "0.0.0.0"], ["--host", "::"], ["--host", "example.invalid"],
                                   ["--uds", "/tmp/agenthub-auth-test.sock"]])
def test_beyond_loopback_or_on_a_unix_socket_needs_a_token(cli, where):
    r = cli("serve", ENV_ID, "--port", "0", *where, env={"AGENTHUB_SERVER_TOKEN": ""}, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "needs a shared-secret token: set AGENTHUB_SERVER_TOKEN or pass --token-file" in r.stderr


def test_a_wrong_or_missing_token_is_refused_and_the_right_one_plays(server):
    url = server(env={"AGENTHUB_SERVER_TOKEN": TOKEN})
    with pytest.raises(Unauthorized, match="refused the session: no token sent; this env server needs its "
                                           "token: set AGENTHUB_SERVER_TOKEN"):
        RemoteEnv(url)
    for wrong in ("x", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " "):
        with pytest.raises(Unauthorized, match="wrong token"):
            RemoteEnv(url, token=wrong)
    assert play_one_step(url, token=TOKEN)[4]["turn"] == 1
    assert httpx.get(url + "/schema").status_code == 401
    assert httpx.get(url + "/schema", headers={"Authorization": f"Bearer {TOKEN}"}).json()["env_id"] == ENV_ID
    health = httpx.get(url + "/health").json()  # liveness stays open; it says nothing about episodes
    assert health["auth"] is True and health["refused"] == 7 and health["sessions"] == 0


def test_remote_env_takes_the_token_from_the_environment(server, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    url = server("--token-file", str(token_file), "--host", "0.0.0.0")
    url = url.replace("0.0.0.0", "127.0.0.1")
    with pytest.raises(Unauthorized):
        RemoteEnv(url)
    monkeypatch.setenv("AGENTHUB_SERVER_TOKEN_FILE", str(token_file))
    assert play_one_step(url)[4]["turn"] == 1
    monkeypatch.setenv("AGENTHUB_SERVER_TOKEN", "wrong")  # the variable wins over the file
    with pytest.raises(Unauthorized, match="wrong token"):
        RemoteEnv(url)


def test_unix_socket_server_checks_the_token(server, tmp_path):
    sock = tmp_path / "env.sock"
    url = server("--uds", str(sock), env={"AGENTHUB_SERVER_TOKEN": TOKEN})
    assert url == f"unix:{sock}"
    with pytest.raises(Unauthorized):
        RemoteEnv(url)
    with pytest.raises(Unauthorized):
        RemoteEnv(url, token="nope")
    assert play_one_step(url, token=TOKEN)[4]["turn"] == 1


def test_loopback_without_a_token_stays_open(server):
    assert play_one_step(server())[4]["turn"] == 1


def test_token_helpers(tmp_path):
    assert token_matches(f"Bearer {TOKEN}", TOKEN) and token_matches(f"bearer  {TOKEN} ", TOKEN)
    assert not token_matches(None, TOKEN) and not token_matches("", TOKEN) and not token_matches(TOKEN[:5], TOKEN)
    assert not token_matches("Bearer \udcff", TOKEN)  # undecodable header bytes never raise
    assert [is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "myhost")] == [False] * 4
    assert token_required("127.0.0.1", "/tmp/x.sock") and not token_required("127.0.0.1", None)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(Exception, match="is empty"):
        load_token(empty)
    with pytest.raises(Exception, match="cannot read the server token from"):
        load_token(tmp_path / "missing")
