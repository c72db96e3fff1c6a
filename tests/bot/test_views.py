"""Tests for bot.views: Block Kit builders and mrkdwn escaping.

Checks /work/shared/slack/README.md: text from people or Polaris is escaped (``&``, ``<``, ``>`` and
nothing else), Block Kit limits hold even for huge inputs, each approval-card state has the right buttons,
and the blocks pass slack_sdk's own Block Kit model validation.
"""

from __future__ import annotations

import datetime as dt
import re

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot import views
from bot.models import (
    APPLIED,
    APPROVED,
    DENIED,
    EXPIRED,
    FAILED,
    INVITE,
    JOIN,
    PENDING,
    RESET_PASSWORD,
    STATES,
    AccessRequest,
)
from bot.polaris import Group, Permission, User
from bot.views import (
    APPROVE_ACTION,
    APPROVE_OPTIONS_ACTION,
    DENY_ACTION,
    RETRY_ACTION,
    approval_card,
    esc,
    group_list,
    help_message,
    member_list,
    permission_catalogue,
    request_list,
    request_modal,
    requester_update,
    whois,
)

NOW = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
REQ_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
EVIL = "<!channel> <@U123> <https://evil|click>"
REQUESTER = "U0REQUESTER"
DECIDER = "U0DECIDER"

SECTION_MAX, HEADER_MAX, BLOCKS_MAX, FIELD_MAX, FIELDS_MAX = 3000, 150, 50, 2000, 10


def make_request(**kw) -> AccessRequest:
    values = dict(
        id=REQ_ID,
        kind=JOIN,
        state=PENDING,
        requester_id=REQUESTER,
        requester_email="req@corp.com",
        target_email="req@corp.com",
        target_slack_id=None,
        group_id="g-1",
        group_name="Data Analyst",
        reason="need dashboards",
        approvals_required=1,
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW + dt.timedelta(days=1),
        decided_by=None,
        outcome=None,
        approval_ts=None,
    )
    values.update(kw)
    return AccessRequest(**values)


def decided(state, **kw) -> AccessRequest:
    return make_request(state=state, decided_by=None if state in (PENDING, EXPIRED) else DECIDER, decided_at=NOW, **kw)


def all_texts(obj) -> list[str]:
    """Every string value under a ``text`` key (text objects and fields), recursively."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "text" and isinstance(v, str):
                out.append(v)
            else:
                out.extend(all_texts(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(all_texts(v))
    return out


def mrkdwn_texts(blocks) -> list[str]:
    out: list[str] = []

    def walk(o):
        if isinstance(o, dict):
            if o.get("type") == "mrkdwn" and isinstance(o.get("text"), str):
                out.append(o["text"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(blocks)
    return out


def buttons(blocks) -> list[dict]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]


def assert_block_kit_limits(blocks, *, max_blocks=BLOCKS_MAX):
    assert 0 < len(blocks) <= max_blocks
    for b in blocks:
        if b["type"] == "section":
            if "text" in b:
                assert len(b["text"]["text"]) <= SECTION_MAX
            if "fields" in b:
                assert len(b["fields"]) <= FIELDS_MAX
                for f in b["fields"]:
                    assert len(f["text"]) <= FIELD_MAX
            assert "text" in b or "fields" in b
        elif b["type"] == "header":
            assert b["text"]["type"] == "plain_text"
            assert 0 < len(b["text"]["text"]) <= HEADER_MAX
        elif b["type"] == "context":
            assert 0 < len(b["elements"]) <= 10
            for e in b["elements"]:
                assert len(e["text"]) <= SECTION_MAX
        elif b["type"] == "actions":
            assert 0 < len(b["elements"]) <= 25
            for e in b["elements"]:
                assert len(e.get("value", "")) <= 2000
                assert len(e["action_id"]) <= 255
        if "block_id" in b:
            assert len(b["block_id"]) <= 255
        parsed = Block.parse(b)
        assert parsed is not None, b
        parsed.validate_json()
        assert parsed.to_dict()["type"] == b["type"]


def assert_more_line(body: str, total: int) -> None:
    """A cut list shows some bullets and exactly one "…and N more" line with N = total - shown."""
    shown = body.count("\n• ") + body.startswith("• ")
    more = re.findall(r"…and (\d+) more", body)
    assert shown > 0, body[:200]
    assert len(more) == 1, body[-200:]
    assert int(more[0]) == total - shown, (shown, more, total)


def assert_no_injection(text: str, *, allowed_mentions=(REQUESTER, DECIDER)):
    """No Slack control sequence coming from user text: only the bot's own ``<@ID>`` mentions remain."""
    stripped = text
    for uid in allowed_mentions:
        stripped = stripped.replace(f"<@{uid}>", "")
    assert "<!" not in stripped, text
    assert "<@" not in stripped, text
    assert "<http" not in stripped, text
    assert "<" not in stripped, text
    assert ">" not in stripped, text


