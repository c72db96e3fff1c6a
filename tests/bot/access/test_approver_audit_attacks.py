"""Hostile review of the approver experience (reminders, escalation, the Deny/Approve forms) and the audit chain
(verify, export, reconcile, /polaris audit): each test here failed on main when it was written."""

from __future__ import annotations


from sqlalchemy import select, text

from bot.audit import AuditLog
from bot.audit_chain import Sealer, row_values, verify
from bot.models import AuditEvent

KEY = "k" * 32


def _sql(db, statement: str, **params) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _rows(db) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _write(audit, n: int) -> list[int]:
    for i in range(n):
        audit.record("U0ALICE", "decision.approve", target=f"t{i}", detail=f"row {i}")
    return [r.id for r in _rows(audit.db)]


# =============================================================================== the audit chain
def test_a_keyed_chain_rewritten_whole_with_unkeyed_seals_does_not_verify_with_the_key(db):
    """With AUDIT_KEY set, someone without the key edits a row and reseals the whole table with plain SHA-256
    (anyone can) and moves the head: verify with the key must not say the chain holds."""
    ids = _write(AuditLog(db, key=KEY), 4)
    _sql(db, "UPDATE audit_log SET detail = 'nothing happened' WHERE id = :i", i=ids[1])
    prev, plain = "0" * 64, Sealer()
    for row in _rows(db):
        seal = plain.seal(prev, row_values(row))
        _sql(db, "UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE id = :i", p=prev, h=seal, i=row.id)
        prev = seal
    _sql(db, "UPDATE audit_chain SET last_id = :i, last_hash = :h", i=ids[-1], h=prev)
    verdict = verify(db, Sealer(KEY))
    assert not verdict.ok, verdict  # on main: ok, "4 sealed before AUDIT_KEY was set"


def test_export_with_a_since_out_of_range_is_a_sentence_not_a_traceback(capsys):
    """``--since 0001-01-01T00:00+01:00`` is valid ISO 8601 but before year 1 in UTC: an OverflowError on main."""
    import app

    assert app.main(["audit", "export", "--since", "0001-01-01T00:00+01:00"]) == 2
    assert "--since" in capsys.readouterr().err


# =============================================================================== reminders and escalation
HOUR = 3600


def _policy(service, tmp_path, body: str) -> None:
    from bot.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text(body)
    service.policy = load_policy(str(path))


def _reminder_dms(slack, user_id) -> list[str]:
    return [m["text"] for m in slack.messages_in(slack.dm_channel(user_id)) if "reminder" in m["text"].lower()]


def test_an_offboarding_reminder_goes_only_to_admins_who_may_decide_it(service, db, sandbox, slack, groups):
    """An offboarding is decided by ADMINS only, yet its reminder DMs (with the buttons and who is offboarded) go
    to every APPROVER too: people who cannot decide it learn of the offboarding."""
    from tests.bot.access.test_removals import _oscar, _two_admins
    from tests.conftest import ADMIN, APPROVER, APPROVER2, Clock

    _two_admins(service, sandbox, slack, db)
    _oscar(sandbox, groups, "Viewer")
    clock = Clock(service)
    assert "went to the approvers" in service.handle_command(ADMIN, "offboard <@U0OSCAR|oscar> left").text
    clock.advance(4 * HOUR)
    service.run_due()
    assert len(_reminder_dms(slack, APPROVER2)) == 1  # the other admin: reminded
    assert _reminder_dms(slack, APPROVER) == []  # on main: reminded, though "Only admins can decide an offboarding"


def test_escalation_never_dms_a_guest_or_a_deactivated_user(service, db, slack, groups, tmp_path):
    """README: escalate_to become approvers "under the same authority checks (... no guests ...)"; a guest (or a
    deactivated account) named there still gets the DM with the request's details and the buttons."""
    from tests.conftest import GONE, GUEST, REQUESTER, Clock

    _policy(
        service,
        tmp_path,
        f'[defaults]\nmax_reminders = 0\nescalate_after = "1h"\nescalate_to = ["{GUEST}", "{GONE}"]\n',
    )
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    clock.advance(HOUR)
    service.run_due()
    assert [m["text"] for m in slack.messages_in(slack.dm_channel(GUEST))] == []  # on main: the escalation DM
    assert [m["text"] for m in slack.messages_in(slack.dm_channel(GONE))] == []


# =============================================================================== reconcile
def test_reconcile_never_removes_a_membership_given_in_polaris_after_the_lease_ended(
    core, service, db, sandbox, slack, groups
):
    """A lease ends and its removal lands; later an admin adds the person back in the Polaris console (on purpose).
    reconcile's ``lease_still_member`` ("the membership stayed") takes it away again, silently undoing an outside
    change it is meant only to report; Polaris's own audit events even name who added it, after the lease ended."""
    from bot import wiring
    from tests.bot.test_reconcile import kinds, outside
    from tests.conftest import APPROVER, REQUESTER, Clock

    reconciler = wiring.build_reconciler(core)
    clock = Clock(service)
    reconciler.take_baseline()
    service.handle_command(REQUESTER, "request Viewer for 1h dashboards")
    from tests.bot.access.helpers import only_request

    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(req.id).state == "applied"
    clock.advance(3600 + 1)
    service.run_due()
    viewer = groups["Viewer"]
    user = sandbox.find_user("alice@example.com")
    assert viewer not in {g["id"] for g in user["groups"]}  # the lease ended and its removal landed
    with outside(sandbox) as polaris:
        polaris.add_members(viewer, [user["id"]])  # given back on purpose, outside the bot
    report = reconciler.run()
    assert viewer in {g["id"] for g in sandbox.find_user("alice@example.com")["groups"]}, kinds(report)
    assert ("outside_grant", "alice@example.com", "Viewer") in kinds(report)
