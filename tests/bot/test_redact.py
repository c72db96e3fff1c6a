"""Tests for bot.redact: secrets and token-shaped strings never reach a log line."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading

import pytest


from bot import redact
from bot.redact import MASK, RedactingFilter, install, register

SECRET = "s3cr3t-Signing-Value-42"
BOT = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
USER = "xoxp-1234-5678-abcdef"
APP = "xapp-1-A0123456789-1234567890123-abcdef0123456789"
POK = "pok_Ab12Cd34Ef56_Gh78-Ij90"
BASIC = "Basic cG9rX0FiMTI6c2VjcmV0MTIzNA=="
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-DEF_123"
TOKENS = [BOT, USER, APP, POK, BASIC, BEARER]


@pytest.fixture(autouse=True)
def fresh_secrets(monkeypatch):
    monkeypatch.setattr(redact, "_secrets", set())


@pytest.fixture
def captured():
    """A logger with one StreamHandler carrying the filter; yields (logger, stream)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test_redact.{id(stream)}")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.handlers = []


@contextlib.contextmanager
def bare_root_logger():
    """The root logger with no handlers (restored afterwards, with its level).

    Used inside the test body: pytest adds its own capture handlers to the root logger after fixtures run.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        yield root
    finally:
        for h in root.handlers:
            if h not in saved_handlers:
                h.close()
        root.handlers = saved_handlers
        root.setLevel(saved_level)


# -------------------------------------------------------------------------------------------- redact
class TestRedactFunction:
    @pytest.mark.parametrize("token", TOKENS)
    def test_token_shapes(self, token):
        out = redact.redact(f"header value {token} end")
        assert token not in out
        assert MASK in out
        assert out.startswith("header value ") and out.endswith(" end")

    @pytest.mark.parametrize(
        "text", ["authorization: basic dXNlcjpwYXNzd29yZA==", "BEARER abcdefgh12345678", "bearer\tabcdefgh.ijk"]
    )
    def test_auth_schemes_any_case(self, text):
        out = redact.redact(text)
        assert MASK in out
        assert "dXNlcjpwYXNzd29yZA" not in out and "abcdefgh" not in out

    def test_registered_secret(self):
        assert redact.redact(f"secret={SECRET}") == f"secret={SECRET}"
        register([SECRET])
        assert redact.redact(f"secret={SECRET};again {SECRET}") == f"secret={MASK};again {MASK}"

    def test_short_and_empty_secrets_ignored(self):
        register(["", "abc", None or ""])
        assert redact.redact("abc abcd") == "abc abcd"
        assert redact.redact("") == ""
        assert redact.redact(None) is None

    def test_longest_secret_first(self):
        register(["abcd", "abcdefgh-long-secret"])
        out = redact.redact("x abcdefgh-long-secret y")
        assert "efgh" not in out
        assert out == f"x {MASK} y"

    def test_plain_text_untouched(self):
        text = "User a@b.com joined Data Analyst (request 1234abcd); xox, pok, basic"
        assert redact.redact(text) == text

    def test_register_is_thread_safe(self):
        secrets = [f"secret-{i:04d}" for i in range(400)]
        threads = [threading.Thread(target=register, args=(secrets[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = redact.redact(" ".join(secrets))
        assert "secret-" not in out


# ------------------------------------------------------------------------------------------- filter
class TestFilter:
    def test_message(self, captured):
        logger, stream = captured
        register([SECRET])
        logger.info(f"calling with {BOT} and {SECRET}")
        out = stream.getvalue()
        assert BOT not in out and SECRET not in out
        assert "calling with [REDACTED] and [REDACTED]" in out

    @pytest.mark.parametrize("token", TOKENS)
    def test_percent_args(self, captured, token):
        logger, stream = captured
        logger.warning("auth=%s user=%s", token, "alice")
        out = stream.getvalue()
        assert token not in out
        assert f"auth={MASK} user=alice" in out

    def test_registered_secret_in_args(self, captured):
        logger, stream = captured
        register([SECRET])
        logger.error("config: %r, %d", {"signing": SECRET}, 7)
        out = stream.getvalue()
        assert SECRET not in out
        assert "[REDACTED]" in out and ", 7" in out

    def test_mapping_args(self, captured):
        logger, stream = captured
        logger.info("%(h)s", {"h": {"Authorization": BASIC}})
        out = stream.getvalue()
        assert "cG9rX0FiMTI6" not in out and MASK in out

    def test_secret_split_across_msg_and_args(self, captured):
        logger, stream = captured
        register([SECRET])
        half = len(SECRET) // 2
        logger.info(SECRET[:half] + "%s", SECRET[half:])
        assert SECRET not in stream.getvalue()

    def test_bad_format_string_keeps_line_without_leaking(self, captured):
        logger, stream = captured
        logger.info("two %s %s", BOT)  # wrong number of args
        out = stream.getvalue()
        assert "two %s %s" in out
        assert BOT not in out

    def test_non_string_message(self, captured):
        logger, stream = captured
        logger.info(RuntimeError(f"bad token {POK}"))
        out = stream.getvalue()
        assert POK not in out and MASK in out

    def test_exception_traceback(self, captured):
        logger, stream = captured
        register([SECRET])
        try:
            try:
                raise KeyError(f"inner {SECRET}")
            except KeyError as inner:
                raise RuntimeError(f"Polaris refused Authorization: {BASIC} token {BOT}") from inner
        except RuntimeError:
            logger.exception("call failed for %s", APP)
        out = stream.getvalue()
        for leaked in (SECRET, BOT, APP, "cG9rX0FiMTI6c2VjcmV0MTIzNA"):
            assert leaked not in out
        assert "Traceback (most recent call last)" in out
        assert "RuntimeError: Polaris refused Authorization: [REDACTED] token [REDACTED]" in out
        assert "KeyError" in out  # the chained cause is still shown
        assert "call failed for [REDACTED]" in out

    def test_exc_info_tuple(self, captured):
        logger, stream = captured
        try:
            raise ValueError(USER)
        except ValueError:
            logger.error("boom", exc_info=sys.exc_info())
        out = stream.getvalue()
        assert USER not in out and "ValueError: [REDACTED]" in out

    def test_record_is_frozen(self):
        f = RedactingFilter()
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (BOT,), None)
        assert f.filter(record) is True
        assert record.args is None
        assert record.msg == f"token {MASK}"
        assert record.getMessage() == f"token {MASK}"
        assert f.filter(record) is True  # second handler: still fine
        assert record.getMessage() == f"token {MASK}"

    def test_two_handlers_both_redacted(self):
        streams = [io.StringIO(), io.StringIO()]
        logger = logging.getLogger("test_redact.two")
        logger.handlers = []
        for s in streams:
            h = logging.StreamHandler(s)
            h.addFilter(RedactingFilter())
            logger.addHandler(h)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        try:
            try:
                raise OSError(APP)
            except OSError:
                logger.exception("x %s", BOT)
        finally:
            logger.handlers = []
        for s in streams:
            out = s.getvalue()
            assert out and APP not in out and BOT not in out


# ------------------------------------------------------------------------------------------ install
class TestInstall:
    def test_install_adds_handler_with_filter(self):
        with bare_root_logger() as bare_root:
            self._adds_handler(bare_root)

    def _adds_handler(self, bare_root):
        install(logging.DEBUG)
        assert len(bare_root.handlers) == 1
        handler = bare_root.handlers[0]
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        assert bare_root.level == logging.DEBUG

    def test_install_is_idempotent(self):
        with bare_root_logger() as bare_root:
            self._idempotent(bare_root)

    def _idempotent(self, bare_root):
        install()
        install()
        install(logging.WARNING)
        assert len(bare_root.handlers) == 1
        assert sum(isinstance(f, RedactingFilter) for f in bare_root.handlers[0].filters) == 1
        assert bare_root.level == logging.WARNING

    def test_install_covers_existing_handlers(self):
        with bare_root_logger() as bare_root:
            self._existing(bare_root)

    def _existing(self, bare_root):
        handlers = [logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())]
        for h in handlers:
            bare_root.addHandler(h)
        install()
        install()
        assert bare_root.handlers == handlers
        for h in handlers:
            assert sum(isinstance(f, RedactingFilter) for f in h.filters) == 1

    def test_library_logger_is_redacted_end_to_end(self):
        with bare_root_logger() as bare_root:
            self._end_to_end(bare_root)

    def _end_to_end(self, bare_root):
        install(logging.DEBUG)
        assert type(bare_root.handlers[0]) is logging.StreamHandler
        stream = io.StringIO()
        bare_root.handlers[0].setStream(stream)
        register([SECRET])
        lib = logging.getLogger("slack_sdk.web.base_client.test")
        lib.debug("Sending a request - headers: %s", {"Authorization": f"Bearer {BOT}", "X-Secret": SECRET})
        try:
            raise ConnectionError(f"https://api.imply.io key={POK}")
        except ConnectionError:
            logging.getLogger("urllib3.test").exception("retrying")
        out = stream.getvalue()
        assert "Sending a request" in out and "retrying" in out and "ConnectionError" in out
        for leaked in (BOT, SECRET, POK):
            assert leaked not in out
