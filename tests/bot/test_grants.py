"""bot/grants.py (what a group gives a person, pure), the card's "what they gain" (bot/views/gains.py) within Block
Kit limits for a group of 120 permissions, ManageApiKeys not privileged, and the paging words of the parser."""

from __future__ import annotations

import datetime as dt

import pytest

from bot import privilege
from bot.commands import UsageError, parse
from bot.grants import Gains, compare, unread
from bot.polaris import Group, Permission
from bot.views import approval_card
from bot.views.gains import gain_blocks
from tests.bot.test_views import assert_block_kit_limits, make_request, mrkdwn_texts

ALL = ("projects/*",)


def test_a_permission_held_on_every_project_covers_one_project():
    gains = compare([Permission("ViewTables", ("projects/a",))], [Permission("ViewTables", ALL)])
    assert gains.gained == () and gains.already == 1 and gains.total == 1


def test_one_project_held_leaves_the_other_gained():
    group = [Permission("ViewTables", ("projects/a", "projects/b"))]
    gains = compare(group, [Permission("ViewTables", ("projects/a",))])
    assert gains.gained == (Permission("ViewTables", ("projects/b",)),) and gains.already == 0


def test_every_project_is_not_covered_by_some_projects():
    gains = compare([Permission("ViewTables", ALL)], [Permission("ViewTables", ("projects/a",))])
    assert gains.gained == (Permission("ViewTables", ALL),)


def test_organization_level_permissions_are_matched_by_name():
    group = [Permission("ManageApiKeys"), Permission("AdministerUsers"), Permission("ViewTables", ALL)]
    gains = compare(group, [Permission("ManageApiKeys"), Permission("ViewTables", ALL)])
    assert [p.name for p in gains.gained] == ["AdministerUsers"] and gains.already == 2 and gains.total == 3


def test_a_new_account_gains_everything_and_an_unread_one_lists_everything():
    group = [Permission("ManageApiKeys"), Permission("ViewTables", ALL)]
    assert compare(group, None).gained == tuple(group) and compare(group, None).new_account
    assert unread(group, "Timeout").gained == tuple(group) and unread(group, "Timeout").unread == "Timeout"


def test_the_reading_kept_with_the_request_round_trips():
    at = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)
    gains = Gains(gained=(Permission("ViewTables", ("projects/b",)),), already=2, total=3, read_at=at)
    back = Gains.from_json(gains.to_json())
    assert back == gains and back.read_at == at
    assert Gains.from_json({"groups": ["x"]}) is None and Gains.from_json(None) is None


def test_manage_api_keys_is_not_privileged_but_administer_api_keys_is():
    assert not privilege.is_privileged(Group("g", "Keys", permissions=(Permission("ManageApiKeys"),)))
    assert privilege.is_privileged(Group("g", "Keys", permissions=(Permission("AdministerApiKeys"),)))
    assert privilege.is_privileged_permission(Permission("AdministerSomethingNew"))
    assert not privilege.is_privileged_permission(Permission("AdministerDashboards", ALL))


def test_a_card_for_a_group_of_120_permissions_stays_within_limits():
    perms = tuple(Permission(f"Perm{i:03d}", (f"projects/p{i:03d}",)) for i in range(110)) + tuple(
        Permission(f"AdministerThing{i}") for i in range(10)
    )
    group = Group("g", "Huge", permissions=perms)
    held = [Permission(f"Perm{i:03d}", ALL) for i in range(50)]
    gains = compare(perms, held)
    assert gains.already == 50 and len(gains.gained) == 70
    _, blocks = approval_card(make_request(), group=group, gains=gains)
    assert_block_kit_limits(blocks)
    text = "\n".join(mrkdwn_texts(blocks))
    assert "What Huge gives them* (70 permissions new)" in text
    assert ":office: *AdministerThing0* — organization level :rotating_light: privileged" in text
    assert "…and 50 more" in text  # 20 lines shown of 70
    assert "Already has 50 of these 120 through other groups" in text
    assert any(b["type"] == "actions" for b in blocks)  # the buttons survive


def test_nothing_new_says_so():
    group = Group("g", "Viewer", permissions=(Permission("ViewTables", ALL),))
    text = "\n".join(mrkdwn_texts(gain_blocks(group, compare(group.permissions, [Permission("ViewTables", ALL)]))))
    assert "nothing new" in text and "already have the one permission of *Viewer*" in text  # was "all 1 permission"
    assert "Already has it through other groups" in text and "1 of these 1" not in text


@pytest.mark.parametrize(
    "text,page",
    [("whois", 1), ("whois page 3", 3), ("whois a@example.com page 2", 2), ("groups page 4", 4), ("groups", 1)],
)
def test_page_words_are_read(text, page):
    assert parse(text).page == page


# `groups page two` may name a group ("Page Views"): refused by the route, tests/handlers/test_admin_attacks.py
@pytest.mark.parametrize("text", ["whois page 0", "whois page two", "groups page 0", "whois a@example.com page 1001"])
def test_bad_page_words_are_a_sentence(text):
    with pytest.raises(UsageError, match="`page` takes a whole number from 1 to 1000"):
        parse(text)
