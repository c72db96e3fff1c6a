"""The request form's reason (issue 8, finding 21): a reason over the limit is refused in the form itself,
saying its real length and the limit, and nothing is saved."""

from __future__ import annotations

import json

from slack_bolt.request import BoltRequest
from sqlalchemy import select

from bot.commands import REASON_MAX
from bot.models import AccessRequest
from tests.handlers.conftest import form_submission
from tests.conftest import REQUESTER, signed_headers, slash_body, wait_for


def test_form_reason_of_5000_characters_is_refused_with_its_length(bolt, core, groups, db):
    body = form_submission(groups["Viewer"], "r" * 5000)
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
