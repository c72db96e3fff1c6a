"""Signed requests through the real Bolt app (``app.dispatch``), with the Slack stand-in and Polaris sandbox."""

from __future__ import annotations

import time

from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from bot.models import APPLIED, AccessRequest
from tests.handlers.conftest import dispatch, form_submission
from tests.conftest import APPROVER, OTHER, REQUESTER, click_body, signed_headers, slash_body, wait_for


def test_slacks_documented_signing_example():
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    verifier = SignatureVerifier("8f742231b10e8888abcd99yyyzzz85a5")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert verifier.generate_signature(timestamp="1531420618", body=body) == expected
    assert (
        verifier.is_valid(
            body=body,
            timestamp="1531420618",
            signature=expected,
        )
        is False
    )  # 2018: too old now


def test_unsigned_tampered_and_stale_requests_get_401(bolt, slack, groups, db):
    body = slash_body(slack, REQUESTER, "request Viewer")
    assert dispatch(bolt, body, {"content-type": "application/x-www-form-urlencoded"}).status == 401
    headers = signed_headers(body)
    assert dispatch(bolt, body.replace("Viewer", "Organization+Admin"), headers).status == 401
    stale = signed_headers(body, timestamp=int(time.time()) - 6 * 60)
    assert dispatch(bolt, body, stale).status == 401
    wrong = signed_headers(body, secret="not-the-secret")
    assert dispatch(bolt, body, wrong).status == 401
    with db.session() as s:
        assert list(s.scalars(select(AccessRequest))) == []


def test_slash_command_acks_at_once_and_answers_on_response_url(bolt, slack, groups, sandbox):
    from standins.polaris_sandbox import Fault

    sandbox.add_fault(Fault(delay=2.0, times=None))  # a slow Polaris must not delay the ack
    body = slash_body(slack, REQUESTER, "groups")
    started = time.monotonic()
    response = dispatch(bolt, body, signed_headers(body))
    assert response.status == 200
    assert time.monotonic() - started < 1.0
    answer = wait_for(lambda: slack.responses)[0]
    assert "Polaris groups" in answer["text"] and answer["response_type"] == "ephemeral"


def test_request_and_approve_through_bolt(bolt, slack, groups, sandbox, db, core):
    body = slash_body(slack, REQUESTER, "request viewer dashboards <!channel>")
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    req = wait_for(lambda: _requests(db))[0]
    wait_for(lambda: _requests(db)[0].approval_ts)
    card = slack.messages[0]
    assert "&lt;!channel&gt;" in str(card["blocks"]) and "<!channel>" not in str(card["blocks"])
    click = click_body(slack, OTHER, "approve_request", req.id)
    assert dispatch(bolt, click, signed_headers(click)).status == 200
    refusal = wait_for(lambda: [r for r in slack.responses if "Only approvers" in (r.get("text") or "")])[0]
    assert refusal["response_type"] == "ephemeral"
    click = click_body(slack, APPROVER, "approve_request", req.id)
    assert dispatch(bolt, click, signed_headers(click)).status == 200
    wait_for(lambda: core.service.get(req.id).state == "approved")
    core.service.run_due()
    assert core.service.get(req.id).state == APPLIED


def test_malformed_button_value_is_refused_politely(bolt, slack, groups):
    click = click_body(slack, APPROVER, "approve_request", "../../etc")
    assert dispatch(bolt, click, signed_headers(click)).status == 200
    assert "not a valid access request" in wait_for(lambda: slack.responses)[-1]["text"]


def test_request_without_arguments_opens_form_and_submission_creates_request(bolt, slack, groups, db):

    body = slash_body(slack, REQUESTER, "request")
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    wait_for(lambda: len(slack.views) >= 2)
    assert slack.views[0]["method"] == "views.open" and slack.views[1]["method"] == "views.update"
    form = slack.views[1]["view"]
    options = form["blocks"][0]["element"]["options"]
    viewer = next(o["value"] for o in options if o["text"]["text"] == "Viewer")
    sub = form_submission(viewer, "from the form")
    assert dispatch(bolt, sub, signed_headers(sub)).status == 200
    req = wait_for(lambda: _requests(db))[0]
    assert (req.group_id, req.reason) == (viewer, "from the form")
    sub = form_submission(viewer, "x" * 501)
    response = dispatch(bolt, sub, signed_headers(sub))
    assert response.status == 200 and "errors" in response.body


def _requests(db):
    with db.session() as s:
        return list(s.scalars(select(AccessRequest)))


def test_app_home_is_published_once_per_event_id(bolt, slack, groups, core):
    import json

    core.service.handle_command(REQUESTER, "request Viewer")
    event = {
        "token": "x",
        "team_id": "T0STANDIN",
        "api_app_id": "A0TEST",
        "type": "event_callback",
        "event_id": "Ev0HOME1",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": REQUESTER, "channel": "D0X", "tab": "home"},
    }
    body = json.dumps(event)
    for retry in range(3):  # the first delivery and two of Slack's retries
        headers = signed_headers(body, content_type="application/json")
        if retry:
            headers["x-slack-retry-num"] = str(retry)
        assert dispatch(bolt, body, headers).status == 200
    wait_for(lambda: slack.views)
    time.sleep(0.3)
    published = [v for v in slack.views if v["method"] == "views.publish"]
    assert len(published) == 1 and published[0]["user_id"] == REQUESTER
    assert "Viewer" in str(published[0]["view"]["blocks"])


def test_the_request_form_lists_a_group_made_in_polaris_since_the_list_was_cached(bolt, slack, sandbox, groups, core):
    core.service.handle_command(REQUESTER, "groups")  # the group list is cached now
    sandbox.create_group("Finance Readers", [{"name": "ViewTables", "resources": ["projects/*"]}])
    body = slash_body(slack, REQUESTER, "request")
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    wait_for(lambda: len(slack.views) >= 2)
    options = slack.views[1]["view"]["blocks"][0]["element"]["options"]
    assert "Finance Readers" in [o["text"]["text"] for o in options]
