"""Tests for standins.slack_api: a real slack_sdk WebClient (urllib) against the local stand-in server."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from standins.slack_api import SlackStandIn

TOKEN = "xoxb-test-token"

APPROVAL_BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Access request"}},
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*<@U1>* wants `analysts` &amp; more &lt;now&gt;"},
        "fields": [{"type": "mrkdwn", "text": "*Group:* analysts"}, {"type": "mrkdwn", "text": "*For:* 7 days"}],
    },
    {"type": "divider"},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "Request #42"}]},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "action_id": "approve_request",
                "value": "42",
            },
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Deny"},
                "style": "danger",
                "action_id": "deny_request",
                "value": "42",
            },
        ],
    },
]


@pytest.fixture(autouse=True)
def _no_slack_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("SLACK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def standin():
    s = SlackStandIn(bot_token=TOKEN)
    s.serve()
    try:
        yield s
    finally:
        s.shutdown()


@pytest.fixture
def client(standin):
    return WebClient(token=TOKEN, base_url=standin.api_url, timeout=5)


def test_serve_sets_urls_and_auth_test(standin, client):
    assert standin.api_url.startswith("http://127.0.0.1:") and standin.api_url.endswith("/api/")
    assert standin.api_url == standin.base_url + "/api/"
    resp = client.auth_test()
    assert resp["ok"] is True
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T0STANDIN", "U0BOT", "B0BOT")
    assert standin.calls == [("auth.test", {})]


def test_post_message_then_update_with_blocks(standin, client):
    first = client.chat_postMessage(channel="C1", text="Access request", blocks=APPROVAL_BLOCKS)
    second = client.chat_postMessage(channel="C1", text="another", thread_ts=first["ts"])
    assert first["channel"] == "C1"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == APPROVAL_BLOCKS
    assert first["message"]["user"] == "U0BOT"

    msg = standin.find_message("C1", first["ts"])
    assert msg["blocks"] == APPROVAL_BLOCKS and msg["user"] == "U0BOT" and msg["updates"] == 0
    assert msg["thread_ts"] is None
    assert standin.messages_in("C1", replies=True)[1]["thread_ts"] == first["ts"]

    done = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U2>"}}]
    upd = client.chat_update(channel="C1", ts=first["ts"], text="Approved", blocks=done)
    assert (upd["channel"], upd["ts"], upd["text"]) == ("C1", first["ts"], "Approved")
    assert msg["text"] == "Approved" and msg["blocks"] == done and msg["updates"] == 1
    assert len(standin.messages_in("C1")) == 1 and len(standin.messages_in("C1", replies=True)) == 2

    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"
    assert standin.calls[-1][0] == "chat.update"


def test_form_encoded_blocks_are_decoded(standin, client):
    resp = client.api_call(
        "chat.postMessage", data={"channel": "C2", "text": "t", "blocks": json.dumps(APPROVAL_BLOCKS)}
    )
    assert resp["ok"]
    assert standin.messages_in("C2")[0]["blocks"] == APPROVAL_BLOCKS
    # A raw urlencoded body with the token as a field (older clients) works as well.
    raw = requests.post(
        standin.api_url + "chat.postMessage",
        data=urlencode({"token": TOKEN, "channel": "C2", "blocks": json.dumps(APPROVAL_BLOCKS[:1])}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert raw.status_code == 200 and raw.json()["ok"] is True
    assert "token" not in standin.calls[-1][1]


def test_post_message_errors(standin, client):
    with pytest.raises(SlackApiError) as err, pytest.warns(UserWarning):  # slack_sdk warns about missing text
        client.chat_postMessage(channel="C1", text="")
    assert err.value.response["error"] == "no_text"
    too_many = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x", blocks=too_many)
    assert err.value.response["error"] == "invalid_blocks"
    assert err.value.response["response_metadata"]["messages"]
    assert standin.messages == []


def test_users_info_lookup_and_profile(standin, client):
    standin.add_user("U1", "ada", "ada@example.com", first_name="Ada", last_name="Lovelace")
    standin.add_user("U2", "guest", None, is_restricted=True)
    user = client.users_info(user="U1")["user"]
    assert user["id"] == "U1" and user["team_id"] == "T0STANDIN" and user["real_name"] == "Ada Lovelace"
    assert user["profile"]["email"] == "ada@example.com" and user["is_bot"] is False and user["deleted"] is False
    guest = client.users_info(user="U2")["user"]
    assert "email" not in guest["profile"] and guest["is_restricted"] is True
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"

    assert client.users_lookupByEmail(email="ADA@example.com")["user"]["id"] == "U1"
    with pytest.raises(SlackApiError) as err:
        client.users_lookupByEmail(email="nobody@example.com")
    assert err.value.response["error"] == "users_not_found"

    standin.profile_fields["U1"] = {"Xf01MANAGER": {"value": "U9", "alt": ""}}
    profile = client.users_profile_get(user="U1")["profile"]
    assert profile["email"] == "ada@example.com"
    assert profile["fields"] == {"Xf01MANAGER": {"value": "U9", "alt": ""}}
    assert client.users_profile_get(user="U2")["profile"]["fields"] == {}


def test_conversations_open_and_dm_post(standin, client):
    standin.add_user("U1", "ada", "ada@example.com")
    channel = client.conversations_open(users="U1")["channel"]["id"]
    assert channel == standin.dm_channel("U1")
    client.chat_postMessage(channel=channel, text="hello")
    posted = client.chat_postMessage(channel="U1", text="by user id")  # Slack routes this to the DM
    assert posted["channel"] == channel
    assert [m["text"] for m in standin.messages_in(channel)] == ["hello", "by user id"]


def test_post_ephemeral(standin, client):
    resp = client.chat_postEphemeral(channel="C1", user="U1", text="only you", blocks=APPROVAL_BLOCKS[:2])
    assert resp["message_ts"]
    assert standin.ephemerals == [
        {
            "channel": "C1",
            "user": "U1",
            "text": "only you",
            "blocks": APPROVAL_BLOCKS[:2],
            "attachments": None,
            "thread_ts": None,
            "ts": resp["message_ts"],
        }
    ]
    assert standin.messages == []


def test_usergroups_users_list(standin, client):
    standin.usergroups["S01APPROVERS"] = ["U1", "U2"]
    assert client.usergroups_users_list(usergroup="S01APPROVERS")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S404")
    assert err.value.response["error"] == "no_such_subteam"


def test_invalid_auth_and_unknown_method(standin):
    bad = WebClient(token="xoxb-wrong", base_url=standin.api_url, timeout=5)
    with pytest.raises(SlackApiError) as err:
        bad.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        WebClient(token=None, base_url=standin.api_url, timeout=5).auth_test()
    assert err.value.response["error"] == "not_authed"
    good = WebClient(token=TOKEN, base_url=standin.api_url, timeout=5)
    with pytest.raises(SlackApiError) as err:
        good.api_call("chat.nonsense")
    assert err.value.response["error"] == "unknown_method"
    assert standin.messages == []


def test_rate_limit_retried_with_handler(standin, monkeypatch):
    slept: list[float] = []
    # The handler sleeps Retry-After plus up to 1 s of jitter; record instead of waiting.
    monkeypatch.setattr("slack_sdk.http_retry.builtin_handlers.time.sleep", slept.append)
    client = WebClient(token=TOKEN, base_url=standin.api_url, timeout=5)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    standin.fail_next("chat.postMessage", retry_after=2)
    resp = client.chat_postMessage(channel="C1", text="eventually")
    assert resp["ok"]
    assert len(slept) == 1 and 2 <= slept[0] < 3  # Retry-After honoured
    assert [m for m, _ in standin.calls] == ["chat.postMessage", "chat.postMessage"]
    assert len(standin.messages_in("C1")) == 1


def test_rate_limit_raises_without_handler(standin, client):
    standin.fail_next("users.info", retry_after=7, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.users_info(user="U1")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "7"
        assert err.value.response["error"] == "ratelimited"
    with pytest.raises(SlackApiError) as err:  # failures used up: normal answer again
        client.users_info(user="U1")
    assert err.value.response["error"] == "user_not_found"


def test_fail_next_ok_false_and_server_error(standin, client):
    standin.fail_next("chat.postMessage", status=200, error="channel_not_found")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x")
    assert (err.value.response.status_code, err.value.response["error"]) == (200, "channel_not_found")
    standin.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 503
    assert client.chat_postMessage(channel="C1", text="x")["ok"]


def test_views_open_update_publish(standin, client):
    modal = {
        "type": "modal",
        "callback_id": "request_access",
        "title": {"type": "plain_text", "text": "Request"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Loading…"}}],
    }
    opened = client.views_open(trigger_id="123.456.abc", view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "request_access"
    filled = dict(
        modal,
        submit={"type": "plain_text", "text": "Send"},
        blocks=[
            {
                "type": "input",
                "block_id": "group",
                "label": {"type": "plain_text", "text": "Group"},
                "element": {"type": "plain_text_input", "action_id": "group_name"},
            }
        ],
    )
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=filled)["view"]
    assert updated["id"] == opened["id"] and updated["blocks"] == filled["blocks"]
    with pytest.raises(SlackApiError) as err:  # stale hash
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=filled)
    assert err.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id="V404", view=filled)
    assert err.value.response["error"] == "not_found"
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="t", view=dict(modal, title={"type": "plain_text", "text": "x" * 25}))
    assert err.value.response["error"] == "invalid_arguments"

    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Your requests"}}]}
    first = client.views_publish(user_id="U1", view=home)["view"]
    again = client.views_publish(user_id="U1", view=home)["view"]
    assert first["id"] == again["id"]
    assert [(v["method"], v["view_id"], v["trigger_id"], v["user_id"]) for v in standin.views] == [
        ("views.open", opened["id"], "123.456.abc", None),
        ("views.update", opened["id"], None, None),
        ("views.publish", first["id"], None, "U1"),
        ("views.publish", first["id"], None, "U1"),
    ]
    assert standin.views[1]["view"]["blocks"] == filled["blocks"]


def test_strict_trigger_ids(standin, client):
    standin.strict_trigger_ids = True
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []}
    client.views_open(trigger_id="t1", view=modal)
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="t1", view=modal)
    assert err.value.response["error"] == "exchanged_trigger_id"


def test_response_url_records_posts_and_allows_five(standin):
    url = standin.response_url("cmd-1")
    assert url == standin.base_url + "/response/cmd-1"
    assert standin.response_url() != standin.response_url()
    for i in range(5):
        r = requests.post(url, json={"text": f"step {i}", "replace_original": True}, timeout=5)
        assert r.status_code == 200
    sixth = requests.post(url, json={"text": "too many"}, timeout=5)
    assert (sixth.status_code, sixth.text) == (404, "expired_url")
    assert len(standin.responses) == 5
    assert standin.responses[0] == {
        "key": "cmd-1",
        "text": "step 0",
        "blocks": None,
        "response_type": None,
        "replace_original": True,
        "delete_original": False,
    }
    other = requests.post(
        standin.response_url("cmd-2"), json={"response_type": "in_channel", "blocks": APPROVAL_BLOCKS}, timeout=5
    )
    assert other.status_code == 200
    assert standin.responses[-1]["blocks"] == APPROVAL_BLOCKS
    assert standin.responses[-1]["response_type"] == "in_channel"


def test_render_shows_mrkdwn_as_slack_does(standin):
    """Mentions as names, links as their label, a real ``<!channel>`` as the ping it is, an escaped one as text."""
    standin.add_user("U0ADA", "ada", "ada@example.com")
    shown = standin.render({"text": "<@U0ADA> asks <!channel> in <#C1|general>: see <https://x.example|docs>"})
    assert shown == "@ada asks @channel in #general: see docs (https://x.example)"
    assert standin.render({"text": "reason: &lt;!channel&gt; &lt;@U0ADA&gt;"}) == "reason: <!channel> <@U0ADA>"
    assert (
        standin.render(
            {"text": "x", "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "<@U0ADA>"}}]}
        )
        == "<@U0ADA>"
    )


def test_render_shows_blocks_buttons_and_unescapes(standin):
    text = standin.render({"text": "fallback", "blocks": APPROVAL_BLOCKS})
    assert "=== Access request ===" in text
    assert "*@U1* wants `analysts` & more <now>" in text  # a mention as Slack shows it (U1 is unknown here)
    assert "  • *Group:* analysts" in text
    assert "-" * 40 in text and "Request #42" in text
    assert "[Approve] (approve_request)" in text and "[Deny] (deny_request)" in text
    assert "fallback" not in text
    assert standin.render({"text": "a &amp; b &lt;c&gt;", "blocks": None}) == "a & b <c>"
    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Request"},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "Group"},
                "element": {
                    "type": "static_select",
                    "action_id": "g",
                    "placeholder": {"type": "plain_text", "text": "Pick"},
                },
            }
        ],
    }
    rendered = standin.render(modal)
    assert "Request" in rendered and "Group: <Pick ▾> (g)" in rendered and "[Send]" in rendered


def test_concurrent_posts_get_unique_increasing_ts(standin, client):
    results: list[str] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        ts = client.chat_postMessage(channel="C9", text=str(i))["ts"]
        with lock:
            results.append(ts)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 20
    stored = [m["ts"] for m in standin.messages_in("C9")]
    assert stored == sorted(stored, key=float) and set(stored) == set(results)


def test_bolt_app_against_standin(standin):
    """Bolt accepts the stand-in's auth.test, and respond() posts land on the response_url."""
    from slack_bolt import App, BoltRequest
    from slack_sdk.signature import SignatureVerifier

    secret = "test-secret"
    app = App(
        client=WebClient(token=TOKEN, base_url=standin.api_url, timeout=5),
        signing_secret=secret,
        process_before_response=True,
    )

    @app.command("/access")
    def handle(ack, respond, client, command):
        ack()
        respond(text=f"got {command['text']}")
        client.chat_postMessage(channel=command["channel_id"], text="card")

    body = urlencode(
        {
            "command": "/access",
            "text": "analysts",
            "user_id": "U1",
            "channel_id": "C1",
            "team_id": "T0STANDIN",
            "trigger_id": "1.2.3",
            "response_url": standin.response_url("slash"),
        }
    )
    ts = str(int(time.time()))
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    resp = app.dispatch(
        BoltRequest(
            body=body,
            headers={
                "content-type": ["application/x-www-form-urlencoded"],
                "x-slack-request-timestamp": [ts],
                "x-slack-signature": [sig],
            },
        )
    )
    assert resp.status == 200
    assert [r["text"] for r in standin.responses] == ["got analysts"]
    assert standin.messages_in("C1")[0]["text"] == "card"
    assert standin.calls[0][0] == "auth.test"


