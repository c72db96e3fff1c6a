"""The HTTP edge in front of Bolt (``bot/server.py``): what a form body is, the body-size limit, no input gives a
500, and nothing a request carries can forge a log line. In-process through the WSGI app, and against the real
``python app.py serve`` process (``tests/test_serve.py``'s ``Serve``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
import urllib.parse

import pytest
import requests
from sqlalchemy import select

from bot.models import AccessRequest
from tests.conftest import REQUESTER, SIGNING_SECRET, wait_for
from tests.test_serve import Serve

MiB = 1024 * 1024


def slash_form(slack, text: str, **fields) -> dict:
    """The fields Slack sends with a slash command (https://api.slack.com/interactivity/slash-commands)."""
    form = {
        "token": "x",
        "team_id": "T0STANDIN",
        "team_domain": "standin",
        "enterprise_id": "E0ENT",
        "enterprise_name": "Standin Inc",
        "channel_id": "C0GENERAL",
        "channel_name": "general",
        "user_id": REQUESTER,
        "user_name": "alice",
        "command": "/polaris",
        "text": text,
        "api_app_id": "A0TEST",
        "is_enterprise_install": "false",
        "response_url": slack.response_url(),
        "trigger_id": f"{time.time()}.trigger",
    }
    form.update(fields)
    return form


def answers_to(slack, form: dict) -> list[dict]:
    key = form["response_url"].rsplit("/", 1)[1]
    return [r for r in slack.responses if r["key"] == key]


class Input:
    """A ``wsgi.input`` that counts what was read; ``size`` bytes of ``a``, or ``data``."""

    def __init__(self, data: bytes = b"", size: int | None = None):
        self.data, self.size, self.read_bytes = data, len(data) if size is None else size, 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.read_bytes
        n = left if n is None or n < 0 else min(n, left)
        chunk = self.data[self.read_bytes : self.read_bytes + n] if self.data else b"a" * n
        self.read_bytes += n
        return chunk


def call(
    app,
    body: bytes = b"",
    headers: dict | None = None,
    *,
    method: str = "POST",
    path: str = "/slack/events",
    stream: Input | None = None,
    content_length: str | None = "auto",
) -> tuple[int, dict, bytes]:
    """One request through a WSGI app: (status code, headers, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "3000",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream or Input(body),
    }
    if content_length == "auto":
        environ["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    else:
        environ["wsgi.input_terminated"] = True  # a chunked body, as gunicorn passes it on
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    started = []
    out = b"".join(app(environ, lambda status, hdrs, exc_info=None: started.append((status, hdrs))))
    return int(started[0][0][:3]), {k.lower(): v for k, v in started[0][1]}, out


@pytest.fixture
def edge(core, groups):
    from bot import wiring

    bolt = wiring.build_bolt_app(core)
    yield wiring.make_wsgi(core, bolt)
    bolt.listener_pool.shutdown(wait=True)


def signed(
    body: str | bytes, *, timestamp: int | None = None, content_type: str = "application/x-www-form-urlencoded"
) -> tuple[bytes, dict]:
    """``body`` as bytes and the headers of a valid Slack signature over those exact bytes (Slack signs the raw
    body: https://api.slack.com/authentication/verifying-requests-from-slack)."""
    raw = body.encode() if isinstance(body, str) else body
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return raw, {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": "v0=" + digest}


# ------------------------------------------------------------------ finding 1: "payload" in a form body
PAYLOAD_IN_FIELD = {
    "token": "payload",
    "team_domain": "payload-co",
    "enterprise_name": "payload inc",
    "channel_name": "api-payloads",
    "user_name": "payload.pete",
    "is_enterprise_install": "payload",
    "trigger_id": "1.payload",
    "payloads": "an extra field of that name",
    "x": "payload=%7B%7D",
}


@pytest.mark.parametrize("field", sorted(PAYLOAD_IN_FIELD) + ["text", "response_url"])
def test_payload_anywhere_in_a_slash_command_is_still_a_slash_command(edge, slack, field):
    if field == "text":
        form = slash_form(slack, "whois payload@example.io")
    elif field == "response_url":
        form = slash_form(slack, "help", response_url=slack.response_url("payload" + str(time.time_ns())))
    else:
        form = slash_form(slack, "help", **{field: PAYLOAD_IN_FIELD[field]})
    body = urllib.parse.urlencode(form)
    assert "payload" in body
    status, _, _ = call(edge, *signed(body))
    assert status == 200
    answer = wait_for(lambda: answers_to(slack, form))[0]
    assert answer["response_type"] == "ephemeral"
    if field == "text":
        assert "payload@example.io" in answer["text"]


def test_only_a_real_payload_field_is_an_interactive_payload():
    from bot.server import MalformedBody, parse_body

    form = "command=%2Fpolaris&text=the+payload+format&user_name=payload.pete"
    assert parse_body(form, "application/x-www-form-urlencoded") == {
        "command": "/polaris",
        "text": "the payload format",
        "user_name": "payload.pete",
    }
    assert parse_body("command=%2Fpolaris&payloads=1", None) == {"command": "/polaris", "payloads": "1"}
    click = {"type": "block_actions", "actions": [{"action_id": "approve_request"}]}
    assert parse_body(urllib.parse.urlencode({"payload": json.dumps(click)}), None) == click
    for bad in (
        "payload=%7Bnot+json",
        "payload=%5B1%2C2%5D",
        "payload=%7B%7D",
        "[1,2,3]",
        '"text"',
        "{not json",
        "text=payload",
    ):
        with pytest.raises(MalformedBody):
            parse_body(bad, None)
    with pytest.raises(MalformedBody):
        parse_body('{"command": "/polaris", "text": "help"}', "application/json")  # commands are never JSON


def test_issue_inputs_with_payload_through_serve(serve_env, servers, slack, db):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    forms = [
        slash_form(slack, "request Viewer debugging the ingestion payload format"),
        slash_form(slack, "whois payload@example.io"),
        slash_form(slack, "help", channel_name="api-payloads"),
        slash_form(slack, "help", user_name="payload.pete"),
        slash_form(slack, "help", team_domain="payload"),
    ]
    for form in forms:
        assert server.post(urllib.parse.urlencode(form)).status_code == 200
    for form in forms[1:]:
        wait_for(lambda form=form: answers_to(slack, form))
    with db.session() as s:
        req = wait_for(lambda: list(s.scalars(select(AccessRequest))))[0]
    assert req.reason == "debugging the ingestion payload format"
    server.stop()


# ------------------------------------------------------------------ finding 6: body-size limit
def test_a_body_over_the_limit_is_refused_before_it_is_read(edge):
    from bot.server import MAX_BODY

    assert MAX_BODY == MiB
    big = Input(size=100 * MiB)
    status, headers, _ = call(
        edge, stream=big, content_length=str(100 * MiB), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 413 and big.read_bytes == 0 and headers.get("connection") == "close"
    chunked = Input(size=100 * MiB)  # no Content-Length (a chunked body): read with a cap
    status, _, _ = call(edge, stream=chunked, content_length=None)
    assert status == 413 and chunked.read_bytes <= MAX_BODY + 64 * 1024
    status, _, _ = call(edge, stream=Input(size=10), content_length="ten")
    assert status == 400


def test_a_chunked_signed_command_under_the_limit_is_read_whole(edge, slack):
    form = slash_form(slack, "help")
    raw, headers = signed(urllib.parse.urlencode(form))
    status, _, _ = call(edge, headers=headers, stream=Input(raw), content_length=None)
    assert status == 200
    wait_for(lambda: answers_to(slack, form))


def _raw_http(port: int, head: str, body_chunks, deadline: float = 5.0) -> tuple[bytes, int]:
    """Send ``head`` then ``body_chunks`` until the server answers; (answer, body bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    sock.sendall(head.encode())
    sent, answer = 0, b""
    sock.setblocking(False)
    stop = time.monotonic() + deadline
    try:
        for chunk in body_chunks:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer or time.monotonic() > stop:
                break
            try:
                sock.sendall(chunk)
                sent += len(chunk)
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(max(0.1, stop - time.monotonic()))
        try:
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        sock.close()
    return answer, sent


def _worker_peak_rss_kib(server) -> int:
    import subprocess

    children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    peaks = []
    for pid in children:
        with open(f"/proc/{pid}/status") as f:
            peaks += [int(line.split()[1]) for line in f if line.startswith("VmHWM:")]
    return max(peaks)


def test_large_unsigned_posts_get_a_quick_413_through_serve(serve_env, servers):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    before = _worker_peak_rss_kib(server)
    chunk = b"a" * 65536
    started = time.monotonic()
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {100 * MiB}\r\n\r\n"
    )
    answer, sent = _raw_http(server.port, head, iter(lambda: chunk, None))
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 2.0, (answer, sent)
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    started = time.monotonic()
    answer, sent = _raw_http(server.port, head, iter(lambda: b"10000\r\n" + chunk + b"\r\n", None))
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 3.0, (answer, sent)
    assert sent < 40 * MiB
    assert _worker_peak_rss_kib(server) - before < 20 * 1024  # KiB: nothing near the 100 MB offered was kept
    assert server.post("x", headers={}).status_code == 401  # the worker is still serving
    server.stop()
    assert "Traceback" not in server.output()


# ------------------------------------------------------------------ finding 12: no input gives a 500
def _bad_inputs(slack) -> list[tuple[str, bytes, dict, int]]:
    """(what, body, headers, expected status) for each input of finding 12."""
    form = "application/x-www-form-urlencoded"
    no_trigger = {k: v for k, v in slash_form(slack, "help").items() if k != "trigger_id"}
    empty_actions = urllib.parse.urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "team": {"id": "T0STANDIN"},
                    "user": {"id": REQUESTER},
                    "api_app_id": "A0TEST",
                    "response_url": slack.response_url(),
                    "actions": [],
                }
            )
        }
    )
    no_type = urllib.parse.urlencode({"payload": json.dumps({"user": {"id": REQUESTER}, "actions": "x"})})
    as_json = json.dumps(
        {"command": "/polaris", "text": "help", "user_id": REQUESTER, "response_url": slack.response_url()}
    )
    cases = [
        (
            "timestamp abc",
            b"a=1",
            {"Content-Type": form, "X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"},
            401,
        ),
        ("unsigned", b"a=1", {"Content-Type": form}, 401),
        # 5,000 ASCII digits pass str.isdigit() and then int() refuses them (a 500 before the fix)
        (
            "timestamp of 5,000 digits",
            b"a=1",
            {"Content-Type": form, "X-Slack-Request-Timestamp": "1" * 5000, "X-Slack-Signature": "v0=x"},
            401,
        ),
        (
            "timestamp a Unicode digit",
            b"a=1",
            {"Content-Type": form, "X-Slack-Request-Timestamp": "\u00b2", "X-Slack-Signature": "v0=x"},
            401,
        ),
        ("stale", *signed("a=1", timestamp=int(time.time()) - 600), 401),
        ("json list", *signed("[1,2,3]", content_type="application/json"), 400),
        ("form list", *signed("[1,2,3]"), 400),
        ("payload not json", *signed("payload=%7Bnot+json"), 400),
        ("payload a list", *signed("payload=%5B1%5D"), 400),
        ("actions empty", *signed(empty_actions), 400),
        ("payload without type", *signed(no_type), 400),
        ("slash command as JSON", *signed(as_json, content_type="application/json"), 400),
        (
            "JSON event not an object",
            *signed('{"type": "event_callback", "event": []}', content_type="application/json"),
            400,
        ),
        ("no trigger_id", *signed(urllib.parse.urlencode(no_trigger)), 200),
    ]
    raw = "text=caf\xe9&command=%2Fpolaris".encode("latin-1")  # not UTF-8
    cases.append(("not UTF-8", *signed(raw), 400))
    return cases


def test_no_input_gives_a_500_in_process(edge, slack, caplog):
    for what, body, headers, expected in _bad_inputs(slack):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status, _, _ = call(edge, body, headers)
        assert status == expected, what
        assert not any(r.exc_info for r in caplog.records), what
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 1, what


def test_no_input_gives_a_500_through_serve(serve_env, servers, slack):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    for what, body, headers, expected in _bad_inputs(slack):
        response = requests.post(server.url + "/slack/events", data=body, headers=headers, timeout=5)
        assert response.status_code == expected, what
    server.stop()
    out = server.output()
    assert "Traceback" not in out and " 500 " not in out


@pytest.mark.parametrize("length", ["\u00b2", "0" * 5000 + "1", "-1", "1e3"])
def test_a_content_length_that_is_not_a_plain_number_is_400(edge, length):
    status, _, _ = call(edge, b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}, content_length=length)
    assert status == 400


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("HEAD", "/slack/events", 405),
        ("HEAD", "/nope", 404),
        ("OPTIONS", "/healthz", 405),
        ("PUT", "/slack/events", 405),
        ("GET", "/nope", 404),
    ],
)
def test_every_answer_to_head_is_headers_only_and_odd_methods_are_refused(edge, method, path, expected):
    status, headers, body = call(edge, method=method, path=path)
    assert status == expected
    assert body == b"" if method == "HEAD" else body
    assert int(headers["content-length"]) > 0  # HEAD says how long the GET answer would be


def test_dig_never_raises():
    from handlers.payload import dig, text

    assert dig({"a": 1}, "b") is None
    assert dig({"a": {"b": 1}}, "a", "c", "d") is None
    assert dig({"a": [{"b": 2}]}, "a", 0, "b") == 2
    assert dig([1], "a") is None and dig({"a": 1}, 0) is None and dig({"a": [1]}, "a", -1) is None
    assert text({"user_id": "U1"}, "trigger_id") == ""


# ------------------------------------------------------------------ finding 13: log forging
FORGED = "a=1\n2099-01-01 00:00:00,000 ERROR polaris_access_bot: FORGED"


def test_an_unsigned_body_cannot_forge_a_log_line_through_serve(serve_env, servers):
    server = Serve(serve_env, workers=1)
    servers.append(server)
    response = server.post(
        FORGED,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": "abc",
            "X-Slack-Signature": "v0=1",
        },
    )
    assert response.status_code == 401
    server.stop()
    out = server.output()
    assert not any(line.startswith("2099") for line in out.splitlines())
    assert "FORGED" not in out  # an unsigned body is not logged at all


def test_every_log_record_is_one_line(capfd):
    from bot import redact

    logger = logging.getLogger("tests.forging")
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        redact.install()
        logger.warning("body: %s", "x\ny\rz\x1b[31m\x00\u2028w\u2029v\x85u\ttab")
        try:
            raise ValueError("bad\n2099-01-01 00:00:00,000 ERROR polaris_access_bot: FORGED")
        except ValueError:
            logger.exception("failed with %r", "ok")
        logger.info("plain %s", "line")
    finally:
        for handler in root.handlers:
            handler.flush()
        root.handlers = saved
    lines = capfd.readouterr().err.splitlines()
    assert lines[0].endswith(r"body: x\ny\rz\x1b[31m\x00\u2028w\u2029v\x85u" + "\ttab")
    assert not any(line.startswith("2099") for line in lines)
    assert sum(1 for line in lines if line[:4].isdigit()) == 3  # three records, every other line indented
    assert lines[-1].endswith("plain line")
