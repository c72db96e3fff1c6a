"""Findings of the new-user trial of issues 10 and 14, each with a test that failed before its fix."""

from __future__ import annotations

from sqlalchemy import select

from bot import metrics, views
from bot.config import ConfigError, load_settings
from bot.models import AccessRequest
from tests.conftest import ADMIN, APPROVER, REQUESTER, Clock


def test_a_duration_over_a_year_is_refused_not_granted_for_good(service, db, groups):
    reply = service.handle_command(REQUESTER, "request Viewer for 2 years x")
    assert "at most a year" in reply.text
    with db.session() as s:
        assert list(s.scalars(select(AccessRequest))) == []


def test_help_escapes_its_angle_brackets_for_slack():
    """``<email | @user>`` in mrkdwn is read by Slack as a link ("@user" shown, "email" lost)."""
    assert "<" not in views.HELP_TEXT.replace("<@", "") and "&lt;group&gt;" in views.HELP_TEXT


def test_new_subcommands_are_metric_labels():
    for word in ("leave", "remove", "offboard", "cancel", "request"):
        assert metrics.command_name(f"{word} x") == word


def test_the_warning_rounds_up_and_says_what_extend_asks(service, db, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer for 1h")
    with db.session() as s:
        (req,) = s.scalars(select(AccessRequest))
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    lease = service.leases.leases.of_request(req.id)
    clock.advance(3600 - 4 * 60 - 50)  # 4 min 50 s left
    text, _ = views.leases.warning(lease, clock.now)
    assert "(in 5 minutes)" in text and "1 hour from its approval" in text
    assert "(in 1 hour)" in views.leases.ends_phrase(lease, lease.started_at)


def test_a_bad_policy_file_is_named_with_the_other_problems(tmp_path):
    env = {"POLICY_FILE": str(tmp_path / "nonexist.toml"), "REQUEST_TTL": "999999999", "POLARIS_API_URL": ""}
    try:
        load_settings(env)
    except ConfigError as e:
        text = str(e)
    assert "POLICY_FILE" in text and "REQUEST_TTL" in text and "POLARIS_API_URL" in text
    assert ":0:" not in text


def test_policy_names_groups_polaris_does_not_have(service, groups, tmp_path):
    from bot.policy import load_policy

    (tmp_path / "p.toml").write_text("[groups.Viewr]\nauto_approve = true\n")
    service.policy = load_policy(str(tmp_path / "p.toml"))
    assert "`viewr`" in str(service.cmd_policy(ADMIN).blocks)


def test_offboarding_refusal_names_who_decides_it(service, db, groups):
    service.handle_command(ADMIN, "offboard bob@example.com leaving")
    with db.session() as s:
        (req,) = s.scalars(select(AccessRequest))
    from tests.conftest import OTHER

    assert service.decide(req.id, OTHER, approve=True) == "Only admins can decide an offboarding."


def test_leaving_yourself_says_your_other_groups(service, sandbox, groups):
    sandbox.create_user("alice@example.com", "Alice", "T", groups=[groups["Viewer"], groups["Data Analyst"]])
    assert "your other groups are unchanged" in service.handle_command(REQUESTER, "leave Viewer").text


def test_a_disabled_polaris_account_gets_no_grant(service, db, sandbox, groups):
    """Trial: after dan was offboarded, `request Viewer` for the disabled account was accepted and applied."""
    sandbox.create_user("alice@example.com", "Alice", "T", groups=[], enabled=False)
    for text in ("request Viewer back", "invite alice@example.com Viewer"):
        reply = service.handle_command(REQUESTER if "invite" not in text else ADMIN, text)
        assert "is disabled" in reply.text, (text, reply.text)
    with db.session() as s:
        assert list(s.scalars(select(AccessRequest))) == []


def test_polaris_audit_shows_the_reason_of_a_denial(service, db, groups):
    """Trial of issues 12 and 15: `/polaris audit` said "Denied by @bob on …" without the reason given."""
    service.handle_command(REQUESTER, "request Viewer dashboards")
    with db.session() as s:
        (req,) = s.scalars(select(AccessRequest))
    service.decisions.decide(req.id, APPROVER, approve=False, note="no need <!channel>")
    answer = str(service.handle_command(ADMIN, "audit alice@example.com").blocks)
    assert "Denied by" in answer and "no need" in answer and "<!channel>" not in answer
