"""The audit trail's periodic jobs and its command-line work: the witness post of the chain head to
``AUDIT_CHANNEL`` (daily, and on ``app.py audit verify --witness``), ``reconcile`` every ``RECONCILE_INTERVAL``
with its report posted there, ``audit verify`` and ``audit export``.

Periodic jobs run in the background worker of every process (:class:`bot.worker.Worker` ``periodic``); each is
done by one process at a time (a claim, :mod:`bot.claims`) and at most once per interval across all of them
(its last run is a row of ``schedule_marks``). They run only when ``AUDIT_CHANNEL`` is set.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import json
import logging
from typing import Callable, TextIO

from . import audit_chain
from .audit import AuditLog
from .claims import Claims
from .db import Database
from .models import ScheduleMark
from .polaris import PolarisError
from .reconcile import Reconciler, Report
from .slack import SlackError, SlackGateway

log = logging.getLogger(__name__)
WITNESS_INTERVAL = dt.timedelta(days=1)
SECTION_MAX = 2900  # a Slack section holds 3,000 characters: each post of a report is cut below that
POSTS_MAX = 10  # a report longer than this many posts is cut, saying how many differences were left out


def witness(db: Database, slack: SlackGateway, channel: str, actor: str = "bot") -> tuple[int | None, str | None]:
    """Post the chain head (last id and seal) to ``channel`` with ``chat.postMessage`` (audited by the gateway
    as ``audit.witness``); returns the head posted. Raises :class:`bot.slack.SlackError`."""
    last_id, last_hash = audit_chain.head(db)
    slack.post(channel, audit_chain.witness_text(last_id, last_hash), action="audit.witness")
    return last_id, last_hash


def post_report(slack: SlackGateway, channel: str, report: Report) -> int:
    """Post ``report``'s text to ``channel``, in posts of at most :data:`SECTION_MAX` characters (at most
    :data:`POSTS_MAX` of them). Returns the number of posts. Raises :class:`bot.slack.SlackError`."""
    chunks, current = [], ""
    for line in report.as_text().splitlines():
        line = line[:SECTION_MAX]
        if current and len(current) + len(line) + 1 > SECTION_MAX:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    if len(chunks) > POSTS_MAX:
        chunks = chunks[: POSTS_MAX - 1] + ["(the report is longer: run `python app.py reconcile` for all of it)"]
    for chunk in chunks:
        slack.post(channel, chunk, action="reconcile.report")
    return len(chunks)


class AuditJobs:
    """The periodic jobs of one process: :meth:`run_due` (the worker calls it after each pass)."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        slack: SlackGateway,
        reconciler: Reconciler,
        *,
        channel: str | None,
        reconcile_interval: float,
        clock: Callable[[], dt.datetime],
    ):
        self.db, self.audit, self.slack, self.reconciler = db, audit, slack, reconciler
        self.channel, self.clock = channel, clock
        self.reconcile_interval = dt.timedelta(seconds=reconcile_interval)
        self.claims = Claims(db)

    def run_due(self) -> list[str]:
        """Run what is due (witness post, reconcile); the names of those run. Never raises."""
        if not self.channel:
            return []
        done = []
        for name, interval, job in (
            ("witness", WITNESS_INTERVAL, self._witness),
            ("reconcile", self.reconcile_interval, self._reconcile),
        ):
            try:
                if self._once(name, interval, job):
                    done.append(name)
            except Exception:
                log.exception("periodic job %s failed", name)
        return done

    def _once(self, name: str, interval: dt.timedelta, job: Callable[[], str]) -> bool:
        """Run ``job`` when its mark is older than ``interval``, in one process at a time (claim ``job:name``)."""
        now = self.clock()
        with self.db.session() as s:
            mark = s.get(ScheduleMark, name)
            if mark is not None and now - mark.at < interval:
                return False
        with self.claims.hold(f"job:{name}") as got:
            if not got:
                return False
            with self.db.session() as s:  # read again under the claim: another process may just have run it
                mark = s.get(ScheduleMark, name)
                if mark is not None and now - mark.at < interval:
                    return False
            detail = job()
            with self.db.session() as s:
                mark = s.get(ScheduleMark, name) or ScheduleMark(name=name)
                mark.at, mark.detail = now, detail[:500]
                s.add(mark)
        return True

    def _witness(self) -> str:
        try:
            last_id, _ = witness(self.db, self.slack, self.channel)
        except SlackError as e:
            return f"not posted: {e.error}"
        return f"row {last_id}"

    def _reconcile(self) -> str:
        try:
            report = self.reconciler.run()
        except PolarisError as e:
            return f"Polaris did not answer: {e.status} {e.code}"
        if report.findings or report.notes:
            try:
                post_report(self.slack, self.channel, report)
            except SlackError as e:
                return f"{len(report.findings)} differences, not posted: {e.error}"
        return f"{len(report.findings)} differences"


