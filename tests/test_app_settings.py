"""``python app.py serve|socket|migrate`` as processes with bad settings (issue 8, finding 16): every problem
at once, a line each, exit 2, never a traceback; a garbage DATABASE_URL is one clear line for all three."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = (
    "SLACK_",
    "POLARIS_",
    "DATABASE_URL",
    "APPROVAL_CHANNEL",
    "APPROVERS",
    "ADMINS",
    "PORT",
    "POLICY_FILE",
    "MANAGER_PROFILE_FIELD",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "WORK_THREADS",
)
GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
    "SLACK_SIGNING_SECRET": "s" * 32,
    "SLACK_APP_TOKEN": "xapp-1-abc",
    "POLARIS_API_URL": "http://127.0.0.1:9",
    "POLARIS_API_KEY": "pok_x",
    "APPROVAL_CHANNEL": "C0APPROVALS",
    "APPROVERS": "U0BOB",
}


def run(command: str, tmp_path, **settings) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    env.update(settings)
    # cwd without a .env, so only what the test sets is read
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "app.py"), command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["serve", "socket", "migrate"])
def test_garbage_database_url_is_one_clear_line(command, tmp_path):
    out = run(command, tmp_path, **GOOD, DATABASE_URL="garbage")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: DATABASE_URL"), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not list(tmp_path.iterdir())  # nothing created


def test_serve_with_nothing_set_lists_every_missing_setting_in_one_run(tmp_path):
    out = run("serve", tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    named = [line.removeprefix("configuration error: ").split(" ")[0] for line in lines]
    assert named == [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "POLARIS_API_URL",
        "POLARIS_API_KEY",
        "APPROVAL_CHANNEL",
        "APPROVERS",
    ], out.stderr


def test_socket_lists_its_app_token_with_the_other_problems(tmp_path):
    settings = {k: v for k, v in GOOD.items() if k != "SLACK_APP_TOKEN"}
    out = run("socket", tmp_path, **settings, MANAGER_PROFILE_FIELD="abc", WEB_CONCURRENCY="many")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    named = [line.removeprefix("configuration error: ").split(" ")[0] for line in out.stderr.strip().splitlines()]
    assert named == ["SLACK_APP_TOKEN", "WEB_CONCURRENCY", "MANAGER_PROFILE_FIELD"], out.stderr
