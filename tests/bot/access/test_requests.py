"""Submitting requests (bot/access/requests.py): request, invite, reset-password and the form; the checks before saving.

Moved from tests/bot/test_workflow.py; against the Polaris sandbox (HTTP) and the Slack stand-in, on SQLite or
PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import threading

import pytest

from sqlalchemy import select

from bot.models import APPLIED, APPROVED, PENDING, Delivery
from tests.bot.access.helpers import (
    only_request,
    audit_actions,
    card,
    buttons,
    dms,
    only_request_count,
    _finance_readers,
)
from tests.conftest import APPROVER, BOT, CHANNEL, GONE, GUEST, OTHER, REQUESTER, make_settings


def test_request_by_someone_without_account_creates_user_in_group_with_slack_names(service, db, sandbox, slack, groups):
    reply = service.handle_command(REQUESTER, "request viewer need dashboards")
    assert "went to the approvers" in reply.text
    req = only_request(db)
    assert (req.state, req.group_id, req.target_email) == (PENDING, groups["Viewer"], "alice@example.com")
    message = card(slack, req)
    assert buttons(message) == ["Approve", "Approve with options…", "Deny"]
    assert "need dashboards" in str(message["blocks"]) and "ViewTables" in str(message["blocks"])

    assert service.decide(req.id, APPROVER, approve=True) is None
    assert service.get(req.id).state == APPROVED
    assert service.run_due() == 1
    req = service.get(req.id)
    assert req.state == APPLIED
    user = sandbox.find_user("alice@example.com")
    assert user["firstName"] == "Alice" and user["lastName"] == "Tester"
    assert [g["id"] for g in user["groups"]] == [groups["Viewer"]]
    assert len(sandbox.writes("POST", r"^/v1/users$")) == 1
    message = card(slack, req)
    assert (
        buttons(message) == []
        and "Approved and applied" in str(message["blocks"])
        and APPROVER in str(message["blocks"])
    )
    # One DM: the approval's was held back and the outcome's names the approver instead (issue 13).
    done = [t for t in dms(slack, REQUESTER) if "Done" in t]
    assert len(done) == 1 and f"Approved by <@{APPROVER}>" in done[0]
    assert not any("was approved by" in t for t in dms(slack, REQUESTER))
    actions = [a for _, a, _ in audit_actions(db, req.id)]
    for expected in (
        "request.created",
        "notify.card",
        "decision.approve",
        "apply.start",
        "polaris.call",
        "apply.done",
        "notify.dm",
        "notify.update",
    ):
        assert expected in actions


def test_existing_user_keeps_every_group_when_added_to_another(service, db, sandbox, groups):
    sandbox.create_user(
        "alice@example.com",
        "Alicia",
        "Original",
        groups=[groups["Viewer"], groups["Data Manager"]],
        enabled=True,
        actions=[],
    )
    service.handle_command(REQUESTER, 'request "Data Analyst" queries')
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    user = sandbox.find_user("alice@example.com")
    assert {g["id"] for g in user["groups"]} == {groups["Viewer"], groups["Data Manager"], groups["Data Analyst"]}
    assert (user["firstName"], user["lastName"], user["enabled"]) == ("Alicia", "Original", True)
    assert sandbox.writes("PUT") == [] and len(sandbox.writes("POST", r"/members$")) == 1


def test_unknown_group_suggests_nearest(service, db, groups):
    reply = service.handle_command(REQUESTER, "request Data Analist please")
    assert "no Polaris group" in reply.text and "Data Analyst" in reply.text
    assert only_request_count(db) == 0


@pytest.mark.parametrize("who,expected", [(GUEST, "Guest accounts"), (GONE, "deactivated"), (BOT, "Bots")])
def test_guest_deleted_or_bot_cannot_request(service, db, groups, who, expected):
    assert expected in service.handle_command(who, "request Viewer").text
    assert only_request_count(db) == 0


def test_requester_without_email_is_refused(service, db, slack, groups):
    slack.add_user("U0NOMAIL", "nomail", None)
    assert "no email" in service.handle_command("U0NOMAIL", "request Viewer").text


def test_already_member_and_duplicate_requests_are_refused(service, db, sandbox, groups):
    sandbox.create_user("alice@example.com", groups=[groups["Viewer"]])
    assert "already a member" in service.handle_command(REQUESTER, "request viewer").text
    assert "went to the approvers" in service.handle_command(REQUESTER, "request Data Analyst").text
    assert "already an open request" in service.handle_command(REQUESTER, "request data analyst again").text
    assert only_request_count(db) == 1


def test_open_request_limit(service, db, sandbox, slack, groups):
    service.settings = make_settings(sandbox, slack, db.url, max_open_requests=1)
    service.handle_command(REQUESTER, "request Viewer")
    assert "open requests" in service.handle_command(REQUESTER, "request Data Analyst").text


def test_invite_and_reset_for_someone_else_say_so_and_tell_the_target(service, db, sandbox, slack, groups):
    reply = service.handle_command(REQUESTER, "invite newhire@example.com Viewer starts monday")
    assert "went to the approvers" in reply.text
    req = only_request(db)
    assert "someone else" in str(card(slack, req)["blocks"])
    sandbox.create_user("oscar@example.com", "Oscar", "Tester", groups=[groups["Viewer"]])
    service.handle_command(REQUESTER, "reset-password oscar@example.com")
    assert any("asked for a password reset of your Polaris account" in t for t in dms(slack, OTHER))


def test_identical_requests_at_the_same_moment_make_one(service, db, sandbox, groups):
    service.requests.check_duplicates = False  # as if both passed the friendly check at the same time
    replies = []
    barrier = threading.Barrier(6)

    def ask():
        barrier.wait()
        replies.append(service.handle_command(REQUESTER, "request Viewer").text)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert only_request_count(db) == 1
    assert sum("went to the approvers" in r for r in replies) == 1
    assert sum("already an open request" in r for r in replies) == 5


def test_open_request_limit_holds_for_requests_at_the_same_moment(service, db, sandbox, slack, groups):
    service.settings = make_settings(sandbox, slack, db.url, max_open_requests=1)
    names = ["Viewer", "Data Analyst", "Data Manager", "Viewer", "Data Analyst", "Data Manager"]
    barrier = threading.Barrier(len(names))

    def ask(name):
        barrier.wait()
        service.handle_command(REQUESTER, f"request {name}")

    threads = [threading.Thread(target=ask, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert only_request_count(db) == 1


def test_group_made_in_polaris_after_groups_is_found_by_request(service, db, sandbox, groups):
    assert "Organization Admin" in str(service.handle_command(REQUESTER, "groups").blocks)  # the list is cached
    gid = _finance_readers(sandbox)
    reply = service.handle_command(REQUESTER, "request Finance Readers month end")
    assert "went to the approvers" in reply.text, reply.text
    req = only_request(db)
    assert (req.group_id, req.group_name, req.reason) == (gid, "Finance Readers", "month end")


def test_group_made_in_polaris_whose_name_starts_with_a_known_one_is_not_split_wrong(service, db, sandbox, groups):
    sandbox.create_group("Finance", [{"name": "ViewTables", "resources": ["projects/*"]}])
    service.handle_command(REQUESTER, "groups")  # "Finance" is known, "Finance Readers" is not yet
    gid = _finance_readers(sandbox)
    reply = service.handle_command(REQUESTER, "request Finance Readers month end")
    assert "went to the approvers" in reply.text, reply.text
    assert (only_request(db).group_id, only_request(db).reason) == (gid, "month end")
    assert "members of Finance Readers" in service.handle_command(REQUESTER, "members Finance Readers").text


def test_group_made_in_polaris_after_groups_is_found_by_invite_and_members(service, db, sandbox, groups):
    service.handle_command(REQUESTER, "groups")
    gid = _finance_readers(sandbox)
    sandbox.create_user("oscar@example.com", "Oscar", "Tester", groups=[gid])
    members = service.handle_command(REQUESTER, "members Finance Readers")
    assert "oscar@example.com" in str(members.blocks), members.text
    reply = service.handle_command(REQUESTER, "invite newhire@example.com Finance Readers month end")
    assert "went to the approvers" in reply.text, reply.text
    assert (only_request(db).group_id, only_request(db).reason) == (gid, "month end")


def test_group_made_in_polaris_after_groups_is_found_by_the_form(service, db, sandbox, groups):
    service.handle_command(REQUESTER, "groups")
    gid = _finance_readers(sandbox)
    reply = service.submit_form(REQUESTER, gid, "month end")
    assert "went to the approvers" in reply.text, reply.text
    assert only_request(db).group_id == gid


def test_unknown_group_quotes_what_was_typed_whole(service, db, sandbox, groups):
    service.handle_command(REQUESTER, "groups")
    reply = service.handle_command(REQUESTER, "request Finance Readers month end")
    assert "`Finance Readers month end`" in reply.text, reply.text
    assert "called `Finance`" not in reply.text
    reply = service.handle_command(REQUESTER, "invite newhire@example.com Finance Readers month end")
    assert "`Finance Readers month end`" in reply.text, reply.text
    reply = service.handle_command(REQUESTER, "members Finance Readers")
    assert "`Finance Readers`" in reply.text, reply.text
    assert only_request_count(db) == 0


def test_misses_refresh_the_group_list_at_most_once_every_few_seconds(service, db, sandbox, groups):
    from bot.polaris import MISS_REFRESH_SECONDS

    now = [1000.0]
    service.catalog.clock = lambda: now[0]
    service.catalog.invalidate()
    service.handle_command(REQUESTER, "groups")
    sandbox.reset_calls()
    for _ in range(4):
        assert "no Polaris group" in service.handle_command(REQUESTER, "request Nothing Such here").text
    assert len([c for c in sandbox.calls if c.path == "/v1/groups"]) == 1
    now[0] += MISS_REFRESH_SECONDS
    assert "no Polaris group" in service.handle_command(REQUESTER, "members Nothing Such").text
    assert len([c for c in sandbox.calls if c.path == "/v1/groups"]) == 2


# ------------------------------------------------------------------ issue 8, finding 21: text
def test_a_5000_character_reason_is_refused_with_its_real_length_in_commands(service, db, groups):
    for text in ("request Viewer ", "invite newhire@example.com Viewer "):
        reply = service.handle_command(REQUESTER, text + "r" * 5000)
        assert "5,000 characters" in reply.text and "limit is 500" in reply.text, reply.text
    assert only_request_count(db) == 0


def test_a_5000_character_reason_is_refused_in_the_form(service, db, groups):
    reply = service.submit_form(REQUESTER, groups["Viewer"], "r" * 5000)
    assert "5,000 characters" in reply.text and "limit is 500" in reply.text, reply.text
    assert only_request_count(db) == 0
    assert "went to the approvers" in service.submit_form(REQUESTER, groups["Viewer"], "r" * 500).text
    assert only_request(db).reason == "r" * 500


def test_invite_for_a_deactivated_slack_account_is_refused(service, db, sandbox, slack, groups):
    reply = service.handle_command(REQUESTER, "invite <@U0GONE> Data Analyst")
    assert "deactivated" in reply.text
    assert only_request_count(db) == 0
    slack.users[BOT]["profile"]["email"] = "robot@example.com"
    for who, word in ((GUEST, "guest"), (BOT, "bot")):
        reply = service.handle_command(REQUESTER, f"invite <@{who}> Data Analyst")
        assert word in reply.text.lower(), reply.text
    assert only_request_count(db) == 0
    assert "went to the approvers" in service.handle_command(REQUESTER, "invite new.person@example.com Viewer").text


def test_invite_of_someone_with_a_polaris_account_asks_for_a_membership(service, db, sandbox, slack, groups):
    """New-user trial: inviting bob (who has an account) made a card asking "for a Polaris account"."""
    service.handle_command(REQUESTER, "invite bob@example.com Viewer dashboards")
    req = only_request(db)
    text = str(card(slack, req)["blocks"])
    assert "membership in *Viewer* for `bob@example.com`" in text and "a Polaris account" not in text
    service.handle_command(REQUESTER, "invite newhire@example.com Viewer dashboards")
    assert any(
        "a Polaris account for `newhire@example.com`" in str(m.get("blocks")) for m in slack.messages_in(CHANNEL)
    )


def test_the_person_whose_reset_someone_asked_for_is_told_through_the_delivery_ledger(
    service, db, sandbox, slack, groups
):
    """Final check: that DM was fire and forget; now it is owed in the ledger (retried, ADMINS told)."""
    sandbox.create_user("oscar@example.com", "Oscar", "Tester", groups=[groups["Viewer"]], actions=[])
    slack.fail_next("conversations.open", status=200, error="fatal_error", times=1)  # transient: retried
    service.handle_command(REQUESTER, "reset-password <@U0OSCAR>")
    req = only_request(db)
    with db.session() as s:
        owed = [d for d in s.scalars(select(Delivery).where(Delivery.request_id == req.id)) if d.recipient == OTHER]
    assert [(d.key, d.status) for d in owed] == [("reset_asked", "pending")]
