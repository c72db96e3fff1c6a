"""``python app.py serve`` as a real process (gunicorn, Bolt's WSGI adapter) with the Slack stand-in and the
Polaris sandbox on 127.0.0.1: signatures, the main job end to end, secrets, health, crash and concurrency."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from sqlalchemy import inspect, select, text

from bot.models import APPLIED, AccessRequest
from standins.polaris_sandbox import SANDBOX_API_KEY, Fault
from tests.conftest import (
    APPROVER,
    APPROVER2,
    OTHER,
    REQUESTER,
    SIGNING_SECRET,
    click_body,
    signed_headers,
    slash_body,
    wait_for,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """One ``python app.py serve`` process; its combined output is kept for the secrets scan."""

    def __init__(self, env: dict, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
        full.update(env, PORT=str(self.port), WEB_CONCURRENCY=str(workers), PYTHONUNBUFFERED="1")
        self.log_path = os.path.join(env["_LOG_DIR"], f"serve-{self.port}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "serve", "--host", "127.0.0.1"],
            cwd=ROOT,
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.first_health: dict | None = None  # the body of the first /healthz answer
        wait_for(self._healthy, timeout=30, interval=0.1)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("serve exited:\n" + open(self.log_path).read())
        try:
            response = requests.get(self.url + "/healthz", timeout=1)
        except requests.RequestException:
            return False
        self.first_health = response.json()
        return response.status_code == 200

    def post(self, body: str, headers: dict | None = None) -> requests.Response:
        return requests.post(
            self.url + "/slack/events",
            data=body.encode(),
            headers=signed_headers(body) if headers is None else headers,
            timeout=5,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return open(self.log_path).read()


def requests_in(db) -> list[AccessRequest]:
    with db.session() as s:
        return list(s.scalars(select(AccessRequest)))


def test_serve_refuses_to_start_without_polaris_url(serve_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({k: v for k, v in serve_env.items() if k != "POLARIS_API_URL"}, POLARIS_API_URL="")
    out = subprocess.run(
        [sys.executable, "app.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2 and "POLARIS_API_URL" in out.stderr


def test_main_job_through_serve(serve_env, servers, db, sandbox, slack):
    server = Serve(serve_env)
    servers.append(server)
    body = slash_body(slack, REQUESTER, "request Viewer dashboards")
    assert server.post(body, headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 401
    assert server.post(body, headers=signed_headers(body, timestamp=int(time.time()) - 600)).status_code == 401
    started = time.monotonic()
    assert server.post(body).status_code == 200
    assert time.monotonic() - started < 3
    req = wait_for(lambda: [r for r in requests_in(db) if r.approval_ts])[0]
    for who in (REQUESTER, OTHER):
        click = click_body(slack, who, "approve_request", req.id)
        assert server.post(click).status_code == 200
    click = click_body(slack, APPROVER, "approve_request", req.id)
    assert server.post(click).status_code == 200
    wait_for(lambda: requests_in(db)[0].state == APPLIED, timeout=15)
    user = sandbox.find_user("alice@example.com")
    assert user["firstName"] == "Alice" and [g["name"] for g in user["groups"]] == ["Viewer"]
    assert requests_in(db)[0].decided_by == APPROVER
    health = wait_for(
        lambda: (lambda h: h if h["polaris"] != "unknown" else None)(
            requests.get(server.url + "/healthz", timeout=5).json()
        )
    )
    assert health == {"database": "ok", "polaris": "ok"}
    server.stop()
    scan_for_secrets(server.output(), db, slack, [SIGNING_SECRET, slack.bot_token, SANDBOX_API_KEY])


def scan_for_secrets(log_text: str, db, slack, secrets: list[str]) -> None:
    """No secret in the logs, in any table of the database, or in any payload sent to Slack."""
    import json

    with db.engine.connect() as conn:
        dump = []
        for table in inspect(conn).get_table_names():
            dump.extend(str(row) for row in conn.execute(text(f"SELECT * FROM {table}")))
    slack_payloads = json.dumps([slack.calls, slack.messages, slack.responses, slack.ephemerals], default=str)
    assert dump, "the database should hold rows to scan"
    for secret in secrets:
        assert secret not in log_text
        assert not any(secret in row for row in dump)
        assert secret not in slack_payloads


def test_kill_9_mid_apply_then_restart_applies_exactly_once(serve_env, servers, db, sandbox, slack):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    body = slash_body(slack, REQUESTER, "request Viewer")
    server.post(body)
    req = wait_for(lambda: [r for r in requests_in(db) if r.approval_ts])[0]
    # Polaris is slow to find users for as long as this process lives: the decision's own check of the requester
    # and the apply's lookup both wait 3 s (one slow call only was raced by the decision's check, and the apply
    # then ran at full speed before the kill).
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/users$", delay=3.0, times=None))
    server.post(click_body(slack, APPROVER, "approve_request", req.id))
    wait_for(lambda: requests_in(db)[0].attempts >= 1, timeout=15)
    time.sleep(0.5)  # the apply has claimed the request and waits on its slow lookup
    server.kill()  # kill -9 while the apply waits on Polaris
    assert requests_in(db)[0].state == "approved"
    sandbox.clear_faults()
    time.sleep(3.2)  # let the slow call finish on the sandbox side (its answer goes nowhere)
    restarted = Serve(serve_env, workers=1)
    servers.append(restarted)
    wait_for(lambda: requests_in(db)[0].state == APPLIED, timeout=20)
    assert len(sandbox.writes()) == 1
    restarted.stop()


@pytest.mark.postgresql_only
def test_two_serve_processes_on_postgresql_make_one_write(serve_env, servers, db, sandbox, slack):
    assert not db.is_sqlite
    a, b = Serve(serve_env), Serve(serve_env)
    servers.extend([a, b])
    a.post(slash_body(slack, REQUESTER, "request Viewer"))
    req = wait_for(lambda: [r for r in requests_in(db) if r.approval_ts])[0]
    clicks = [click_body(slack, APPROVER if i % 2 else APPROVER2, "approve_request", req.id) for i in range(20)]
    barrier = threading.Barrier(20)
    statuses = []

    def send(i):
        barrier.wait()
        statuses.append((a if i % 2 else b).post(clicks[i]).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    wait_for(lambda: requests_in(db)[0].state == APPLIED, timeout=20)
    time.sleep(1.0)  # both workers get a few more passes
    assert len(sandbox.writes()) == 1
    with db.session() as s:
        decisions = s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'decision.approve'")).scalar()
    assert decisions == 1


def test_sigterm_lets_the_apply_in_flight_finish(serve_env, servers, db, sandbox, slack):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    server.post(slash_body(slack, REQUESTER, "request Viewer"))
    req = wait_for(lambda: [r for r in requests_in(db) if r.approval_ts])[0]
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/users$", delay=2.0, times=1))
    server.post(click_body(slack, APPROVER, "approve_request", req.id))
    wait_for(lambda: requests_in(db)[0].attempts >= 1, timeout=10)
    os.killpg(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(30) == 0
    assert requests_in(db)[0].state == APPLIED
    assert len(sandbox.writes()) == 1
    assert "Traceback" not in server.output()


def test_health_answers_at_once_when_polaris_hangs(serve_env, servers, sandbox):
    sandbox.add_fault(Fault(delay=20.0, times=None))
    server = Serve(serve_env, workers=1)
    servers.append(server)
    for _ in range(3):
        started = time.monotonic()
        health = requests.get(server.url + "/healthz", timeout=5)
        assert health.status_code == 200 and time.monotonic() - started < 1.0
    assert health.json()["polaris"] == "unreachable"
    sandbox.clear_faults()
    server.kill()


def test_bad_gunicorn_settings_are_named(serve_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({k: v for k, v in serve_env.items() if not k.startswith("_")}, WEB_CONCURRENCY="abc")
    out = subprocess.run(
        [sys.executable, "app.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2 and "WEB_CONCURRENCY" in out.stderr and "Traceback" not in out.stderr


def test_unreachable_database_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/x"
    out = subprocess.run(
        [sys.executable, "app.py", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 3 and "database error" in out.stderr and "Traceback" not in out.stderr


def test_wrong_bot_token_stops_at_start(serve_env, core):
    from bot import wiring
    from bot.config import ConfigError

    core.slack.client.token = "xoxb-wrong-token"
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN was refused"):
        wiring.build_bolt_app(core, verify_token=True)


def test_serve_with_a_refused_bot_token_says_so(serve_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({k: v for k, v in serve_env.items() if not k.startswith("_")}, SLACK_BOT_TOKEN="xoxb-refused")
    out = subprocess.run(
        [sys.executable, "app.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "SLACK_BOT_TOKEN was refused by Slack (invalid_auth)" in out.stderr
    assert "xoxb-refused" not in out.stderr + out.stdout


def test_serve_on_a_missing_sqlite_file_refuses_without_creating_it(serve_env, tmp_path):
    missing = tmp_path / "never-migrated.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({k: v for k, v in serve_env.items() if not k.startswith("_")}, DATABASE_URL=f"sqlite:///{missing}")
    out = subprocess.run(
        [sys.executable, "app.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "python app.py migrate" in out.stderr
    assert not missing.exists()
