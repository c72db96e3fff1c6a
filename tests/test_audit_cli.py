"""``python app.py audit verify`` and ``audit export`` (issue 12): exit statuses, the first broken row named,
stable columns, the time filter, streaming output; they need only DATABASE_URL (and AUDIT_KEY)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os

import pytest
from sqlalchemy import text

import app
from bot.audit import AuditLog
from bot.audit_chain import EXPORT_COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def rows(db, monkeypatch):
    for name in ("SLACK_BOT_TOKEN", "POLARIS_API_KEY", "AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db.url)
    audit = AuditLog(db)
    audit.record("U0ALICE", "command", target="Viewer", detail="request Viewer, because")
    audit.record(
        "bot", "polaris.call", polaris_method="GET", polaris_path="/v1/groups", polaris_status=200, duration_ms=3.5
    )
    audit.record("U0BOB", "decision.approve", detail=None)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET at = :at WHERE action = 'command'"), {"at": dt.datetime(2026, 1, 1)})
    return audit


def test_verify_exits_0_on_an_intact_chain_and_1_naming_the_edited_row(rows, db, capsys):
    # the update of `at` above is itself an edit of the first row
    assert app.main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    first = db.engine.connect().execute(text("SELECT min(id) FROM audit_log")).scalar()
    assert f"audit chain broken (edited): row {first} was edited" in out


def test_verify_exits_0_when_untouched(db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.delenv("AUDIT_KEY", raising=False)
    AuditLog(db).record("U0ALICE", "command")
    assert app.main(["audit", "verify"]) == 0
    assert "audit chain holds: 1 rows" in capsys.readouterr().out


def test_a_malformed_checkpoint_is_a_sentence(db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db.url)
    assert app.main(["audit", "verify", "--expect", "nonsense"]) == 2
    assert "--expect takes ID:SEAL" in capsys.readouterr().out


def test_export_csv_has_stable_columns_and_every_row(rows, capsys):
    assert app.main(["audit", "export"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert tuple(table[0]) == EXPORT_COLUMNS
    assert [r[EXPORT_COLUMNS.index("action")] for r in table[1:]] == ["command", "polaris.call", "decision.approve"]
    assert table[1][EXPORT_COLUMNS.index("at")] == "2026-01-01T00:00:00.000000Z"
    assert table[2][EXPORT_COLUMNS.index("polaris_status")] == "200"


def test_export_jsonl_keeps_none_apart_from_empty_and_filters_by_time(rows, capsys):
    assert app.main(["audit", "export", "--format", "jsonl", "--since", "2026-01-02"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["action"] for r in lines] == ["polaris.call", "decision.approve"]
    assert list(lines[0]) == list(EXPORT_COLUMNS)
    assert lines[1]["detail"] is None and lines[0]["duration_ms"] == 3.5
    assert app.main(["audit", "export", "--format", "jsonl", "--until", "2026-01-01T00:00:01Z"]) == 0
    assert [json.loads(x)["action"] for x in capsys.readouterr().out.splitlines()] == ["command"]


def test_export_refuses_a_time_it_cannot_read(rows, capsys):
    assert app.main(["audit", "export", "--since", "last tuesday"]) == 2
    assert "--since must be an ISO 8601 date or time" in capsys.readouterr().err


def test_an_unmigrated_database_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/none.sqlite3")
    assert app.main(["audit", "verify"]) == 2
    assert "run `python app.py migrate` first" in capsys.readouterr().err


def test_export_piped_into_head_is_no_traceback(tmp_path):
    """New-user trial: `audit export | head -5` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    from bot.db import Database

    url = f"sqlite:///{tmp_path}/a.sqlite3"
    db = Database(url)
    db.migrate()
    from bot.audit import AuditLog

    log = AuditLog(db)
    for i in range(3000):
        log.record("U0ALICE", "command", detail=f"row {i}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_"))}
    env["DATABASE_URL"] = url
    cmd = f"{sys.executable} app.py audit export --format jsonl | head -2"
    out = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert len(out.stdout.splitlines()) == 2
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def test_expect_with_a_truncated_seal_is_bad_input(tmp_path, capsys):
    from bot import audit_jobs
    from bot.db import Database

    db = Database(f"sqlite:///{tmp_path}/b.sqlite3")
    db.migrate()
    import io

    out = io.StringIO()
    assert audit_jobs._verify(db, None, out, ["12:sha256:11464eb90d"]) == 2
    assert "--expect takes ID:SEAL" in out.getvalue()


def test_export_with_since_not_before_until_is_bad_input_not_an_empty_file(rows, capsys):
    assert app.main(["audit", "export", "--since", "2026-02-01", "--until", "2026-01-01"]) == 2
    captured = capsys.readouterr()
    assert "--since (2026-02-01) must be earlier than --until (2026-01-01)" in captured.err
    assert captured.out == ""  # not a header alone, read as "nothing happened"