# ----------------------------------------------------------------------------------------------- esc
class TestEsc:
    def test_escapes_exactly_three_characters(self):
        assert esc("a & b < c > d") == "a &amp; b &lt; c &gt; d"

    def test_ampersand_first(self):
        assert esc("&lt;") == "&amp;lt;"
        assert esc("&amp;") == "&amp;amp;"
        assert esc("<&>") == "&lt;&amp;&gt;"

    def test_nothing_else_escaped(self):
        text = "*bold* _it_ ~s~ `code` \"q\" 'a' :emoji: @here #chan é \\ | / ```"
        assert esc(text) == text

    def test_non_strings(self):
        assert esc(5) == "5"
        assert esc(None) == "None"

    def test_mentions_defused(self):
        assert esc(EVIL) == "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|click&gt;"

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def test_round_trip(self, text):
        out = esc(text)
        assert "<" not in out and ">" not in out
        assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


# --------------------------------------------------------------------------------------- escaping
class TestNoInjectionFromUserText:
    def evil_request(self, **kw):
        values = dict(
            reason=EVIL, group_name=EVIL, requester_email="<!here>@x.com", target_email="<@U123>@evil.com", outcome=EVIL
        )
        values.update(kw)
        return make_request(**values)

    @pytest.mark.parametrize("state", STATES)
    def test_approval_card(self, state):
        req = self.evil_request(state=state, decided_by=DECIDER if state != PENDING else None)
        group = Group("g-1", EVIL, permissions=(Permission(EVIL), Permission("X", resources=(EVIL,))))
        text, blocks = approval_card(req, group=group)
        for t in mrkdwn_texts(blocks) + [text]:
            assert_no_injection(t)
        rendered = "\n".join(mrkdwn_texts(blocks))
        assert "&lt;!channel&gt;" in rendered  # the reason is shown, defused
        assert_block_kit_limits(blocks)

    @pytest.mark.parametrize("kind", [JOIN, INVITE, RESET_PASSWORD])
    def test_approval_card_kinds(self, kind):
        req = self.evil_request(kind=kind, target_slack_id=None)
        text, blocks = approval_card(req)
        for t in mrkdwn_texts(blocks) + [text]:
            assert_no_injection(t)

    @pytest.mark.parametrize("state", STATES)
    @pytest.mark.parametrize("kind", [JOIN, INVITE, RESET_PASSWORD])
    def test_requester_update(self, state, kind):
        req = self.evil_request(state=state, kind=kind, decided_by=DECIDER, approval_ts="1.2")
        assert_no_injection(requester_update(req))

    def test_request_list(self):
        reqs = [self.evil_request(state=s, kind=k) for s in STATES for k in (JOIN, INVITE, RESET_PASSWORD)]
        text, blocks = request_list("Your requests", reqs, "none")
        for t in mrkdwn_texts(blocks) + [text]:
            assert_no_injection(t)
        assert_block_kit_limits(blocks)

    def test_whois(self):
        user = User(
            "u1",
            EVIL,
            EVIL,
            first_name=EVIL,
            last_name="<!everyone>",
            groups=(("g1", EVIL), ("g2", "")),
            actions=(EVIL,),
        )
        perms = [Permission(EVIL), Permission("ManageData", resources=(EVIL,))]
        text, blocks = whois(user, perms, asked_for="x@y.com")
        for t in mrkdwn_texts(blocks):
            assert_no_injection(t)
        assert_block_kit_limits(blocks)

    def test_whois_fallback_text_escaped(self):
        """The fallback ``text`` is shown in notifications and parsed as mrkdwn: Polaris data must be escaped."""
        user = User("u1", EVIL, "a@b.com")
        text, _ = whois(user, [], asked_for="a@b.com")
        assert_no_injection(text)

    def test_member_list(self):
        members = [User(f"u{i}", EVIL, "a@b.com", first_name=EVIL) for i in range(3)]
        text, blocks = member_list(Group("g", EVIL), members, 3)
        for t in mrkdwn_texts(blocks):
            assert_no_injection(t)
        assert_block_kit_limits(blocks)

    def test_member_list_fallback_text_escaped(self):
        text, _ = member_list(Group("g", EVIL), [], 0)
        assert_no_injection(text)

    def test_group_list_and_permissions(self):
        groups = [Group("g", EVIL, permissions=(Permission(EVIL),), user_count=3)]
        for text, blocks in (
            group_list(groups),
            permission_catalogue([Permission(EVIL), Permission(EVIL, resources=("p",))]),
        ):
            for t in mrkdwn_texts(blocks) + [text]:
                assert_no_injection(t)
            assert_block_kit_limits(blocks)

    def test_headers_are_plain_text(self):
        # user data in headers is fine only because header text is plain_text (never parsed)
        _, blocks = member_list(Group("g", EVIL), [], 0)
        hdr = [b for b in blocks if b["type"] == "header"]
        assert hdr and all(b["text"]["type"] == "plain_text" for b in hdr)


