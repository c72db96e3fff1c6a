"""Time-bound access (bot/access/leases.py, lease_store.py, lease_clicks.py): a grant for a time makes a lease
counted from when it was applied; the worker ends it once, removing only that membership; overlaps extend;
a membership held without a lease is never removed; Extend and I'm done. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt


from bot.models import APPLIED, LEASE_ACTIVE, LEASE_ENDED, FAILED
from standins.polaris_sandbox import Fault
from tests.bot.access.helpers import grant, leases_of as leases, newest, requests_of, audit_actions, card, dms
from tests.conftest import APPROVER, OTHER, REQUESTER, Clock, make_settings


def put_policy(service, tmp_path, text: str) -> None:
    from bot.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text(text)
    service.policy = load_policy(str(path))


def test_a_lease_counts_from_the_apply_and_ends_removing_only_that_membership(service, db, sandbox, groups, slack):
    clock = Clock(service)
    before = sandbox.create_user(
        "alice@example.com", "Alicia", "Keep", groups=[groups["Data Analyst"]], actions=["VERIFY_EMAIL"]
    )
    service.handle_command(REQUESTER, "request Viewer for 1h dashboards")
    req = requests_of(db)[-1]
    assert req.duration_seconds == 3600 and req.reason == "dashboards"
    clock.advance(600)  # approved ten minutes later: the hour starts then, not at the request
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED
    (lease,) = leases(db)
    assert lease.state == LEASE_ACTIVE and lease.started_at == req.applied_at
    assert lease.ends_at == req.applied_at + dt.timedelta(hours=1)
    assert "until" in req.outcome and "for 1 hour" in card(slack, req)["text"]
    assert "Access to *Viewer* until" in str(card(slack, req)["blocks"])
    assert sorted(g["id"] for g in sandbox.find_user("alice@example.com")["groups"]) == sorted(
        [groups["Data Analyst"], groups["Viewer"]]
    )

    clock.advance(3599)
    service.run_due()
    assert leases(db)[0].state == LEASE_ACTIVE  # not yet
    clock.advance(2)
    service.run_due()
    lease = leases(db)[0]
    assert lease.state == LEASE_ENDED and lease.end_reason == "expired"
    after = sandbox.find_user("alice@example.com")
    assert [g["id"] for g in after["groups"]] == [groups["Data Analyst"]]
    for key in ("id", "username", "email", "firstName", "lastName", "enabled", "createdOn", "actions"):
        assert after[key] == before[key], key
    assert ("bot", "lease.ended", "ok") in audit_actions(db, req.id)
    assert any("has ended" in t for t in dms(slack, REQUESTER))
    assert "Access ended" in str(card(slack, service.get(req.id))["blocks"])
    service.run_due()  # once: nothing more is sent
    assert len(sandbox.writes("DELETE")) == 1


def test_a_later_grant_extends_the_lease_and_the_earlier_end_removes_nothing(service, db, sandbox, groups):
    clock = Clock(service)
    first = grant(service, "request Viewer for 1h")
    clock.advance(1800)
    second = grant(service, "request Viewer for 2h again")
    (lease,) = leases(db)
    assert lease.extended_by == second.id
    assert lease.ends_at == second.applied_at + dt.timedelta(hours=2)
    assert "extended until" in second.outcome
    clock.advance(1801)  # past the first end
    service.run_due()
    assert leases(db)[0].state == LEASE_ACTIVE
    assert groups["Viewer"] in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    clock.advance(2 * 3600)
    service.run_due()
    assert leases(db)[0].state == LEASE_ENDED
    assert groups["Viewer"] not in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    assert first.id != second.id


def test_a_membership_held_without_a_lease_survives_a_time_bound_grant(service, db, sandbox, groups):
    clock = Clock(service)
    sandbox.create_user("alice@example.com", "Alice", "T", groups=[groups["Viewer"]], actions=[])
    reply = service.handle_command(REQUESTER, "request Viewer for 1h")
    assert "already a member" in reply.text  # nothing to ask for: no request, no lease
    # An invite on someone's behalf for a person who is a member for good: applied, no lease made.
    sandbox.create_user("oscar@example.com", "Oscar", "T", groups=[], actions=[])
    service.handle_command(REQUESTER, "invite oscar@example.com Viewer for 1h")
    req = requests_of(db)[-1]
    oscar = sandbox.find_user("oscar@example.com")
    sandbox.handle(
        "POST",
        f"/v1/groups/{groups['Viewer']}/members",
        {},
        {"Authorization": f"Basic {_key()}"},
        b'[{"id": "%s"}]' % oscar["id"].encode(),
    )  # made a member outside the bot before the approval
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    req = service.get(req.id)
    assert req.state == APPLIED and "no end was set" in req.outcome
    assert leases(db) == []
    clock.advance(10 * 3600)
    service.run_due()
    assert groups["Viewer"] in [g["id"] for g in sandbox.find_user("oscar@example.com")["groups"]]


def _key():
    from standins.polaris_sandbox import SANDBOX_API_KEY

    return SANDBOX_API_KEY


def test_a_grant_for_good_while_on_a_lease_makes_it_permanent(service, db, sandbox, groups):
    clock = Clock(service)
    grant(service, "request Viewer for 1h")
    later = grant(service, "request Viewer for good now")
    assert "for good" in later.outcome
    lease = leases(db)[0]
    assert lease.state == LEASE_ENDED and lease.end_reason == "made_permanent"
    clock.advance(2 * 3600)
    service.run_due()
    assert groups["Viewer"] in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]


def test_a_user_deleted_in_polaris_ends_the_lease_quietly(service, db, sandbox, groups, slack):
    clock = Clock(service)
    grant(service, "request Viewer for 1h")
    user = sandbox.find_user("alice@example.com")
    sandbox.handle("DELETE", f"/v1/users/{user['id']}", {}, {"Authorization": f"Basic {_key()}"}, b"")
    clock.advance(3601)
    service.run_due()
    lease = leases(db)[0]
    assert lease.state == LEASE_ENDED and lease.end_reason == "user_gone"
    assert not [t for t in dms(slack, REQUESTER) if "ended" in t or "over" in t]  # quietly
    assert "no longer exists" in str(card(slack, service.get(lease.request_id))["blocks"])


def test_polaris_faults_are_retried_with_backoff_then_the_lease_ends(service, db, sandbox, groups):
    clock = Clock(service)
    grant(service, "request Viewer for 1h")
    clock.advance(3601)
    sandbox.add_fault(Fault(method="DELETE", path=r"/members$", status=503, times=10))
    service.run_due()
    lease = leases(db)[0]
    assert lease.state == LEASE_ACTIVE and lease.attempts == 1 and lease.next_attempt_at > clock.now
    assert ("bot", "lease.retry_later", "error") in audit_actions(db, lease.request_id)
    sandbox.clear_faults()
    service.run_due()  # still backing off
    assert leases(db)[0].state == LEASE_ACTIVE
    clock.advance(60)
    service.run_due()
    assert leases(db)[0].state == LEASE_ENDED
    assert groups["Viewer"] not in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]


def test_the_warning_comes_a_tenth_before_the_end_once_with_extend_and_done(service, db, sandbox, groups, slack):
    clock = Clock(service)
    req = grant(service, "request Viewer for 2h")
    clock.advance(2 * 3600 - 13 * 60)  # 13 minutes before the end: not yet (a tenth of 2 h is 12 minutes)
    service.run_due()
    assert not [m for m in slack.messages_in(slack.dm_channel(REQUESTER)) if "ends" in m["text"]]
    clock.advance(90)
    service.run_due()
    service.run_due()
    warnings = [m for m in slack.messages_in(slack.dm_channel(REQUESTER)) if "Extend" in str(m.get("blocks"))]
    assert len(warnings) == 1
    labels = [e["text"]["text"] for b in warnings[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Extend", "I'm done"]
    assert req.id


def test_extend_asks_again_and_im_done_ends_it_now(service, db, sandbox, groups):
    clock = Clock(service)
    grant(service, "request Viewer for 2h")
    lease = leases(db)[0]
    assert "only the person" in service.extend_lease(lease.id, OTHER).text.lower()
    before = {r.id for r in requests_of(db)}
    reply = service.extend_lease(lease.id, REQUESTER)
    assert "went to the approvers" in reply.text and "for 2 hours" in reply.text
    extension = newest(db, before)
    assert extension.duration_seconds == 7200
    service.decide(extension.id, APPROVER, approve=True)
    service.run_due()
    assert leases(db)[0].ends_at == service.get(extension.id).applied_at + dt.timedelta(hours=2)
    done = service.end_lease(lease.id, REQUESTER)
    assert "has ended" in done.text
    assert leases(db)[0].state == LEASE_ENDED and leases(db)[0].end_reason == "done"
    assert leases(db)[0].ended_by == REQUESTER
    assert groups["Viewer"] not in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    assert "already ended" in service.end_lease(lease.id, REQUESTER).text
    clock.advance(1)


def test_policy_max_default_and_permanent(service, db, sandbox, groups, tmp_path):
    put_policy(
        service,
        tmp_path,
        '[groups.Viewer]\nmax_duration = "4h"\ndefault_duration = "1h"\n'
        '[groups."Data Analyst"]\npermanent = false\nmax_duration = "1d"\n',
    )
    reply = service.handle_command(REQUESTER, "request Viewer for 5h")
    assert "at most 4 hours" in reply.text and requests_of(db) == []
    service.handle_command(REQUESTER, "request Viewer")
    assert requests_of(db)[-1].duration_seconds == 3600  # the default
    reply = service.handle_command(REQUESTER, "request Data Analyst")
    assert "time-bound" in reply.text and "at most 1 day" in reply.text
    service.handle_command(REQUESTER, "request Data Analyst for 2d")
    assert len(requests_of(db)) == 1
    assert "at least 1 minute" in service.handle_command(REQUESTER, "request Data Analyst for 30s").text


def test_status_lists_active_leases_with_their_ends(service, db, sandbox, groups):
    Clock(service)
    grant(service, "request Viewer for 3h")
    reply = service.cmd_status(REQUESTER)
    assert "Your time-bound access" in str(reply.blocks)
    assert "Viewer" in str(reply.blocks) and "until" in str(reply.blocks)
    assert "time-bound access" in str(service.home_view(REQUESTER)["blocks"])


def test_a_pending_lease_of_a_grant_that_failed_is_closed_and_its_membership_removed(service, db, sandbox, groups):
    Clock(service)
    sandbox.create_user("alice@example.com", "Alice", "T", groups=[], actions=[])
    service.handle_command(REQUESTER, "request Viewer for 1h")
    req = requests_of(db)[-1]
    service.decide(req.id, APPROVER, approve=True)
    # The add lands but its answer is lost (every retry too), and the apply gives up: failed.
    sandbox.add_fault(Fault(method="POST", path=r"/members$", status=503, after_handle=True, times=50))
    service.run_due()
    assert groups["Viewer"] in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    assert leases(db)[0].state == "pending"
    service.store.set(req.id, state=FAILED, open_key=None)  # as _apply_failed leaves it after the last attempt
    service.run_due()
    lease = leases(db)[0]
    assert lease.state == LEASE_ENDED and lease.end_reason == "not_applied"
    assert groups["Viewer"] not in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]


def test_two_workers_end_a_lease_once(service, db, sandbox, groups, settings, slack):
    from bot import wiring

    clock = Clock(service)
    grant(service, "request Viewer for 1h")
    other = wiring.build_core(make_settings(sandbox, slack, db.url), db=db).service
    other.clock = clock
    clock.advance(3601)
    import threading

    threads = [threading.Thread(target=s.run_due) for s in (service, other, service, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert leases(db)[0].state == LEASE_ENDED
    assert len(sandbox.writes("DELETE")) == 1
    assert [a for a in audit_actions(db) if a[1] == "lease.ended"] == [("bot", "lease.ended", "ok")]
    other.drain()


def test_a_grant_for_good_after_a_failed_time_bound_one_keeps_its_membership(service, db, sandbox, groups):
    """A failed grant left a pending lease (its membership landed); a later grant for good must not have that
    membership swept away with the pending lease."""
    Clock(service)
    sandbox.create_user("alice@example.com", "Alice", "T", groups=[], actions=[])
    service.handle_command(REQUESTER, "request Viewer for 1h")
    first = requests_of(db)[-1]
    service.decide(first.id, APPROVER, approve=True)
    sandbox.add_fault(Fault(method="POST", path=r"/members$", status=503, after_handle=True, times=50))
    service.run_due()
    assert leases(db)[0].state == "pending"
    # The failed grant gives up before the sweeper runs; a grant for good of the same group is then applied.
    service.store.set(first.id, state=FAILED, open_key=None)
    sandbox.clear_faults()
    before = {r.id for r in requests_of(db)}
    service.handle_command(REQUESTER, "request Viewer for good")
    second = newest(db, before)
    # (alice is a member already, but only through the failed grant's pending lease: the bot lets her ask)
    assert second.id != first.id, "a member on a lease may ask again"
    service.decide(second.id, APPROVER, approve=True)
    service.run_due()
    service.run_due()
    assert service.get(second.id).state == APPLIED
    assert groups["Viewer"] in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    assert leases(db)[0].state == LEASE_ENDED and leases(db)[0].end_reason == "made_permanent"


def test_a_time_bound_grant_adopts_the_pending_lease_a_failed_one_left(service, db, sandbox, groups):
    clock = Clock(service)
    sandbox.create_user("alice@example.com", "Alice", "T", groups=[], actions=[])
    service.handle_command(REQUESTER, "request Viewer for 1h")
    first = requests_of(db)[-1]
    service.decide(first.id, APPROVER, approve=True)
    sandbox.add_fault(Fault(method="POST", path=r"/members$", status=503, after_handle=True, times=50))
    service.run_due()
    service.store.set(first.id, state=FAILED, open_key=None)
    sandbox.clear_faults()
    second = grant(service, "request Viewer for 2h")
    assert second.state == APPLIED
    (lease,) = leases(db)
    assert lease.state == LEASE_ACTIVE and lease.request_id == second.id
    assert lease.ends_at == second.applied_at + dt.timedelta(hours=2)
    clock.advance(2 * 3600 + 1)
    service.run_due()
    assert leases(db)[0].state == LEASE_ENDED
    assert groups["Viewer"] not in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
