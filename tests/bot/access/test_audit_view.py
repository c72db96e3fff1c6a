"""``/polaris audit <email | @user | group> [page N]`` (bot/access/audit_view.py, issue 12): admins only (a refusal
is audited), who asked for what and why, who decided and when, what Polaris answered, whether it still holds
today, leases; paged within Block Kit's limits."""

from __future__ import annotations

import json

import pytest

from bot.access.audit_view import PAGE_SIZE
from bot.access.lease_store import LeaseStore
from bot.commands import UsageError, parse
from standins.polaris_sandbox import SANDBOX_API_KEY
from tests.bot.access.helpers import audit_actions, only_request
from tests.conftest import ADMIN, APPROVER, REQUESTER


def applied_join(service, db, group="Viewer", reason="for the dashboards"):
    service.handle_command(REQUESTER, f"request {group} {reason}")
    req = only_request(db) if group == "Viewer" else None
    if req is None:
        from sqlalchemy import select

        from bot.models import AccessRequest

        with db.session() as s:
            req = s.scalars(select(AccessRequest).where(AccessRequest.group_name == group)).one()
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    return service.get(req.id)


def text_of(reply) -> str:
    return "\n".join(b["text"]["text"] if "text" in b else b["elements"][0]["text"] for b in reply.blocks)


def test_only_admins_may_read_the_trail_and_a_refusal_is_audited(service, db, groups):
    reply = service.handle_command(APPROVER, "audit alice@example.com")
    assert "for admins" in reply.text
    assert ("U0BOB", "audit.view", "refused") in audit_actions(db)


def test_a_persons_trail_names_who_asked_why_who_approved_polaris_and_today(service, db, sandbox, groups):
    req = applied_join(service, db)
    reply = service.handle_command(ADMIN, "audit alice@example.com")
    body = text_of(reply)
    assert "Audit: alice@example.com" in body
    assert f"Asked by <@{REQUESTER}>" in body and "_for the dashboards_" in body
    assert f"Approved by <@{APPROVER}>" in body
    assert "Polaris:" in body and "answered 20" in body  # the last Polaris call of the apply
    assert "Holds in Polaris today: yes" in body
    alice = sandbox.find_user("alice@example.com")
    sandbox.handle(  # removed outside the bot
        "DELETE",
        f"/v1/groups/{groups['Viewer']}/members",
        {},
        {"Authorization": f"Basic {SANDBOX_API_KEY}"},
        json.dumps([{"id": alice["id"]}]).encode(),
    )
    assert "Holds in Polaris today: *no*" in text_of(service.handle_command(ADMIN, f"audit <@{REQUESTER}>"))
    assert req.state == "applied"


def test_a_groups_trail_shows_denials_and_leases(service, db, sandbox, groups):
    req = applied_join(service, db)
    leases = LeaseStore(db)
    with db.session() as s:
        from bot.models import AccessRequest

        row = s.get(AccessRequest, req.id)
        row.duration_seconds = 3600
        s.flush()
        s.expunge(row)
    lease = leases.prepare(row, service.clock())
    with db.session() as s:
        leases.activate(lease.id, started_at=service.clock(), polaris_user_id=None, session=s)
    service.handle_command(REQUESTER, "request Data Analyst I need to analyse")
    from sqlalchemy import select

    from bot.models import AccessRequest as AR

    with db.session() as s:
        denied = s.scalars(select(AR).where(AR.group_name == "Data Analyst")).one()
    service.decide(denied.id, APPROVER, approve=False)
    viewer = text_of(service.handle_command(ADMIN, "audit Viewer"))
    assert "Audit: group Viewer" in viewer and "Lease: active, ends" in viewer
    analyst = text_of(service.handle_command(ADMIN, 'audit "data analyst"'))
    assert f"Denied by <@{APPROVER}>" in analyst and "Holds in Polaris today" not in analyst


def test_the_trail_is_paged_within_block_kit_limits(service, db, sandbox, groups):
    from bot.models import AccessRequest, utcnow

    now = utcnow()
    with db.session() as s:
        for i in range(PAGE_SIZE * 2 + 3):
            s.add(
                AccessRequest(
                    kind="join",
                    state="denied",
                    requester_id=REQUESTER,
                    requester_email="alice@example.com",
                    target_email="alice@example.com",
                    group_id=groups["Viewer"],
                    group_name="Viewer",
                    reason="r" * 500 + str(i),
                    expires_at=now,
                    decided_by=APPROVER,
                    decided_at=now,
                )
            )
    first = service.handle_command(ADMIN, "audit Viewer")
    assert len(first.blocks) <= 50 and len(first.blocks) == PAGE_SIZE + 2
    assert all(len(b["text"]["text"]) <= 3000 for b in first.blocks if b["type"] == "section")
    assert "Page 1 of 3 (23 requests)" in text_of(first) and "page 2" in text_of(first)
    last = service.handle_command(ADMIN, "audit Viewer page 3")
    assert "Page 3 of 3" in text_of(last) and len(last.blocks) == 3 + 2
    beyond = service.handle_command(ADMIN, "audit Viewer page 9")
    assert "There are 3 pages" in beyond.text


def test_an_unknown_group_and_bad_input_get_a_sentence(service, db, groups):
    assert "Usage: `/polaris audit" in service.handle_command(ADMIN, "audit").text
    assert "Nonexistent" in service.handle_command(ADMIN, "audit Nonexistent").text
    with pytest.raises(UsageError, match="page"):
        parse("audit Viewer page x")


def test_a_persons_trail_includes_the_bulk_invites_that_named_them(service, db, sandbox, groups):
    """A bulk invite's ``target_email`` is a label ("2 people: …"), so ``audit <email>`` of someone it named found
    nothing (review finding); the person's plan entry is what names them."""
    sandbox.create_user("pat@example.com", "Pat", "Lee", groups=[], actions=[])
    reply = service.handle_command(REQUESTER, "invite pat@example.com dana@example.org Viewer onboarding")
    assert "went to the approvers" in reply.text, reply.text
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    body = text_of(service.handle_command(ADMIN, "audit pat@example.com"))
    assert "Audit: pat@example.com" in body and req.id[:8] in body, body
    assert f"Asked by <@{REQUESTER}>" in body and "_onboarding_" in body
    assert "Holds in Polaris today: yes" in body
    assert "No access requests" in service.handle_command(ADMIN, "audit pa@example.com").text  # no prefix match
