"""UserChange (bot/access/user_changes.py): the modal's field errors, the plan round trip, before → after, and
the same rule as the reset and the offboarding PUT: GET, change, PUT of the whole user changes only the names
and ``enabled``, nothing else lost (property test against the Polaris sandbox)."""

from __future__ import annotations

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.access.user_changes import FIRST_BLOCK, LAST_BLOCK, NAME_MAX, UserChange, check_fields
from bot.polaris import READ_ONLY_USER_FIELDS, User
from standins.polaris_sandbox import PolarisSandbox
from tests.bot.polaris.test_client import BASE, KEY, _GROUP_CHOICES, _PERMISSION_CHOICES, make_client


def test_empty_and_too_long_names_are_errors_on_their_own_field():
    assert check_fields("Ana", "Silva") == {}
    errors = check_fields("  \t ", "x" * (NAME_MAX + 1))
    assert errors[FIRST_BLOCK] == "Give a first name."
    assert errors[LAST_BLOCK] == f"That last name is {NAME_MAX + 1} characters long; the limit is {NAME_MAX}."
    assert check_fields("x" * NAME_MAX, "\u0007Lee") == {}  # control characters dropped before measuring


def test_of_cleans_names_and_refuses_bad_ones():
    assert UserChange.of("  Ana   Maria ", "Silva\n", True) == UserChange("Ana Maria", "Silva", True)
    with pytest.raises(ValueError, match="Give a last name"):
        UserChange.of("Ana", "", False)


def test_plan_round_trip_and_a_bad_plan():
    change = UserChange("Ana", "Silva", False)
    assert change.plan() == {"firstName": "Ana", "lastName": "Silva", "enabled": False}
    assert UserChange.from_plan(change.plan()) == change
    with pytest.raises(ValueError, match="not a user change"):
        UserChange.from_plan({"firstName": "Ana"})


def test_lines_show_before_and_after_of_what_changes_only():
    user = User(id="u1", username="ana@example.com", email="ana@example.com", first_name="", last_name="Silva")
    change = UserChange("Ana", "Silva", False)
    assert change.lines(user) == ["First name: (none) → Ana", "Enabled: yes → no"]
    assert change.disables(user) and not UserChange("Ana", "Silva", True).disables(user)
    assert UserChange("", "Silva", True).lines(user) == []


@settings(max_examples=30, deadline=None)
@given(
    local=st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True),
    first=st.text(max_size=20),
    last=st.text(max_size=20),
    enabled=st.booleans(),
    groups=st.lists(st.sampled_from(_GROUP_CHOICES), unique=True),
    actions=st.lists(st.sampled_from(["VERIFY_EMAIL", "UPDATE_PASSWORD"]), unique=True),
    permissions=st.lists(st.sampled_from(_PERMISSION_CHOICES), unique_by=lambda p: p["name"], max_size=4),
    verified=st.booleans(),
    new_enabled=st.booleans(),
)
def test_property_a_user_change_changes_only_names_and_enabled(
    local, first, last, enabled, groups, actions, permissions, verified, new_enabled
):
    change = UserChange("Ana", "Silva-Reyes", new_enabled)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        sb = PolarisSandbox(api_key=KEY)
        sb.mount(mock, BASE)
        created = sb.create_user(
            f"{local}@example.com",
            first,
            last,
            groups=groups,
            enabled=enabled,
            actions=actions,
            permissions=permissions,
            email_verified=verified,
        )
        result = make_client().update_user(created["id"], change.apply, done=change.done)
        after = sb.get_user(created["id"])
    assert after == {**created, "firstName": "Ana", "lastName": "Silva-Reyes", "enabled": new_enabled}
    assert result.raw == after and change.done(result)
    writes = sb.writes()
    assert [(w.method, w.path) for w in writes] == [("PUT", f"/v1/users/{created['id']}")]
    assert not set(writes[0].body) & READ_ONLY_USER_FIELDS