# ------------------------------------------------------------------------------------ card states
class TestApprovalCardStates:
    def test_pending_has_exactly_approve_approve_with_options_and_deny(self):
        text, blocks = approval_card(make_request())
        btns = buttons(blocks)
        assert [b["text"]["text"] for b in btns] == ["Approve", "Approve with options…", "Deny"]
        assert [b["action_id"] for b in btns] == [APPROVE_ACTION, APPROVE_OPTIONS_ACTION, DENY_ACTION]
        assert all(b["value"] == REQ_ID for b in btns)
        assert all(b["text"]["type"] == "plain_text" for b in btns)
        assert text.strip()
        assert_block_kit_limits(blocks)

    def test_pending_content(self):
        _, blocks = approval_card(make_request())
        rendered = "\n".join(all_texts(blocks))
        assert f"<@{REQUESTER}>" in rendered
        assert "Data Analyst" in rendered
        assert "need dashboards" in rendered
        assert "Pending approval" in rendered
        assert REQ_ID[:8] in rendered
        assert "2024-05-06 07:08 UTC" in rendered

    @pytest.mark.parametrize(
        "state,verb", [(APPROVED, "approved"), (APPLIED, "approved"), (FAILED, "approved"), (DENIED, "denied")]
    )
    def test_decided_states_show_decider_and_no_decision_buttons(self, state, verb):
        text, blocks = approval_card(decided(state, outcome="Added to Data Analyst"))
        labels = [b["text"]["text"] for b in buttons(blocks)]
        assert "Approve" not in labels and "Deny" not in labels
        assert not any(b["action_id"] in (APPROVE_ACTION, DENY_ACTION) for b in buttons(blocks))
        rendered = "\n".join(all_texts(blocks))
        assert f"{verb} by <@{DECIDER}>" in rendered
        assert views.STATE_LABEL[state] in rendered
        assert views.STATE_LABEL[state] in text
        assert_block_kit_limits(blocks)

    def test_expired_card(self):
        _, blocks = approval_card(decided(EXPIRED))
        assert buttons(blocks) == []
        rendered = "\n".join(all_texts(blocks))
        assert "Expired" in rendered and "nobody decided in time" in rendered

    def test_failed_has_retry(self):
        _, blocks = approval_card(decided(FAILED, outcome="Polaris said 500"))
        btns = buttons(blocks)
        assert [b["text"]["text"] for b in btns] == ["Retry"]
        assert btns[0]["action_id"] == RETRY_ACTION
        assert btns[0]["value"] == REQ_ID
        assert "Polaris said 500" in "\n".join(all_texts(blocks))

    @pytest.mark.parametrize("state", [APPROVED, APPLIED, DENIED, EXPIRED])
    def test_no_retry_unless_failed(self, state):
        _, blocks = approval_card(decided(state))
        assert RETRY_ACTION not in [b["action_id"] for b in buttons(blocks)]

    def test_on_behalf_warning(self):
        req = make_request(kind=INVITE, target_email="new@corp.com", target_slack_id="U0TARGET")
        _, blocks = approval_card(req)
        rendered = "\n".join(all_texts(blocks))
        assert "someone else's behalf" in rendered
        assert "<@U0TARGET>" in rendered and "new@corp.com" in rendered

    def test_self_request_has_no_behalf_warning(self):
        _, blocks = approval_card(make_request(target_email="REQ@corp.com"))
        assert "behalf" not in "\n".join(all_texts(blocks))

    def test_two_person_rule_context(self):
        _, blocks = approval_card(make_request(approvals_required=2), approvals=["U0FIRST"])
        rendered = "\n".join(all_texts(blocks))
        assert "Needs 2 approvals" in rendered and "<@U0FIRST>" in rendered

    def test_grants_section(self):
        group = Group(
            "g-1",
            "Data Analyst",
            permissions=(Permission("ViewDashboards"), Permission("ManageTables", resources=("projects/p1",))),
        )
        _, blocks = approval_card(make_request(), group=group)
        rendered = "\n".join(all_texts(blocks))
        assert "Data Analyst grants:" in rendered
        assert "Organization: ViewDashboards" in rendered
        assert "`projects/p1`: ManageTables" in rendered

    def test_grants_on_every_project_say_all_projects_and_a_long_list_says_it_continues(self):
        """A bulk invite's card (no gains) showed `projects/*` and, for Organization Admin, the same label on
        three lines (new-user trial)."""
        names = [f"Perm{i:02d}" for i in range(30)]
        group = Group("g-1", "Big", permissions=tuple(Permission(n, resources=("projects/*",)) for n in names))
        _, blocks = approval_card(make_request(), group=group)
        rendered = "\n".join(all_texts(blocks))
        assert "projects/*" not in rendered
        assert "*all projects*: Perm00" in rendered
        assert rendered.count("*all projects* (continued): ") == 2

    def test_reset_password_has_no_grants(self):
        group = Group("g-1", "Data Analyst", permissions=(Permission("ViewDashboards"),))
        _, blocks = approval_card(make_request(kind=RESET_PASSWORD, group_name=None), group=group)
        assert "grants" not in "\n".join(all_texts(blocks))