# =============================================================================== the command line
def run_verify(db: Database, key: str | None, out: TextIO, *, expect: list[str] = ()) -> int:
    """``audit verify``: 0 when the chain holds (a line saying how many rows, to which head), 1 with the first
    break found. ``expect``: ``ID:SEAL`` checkpoints (from a witness post). Raises ``ValueError`` for a
    malformed checkpoint."""
    checkpoints = {}
    for item in expect:
        rid, sep, seal = item.partition(":")
        algorithm, _, digest = seal.strip().partition(":")
        well_formed = algorithm in ("sha256", "hmac-sha256") and re.fullmatch(r"[0-9a-f]{64}", digest)
        if not sep or not rid.strip().isdigit() or not well_formed:  # a truncated seal is bad input, not a break
            raise ValueError(
                f"--expect takes ID:SEAL as a witness post shows it (e.g. 42:sha256:ab12…), got {item[:40]!r}"
            )
        checkpoints[int(rid)] = seal.strip()
    verdict = audit_chain.verify(db, audit_chain.Sealer(key), expect=checkpoints)
    if verdict.ok:
        keyed = "" if not key else f" ({verdict.unkeyed} sealed before AUDIT_KEY was set)" if verdict.unkeyed else ""
        print(
            f"audit chain holds: {verdict.rows} rows, head row {verdict.last_id} {verdict.last_hash}{keyed}", file=out
        )
        return 0
    print(f"audit chain broken ({verdict.kind}): {verdict.problem}", file=out)
    print(f"the chain holds up to row {verdict.last_id} ({verdict.rows - 1} rows checked before the break)", file=out)
    return 1


def parse_time(raw: str | None, name: str) -> dt.datetime | None:
    """An ISO 8601 date or time (``2026-12-01``, ``2026-12-01T10:00``, ``…Z`` or with an offset; naive = UTC) as
    aware UTC. Raises ``ValueError`` naming ``name``."""
    if not raw:
        return None
    try:
        at = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date or time such as 2026-12-01 or 2026-12-01T10:00Z") from None
    try:
        return at.replace(tzinfo=dt.timezone.utc) if at.tzinfo is None else at.astimezone(dt.timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC time there is
        raise ValueError(f"{name} is out of range: give a time between the years 1 and 9999 (UTC)") from None


def run_export(db: Database, out: TextIO, *, since=None, until=None, fmt: str = "csv") -> int:
    """``audit export``: every row with ``since`` <= ``at`` < ``until`` to ``out``, in id order, streaming; csv
    (a header of :data:`bot.audit_chain.EXPORT_COLUMNS`) or jsonl (one object per line, those keys). Times are
    UTC ISO strings. Returns the number of rows."""
    columns = audit_chain.EXPORT_COLUMNS
    at_index = columns.index("at")
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    count = 0
    for row in audit_chain.stream(db, since=since, until=until):
        row = list(row)
        row[at_index] = audit_chain.iso(row[at_index])
        if writer is not None:
            writer.writerow(["" if v is None else v for v in row])
        else:
            out.write(json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False) + "\n")
        count += 1
    return count


