"""The Deny and Approve forms through the real Bolt app: Deny opens a form (views.open with the click's
trigger_id) whose submission carries the request in private_metadata; a reason the policy requires is enforced
with response_action errors; Approve with options grants a shorter time; authority is checked at the click
and again at the submission."""

from __future__ import annotations

import json
import urllib.parse

from bot.models import APPLIED, APPROVED, DENIED, PENDING
from tests.bot.access.helpers import dms, only_request
from tests.conftest import APPROVER, OTHER, REQUESTER, click_body
from tests.handlers.conftest import dispatch


def put_policy(service, tmp_path, text: str) -> None:
    from bot.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text(text)
    service.policy = load_policy(str(path))


def submission(callback_id: str, request_id: str, user_id: str, values: dict) -> str:
    payload = {
        "type": "view_submission",
        "team": {"id": "T0STANDIN"},
        "user": {"id": user_id},
        "api_app_id": "A0TEST",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": request_id,
            "state": {"values": values},
        },
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def typed(block: str, value: str | None) -> dict:
    return {block: {"value": {"type": "plain_text_input", "value": value}}}


def opened(slack) -> list[dict]:
    return [v["view"] for v in slack.views if v["method"] == "views.open"]


def test_deny_opens_the_form_and_a_required_reason_is_enforced(bolt, service, db, slack, groups, tmp_path):
    put_policy(service, tmp_path, "[defaults]\ndeny_reason_required = true\n")
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    assert dispatch(bolt, click_body(slack, APPROVER, "deny_request", req.id)).status == 200
    (view,) = opened(slack)
    assert view["callback_id"] == "deny_modal" and view["private_metadata"] == req.id
    assert "Reason (required)" in json.dumps(view["blocks"])
    assert service.get(req.id).state == PENDING  # a click alone decides nothing

    answer = dispatch(bolt, submission("deny_modal", req.id, APPROVER, typed("reason", "  ")))
    assert answer.status == 200
    assert json.loads(answer.body) == {
        "response_action": "errors",
        "errors": {"reason": "A reason is required to deny this request."},
    }
    too_long = dispatch(bolt, submission("deny_modal", req.id, APPROVER, typed("reason", "x" * 501)))
    assert json.loads(too_long.body)["errors"]["reason"].startswith("The reason is 501 characters long")
    service.drain()
    assert service.get(req.id).state == PENDING

    answer = dispatch(bolt, submission("deny_modal", req.id, APPROVER, typed("reason", "Not for contractors")))
    assert answer.status == 200 and not answer.body
    service.drain()
    req = service.get(req.id)
    assert req.state == DENIED and req.decision_note == "Not for contractors"
    assert any("Reason: Not for contractors" in t for t in dms(slack, REQUESTER))


def test_a_deny_without_a_reason_is_fine_when_the_policy_does_not_ask(bolt, service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    dispatch(bolt, click_body(slack, APPROVER, "deny_request", req.id))
    (reason,) = [b for b in opened(slack)[0]["blocks"] if b.get("block_id") == "reason"]
    assert reason["optional"] is True and reason["label"]["text"] == "Reason"  # Slack adds "(optional)"
    answer = dispatch(bolt, submission("deny_modal", req.id, APPROVER, typed("reason", None)))
    assert not answer.body
    service.drain()
    assert service.get(req.id).state == DENIED and service.get(req.id).decision_note is None


def test_authority_is_checked_at_the_click_and_again_at_the_submission(bolt, service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    dispatch(bolt, click_body(slack, OTHER, "deny_request", req.id))
    service.drain()
    updated = [v["view"] for v in slack.views if v["method"] == "views.update"]
    assert updated and "Only approvers can decide access requests." in json.dumps(updated[-1]["blocks"])
    assert "submit" not in updated[-1] or not updated[-1]["submit"]
    dispatch(bolt, submission("deny_modal", req.id, OTHER, typed("reason", "no")))  # a forged submission
    service.drain()
    assert service.get(req.id).state == PENDING
    assert any("Only approvers can decide" in t for t in dms(slack, OTHER))


def test_deny_on_a_decided_request_answers_without_a_form(bolt, service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=False)
    dispatch(bolt, click_body(slack, APPROVER, "deny_request", req.id))
    service.drain()
    assert opened(slack) == []
    assert any("Already denied by" in (r.get("text") or "") for r in slack.responses)


def test_approve_with_options_grants_a_shorter_time(bolt, service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer for 4h dashboards")
    req = only_request(db)
    dispatch(bolt, click_body(slack, APPROVER, "approve_options", req.id))
    (view,) = opened(slack)
    assert view["callback_id"] == "approve_modal" and view["private_metadata"] == req.id
    (select,) = [b["element"] for b in view["blocks"] if b.get("block_id") == "duration"]
    values = [int(o["value"]) for o in select["options"]]
    assert values[0] == 4 * 3600 and select["initial_option"]["value"] == str(4 * 3600)
    assert all(v < 4 * 3600 for v in values[1:]) and 3600 in values
    chosen = {"duration": {"value": {"type": "static_select", "selected_option": {"value": "3600"}}}}
    answer = dispatch(
        bolt, submission("approve_modal", req.id, APPROVER, {**chosen, **typed("comment", "1h is enough")})
    )
    assert not answer.body
    service.drain()
    req = service.get(req.id)
    assert req.state in (APPROVED, APPLIED)
    assert (req.duration_seconds, req.asked_duration_seconds, req.decision_note) == (3600, 4 * 3600, "1h is enough")


def test_approve_with_options_for_good_offers_a_comment_only(bolt, service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    req = only_request(db)
    dispatch(bolt, click_body(slack, APPROVER, "approve_options", req.id))
    (view,) = opened(slack)
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == ["comment"]
    dispatch(bolt, submission("approve_modal", req.id, APPROVER, typed("comment", "welcome")))
    service.drain()
    assert service.get(req.id).state in (APPROVED, APPLIED) and service.get(req.id).decision_note == "welcome"


def test_the_one_click_approve_still_approves_as_asked(bolt, service, db, slack, groups):
    service.handle_command(REQUESTER, "request Viewer for 4h dashboards")
    req = only_request(db)
    dispatch(bolt, click_body(slack, APPROVER, "approve_request", req.id))
    service.drain()
    assert opened(slack) == []
    assert service.get(req.id).state in (APPROVED, APPLIED) and service.get(req.id).duration_seconds == 4 * 3600
