"""``python app.py worker`` as a real process next to ``python app.py serve`` with ``SERVE_WORKER=false``: the
web process only acks and decides, the worker process applies; SIGTERM stops the worker cleanly; bad settings
are named like serve names them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from bot.models import APPLIED, APPROVED
from tests.conftest import APPROVER, REQUESTER, click_body, slash_body, wait_for
from tests.test_serve import ROOT, Serve, requests_in


class WorkerProcess:
    """One ``python app.py worker`` process, output in a log file."""

    def __init__(self, env: dict):
        full = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
        full.update({k: v for k, v in env.items() if not k.startswith("_")}, PYTHONUNBUFFERED="1")
        self.log_path = os.path.join(env["_LOG_DIR"], f"worker-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "worker"],
            cwd=ROOT,
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.flush()
        return open(self.log_path).read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


def test_serve_without_its_worker_and_the_worker_process_applies(serve_env, servers, db, sandbox, slack):
    server = Serve({**serve_env, "SERVE_WORKER": "false"}, workers=1)
    servers.append(server)
    assert "approved requests wait" in server.output() and "python app.py worker" in server.output()
    assert "messages held or retried are not sent" in server.output()  # the held approval DMs wait too
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200  # no worker is not unhealthy
    assert server.post(slash_body(slack, REQUESTER, "request Viewer dashboards")).status_code == 200
    req = wait_for(lambda: [r for r in requests_in(db) if r.approval_ts])[0]
    assert server.post(click_body(slack, APPROVER, "approve_request", req.id)).status_code == 200
    wait_for(lambda: requests_in(db)[0].state == APPROVED, timeout=10)
    time.sleep(1.0)  # five WORKER_INTERVALs: serve's own worker loop would have applied it by now
    assert requests_in(db)[0].state == APPROVED and sandbox.find_user("alice@example.com") is None

    worker = WorkerProcess(serve_env)
    try:
        wait_for(lambda: requests_in(db)[0].state == APPLIED, timeout=20)
        assert [g["name"] for g in sandbox.find_user("alice@example.com")["groups"]] == ["Viewer"]
        assert len(sandbox.writes()) == 1
        os.killpg(worker.proc.pid, signal.SIGTERM)
        assert worker.proc.wait(30) == 0
        out = worker.output()
        starts = [line for line in out.splitlines() if "worker running" in line]
        assert len(starts) == 1 and "Traceback" not in out
        # one machine's file: said at start (it was not); PostgreSQL: nothing to say
        assert ("SQLite: this worker and `serve` must share" in out) == serve_env["DATABASE_URL"].startswith("sqlite")
    finally:
        worker.kill()
    server.stop()


def test_worker_names_bad_settings_like_serve(serve_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({k: v for k, v in serve_env.items() if not k.startswith("_")}, WORKER_INTERVAL="soon", SERVE_WORKER="x")
    out = subprocess.run(
        [sys.executable, "app.py", "worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "WORKER_INTERVAL" in out.stderr and "SERVE_WORKER must be true or false" in out.stderr