def _open_database(url: str) -> Database:
    from .wiring import check_schema

    db = Database(url)
    check_schema(db)  # an unmigrated database is one line (ConfigError), not a traceback
    return db


def cli_verify(expect: list[str], *, witness: bool, out: TextIO) -> int:
    """``python app.py audit verify [--witness] [--expect ID:SEAL]``: exit 0 when the chain holds, 1 when not,
    2 for a configuration problem (raised as :class:`bot.config.ConfigError`). ``--witness`` needs the whole
    configuration and ``AUDIT_CHANNEL``; the head is posted (audited) whatever the verdict, and a break is
    posted with it."""
    from .config import ConfigError, load_audit_settings, load_settings

    if not witness:
        url, key = load_audit_settings()
        db = _open_database(url)
        try:
            return _verify(db, key, out, expect)
        finally:
            db.dispose()
    settings = load_settings()
    if not settings.audit_channel:
        raise ConfigError("AUDIT_CHANNEL is not set: --witness posts the chain head there")
    from .wiring import build_core, check_schema

    core = build_core(settings)
    check_schema(core.db)
    try:
        status = _verify(core.db, settings.audit_key, out, expect)
        try:
            last_id, _ = witness_post(core.db, core.slack, settings.audit_channel, broken=status != 0)
        except SlackError as e:
            print(f"the witness post to {settings.audit_channel} failed: {e.error}", file=out)
            return status or 4
        print(f"witness posted to {settings.audit_channel}: head row {last_id}", file=out)
        return status
    finally:
        core.db.dispose()


def _verify(db: Database, key: str | None, out: TextIO, expect: list[str]) -> int:
    try:
        return run_verify(db, key, out, expect=expect)
    except ValueError as e:
        print(str(e), file=out)
        return 2


def witness_post(db: Database, slack: SlackGateway, channel: str, *, broken: bool) -> tuple[int | None, str | None]:
    """:func:`witness`, and when ``broken`` a second post saying ``audit verify`` found the chain broken."""
    found = witness(db, slack, channel)
    if broken:
        slack.post(channel, ":rotating_light: `audit verify` found the audit chain broken.", action="audit.witness")
    return found


def cli_export(since: str | None, until: str | None, fmt: str, out: TextIO) -> int:
    """``python app.py audit export``: 0, or 2 with a sentence for a time that cannot be read."""
    from .config import load_audit_settings

    try:
        start, end = parse_time(since, "--since"), parse_time(until, "--until")
        if start is not None and end is not None and start >= end:
            raise ValueError(f"--since ({since}) must be earlier than --until ({until}): no row can be in between")
    except ValueError as e:
        import sys

        print(str(e), file=sys.stderr)
        return 2
    url, _ = load_audit_settings()
    db = _open_database(url)
    try:
        run_export(db, out, since=start, until=end, fmt=fmt)
    except BrokenPipeError:  # `audit export | head`: the reader has what it wanted
        import os
        import sys

        sys.stdout = open(os.devnull, "w")  # nothing more to flush at exit
    finally:
        db.dispose()
    return 0


def cli_reconcile(*, baseline: bool, fmt: str, out: TextIO) -> int:
    """``python app.py reconcile [--baseline] [--format text|json]``: 0 when Polaris matches the bot's records
    (or the baseline was taken), 1 when differences were found, 5 when Polaris could not be read."""
    from .config import load_settings
    from .wiring import build_core, build_reconciler, check_schema

    core = build_core(load_settings())
    check_schema(core.db)
    reconciler = build_reconciler(core)
    try:
        report = reconciler.take_baseline() if baseline else reconciler.run()
    except PolarisError as e:
        import sys

        print(f"Polaris could not be read ({e.status or 'no answer'} {e.code}): nothing was compared", file=sys.stderr)
        return 5
    finally:
        core.db.dispose()
    print(report.as_json() if fmt == "json" else report.as_text(), file=out)
    return 1 if report.findings else 0
