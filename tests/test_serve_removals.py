"""Issue 10's removals through ``python app.py serve`` (gunicorn, signed requests, the stand-ins on 127.0.0.1):
leave, remove (an Organization Admin needs two; the last one is refused), cancel (a later Approve on the old
card refused), offboard (self-approval refused; every group gone, disabled, names kept; pending requests
closed) and the offboarding card of a deactivated Slack account (a signed ``user_change`` event)."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from bot.models import APPLIED, BOT_REQUESTER, CANCELLED, LEAVE, OFFBOARD, PENDING, REMOVE, AccessRequest
from tests.conftest import (
    ADMIN,
    APPROVER,
    APPROVER2,
    GONE,
    OTHER,
    REQUESTER,
    click_body,
    signed_headers,
    slash_body,
    wait_for,
)
from tests.test_serve import Serve


def _requests(db, kind=None, state=None) -> list[AccessRequest]:
    with db.session() as s:
        q = select(AccessRequest).order_by(AccessRequest.created_at)
        if kind:
            q = q.where(AccessRequest.kind == kind)
        if state:
            q = q.where(AccessRequest.state == state)
        return list(s.scalars(q))


def _answer(slack, words: str) -> dict:
    """The response_url answer containing ``words``."""
    return wait_for(lambda: [r for r in slack.responses if words in (r.get("text") or "")], timeout=15)[-1]


def _groups_of(sandbox, email) -> list[str]:
    return sorted(g["name"] for g in sandbox.find_user(email)["groups"])


def test_leave_remove_and_cancel_through_serve(serve_env, servers, db, sandbox, slack, groups):
    server = Serve({**serve_env, "ADMINS": ADMIN}, workers=1)
    servers.append(server)
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"], groups["Data Analyst"]])
    sandbox.create_user("oscar@example.com", "Oscar", "Tester", groups=[groups["Data Analyst"]], actions=[])

    # leave: at once, no card
    assert server.post(slash_body(slack, REQUESTER, "leave Viewer")).status_code == 200
    _answer(slack, "Removed alice@example.com from Viewer")
    assert _requests(db, LEAVE)[0].state == APPLIED and _groups_of(sandbox, "alice@example.com") == ["Data Analyst"]

    # remove: decided by an approver, then applied
    server.post(slash_body(slack, REQUESTER, "remove oscar@example.com Data Analyst moved teams"))
    req = wait_for(lambda: [r for r in _requests(db, REMOVE) if r.approval_ts])[0]
    server.post(click_body(slack, OTHER, "approve_request", req.id))  # the person removed: refused
    _answer(slack, "is for you")
    server.post(click_body(slack, APPROVER, "approve_request", req.id))
    wait_for(lambda: _requests(db, REMOVE)[0].state == APPLIED, timeout=15)
    assert _groups_of(sandbox, "oscar@example.com") == []

    # Organization Admin: two Organization Admins approve
    server.post(slash_body(slack, REQUESTER, "remove bob@example.com Organization Admin"))
    org = wait_for(lambda: [r for r in _requests(db, REMOVE, PENDING) if r.approval_ts])[0]
    assert org.approvals_required == 2
    server.post(click_body(slack, APPROVER2, "approve_request", org.id))
    _answer(slack, "(1 of 2)")
    server.post(click_body(slack, ADMIN, "approve_request", org.id))
    wait_for(lambda: [r for r in _requests(db, REMOVE) if r.id == org.id][0].state == APPLIED, timeout=15)
    assert _groups_of(sandbox, "bob@example.com") == []

    # the last enabled Organization Admin: refused, nothing saved
    sandbox._users[sandbox.find_user("carol@example.com")["id"]]["enabled"] = False
    server.post(slash_body(slack, REQUESTER, "remove erin@example.com Organization Admin"))
    _answer(slack, "last enabled Organization Admin")
    assert len(_requests(db, REMOVE)) == 2

    # cancel, then an Approve on the old card is refused
    server.post(slash_body(slack, REQUESTER, "request Data Manager"))
    mine = wait_for(lambda: [r for r in _requests(db, "join") if r.approval_ts])[0]
    server.post(slash_body(slack, REQUESTER, f"cancel {mine.id[:8]}"))
    _answer(slack, "Cancelled request")
    assert _requests(db, "join")[0].state == CANCELLED
    server.post(click_body(slack, APPROVER, "approve_request", mine.id))
    _answer(slack, f"Cancelled by <@{REQUESTER}>")
    assert "Data Manager" not in _groups_of(sandbox, "alice@example.com")
    server.stop()
    assert "Traceback" not in server.output()


def test_offboard_and_the_deactivation_card_through_serve(serve_env, servers, db, sandbox, slack, groups):
    server = Serve({**serve_env, "ADMINS": f"{ADMIN},{APPROVER2}"}, workers=1)
    servers.append(server)
    before = sandbox.create_user(
        "oscar@example.com", "Oscar", "Keep", groups=[groups["Viewer"], groups["Data Analyst"]], actions=[]
    )
    server.post(slash_body(slack, OTHER, "request Data Manager"))  # oscar's own pending request
    own = wait_for(lambda: [r for r in _requests(db, "join") if r.approval_ts])[0]

    server.post(slash_body(slack, ADMIN, "offboard <@U0OSCAR|oscar> left the company"))
    req = wait_for(lambda: [r for r in _requests(db, OFFBOARD) if r.approval_ts])[0]
    card = slack.find_message(req.approval_channel, req.approval_ts)
    assert "Data Analyst" in str(card["blocks"]) and own.id[:8] in str(card["blocks"])
    server.post(click_body(slack, ADMIN, "approve_request", req.id))
    _answer(slack, "your own request")
    assert sandbox.writes() == []
    server.post(click_body(slack, APPROVER2, "approve_request", req.id))
    wait_for(lambda: _requests(db, OFFBOARD)[0].state == APPLIED, timeout=15)
    after = sandbox.find_user("oscar@example.com")
    assert after["groups"] == [] and after["enabled"] is False
    for key in set(before) - {"groups", "enabled"}:
        assert after[key] == before[key], key
    assert _requests(db, "join")[0].state == CANCELLED

    # a Slack account deactivated: an offboarding card for the admins, nothing applied
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    event = json.dumps(
        {
            "token": "x",
            "team_id": "T0STANDIN",
            "api_app_id": "A0TEST",
            "type": "event_callback",
            "event_id": "Ev0SERVEGONE",
            "event_time": int(time.time()),
            "event": {"type": "user_change", "user": {"id": GONE, "deleted": True, "profile": {}}},
        }
    )
    assert server.post(event, headers=signed_headers(event, content_type="application/json")).status_code == 200
    bot = wait_for(lambda: [r for r in _requests(db, OFFBOARD) if r.requester_id == BOT_REQUESTER and r.approval_ts])[0]
    assert bot.target_email == "gone@example.com" and bot.state == PENDING
    assert "was deactivated" in str(slack.find_message(bot.approval_channel, bot.approval_ts)["blocks"])
    assert sandbox.find_user("gone@example.com")["enabled"] is True
    server.stop()
    assert "Traceback" not in server.output()
