"""The attack review of the new-user trial's fixes (the inputs that broke them, each failing before its fix):
the decidable check refusing on a Slack user group it could not read, wrong quoting hints in create-group, a
mistyped group named as a bad person, and "counted once" when nothing was asked."""

from __future__ import annotations

from tests.bot.access.helpers import only_request_count
from tests.conftest import ADMIN, APPROVER, REQUESTER


def put_policy(service, tmp_path, text: str) -> None:
    from bot.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text(text)
    service.policy = load_policy(str(path))


def test_an_unreadable_escalation_group_does_not_refuse_a_request_bob_can_decide(service, db, groups, tmp_path):
    policy = f'[defaults]\napprovers = ["{APPROVER}"]\nescalate_after = "1h"\nescalate_to = ["S0GONE"]\n'
    put_policy(service, tmp_path, policy)
    reply = service.handle_command(REQUESTER, "request Viewer dashboards")
    assert "went to the approvers" in reply.text, reply.text  # bob alone suffices; S0GONE matters in an hour
    assert only_request_count(db) == 1


def test_an_approver_group_slack_cannot_read_now_refuses_nothing(service, db, groups, tmp_path):
    put_policy(service, tmp_path, f'[defaults]\napprovers = ["{APPROVER}", "S0LEADS"]\n')
    reply = service.handle_command(REQUESTER, "request Viewer dashboards")
    assert "went to the approvers" in reply.text, reply.text


def test_create_group_gives_no_quoting_hint_for_comma_joined_permissions_or_commas_alone(service, db, groups):
    reply = service.handle_command(ADMIN, "create-group Sales ViewTables,AccessQueries Bogus")
    assert "There is no Polaris permission `Bogus`" in reply.text, reply.text
    assert "put the name in quotes" not in reply.text, reply.text
    reply = service.handle_command(ADMIN, "create-group Sales , ,")
    assert "Choose at least one permission" in reply.text and "in quotes" not in reply.text, reply.text
    assert only_request_count(db) == 0


def test_a_mistyped_group_before_the_reason_is_a_group_problem_not_a_person(service, db, groups):
    reply = service.handle_command(REQUESTER, "invite dan@example.com Viewers viewer access for dashboards")
    assert "neither an email nor an @mention" not in reply.text, reply.text
    assert "There is no Polaris group called" in reply.text, reply.text


def test_someone_named_twice_who_is_a_member_already_is_not_said_to_be_asked_for(service, db, sandbox, groups):
    sandbox.create_user("pat@example.com", "Pat", "Lee", groups=[groups["Viewer"]], actions=[])
    reply = service.handle_command(REQUESTER, "invite pat@example.com PAT@example.com Viewer x")
    assert only_request_count(db) == 0
    assert "asked for once" not in reply.text and "counted once: `pat@example.com`" in reply.text, reply.text
