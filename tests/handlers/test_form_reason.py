"""The request form's reason (issue 8, finding 21): a reason over the limit is refused in the form itself,
saying its real length and the limit, and nothing is saved."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from slack_bolt.request import BoltRequest
from sqlalchemy import select

from bot.commands import REASON_MAX
from bot.models import AccessRequest
from tests.conftest import REQUESTER, signed_headers, slash_body, wait_for


@pytest.fixture
def bolt(core):
    from bot import wiring

    app = wiring.build_bolt_app(core)
    yield app
    app.listener_pool.shutdown(wait=True)


def test_form_reason_of_5000_characters_is_refused_with_its_length(bolt, core, groups, db):
    payload = {
        "type": "view_submission",
        "team": {"id": "T0STANDIN"},
        "user": {"id": REQUESTER},
        "api_app_id": "A0TEST",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "request_modal",
            "state": {
                "values": {
                    "group": {"value": {"type": "static_select", "selected_option": {"value": groups["Viewer"]}}},
                    "reason": {"value": {"type": "plain_text_input", "value": "r" * 5000}},
                }
            },
        },
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    response = bolt.dispatch(BoltRequest(body=body, headers={k: [v] for k, v in signed_headers(body).items()}))
    assert response.status == 200
    errors = json.loads(response.body)["errors"]
    assert "5,000 characters" in errors["reason"] and f"limit is {REASON_MAX}" in errors["reason"]
    core.service.drain()
    with db.session() as s:
        assert list(s.scalars(select(AccessRequest))) == []


def test_slash_command_reason_of_5000_characters_is_refused_with_its_real_length(bolt, core, slack, groups, db):
    """New-user trial: the listener cut the text at 4,000 characters, so the answer said 3,985."""
    body = slash_body(slack, REQUESTER, "request Viewer " + "r" * 5000)
    response = bolt.dispatch(BoltRequest(body=body, headers={k: [v] for k, v in signed_headers(body).items()}))
    assert response.status == 200
    answer = wait_for(lambda: slack.responses)[0]["text"]
    assert "5,000 characters" in answer and f"limit is {REASON_MAX}" in answer, answer
    core.service.drain()
    with db.session() as s:
        assert list(s.scalars(select(AccessRequest))) == []