# ------------------------------------------------------------------------------------------ limits
class TestLimits:
    def test_huge_reason_and_names(self):
        req = make_request(
            reason="r" * 10_000,
            group_name="G" * 1000,
            target_email="t" * 300 + "@x.com",
            requester_email="q" * 300 + "@x.com",
            outcome="o" * 10_000,
        )
        for state in STATES:
            req.state = state
            req.decided_by = DECIDER
            text, blocks = approval_card(req, group=Group("g", "G" * 1000), note="n" * 5000)
            assert_block_kit_limits(blocks)
            assert len(text) <= 3000
            assert len(requester_update(req)) <= 40_000  # chat.postMessage truncates text beyond this

    def test_reason_with_ampersands_still_fits(self):
        # escaping grows the text (& -> &amp;): the limit holds after escaping
        _, blocks = approval_card(make_request(reason="&" * 10_000))
        assert_block_kit_limits(blocks)

    def test_group_with_500_project_permissions(self):
        perms = tuple(Permission(f"Perm{i:03d}", resources=(f"projects/p{i:03d}",)) for i in range(500))
        _, blocks = approval_card(make_request(), group=Group("g", "Big", permissions=perms))
        assert_block_kit_limits(blocks)
        grants = next(t for t in mrkdwn_texts(blocks) if "grants:" in t)
        assert "…and 485 more" in grants  # 15 shown

    def test_group_with_500_organization_permissions_lists_some(self):
        """500 organization-level permissions must not collapse to an empty "…and 1 more": the approver
        has to see (the start of) what the group grants."""
        perms = tuple(Permission(f"Perm{i:03d}") for i in range(500))
        _, blocks = approval_card(make_request(), group=Group("g", "Big", permissions=perms))
        assert_block_kit_limits(blocks)
        grants = next(t for t in mrkdwn_texts(blocks) if "grants:" in t)
        assert "Perm000" in grants

    def test_group_list_many_groups(self):
        groups = [
            Group(f"g{i}", f"Group {i} " + "x" * 50, permissions=(Permission("A"),), user_count=i) for i in range(500)
        ]
        text, blocks = group_list(groups)
        assert text == "500 Polaris groups"
        assert_block_kit_limits(blocks)
        assert_more_line(blocks[1]["text"]["text"], 500)
        assert blocks[1]["text"]["text"].count("• ") <= views.LIST_MAX

    def test_whois_with_many_groups_and_permissions(self):
        user = User(
            "u1",
            "a@b.com",
            "a@b.com",
            groups=tuple((f"g{i}", f"Group{i}") for i in range(500)),
            actions=tuple("UPDATE_PASSWORD" for _ in range(300)),
        )
        perms = [Permission(f"P{i}", resources=(f"projects/{i}",)) for i in range(500)]
        _, blocks = whois(user, perms, asked_for="a@b.com")
        assert_block_kit_limits(blocks)
        groups_text = next(t for t in mrkdwn_texts(blocks) if t.startswith("*Groups*"))
        perms_text = next(t for t in mrkdwn_texts(blocks) if t.startswith("*Effective permissions*"))
        assert_more_line(groups_text, 500)
        assert_more_line(perms_text, 500)
        assert perms_text.count("• ") <= 30

    def test_whois_long_username_header(self):
        user = User("u1", "u" * 500 + "@x.com", "e")
        _, blocks = whois(user, [], asked_for="e")
        assert_block_kit_limits(blocks)

    def test_member_list_thousand_members(self):
        members = [User(f"u{i}", f"user{i}@corp.com", f"user{i}@corp.com", first_name=f"First{i}") for i in range(1000)]
        text, blocks = member_list(Group("g", "Viewer"), members, 1000)
        assert_block_kit_limits(blocks)
        body = blocks[1]["text"]["text"]
        assert_more_line(body, 1000)
        assert "1000 members in all" in "\n".join(all_texts(blocks))
        assert text == "1000 members of Viewer"

    def test_member_list_first_page_of_thousand_has_one_more_line(self):
        """First page of 100 out of 1000: one "…and N more" line counting everyone not shown (960)."""
        members = [User(f"u{i}", f"user{i}@corp.com", f"user{i}@corp.com") for i in range(100)]
        _, blocks = member_list(Group("g", "Viewer"), members, 1000)
        assert_block_kit_limits(blocks)
        body = blocks[1]["text"]["text"]
        assert body.count("• ") == views.LIST_MAX
        assert_more_line(body, 1000)  # one line: "…and 960 more"

    def test_member_list_small_page(self):
        members = [User(f"u{i}", f"user{i}@corp.com", f"user{i}@corp.com") for i in range(5)]
        _, blocks = member_list(Group("g", "Viewer"), members, 12)
        body = blocks[1]["text"]["text"]
        assert body.count("• ") == 5
        assert_more_line(body, 12)

    def test_member_list_empty(self):
        _, blocks = member_list(Group("g", "Viewer"), [], 0)
        assert "_none_" in blocks[1]["text"]["text"]
        assert_block_kit_limits(blocks)

    def test_request_list_many(self):
        reqs = [make_request(id=f"{i:08d}-0000-0000-0000-000000000000", reason="r" * 500) for i in range(300)]
        text, blocks = request_list("Pending", reqs, "Nothing pending")
        assert text == "Pending: 300"
        assert_block_kit_limits(blocks)
        assert_more_line(blocks[1]["text"]["text"], 300)
        assert blocks[1]["text"]["text"].count("• ") <= 25

    def test_request_list_empty(self):
        text, blocks = request_list("Pending", [], "Nothing pending")
        assert text == "Nothing pending"
        assert blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": "Nothing pending"}}]

    def test_permission_catalogue_huge(self):
        perms = [Permission(f"Permission{i}") for i in range(500)] + [
            Permission(f"Project{i}", resources=("projects/*",)) for i in range(500)
        ]
        text, blocks = permission_catalogue(perms)
        assert text == "1000 Polaris permissions"
        assert_block_kit_limits(blocks)

    def test_help(self):
        text, blocks = help_message()
        assert text
        assert_block_kit_limits(blocks)
        assert "/polaris request" in blocks[0]["text"]["text"]
        assert "/polaris update-user" in json.dumps(blocks)


