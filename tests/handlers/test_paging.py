"""Paging (issue 11): ``members <group> [page N]`` pages through every member with Polaris's ``top``/``skip``;
``whois`` (a user in 300 groups) and ``groups`` (hundreds of groups) stay within Block Kit limits, say what is
on the page and how to see the rest; bad page numbers get a sentence. Through signed slash commands (the real
Bolt app), on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from tests.bot.test_views import assert_block_kit_limits, mrkdwn_texts
from tests.conftest import REQUESTER, signed_headers, slash_body, wait_for
from tests.handlers.conftest import dispatch


def _answer(bolt, slack, text: str, user: str = REQUESTER) -> dict:
    seen = len(slack.responses)
    body = slash_body(slack, user, text)
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    return wait_for(lambda: slack.responses[seen:])[0]


def _all_text(answer: dict) -> str:
    out = [answer.get("text") or ""]
    for b in answer.get("blocks") or []:
        if b.get("text"):
            out.append(b["text"]["text"])
        out += [e.get("text", "") for e in b.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(out)


@pytest.fixture
def big_team(sandbox, groups):
    """A group of 250 members (``member000@example.com``..)."""
    team = sandbox.create_group("Big Team", [{"name": "ViewTables", "resources": ["projects/*"]}])
    for i in range(250):
        sandbox.create_user(f"member{i:03d}@example.com", f"First{i:03d}", "Member", groups=[team["id"]], actions=[])
    return team


def test_members_pages_through_all_250(bolt, slack, sandbox, big_team):
    seen: set[str] = set()
    sandbox.reset_calls()
    for page in range(1, 8):
        answer = _answer(bolt, slack, f'members "Big Team" page {page}' if page > 1 else "members big team")
        assert answer["response_type"] == "ephemeral"
        assert_block_kit_limits(answer["blocks"])
        text = _all_text(answer)
        assert f"Page {page} of 7 · 250 members in all" in text
        if page < 7:
            assert f'next page: `/polaris members "Big Team" page {page + 1}`' in text
        else:
            assert "next page" not in text and "members 241–250 of 250" in text
        seen |= set(re.findall(r"member\d{3}@example\.com", text))
    assert len(seen) == 250  # every member, each page a different 40
    pages = [c for c in sandbox.calls if c.path.endswith("/members")]
    assert len(pages) == 7 and all(c.query.get("top") == "40" for c in pages)
    assert sorted(int(c.query.get("skip", 0)) for c in pages) == [0, 40, 80, 120, 160, 200, 240]


def test_members_bad_page_numbers_get_a_sentence(bolt, slack, big_team):
    past = _all_text(_answer(bolt, slack, 'members "Big Team" page 9'))
    assert "has 250 members, on 7 pages: there is no page 9" in past
    assert '`/polaris members "Big Team" page 7` shows the last' in past
    for bad in ("0", "two", "-1"):
        text = _all_text(_answer(bolt, slack, f'members "Big Team" page {bad}'))
        assert "`page` takes a whole number from 1" in text, bad
    text = _all_text(_answer(bolt, slack, 'members "Big Team" everyone please'))
    assert "I don't know what to do with `everyone please`" in text


def test_members_of_a_small_group_is_one_page(bolt, slack, groups, sandbox):
    sandbox.create_user("dan@example.com", "Dan", "Tester", groups=[groups["Viewer"]], actions=[])
    text = _all_text(_answer(bolt, slack, "members Viewer"))
    assert "Page 1 of 1 · 1 member in all" in text and "next page" not in text
    assert "dan@example.com" in text
    assert "*Viewer*: 1 member" in text and "1–1" not in text  # was "member 1–1 of 1"


def test_a_member_or_user_with_no_names_is_their_username_once(bolt, slack, groups, sandbox):
    """New-user trial: an account with no names showed as "a@x.com (`a@x.com`)"."""
    sandbox.create_user("nameless@example.com", "", "", groups=[groups["Viewer"]], actions=[])
    sandbox.create_user("dan@example.com", "Dan", "Tester", groups=[groups["Viewer"]], actions=[])
    text = _all_text(_answer(bolt, slack, "members Viewer"))
    assert "`nameless@example.com`" in text and "nameless@example.com (" not in text, text
    assert "Dan Tester (`dan@example.com`)" in text
    who = _all_text(_answer(bolt, slack, "whois nameless@example.com"))
    assert "`nameless@example.com` — enabled" in who and "*nameless@example.com* (" not in who, who


def test_whois_page_two_says_where_the_permissions_are(bolt, slack, groups, sandbox):
    """41 groups (page 2 holds the last), 4 permission lines (all on page 1): page 2 says so, without a
    "_none_" under a title that says there are 4, and the one group there is "41 of 41", not "41–41"."""
    ids = [
        sandbox.create_group(f"Crew {i:02d}", [{"name": "ViewTables", "resources": [f"projects/p{i % 4}"]}])["id"]
        for i in range(41)
    ]
    sandbox.create_user("crew@example.com", "Crew", "Person", groups=ids, actions=[])
    text = _all_text(_answer(bolt, slack, "whois crew@example.com page 2"))
    assert "*Effective permissions*: all 4 lines are on earlier pages" in text and "_none_" not in text, text
    assert "*Groups* (41 of 41)" in text and "Crew 40" in text, text


@pytest.fixture
def busy_user(sandbox, groups):
    """A user in 300 groups, each granting ViewTables on a project of its own: 300 permission lines."""
    ids = []
    for i in range(300):
        g = sandbox.create_group(f"Team {i:03d}", [{"name": "ViewTables", "resources": [f"projects/p{i:03d}"]}])
        ids.append(g["id"])
    sandbox.create_user("busy@example.com", "Busy", "Person", groups=ids, actions=[])
    return ids


def test_whois_of_a_user_in_300_groups_is_paged(bolt, slack, busy_user):
    first = _answer(bolt, slack, "whois busy@example.com")
    assert_block_kit_limits(first["blocks"])
    text = _all_text(first)
    assert "*Groups* (1–40 of 300)" in text and "Team 000" in text and "Team 040" not in text
    assert "*Effective permissions* (1–30 of 300 lines)" in text
    assert "Page 1 of 10 · 300 groups, 300 permission lines in all" in text
    assert "next page: `/polaris whois busy@example.com page 2`" in text
    last = _answer(bolt, slack, "whois busy@example.com page 10")
    assert_block_kit_limits(last["blocks"])
    text = _all_text(last)
    assert "*Groups*: all 300 are on earlier pages" in text
    assert "*Effective permissions* (271–300 of 300 lines)" in text and "next page" not in text
    past = _all_text(_answer(bolt, slack, "whois busy@example.com page 11"))
    assert "fits on 10 pages: there is no page 11" in past


def test_groups_lists_hundreds_in_pages(bolt, slack, busy_user):
    first = _answer(bolt, slack, "groups")
    assert_block_kit_limits(first["blocks"])
    text = _all_text(first)
    assert "Page 1 of 7 · 304 groups in all · next page: `/polaris groups page 2`" in text
    last = _answer(bolt, slack, "groups page 7")
    assert_block_kit_limits(last["blocks"])
    text = _all_text(last)
    assert "Page 7 of 7" in text and "Viewer" in text and "next page" not in text
    assert "there is no page 8" in _all_text(_answer(bolt, slack, "groups page 8"))
    # words after `groups` name one group (shown in detail): not a group, so the nearest names are offered
    assert "There is no Polaris group called `all of them`" in _all_text(_answer(bolt, slack, "groups all of them"))


def test_page_hints_are_escaped():
    from bot.polaris import Group, User
    from bot.views import paging

    evil = Group("g", "<!channel> & co")
    members = [User(f"u{i}", f"m{i}@example.com", f"m{i}@example.com") for i in range(40)]
    text, blocks = paging.member_page(evil, members, 100, 1)
    rendered = text + "\n".join(mrkdwn_texts(blocks))  # the header is plain_text: shown as typed
    assert "<!channel>" not in rendered and '"&lt;!channel&gt; &amp; co" page 2' in rendered
    user = User("u", "a&b@example.com", "a&b@example.com", groups=tuple((f"g{i}", f"G{i}") for i in range(50)))
    _, blocks = paging.whois_page(user, [], asked_for=user.email, page=1, again="/polaris whois a&b@example.com")
    assert "`/polaris whois a&amp;b@example.com page 2`" in str(blocks)
