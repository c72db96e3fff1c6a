"""Approval policy: the TOML file's validation, and what each rule does in the workflow."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest
from sqlalchemy import select

from bot.models import APPLIED, APPROVED, PENDING, AccessRequest
from bot.policy import PolicyError, load_policy
from tests.conftest import ADMIN, APPROVER, APPROVER2, CHANNEL, OTHER, REQUESTER

POLICY = """\
manager_field = "Xf01MANAGER"

[defaults]
approvers = ["U0BOB", "S0LEADS"]
ttl_hours = 12

[groups."Organization Admin"]
approvers = ["U0BOB", "U0ERIN"]

[groups.Viewer]
auto_approve = true

[groups."Data Analyst"]
approvers = ["manager", "U0ERIN"]
reason_required = true
reason_min_length = 15

[password_reset]
approvers = ["U0CAROL"]

[managers]
U0ALICE = "U0OSCAR"
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_policy_file_rules_and_defaults(tmp_path):
    policy = load_policy(write(tmp_path, POLICY), ttl=3600)
    assert policy.for_group("organization admin").approvals == 2  # built-in two-person rule kept
    assert policy.for_group("VIEWER").auto_approve is True
    analyst = policy.for_group("Data Analyst")
    assert analyst.wants_manager and analyst.reason_min_length == 15 and analyst.ttl == 12 * 3600
    assert policy.for_group("Data Manager").approvers == ("U0BOB", "S0LEADS")
    assert policy.for_group(None).approvers == ("U0CAROL",)
    assert policy.managers == {"U0ALICE": "U0OSCAR"} and policy.manager_field == "Xf01MANAGER"
    assert load_policy(None, ttl=60).for_group("Organization Admin").approvals == 2
    assert load_policy(None, ttl=60).for_group("Viewer").approvals == 1


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("[groups.Viewer\napprovers = []\n", 1, "invalid TOML"),
        ("[defaults]\napprovals = 1\n\n[groups.Viewer]\napprovrs = ['U0BOB']\n", 5, "unknown key 'approvrs'"),
        ("[defaults]\napprovers = ['bob']\n", 2, "not a Slack user ID"),
        ("[groups.X]\napprovals = 0\n", 2, "whole number"),
        ("[groups.X]\nreason_required = 'yes'\n", 2, "true or false"),
        ("[groups.X]\nttl_hours = -1\n", 2, "ttl_hours"),
        ("[groups.X]\nauto_approve = true\napprovals = 2\n", 2, "cannot both"),
        ("[groups.X]\napprovers = ['U0BOB']\napprovals = 2\n", 3, "only 1 approvers"),
        ("[password_reset]\nauto_approve = true\n", 2, "cannot be auto-approved"),
        ("[managers]\nU0A1 = 'U0A1'\n", 2, "their own manager"),
        ("[managers]\nU0A1 = 'bob'\n", 2, "[managers] entries"),
        ("colour = 'blue'\n", 1, "unknown section or key"),
        ("manager_field = 'nope'\n", 1, "manager_field"),
        ("[groups.'Organization Admin']\napprovers = ['U0A1', 'U0A2']\napprovals = 1\n", 3, "at least two approvals"),
        ("[groups.'organization admin']\nauto_approve = true\n", 2, "cannot both"),
    ],
)
def test_policy_errors_name_the_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}:{line}:") and words in str(err.value), str(err.value)


def test_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(str(tmp_path / "nope.toml"))


def test_bad_policy_stops_serve_with_the_line(tmp_path):
    from bot import wiring
    from bot.config import ConfigError, Settings

    path = write(tmp_path, "[defaults]\napprovals = 'two'\n")
    settings = Settings(
        slack_bot_token="xoxb-1",
        slack_signing_secret="s",
        polaris_api_url="http://127.0.0.1:9",
        polaris_api_key="pok_x",
        approval_channel="C0X",
        approvers=frozenset({"U0BOB"}),
        admins=frozenset(),
        database_url=f"sqlite:///{tmp_path}/x.db",
        policy_file=path,
    )
    with pytest.raises(ConfigError, match=rf"POLICY_FILE: {path}:2: approvals"):
        wiring.build_core(settings)


