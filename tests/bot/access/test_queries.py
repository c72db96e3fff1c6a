"""Read-only answers (bot/access/queries.py): whois, groups, members, status, pending.

Moved from tests/bot/test_workflow.py; against the Polaris sandbox (HTTP) and the Slack stand-in, on SQLite or
PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

from bot.models import APPLIED
from tests.bot.access.helpers import only_request
from tests.conftest import APPROVER, OTHER, REQUESTER


def test_whois_groups_members_permissions(service, db, sandbox, groups):
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]], enabled=False)
    sandbox.reset_calls()
    who = service.handle_command(REQUESTER, "whois")
    text = str(who.blocks)
    assert "alice@example.com" in text and "disabled" in text and "Viewer" in text and "ViewTables" in text
    assert len(sandbox.calls) <= 3
    assert "No Polaris user" in service.handle_command(REQUESTER, "whois nobody@example.com").text
    assert "Organization Admin" in str(service.handle_command(REQUESTER, "groups").blocks)
    members = service.handle_command(REQUESTER, 'members "organization admin"')
    assert "bob@example.com" in str(members.blocks)
    assert "AdministerUsers" in str(service.handle_command(REQUESTER, "permissions").blocks)


def test_groups_are_cached(service, db, sandbox, groups):
    sandbox.reset_calls()
    service.handle_command(REQUESTER, "groups")
    service.handle_command(REQUESTER, "groups")
    assert len([c for c in sandbox.calls if c.path == "/v1/groups"]) == 1


def test_status_and_pending(service, db, groups):
    service.handle_command(REQUESTER, "request Viewer")
    assert "Viewer" in str(service.handle_command(REQUESTER, "status").blocks)
    assert "Viewer" in str(service.handle_command(APPROVER, "pending").blocks)
    assert "not an approver" in service.handle_command(OTHER, "pending").text


def test_members_with_extra_words_is_refused_naming_them_escaped(service, db, groups):
    reply = service.handle_command(REQUESTER, "members Data Analyst extra words")
    assert "`extra words`" in reply.text and "/polaris members &lt;group&gt;" in reply.text, reply.text
    assert not reply.blocks
    reply = service.handle_command(REQUESTER, "members Data Analyst <!channel> & co")
    assert "`&lt;!channel&gt; &amp; co`" in reply.text and "<!channel>" not in reply.text, reply.text
    assert "members of Data Analyst" in service.handle_command(REQUESTER, "members Data Analyst").text


def test_groups_member_counts_follow_a_membership_the_bot_applied(service, db, sandbox, groups):
    def viewer_line():
        text = str(service.handle_command(OTHER, "groups").blocks)
        return next(line for line in text.split("\\n") if "*Viewer*" in line)

    assert "0 members" in viewer_line()
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    assert service.run_due() == 1 and service.get(req.id).state == APPLIED
    assert "1 member," in viewer_line()


# ----------------------------------------------------------------------------------- issue 8 (h-polaris)
def test_whois_finds_the_exact_user_among_1200_substring_matches(service, sandbox, groups):
    for i in range(1200):
        sandbox.create_user(f"a{i:04d}sam@example.io", "Bulk", str(i), actions=[])
    sandbox.create_user("sam@example.io", "Sam", "Exact", groups=[groups["Viewer"]], actions=[])
    reply = service.handle_command(REQUESTER, "whois sam@example.io")
    assert "No Polaris user" not in reply.text and "sam@example.io" in reply.text


def test_home_tab_shows_pending_only_to_approvers(service, db, groups):
    from tests.conftest import APPROVER, OTHER

    service.handle_command(REQUESTER, "request Viewer")
    mine = str(service.home_view(REQUESTER)["blocks"])
    assert "Your open requests" in mine and "Requests awaiting a decision" not in mine
    theirs = str(service.home_view(APPROVER)["blocks"])
    assert "Requests awaiting a decision" in theirs and "Viewer" in theirs
    assert "Requests awaiting a decision" not in str(service.home_view(OTHER)["blocks"])
    assert service.queries.awaiting(OTHER) is None and len(service.queries.awaiting(APPROVER)) == 1