class TestUserModal:
    def test_filled_in_and_within_block_kit_limits(self):
        user = User(id="u-1", username="a@b.co", email="a@b.co", first_name="F" * 500, last_name="", enabled=False)
        view = views.users.user_modal(user, "U123")
        assert view["callback_id"] == "user_modal" and len(view["title"]["text"]) <= 24
        assert_block_kit_limits(view["blocks"])
        first, last, enabled = view["blocks"][1:]
        assert first["element"]["initial_value"] == "F" * 200 and first["element"]["max_length"] == 200
        assert "initial_value" not in last["element"]  # no empty initial value (Slack refuses it)
        assert enabled["element"]["initial_option"]["value"] == "disabled"
        meta = json.loads(view["private_metadata"])
        assert meta == {
            "id": "u-1",
            "email": "a@b.co",
            "slack": "U123",
            "first": "F" * 500,
            "last": "",
            "enabled": False,
        }

    def test_names_too_long_for_the_metadata_are_left_out_of_it(self):
        user = User(id="u-1", username="a@b.co", email="a@b.co", first_name="F" * 2000, last_name="L" * 2000)
        meta = views.users.user_modal(user, None)["private_metadata"]
        assert len(meta) <= 3000 and json.loads(meta) == {"id": "u-1", "email": "a@b.co", "slack": ""}