@pytest.fixture
def policy_service(core, tmp_path, sandbox, slack, db):
    core.service.policy = load_policy(write(tmp_path, POLICY), ttl=24 * 3600)
    slack.usergroups["S0LEADS"] = [APPROVER2]
    return core.service


def requests_(db):
    with db.session() as s:
        return list(s.scalars(select(AccessRequest).order_by(AccessRequest.created_at)))


def dms(slack, user_id):
    return slack.messages_in(slack.dm_channel(user_id))


def test_auto_approved_group_is_recorded_announced_and_applied(policy_service, db, sandbox, slack, groups):
    reply = policy_service.handle_command(REQUESTER, "request viewer")
    assert "approved by policy" in reply.text
    req = requests_(db)[0]
    assert req.state == APPROVED and req.decided_by == "policy"
    assert "auto-approved" in str(slack.find_message(CHANNEL, req.approval_ts)["blocks"])
    policy_service.run_due()
    assert policy_service.get(req.id).state == APPLIED
    assert ("policy", "decision.auto_approve") in [
        (r.actor, r.action) for r in policy_service.audit.for_request(req.id)
    ]


def test_reason_rules(policy_service, db, groups):
    assert (
        "need a reason of at least 15 characters"
        in policy_service.handle_command(REQUESTER, "request Data Analyst short").text
    )
    assert requests_(db) == []
    assert (
        "went to the approvers"
        in policy_service.handle_command(REQUESTER, "request Data Analyst quarterly revenue dashboards").text
    )


