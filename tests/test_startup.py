"""Start-up of ``serve``, ``socket`` and ``migrate`` as real processes: what they say (one line per fact, no
library noise, no traceback), what they refuse, and ``/healthz`` from its first answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import requests

from standins.polaris_sandbox import Fault
from tests.conftest import CHANNEL, wait_for
from tests.test_serve import ROOT, Serve


def closed_port_url() -> str:
    """A URL where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


def run(command: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    full.update({k: v for k, v in env.items() if not k.startswith("_")}, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "app.py", command], cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout
    )


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_serve_start_says_what_it_uses_without_bolts_warning(serve_env, servers, sandbox, db):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    server.stop()
    out = server.output()
    assert "token will be unused" not in out
    start = lines_with(out, "approval channel")
    assert len(start) == 1, out
    host = sandbox.url.split("//")[1]
    assert f"approval channel {CHANNEL}" in start[0] and f"Polaris http://{host}" in start[0]
    assert db.engine.url.render_as_string(hide_password=True).split("://")[0] in start[0]
    assert "Traceback" not in out


def test_database_in_the_start_line_hides_its_password():
    from bot import wiring

    shown = wiring.database_for_log("postgresql://bot:s3cr3t-pw@db.example:5432/pab?sslpassword=k3y&sslmode=require")
    assert "s3cr3t-pw" not in shown and "k3y" not in shown
    assert shown.startswith("postgresql://bot:***@db.example:5432/pab") and "sslmode=require" in shown
    assert wiring.database_for_log("sqlite:////tmp/x.sqlite3") == "sqlite:////tmp/x.sqlite3"


def test_unreachable_slack_at_serve_start_is_one_line(serve_env, servers):
    server = Serve({**serve_env, "SLACK_API_URL": closed_port_url()}, workers=1)
    servers.append(server)
    server.stop()
    out = server.output()
    assert len(lines_with(out, "auth.test")) == 1, out
    assert "slack_sdk" not in out and "Traceback" not in out


def test_socket_with_slack_unreachable_is_one_clear_line(serve_env):
    out = run("socket", {**serve_env, "SLACK_APP_TOKEN": "xapp-1-A0TEST-1-abc", "SLACK_API_URL": closed_port_url()})
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode != 0
    assert len(lines) == 1 and "cannot reach Slack" in lines[0], lines


def test_migrate_prints_one_line(tmp_path):
    out = run("migrate", {"DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"})
    assert out.returncode == 0
    assert (out.stdout + out.stderr).strip().splitlines() == ["database migrated to head"]


def test_first_health_answer_is_real(serve_env, servers):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    assert server.first_health == {"database": "ok", "polaris": "ok"}
    server.stop()


def test_head_healthz_sends_headers_only(serve_env, servers):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    get = requests.get(server.url + "/healthz", timeout=5)
    head = requests.head(server.url + "/healthz", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert head.headers["Content-Type"] == "application/json"
    server.stop()
    out = server.output()
    assert "no-body response" not in out and "[ERROR]" not in out and "Traceback" not in out


def test_serve_refuses_a_polaris_key_polaris_refuses(serve_env):
    out = run("serve", {**serve_env, "POLARIS_API_KEY": "pok_wrong_key_at_start"})
    assert out.returncode == 2
    assert lines_with(out.stderr, "POLARIS_API_KEY") == [
        "configuration error: POLARIS_API_KEY was refused by Polaris (401): check the key and its "
        "AdministerUsers permission"
    ]
    assert "pok_wrong_key_at_start" not in out.stdout + out.stderr


def test_unreachable_polaris_at_start_is_a_warning_and_health_says_so(serve_env, servers, sandbox):
    sandbox.add_fault(Fault(delay=20.0, times=None))  # Polaris hangs
    server = Serve(serve_env, workers=1)
    servers.append(server)
    assert server.first_health == {"database": "ok", "polaris": "unreachable"}
    sandbox.clear_faults()
    server.kill()
    warnings = lines_with(server.output(), "Polaris")
    assert len([w for w in warnings if "unreachable" in w]) == 1, server.output()


def test_health_notices_a_key_revoked_after_start(core, sandbox, caplog):
    from bot.server import Health

    health = Health(core, ttl=0.0)
    assert health()[1]["polaris"] == "ok"
    sandbox.add_fault(Fault(path=r"^/v1/permissions$", status=401, times=None))
    health.polaris_state()  # starts the background probe
    wait_for(lambda: health.polaris_state() == "unauthorized", timeout=5)
    assert "POLARIS_API_KEY" in caplog.text
    sandbox.clear_faults()


def test_serve_on_a_port_in_use_is_one_line(serve_env, db):
    """New-user trial: a taken PORT printed the start line, then ~10 gunicorn lines over 5 s, then exit 1."""
    import socket as sockets

    with sockets.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "app.py", "serve", "--host", "127.0.0.1"],
            cwd=ROOT,
            timeout=60,
            capture_output=True,
            text=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
                **{k: v for k, v in serve_env.items() if not k.startswith("_")},
                "PORT": str(port),
            },
        )
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 2
    assert lines == [
        f"configuration error: PORT {port} on 127.0.0.1 is already in use: set PORT (or --host) to a free one"
    ], lines


def test_serve_names_a_refused_token_a_refused_key_and_a_taken_port_in_one_run(serve_env):
    """Final check: a wrong SLACK_BOT_TOKEN hid a wrong POLARIS_API_KEY until the next run."""
    import socket as sockets

    with sockets.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        out = run(
            "serve",
            {**serve_env, "SLACK_BOT_TOKEN": "xoxb-wrong-token", "POLARIS_API_KEY": "pok_wrong", "PORT": port},
        )
    errors = [line for line in out.stderr.splitlines() if line.startswith("configuration error:")]
    assert out.returncode == 2
    assert [e.split(":")[1].split()[0] for e in errors] == ["SLACK_BOT_TOKEN", "POLARIS_API_KEY", "PORT"], errors
    assert "xoxb-wrong-token" not in out.stdout + out.stderr and "pok_wrong" not in out.stdout + out.stderr
