"""``LOG_FORMAT=json`` (bot/logs.py): every line ``serve`` (gunicorn's own included), ``socket``, ``migrate`` and
``sandbox`` print is one JSON object with time, level, logger and message, and the request id where there is one;
plain text stays the default."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from bot import logs
from bot.audit import audit_context
from tests.conftest import REQUESTER, slash_body

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object; fails naming the first line that is not one."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        out.append(record)
    return out


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL", "LOG_"))}
    env.update(extra)
    return env


def run(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_json_formatter_carries_the_request_id_and_a_redacted_one_line_traceback():
    from bot import redact

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(redact.RedactingFilter())
    handler.setFormatter(logs.json_formatter())
    logger = logging.getLogger("test.logs.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        with audit_context("U0ALICE", "req-123"):
            logger.warning("applying %s\nnext line", "x")
        logger.info("no request here")
        try:
            raise RuntimeError("token xoxb-1234-secret-token in a traceback")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second, third = json_lines(stream.getvalue())
    assert first["request_id"] == "req-123" and first["message"] == "applying x\\nnext line"
    assert first["level"] == "WARNING" and first["logger"] == "test.logs.json" and first["time"].endswith("+00:00")
    assert "request_id" not in second
    assert "xoxb-1234" not in json.dumps(third) and "RuntimeError" in third["exc_info"]


def test_migrate_and_refusals_are_json_lines(tmp_path):
    url = f"sqlite:///{tmp_path}/j.sqlite3"
    out = run(["migrate"], clean_env(LOG_FORMAT="json", DATABASE_URL=url))
    assert out.returncode == 0, out.stderr
    records = json_lines(out.stdout + out.stderr)
    assert any(r["message"] == "database migrated to head" for r in records)
    refused = run(["serve"], clean_env(LOG_FORMAT="json", DATABASE_URL=url))
    assert refused.returncode == 2 and refused.stdout == ""
    records = json_lines(refused.stderr)
    assert records and all(r["level"] == "ERROR" and r["message"].startswith("configuration error") for r in records)
    socket = run(["socket"], clean_env(LOG_FORMAT="json", DATABASE_URL=url))
    assert socket.returncode == 2 and any("SLACK_APP_TOKEN" in r["message"] for r in json_lines(socket.stderr))
    database = run(["migrate"], clean_env(LOG_FORMAT="json", DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    assert database.returncode == 3 and json_lines(database.stderr)[-1]["message"].startswith("database error")


def test_text_stays_the_default_and_a_bad_format_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/t.sqlite3"
    out = run(["migrate"], clean_env(DATABASE_URL=url))
    assert out.returncode == 0 and out.stdout.strip() == "database migrated to head"
    bad = run(["migrate"], clean_env(LOG_FORMAT="xml", DATABASE_URL=url))
    assert bad.returncode == 2 and "LOG_FORMAT must be text or json" in bad.stderr


def test_every_line_serve_prints_is_json_gunicorn_included(serve_env, servers, slack):
    from tests.test_serve import Serve

    server = Serve({**serve_env, "LOG_FORMAT": "json"}, workers=1)
    servers.append(server)
    assert server.post("x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 401
    assert server.post(slash_body(slack, REQUESTER, "help")).status_code == 200
    server.stop()  # SIGTERM: gunicorn's shutdown lines too
    records = json_lines(server.output())
    loggers = {r["logger"] for r in records}
    messages = " ".join(r["message"] for r in records)
    assert "gunicorn.error" in loggers and "Booting worker" in messages and "Shutting down" in messages
    assert "serving on 127.0.0.1" in messages and "signature missing" in messages
