"""Mentions of the bot and DMs to it (its Messages tab) get a short answer pointing to ``/polaris help``, instead of
a 404 and Bolt's "Unhandled request" warning; other message events are acknowledged and left alone."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from bot.access.mentions import ANSWERS_PER_MINUTE
from tests.conftest import REQUESTER, signed_headers
from tests.handlers.conftest import dispatch


def event_body(event: dict, event_id: str | None = None) -> str:
    return json.dumps(
        {
            "token": "x",
            "team_id": "T0STANDIN",
            "api_app_id": "A0TEST",
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": 1,
            "authorizations": [{"team_id": "T0STANDIN", "user_id": "U0BOT", "is_bot": True}],
            "event": event,
        }
    )


def send(bolt, event: dict, event_id: str | None = None):
    body = event_body(event, event_id)
    return dispatch(bolt, body, signed_headers(body, content_type="application/json"))


def mention(text: str = "<@U0BOT> how do I get access?", **extra) -> dict:
    return {"type": "app_mention", "user": REQUESTER, "text": text, "channel": "C0GENERAL", "ts": "1.1", **extra}


def im(text: str = "hello", **extra) -> dict:
    return {
        "type": "message",
        "channel_type": "im",
        "user": REQUESTER,
        "text": text,
        "channel": "D0ALICE",
        "ts": "2.2",
        **extra,
    }


def test_a_mention_gets_an_ephemeral_pointer_to_help(bolt, core, slack, caplog):
    with caplog.at_level(logging.WARNING):
        response = send(bolt, mention(thread_ts="0.9"))
    core.service.drain()
    assert response.status == 200
    assert "Unhandled request" not in caplog.text
    (answer,) = slack.ephemerals
    assert answer["user"] == REQUESTER and answer["channel"] == "C0GENERAL" and "/polaris help" in answer["text"]
    assert answer.get("thread_ts") == "0.9"
    rows = [r for r in core.audit.for_actor(REQUESTER) if r.action == "mention"]
    assert [(r.outcome, r.detail) for r in rows] == [("ok", "app_mention")]


def test_a_dm_gets_a_pointer_in_the_conversation(bolt, core, slack, caplog):
    with caplog.at_level(logging.WARNING):
        assert send(bolt, im()).status == 200
    core.service.drain()
    assert "Unhandled request" not in caplog.text
    (answer,) = slack.messages_in("D0ALICE")
    assert "/polaris help" in answer["text"]


@pytest.mark.parametrize(
    "event",
    [
        im(bot_id="B0BOT"),  # the bot's own answer comes back as a message event
        im(subtype="message_changed"),
        {**im(), "channel_type": "channel", "channel": "C0GENERAL"},
        mention(bot_id="B0OTHER"),
    ],
)
def test_bot_posts_edits_and_channel_messages_are_acknowledged_and_left_alone(bolt, core, slack, caplog, event):
    with caplog.at_level(logging.WARNING):
        assert send(bolt, event).status == 200
    core.service.drain()
    assert "Unhandled request" not in caplog.text
    assert not slack.ephemerals and not slack.messages


def test_a_retried_event_is_answered_once_and_a_chatty_person_is_not_flooded(bolt, core, slack):
    send(bolt, im(), event_id="EvSAME")
    send(bolt, im(), event_id="EvSAME")  # Slack's retry of the same delivery
    core.service.drain()
    assert len(slack.messages_in("D0ALICE")) == 1
    for _ in range(ANSWERS_PER_MINUTE + 2):
        send(bolt, im())
        core.service.drain()
    assert len(slack.messages_in("D0ALICE")) == ANSWERS_PER_MINUTE
    outcomes = [r.outcome for r in core.audit.for_actor(REQUESTER) if r.action == "mention"]
    assert outcomes.count("ok") == ANSWERS_PER_MINUTE and outcomes.count("refused") == 3