def test_shutdown_is_idempotent_and_closes_port():
    s = SlackStandIn()
    s.shutdown()  # before serve: no-op
    with s:
        url = s.api_url
        assert WebClient(token=s.bot_token, base_url=url, timeout=5).auth_test()["ok"]
    s.shutdown()
    with pytest.raises(requests.ConnectionError):
        requests.post(url + "auth.test", timeout=2)


def test_fail_for_refuses_one_user_or_channel_until_cleared(standin, client):
    standin.add_user("U1", "one", "one@example.com")
    standin.add_user("U2", "two", "two@example.com")
    standin.fail_for("conversations.open", "user_disabled", users="U1")
    standin.fail_for("chat.postMessage", "not_in_channel", channel="C1", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as e:
            client.conversations_open(users="U1")
        assert e.value.response["error"] == "user_disabled"
    assert client.conversations_open(users="U2")["channel"]["id"] == "DU2"
    for _ in range(2):
        with pytest.raises(SlackApiError) as e:
            client.chat_postMessage(channel="C1", text="hi")
        assert e.value.response["error"] == "not_in_channel"
    assert client.chat_postMessage(channel="C1", text="hi")["ok"]  # times used up
    assert client.chat_postMessage(channel="C2", text="hi")["ok"]
    standin.clear_failures()
    assert client.conversations_open(users="U1")["ok"]


def test_thread_replies_are_kept_apart_from_the_channel_history(standin, client):
    parent = client.chat_postMessage(channel="C0APPROVALS", text="the card")["ts"]
    reply = client.chat_postMessage(channel="C0APPROVALS", text="approved", thread_ts=parent)
    assert reply["message"]["thread_ts"] == parent
    client.chat_postMessage(channel="C0APPROVALS", text="another card")
    assert [m["text"] for m in standin.messages_in("C0APPROVALS")] == ["the card", "another card"]
    assert [m["text"] for m in standin.messages_in("C0APPROVALS", replies=True)] == [
        "the card",
        "approved",
        "another card",
    ]
    assert [m["text"] for m in standin.thread_replies("C0APPROVALS", parent)] == ["approved"]