def test_manager_gets_the_card_and_decides(policy_service, db, slack, sandbox, groups):
    policy_service.handle_command(REQUESTER, "request Data Analyst quarterly revenue dashboards")
    req = requests_(db)[0]
    assert req.manager_id == OTHER  # from [managers]: no profile field value set
    copy = dms(slack, OTHER)[-1]
    assert [e["text"]["text"] for b in copy["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "Approve",
        "Approve with options…",
        "Deny",
    ]
    assert "decides" in str(copy["blocks"])
    assert "Only approvers" in policy_service.decide(req.id, APPROVER, approve=True)  # not in this rule
    assert policy_service.decide(req.id, OTHER, approve=True) is None
    assert policy_service.get(req.id).state == APPROVED
    copy = slack.find_message(slack.dm_channel(OTHER), req.manager_dm_ts)
    assert not [b for b in copy["blocks"] if b["type"] == "actions"] and "approved by" in str(copy["blocks"])


def test_manager_from_profile_field_wins_over_table(policy_service, db, slack, groups):
    slack.profile_fields[REQUESTER] = {"Xf01MANAGER": {"value": ADMIN, "alt": ""}}
    policy_service.handle_command(REQUESTER, "request Data Analyst quarterly revenue dashboards")
    assert requests_(db)[0].manager_id == ADMIN


def test_no_manager_known_other_approvers_decide_and_card_says_so(policy_service, db, slack, groups):
    policy_service.policy = load_policy(None)
    from dataclasses import replace

    base = load_policy(None)
    policy_service.policy = replace(
        base, groups={"data analyst": replace(base.defaults, approvers=("manager", APPROVER2))}
    )
    policy_service.handle_command(REQUESTER, "request Data Analyst please")
    req = requests_(db)[0]
    assert req.manager_id is None
    assert "no manager is known" in str(slack.find_message(CHANNEL, req.approval_ts)["blocks"])
    assert policy_service.decide(req.id, APPROVER2, approve=True) is None


def test_manager_cannot_approve_own_request(policy_service, db, slack, groups):
    from dataclasses import replace

    policy_service.policy = replace(policy_service.policy, managers={OTHER: OTHER})
    assert policy_service.manager_of(OTHER) is None


def test_slack_user_group_approvers_are_read_at_click_time(policy_service, db, slack, groups):
    policy_service.handle_command(REQUESTER, "request Data Manager")
    req = requests_(db)[0]
    slack.usergroups["S0LEADS"] = []  # APPROVER2 left the user group after the card was posted
    assert "Only approvers" in policy_service.decide(req.id, APPROVER2, approve=True)
    slack.usergroups["S0LEADS"] = [APPROVER2]
    assert policy_service.decide(req.id, APPROVER2, approve=True) is None


def test_password_reset_rule_and_ttl(policy_service, db, sandbox, groups):
    sandbox.create_user("alice@example.com", groups=[groups["Viewer"]])
    policy_service.handle_command(REQUESTER, "reset-password")
    req = requests_(db)[0]
    assert "Only approvers" in policy_service.decide(req.id, APPROVER, approve=True)
    assert policy_service.decide(req.id, ADMIN, approve=True) is None
    policy_service.handle_command(REQUESTER, "request Data Manager")
    dm = requests_(db)[-1]
    assert abs((dm.expires_at - dm.created_at) - dt.timedelta(hours=12)) < dt.timedelta(seconds=5)


def test_same_person_never_counts_twice_for_two_person_rule(policy_service, db, groups):
    policy_service.handle_command(REQUESTER, "request Organization Admin")
    req = requests_(db)[0]
    assert "1 of 2" in policy_service.decide(req.id, APPROVER, approve=True)
    assert "already approved" in policy_service.decide(req.id, APPROVER, approve=True)
    assert policy_service.get(req.id).state == PENDING


def test_policy_command_for_admins_only(policy_service, groups):
    assert "Only admins" in policy_service.handle_command(APPROVER, "policy").text
    text = str(policy_service.handle_command(ADMIN, "policy").blocks)
    assert "Viewer" in text and "auto-approved" in text and "Password resets" in text and "2 approvals" in text


def test_default_auto_approve_never_reaches_privileged_groups_or_resets(core, db, tmp_path, sandbox, slack, groups):
    service = core.service
    service.policy = load_policy(write(tmp_path, "[defaults]\nauto_approve = true\n"))
    sandbox.create_user("oscar@example.com", groups=[groups["Viewer"]])
    assert "went to the approvers" in service.handle_command(REQUESTER, "request Organization Admin").text
    assert "went to the approvers" in service.handle_command(REQUESTER, "reset-password oscar@example.com").text
    assert "went to the approvers" in service.handle_command(REQUESTER, "invite new@example.com Viewer").text
    assert [r.state for r in requests_(db)] == [PENDING, PENDING, PENDING]
    assert requests_(db)[0].approvals_required == 2


def test_offboard_section_has_its_own_approvers_and_never_inherits_the_defaults(tmp_path):
    """[offboard] (issue 10): approvers and approvals of their own; without it ADMINS decide with one approval;
    the defaults' approvers never decide an offboarding."""
    policy = load_policy(write(tmp_path, '[defaults]\napprovers = ["U01DEFAULT"]\nttl_hours = 2\n'))
    rule = policy.for_offboard()
    assert (rule.approvers, rule.approvals, rule.ttl, rule.auto_approve) == ((), 1, 7200.0, False)
    policy = load_policy(
        write(tmp_path, '[defaults]\napprovers = ["U01DEFAULT"]\n[offboard]\napprovers = ["S01SEC"]\napprovals = 2\n')
    )
    assert (policy.for_offboard().approvers, policy.for_offboard().approvals) == (("S01SEC",), 2)
    assert "U01DEFAULT" in policy.direct_approvers()


@pytest.mark.parametrize(
    "text,words",
    [
        ("[offboard]\nauto_approve = true\n", "cannot be auto-approved"),
        ('[offboard]\napprovers = ["manager"]\n', "cannot be auto-approved nor decided by"),
        ("[offboard]\nsurprise = 1\n", "unknown key 'surprise'"),
    ],
)
def test_offboard_section_errors_name_the_line(tmp_path, text, words):
    with pytest.raises(PolicyError) as e:
        load_policy(write(tmp_path, "# policy\n" + text))
    assert ":2:" in str(e.value) or ":3:" in str(e.value)
    assert words in str(e.value)
