"""``python app.py sandbox``: the Polaris sandbox and the Slack stand-in, and the environment it prints, are enough
to run ``migrate`` and ``serve`` and to send ``serve`` a signed slash command, with no account anywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.test_serve import Serve, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL", "LOG_"))}
    env.update(extra)
    return env


def start_sandbox(port: int) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "app.py", "sandbox", "--port", str(port)],
        cwd=ROOT,
        env=clean_env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Ctrl-C stops" in line or not line:
            break
    exports = dict(line[len("export ") :].strip().split("=", 1) for line in lines if line.startswith("export "))
    return proc, {k: v.strip("'") for k, v in exports.items()}


def test_serve_runs_on_what_the_sandbox_prints(tmp_path):
    port = free_port()
    proc, env = start_sandbox(port)
    try:
        assert {
            "POLARIS_API_URL",
            "POLARIS_API_KEY",
            "SLACK_API_URL",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
        } <= set(env)
        assert env["PORT"] == str(port) and env["POLARIS_API_URL"].startswith("http://127.0.0.1:")
        env["DATABASE_URL"] = f"sqlite:///{tmp_path}/sandbox.sqlite3"
        migrated = subprocess.run(
            [sys.executable, "app.py", "migrate"], cwd=ROOT, env=clean_env(**env), capture_output=True, text=True
        )
        assert migrated.returncode == 0, migrated.stderr
        server = Serve({**env, "_LOG_DIR": str(tmp_path)}, workers=1)
        # (Serve picks a free PORT of its own; the sandbox's PORT is only what it prints)
        try:
            posted = subprocess.run(
                [sys.executable, "-m", "standins.sandbox", "post", server.url, "U0ALICE", "groups"],
                cwd=ROOT,
                env=clean_env(**env),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert posted.returncode == 0, posted.stdout + posted.stderr
            assert "Viewer" in posted.stdout and "Organization Admin" in posted.stdout
        finally:
            server.stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0


def test_help_prints_usage_and_does_not_start_the_stand_ins():
    done = subprocess.run(
        [sys.executable, "-m", "standins.sandbox", "--help"], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0 and "usage: python -m standins.sandbox" in done.stdout
    assert "running on 127.0.0.1" not in done.stdout


def test_the_hints_name_the_virtualenv_python_when_run_from_it(monkeypatch, tmp_path):
    from standins import sandbox

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert sandbox.python_command() == os.path.join(".venv", "bin", "python")
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    assert sandbox.python_command() == "python"
