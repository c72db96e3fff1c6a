"""Fixtures of the listener tests: the real Bolt app over a wired core, signed dispatch, a form submission."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from slack_bolt.request import BoltRequest

from tests.conftest import REQUESTER, signed_headers


@pytest.fixture
def bolt(core):
    """The Bolt app with every listener registered; listeners still running are waited for afterwards."""
    from bot import wiring

    app = wiring.build_bolt_app(core)
    yield app
    app.listener_pool.shutdown(wait=True)


def dispatch(bolt, body: str, headers: dict | None = None):
    """``body`` through ``bolt`` as Slack sends it: signed (``headers`` default) over the exact bytes."""
    headers = signed_headers(body) if headers is None else headers
    return bolt.dispatch(BoltRequest(body=body, headers={k: [v] for k, v in headers.items()}))


def form_submission(group_id: str, reason: str, user_id: str = REQUESTER, duration: str | None = None) -> str:
    """The form body of the request form's ``view_submission`` with ``group_id`` chosen and ``reason`` (and
    ``duration``, "For how long") typed."""
    values = {
        "group": {"value": {"type": "static_select", "selected_option": {"value": group_id}}},
        "duration": {"value": {"type": "plain_text_input", "value": duration}},
        "reason": {"value": {"type": "plain_text_input", "value": reason}},
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T0STANDIN"},
        "user": {"id": user_id},
        "api_app_id": "A0TEST",
        "view": {"id": "V1", "type": "modal", "callback_id": "request_modal", "state": {"values": values}},
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})
