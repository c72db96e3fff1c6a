"""Drift against Polaris (bot/reconcile.py, bot/audit_jobs.py, issue 12): grants made outside the bot, grants
gone, leases ended while the membership stayed (removal retried), accounts enabled or disabled outside, the
baseline, Polaris's audit events naming who (and a 403 said and gone past), the CLI and the worker's job.
Against the Polaris sandbox with changes made directly in it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
from sqlalchemy import select

import app
from bot import wiring
from bot.access.lease_store import LeaseStore
from bot.audit_jobs import AuditJobs
from bot.models import AuditEvent, ScheduleMark
from bot.polaris import PolarisClient
from standins.polaris_sandbox import SANDBOX_API_KEY
from tests.bot.access.helpers import only_request
from tests.conftest import ADMIN, APPROVER, CHANNEL, REQUESTER, SIGNING_SECRET, make_settings

AUDIT_CHANNEL = "C0AUDIT"
MALLORY = {"actorType": "user", "actorId": "u-mallory", "actorName": "mallory@example.com"}


@pytest.fixture
def reconciler(core):
    return wiring.build_reconciler(core)


@contextlib.contextmanager
def outside(sandbox):
    """Changes made in Polaris directly (its console, by Mallory), not through the bot."""
    saved = sandbox.actor
    sandbox.actor = MALLORY
    try:
        yield PolarisClient(sandbox.url, SANDBOX_API_KEY)
    finally:
        sandbox.actor = saved


def granted(service, db, group="Viewer") -> str:
    """alice joins ``group`` through the bot (request, approval, apply); the request ID."""
    service.handle_command(REQUESTER, f"request {group} for the dashboards")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(req.id).state == "applied"
    return req.id


def kinds(report) -> list[tuple[str, str, str | None]]:
    return [(f.kind, f.email, f.group_name) for f in report.findings]


def audit_rows(db, action) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_a_baseline_accepts_what_is_there_and_then_nothing_differs(reconciler, sandbox, groups, db):
    before = reconciler.run()
    assert {k for k, _, _ in kinds(before)} == {"outside_grant"} and len(before.findings) == 3  # the approvers
    reconciler.take_baseline()
    assert kinds(reconciler.run()) == []
    assert [r.detail for r in audit_rows(db, "reconcile.baseline")] == ["3 users, 3 memberships accepted"]


def test_a_second_baseline_says_which_one_it_replaces(reconciler, db):
    first = reconciler.take_baseline()
    assert first.notes == ["Baseline taken: later runs report what changed."]
    second = reconciler.take_baseline()
    assert f"It replaces the baseline of {first.at:%Y-%m-%d %H:%M} UTC." in second.notes[0]
    assert audit_rows(db, "reconcile.baseline")[-1].detail.endswith("memberships accepted (replaced)")


def test_what_the_bot_granted_is_no_drift_and_an_outside_grant_is_named_with_who(
    reconciler, service, sandbox, groups, db
):
    reconciler.take_baseline()
    granted(service, db)
    assert kinds(reconciler.run()) == []
    dan = sandbox.create_user("dan@example.com", "Dan", "Outside", groups=[])
    with outside(sandbox) as console:
        console.add_members(groups["Data Analyst"], [dan["id"]])
    report = reconciler.run()
    assert kinds(report) == [("outside_grant", "dan@example.com", "Data Analyst")]
    assert report.findings[0].by.startswith("mallory@example.com (user, GROUP_MEMBER_ADDED")
    assert "outside_grant: dan@example.com in Data Analyst" in report.as_text()
    assert json.loads(report.as_json())["findings"][0]["kind"] == "outside_grant"
    (run,) = audit_rows(db, "reconcile.run")[-1:]
    assert run.outcome == "drift" and "outside_grant" in run.detail


def test_a_grant_removed_outside_is_gone_and_who_removed_it_is_named(reconciler, service, sandbox, groups, db):
    reconciler.take_baseline()
    granted(service, db)
    alice = sandbox.find_user("alice@example.com")
    with outside(sandbox) as console:
        console.remove_members(groups["Viewer"], [alice["id"]])
    report = reconciler.run()
    assert kinds(report) == [("grant_gone", "alice@example.com", "Viewer")]
    assert report.findings[0].source == "bot" and "GROUP_MEMBER_REMOVED" in report.findings[0].by


def test_without_the_audit_events_permission_the_report_says_so_and_goes_on(reconciler, service, sandbox, groups, db):
    reconciler.take_baseline()
    granted(service, db)
    sandbox.audit_access = False
    with outside(sandbox) as console:
        console.remove_members(groups["Viewer"], [sandbox.find_user("alice@example.com")["id"]])
    report = reconciler.run()
    assert kinds(report) == [("grant_gone", "alice@example.com", "Viewer")] and report.findings[0].by is None
    assert any("403" in n and "AccessAuditLogs" in n for n in report.notes)


def test_an_account_disabled_outside_the_bot_is_reported(reconciler, service, sandbox, groups, db):
    granted(service, db)
    reconciler.take_baseline()
    alice = sandbox.find_user("alice@example.com")
    with outside(sandbox) as console:
        console.update_user(alice["id"], lambda body: body.update(enabled=False))
    report = reconciler.run()
    assert kinds(report) == [("account_disabled", "alice@example.com", None)]
    assert "USER_DISABLED" in report.findings[0].by


def test_an_account_the_bot_disabled_or_enabled_with_update_user_is_no_drift(
    reconciler, service, sandbox, slack, groups, db
):
    from bot.access.user_changes import UserChange

    service.settings = make_settings(sandbox, slack, db.url, admins=frozenset({ADMIN, APPROVER}))
    granted(service, db)
    reconciler.take_baseline()
    alice = sandbox.find_user("alice@example.com")
    updates = service.dispatch.user_updates
    for enabled in (False, True):
        updates.ask(ADMIN, alice["id"], REQUESTER, UserChange("Alice", "Tester", enabled))
        req = next(r for r in _all(db) if r.kind == "update_user" and r.state == "pending")
        service.decide(req.id, APPROVER, approve=True)
        service.run_due()
        assert service.get(req.id).state == "applied" and sandbox.find_user("alice@example.com")["enabled"] is enabled
        assert kinds(reconciler.run()) == []  # the bot's own change, no drift
    with outside(sandbox) as console:
        console.update_user(alice["id"], lambda body: body.update(enabled=False))
    assert kinds(reconciler.run()) == [("account_disabled", "alice@example.com", None)]


def _all(db):
    from bot.models import AccessRequest

    with db.session() as s:
        return list(s.scalars(select(AccessRequest)))


def _lease(db, request_id: str, clock_now, reason: str, *, timebound: bool = True):
    """A lease for the applied grant ``request_id`` (made time-bound unless not ``timebound``: then the grant
    also stands for good), made active at ``clock_now`` and ended an hour later with ``reason``."""
    from bot.models import AccessRequest

    leases = LeaseStore(db)
    with db.session() as s:
        req = s.get(AccessRequest, request_id)
        if timebound:
            req.duration_seconds = 3600
        s.flush()
        s.expunge(req)
    req.duration_seconds = 3600
    lease = leases.prepare(req, clock_now)
    with db.session() as s:
        leases.activate(lease.id, started_at=clock_now, polaris_user_id=req.polaris_user_id, session=s)
    leases.end(lease.id, reason=reason, by="bot", now=clock_now + dt.timedelta(hours=1))
    return lease


def test_a_lease_ended_while_the_membership_stayed_gets_its_removal_retried_once(
    reconciler, service, sandbox, groups, db
):
    reconciler.take_baseline()
    rid = granted(service, db)
    _lease(db, rid, service.clock(), "expired")  # ended, but the removal never landed in Polaris
    assert groups["Viewer"] in {g["id"] for g in sandbox.find_user("alice@example.com")["groups"]}
    report = reconciler.run()
    assert kinds(report) == [("lease_still_member", "alice@example.com", "Viewer")]
    assert report.findings[0].action == "removal retried: removed"
    assert groups["Viewer"] not in {g["id"] for g in sandbox.find_user("alice@example.com")["groups"]}
    (removal,) = audit_rows(db, "reconcile.removal")
    assert (removal.request_id, removal.target, removal.outcome) == (rid, "alice@example.com", "ok")
    assert kinds(reconciler.run()) == []  # done: nothing left to report or retry


@pytest.mark.parametrize("reason", ["made_permanent", "user_gone", "not_applied"])
def test_a_lease_ended_on_purpose_is_never_retried(reconciler, service, sandbox, groups, db, reason):
    reconciler.take_baseline()
    rid = granted(service, db)
    _lease(db, rid, service.clock(), reason)
    report = reconciler.run()
    assert not [f for f in report.findings if f.kind == "lease_still_member"]
    assert audit_rows(db, "reconcile.removal") == []
    assert groups["Viewer"] in {g["id"] for g in sandbox.find_user("alice@example.com")["groups"]}


def test_a_later_grant_keeps_the_membership_of_an_ended_lease(reconciler, service, sandbox, groups, db):
    reconciler.take_baseline()
    rid = granted(service, db)
    _lease(db, rid, service.clock() - dt.timedelta(days=2), "expired", timebound=False)  # ended two days ago
    report = reconciler.run()  # the applied grant (today) is later than the lease's end
    assert kinds(report) == [] and audit_rows(db, "reconcile.removal") == []


def _env(monkeypatch, sandbox, slack, db, **extra):
    values = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "POLARIS_API_URL": sandbox.url,
        "POLARIS_API_KEY": SANDBOX_API_KEY,
        "DATABASE_URL": db.url,
        "APPROVAL_CHANNEL": CHANNEL,
        "APPROVERS": APPROVER,
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_the_cli_reports_in_json_and_exits_1_on_drift_0_after_a_baseline(
    monkeypatch, capsys, sandbox, slack, db, groups
):
    _env(monkeypatch, sandbox, slack, db)
    assert app.main(["reconcile", "--format", "json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert {f["kind"] for f in body["findings"]} == {"outside_grant"} and body["users"] == 3
    assert app.main(["reconcile", "--baseline"]) == 0
    assert "Baseline taken" in capsys.readouterr().out
    assert app.main(["reconcile"]) == 0
    assert "0 differences" in capsys.readouterr().out


def test_the_cli_says_when_polaris_cannot_be_read(monkeypatch, capsys, sandbox, slack, db):
    _env(monkeypatch, sandbox, slack, db, POLARIS_API_KEY="pok_wrong")
    assert app.main(["reconcile"]) == 5
    assert "Polaris could not be read (401" in capsys.readouterr().err


def test_the_worker_job_posts_the_witness_daily_and_the_report_every_interval(core, sandbox, slack, db, groups):
    now = [core.service.clock()]
    reconciler = wiring.build_reconciler(core)
    jobs = AuditJobs(
        db, core.audit, core.slack, reconciler, channel=AUDIT_CHANNEL, reconcile_interval=600, clock=lambda: now[0]
    )
    assert jobs.run_due() == ["witness", "reconcile"]
    texts = [m["text"] for m in slack.messages_in(AUDIT_CHANNEL)]
    assert texts[0] == ":ledger: Audit chain head: empty (no rows yet)." and "outside_grant" in texts[1]
    assert jobs.run_due() == []  # marks shared through the database: not again within the interval
    now[0] += dt.timedelta(seconds=601)
    assert jobs.run_due() == ["reconcile"]
    now[0] += dt.timedelta(days=1)
    assert jobs.run_due() == ["witness", "reconcile"]
    with db.session() as s:
        assert {m.name for m in s.scalars(select(ScheduleMark))} == {"witness", "reconcile"}
    assert [r.outcome for r in audit_rows(db, "audit.witness")] == ["ok", "ok"]
    idle = AuditJobs(db, core.audit, core.slack, reconciler, channel=None, reconcile_interval=600, clock=lambda: now[0])
    assert idle.run_due() == []  # no AUDIT_CHANNEL: nothing runs


def test_the_cli_witness_posts_the_head(monkeypatch, capsys, sandbox, slack, db, core):
    core.audit.record("U0ALICE", "command")
    _env(monkeypatch, sandbox, slack, db, AUDIT_CHANNEL=AUDIT_CHANNEL)
    assert app.main(["audit", "verify", "--witness"]) == 0
    out = capsys.readouterr().out
    assert "audit chain holds: 1 rows" in out and f"witness posted to {AUDIT_CHANNEL}" in out
    (post,) = slack.messages_in(AUDIT_CHANNEL)
    assert "row " in post["text"] and "sha256:" in post["text"]
    _, _, seal = post["text"].partition("--expect ")
    assert app.main(["audit", "verify", "--expect", seal.rstrip("`.")]) == 0


def test_the_worker_runs_its_periodic_jobs_after_each_pass_and_survives_one_failing():
    import threading

    from bot.worker import Worker

    class Service:
        wake = None

        def run_due(self, stop=None):
            return 0

    ran = threading.Event()
    calls = []

    def failing():
        calls.append("failing")
        raise RuntimeError("boom")

    def job():
        calls.append("job")
        ran.set()

    worker = Worker(Service(), interval=0.01, periodic=[failing, job]).start()
    assert ran.wait(5)
    worker.stop()
    assert calls[:2] == ["failing", "job"]


def test_what_a_bulk_invite_granted_is_no_drift(reconciler, service, sandbox, groups, db):
    """A bulk invite (kind invite_many) adds several people at once: each membership (and new account) it made is
    the bot's, not an outside grant; someone dropped at apply is not believed to be a member."""
    sandbox.create_user("pat@example.com", "Pat", "Lee", groups=[], actions=[])
    reconciler.take_baseline()
    service.handle_command(REQUESTER, "invite pat@example.com kim@example.com Viewer onboarding")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(req.id).state == "applied"
    assert kinds(reconciler.run()) == []


def test_accounts_a_bulk_invite_created_are_the_bots_and_disabling_one_outside_is_reported(
    reconciler, service, sandbox, groups, db
):
    """A bulk invite's target is a label ("2 people: …"), so the accounts it created were in no account list:
    reconcile could not tell one disabled outside the bot (review finding). Each person it gave the membership
    is now an account the bot believes enabled."""
    reconciler.take_baseline()
    reply = service.handle_command(REQUESTER, "invite dana@example.org sam@example.org Viewer onboarding")
    assert "went to the approvers" in reply.text, reply.text
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(req.id).state == "applied"
    assert kinds(reconciler.run()) == []  # both accounts and memberships are the bot's
    dana = sandbox.find_user("dana@example.org")
    with outside(sandbox) as console:
        console.update_user(dana["id"], lambda body: body.update(enabled=False))
    report = reconciler.run()
    assert kinds(report) == [("account_disabled", "dana@example.org", None)]
