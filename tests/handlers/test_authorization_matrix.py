"""Every subcommand and button × requester, approver, admin, other member, guest, deactivated user.

Each cell is ``ok`` (the action is carried out or answered) or ``no`` (refused with a message, nothing
changed, the refusal audited). Commands go through ``AccessService.handle_command`` and buttons through
``decide``/``retry``, the same calls the Bolt listeners make after ``ack()``."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.models import APPROVED, DENIED, FAILED, PENDING, AccessRequest, AuditEvent
from tests.conftest import ADMIN, APPROVER, GONE, GUEST, OTHER, REQUESTER

ROLES = {
    "requester": REQUESTER,
    "approver": APPROVER,
    "admin": ADMIN,
    "member": OTHER,
    "guest": GUEST,
    "deactivated": GONE,
}

# command -> (text, success marker, expected per role)
COMMANDS = {
    "help": ("help", "Polaris access bot", dict.fromkeys(ROLES, "ok")),
    "whois": (
        "whois bob@example.com",
        "Polaris user bob@example.com",
        {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"},
    ),
    "groups": ("groups", "Polaris groups", {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"}),
    "members": (
        "members Viewer",
        "Members of Viewer",
        {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"},
    ),
    "permissions": (
        "permissions",
        "Polaris permissions",
        {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"},
    ),
    "request": (
        "request Data Manager",
        "went to the approvers",
        {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"},
    ),
    "invite": (
        "invite new.person@example.com Viewer",
        "went to the approvers",
        {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"},
    ),
    "reset-password (own)": (
        "reset-password",
        "went to the approvers",
        {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"},
    ),
    "reset-password (other)": (
        "reset-password dan@example.com",
        "went to the approvers",
        {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"},
    ),
    "status": ("status", "open requests", {**dict.fromkeys(ROLES, "ok"), "guest": "no", "deactivated": "no"}),
    "pending": (
        "pending",
        "decision",
        {"requester": "no", "approver": "ok", "admin": "ok", "member": "no", "guest": "no", "deactivated": "no"},
    ),
    "policy": (
        "policy",
        "Approval policy",
        {"requester": "no", "approver": "no", "admin": "ok", "member": "no", "guest": "no", "deactivated": "no"},
    ),
}
BUTTONS = {
    "approve": {"requester": "no", "approver": "ok", "admin": "ok", "member": "no", "guest": "no", "deactivated": "no"},
    "deny": {"requester": "no", "approver": "ok", "admin": "ok", "member": "no", "guest": "no", "deactivated": "no"},
    "retry": {"requester": "no", "approver": "ok", "admin": "ok", "member": "no", "guest": "no", "deactivated": "no"},
}


@pytest.fixture
def world(service, sandbox, slack, groups):
    """Polaris accounts for everyone with a Slack email, so own-account commands can succeed."""
    for email in (
        "alice@example.com",
        "oscar@example.com",
        "dan@example.com",
        "gus@partner.example",
        "gone@example.com",
    ):
        sandbox.create_user(email, groups=[groups["Viewer"]])
    return service


def audit_rows(db, actor):
    with db.session() as s:
        return [(r.action, r.outcome) for r in s.scalars(select(AuditEvent).where(AuditEvent.actor == actor))]


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_matrix(world, db, role, command):
    text, marker, expected = COMMANDS[command]
    user = ROLES[role]
    reply = world.handle_command(user, text)
    shown = reply.text + str(reply.blocks or "")
    with db.session() as s:
        created = list(s.scalars(select(AccessRequest)))
    if expected[role] == "ok":
        assert marker in shown, (role, command, reply.text)
    else:
        assert marker not in shown, (role, command, reply.text)
        assert created == [], "a refused command must not create a request"
        if role in ("guest", "deactivated"):
            assert ("command", "refused") in audit_rows(db, user)


def pending_request(world, db, requester=REQUESTER) -> AccessRequest:
    world.handle_command(requester, "request Data Manager")
    with db.session() as s:
        return s.scalars(select(AccessRequest)).one()


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("button", list(BUTTONS))
def test_button_matrix(world, db, sandbox, role, button):
    user = ROLES[role]
    req = pending_request(world, db)
    if button == "retry":
        world.store.set(req.id, state=FAILED, outcome="Polaris is unavailable right now")
        message = world.retry(req.id, user)
        after = world.get(req.id).state
        ok = after == APPROVED
    else:
        message = world.decide(req.id, user, approve=(button == "approve"))
        after = world.get(req.id).state
        ok = after == (APPROVED if button == "approve" else DENIED)
    if BUTTONS[button][role] == "ok":
        assert ok, (role, button, message)
    else:
        assert not ok and after in (PENDING, FAILED), (role, button, message)
        assert message, "a refused click gets an ephemeral message"
        assert ("decision.refused", "refused") in audit_rows(db, user)