# ------------------------------------------------------------------------------------------- modal
class TestRequestModal:
    def groups(self, n):
        return [Group(f"id-{i}", f"Group number {i} " + "z" * 100) for i in range(n)]

    def test_150_groups(self):
        view = request_modal(self.groups(150))
        assert len(view["title"]["text"]) <= 24
        select = view["blocks"][0]["element"]
        assert select["type"] == "static_select"
        assert len(select["options"]) <= 100
        assert len(select["options"]) == 100
        for opt in select["options"]:
            assert len(opt["text"]["text"]) <= 75
            assert len(opt["value"]) <= 150
        assert select["options"][0]["value"] == "id-0"
        assert len(view["blocks"]) <= 100
        View(**view).validate_json()

    def test_reason_input(self):
        view = request_modal(self.groups(3))
        duration, reason = view["blocks"][1], view["blocks"][2]
        assert duration["block_id"] == "duration" and duration["optional"] is True
        assert reason["block_id"] == "reason" and reason["optional"] is True
        assert reason["element"]["max_length"] <= 3000
        assert view["submit"]["text"] == "Request"
        assert view["callback_id"] == views.REQUEST_MODAL
        View(**view).validate_json()

    def test_loading_and_error(self):
        loading = request_modal(None)
        assert "submit" not in loading and "Loading" in loading["blocks"][0]["text"]["text"]
        View(**loading).validate_json()
        err = request_modal(self.groups(3), error="Polaris is down")
        assert "submit" not in err and "Polaris is down" in err["blocks"][0]["text"]["text"]
        View(**err).validate_json()
        for v in (loading, err):
            assert len(v["title"]["text"]) <= 24


# ------------------------------------------------------------------------------------- requester DMs
class TestRequesterUpdate:
    @pytest.mark.parametrize(
        "state,needle",
        [
            (APPROVED, f"approved by <@{DECIDER}>"),
            (APPLIED, "Done"),
            (FAILED, "An approver can retry"),
            (DENIED, f"denied by <@{DECIDER}>"),
            (EXPIRED, "expired"),
        ],
    )
    def test_states(self, state, needle):
        msg = requester_update(decided(state, outcome="ok"))
        assert needle in msg
        assert REQ_ID[:8] in msg

    def test_pending_posted_or_not(self):
        assert "waiting for approval" in requester_update(make_request(approval_ts="123.456"))
        assert "could not post" in requester_update(make_request(approval_ts=None))


def test_a_delete_card_counts_its_members_in_proper_english():
    """ "1 member loses it" (was "1 member lose it"); an unknown count is said in words (was "? lose it")."""
    from bot.models import DELETE_GROUP
    from bot.views.groups import change_blocks

    req = make_request(kind=DELETE_GROUP, group_name="Doomed")
    perms = [{"name": "ViewTables", "resources": ["projects/*"]}]
    for members, words in ((1, "1 member loses it"), (2, "2 members lose it"), (None, "how many unknown) lose it")):
        text = "\n".join(all_texts(change_blocks(req, {"name": "Doomed", "members": members, "permissions": perms})))
        assert words in text, text
