"""What the person is told when something fails (bot/access/errors.py).

Moved from tests/bot/test_workflow.py; against the Polaris sandbox (HTTP) and the Slack stand-in, on SQLite or
PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

from standins.polaris_sandbox import Fault
from tests.conftest import REQUESTER


def test_polaris_unauthorized_is_a_clear_message(service, db, sandbox, groups):
    sandbox.add_fault(Fault(status=401, times=None))
    reply = service.handle_command(REQUESTER, "whois")
    assert "API key was refused" in reply.text and "Traceback" not in reply.text


# --------------------------------------------------------------------------- guarded(), without the stand-ins
class FakeAudit:
    def __init__(self):
        self.rows = []

    def record(self, actor, action, **kw):
        self.rows.append((actor, action, kw.get("outcome"), kw.get("detail")))


def _raise(e):
    def work():
        raise e

    return work


def test_usage_error_is_escaped_once_and_audited():
    from bot.access.errors import guarded
    from bot.commands import UsageError

    audit = FakeAudit()
    reply = guarded(audit, "U0A", "x", _raise(UsageError("no group `<b>` & co")))
    assert reply.text == ":warning: no group `&lt;b&gt;` &amp; co"
    assert audit.rows == [("U0A", "command.invalid", "refused", "no group `<b>` & co")]


def test_polaris_slack_and_unexpected_errors():
    from bot.access.errors import SLACK_UNANSWERED, guarded
    from bot.polaris import PolarisUnavailable
    from bot.slack import SlackError

    audit = FakeAudit()
    polaris = guarded(audit, "U0A", "x", _raise(PolarisUnavailable(503, "ServiceUnavailable", "down")))
    assert polaris.text.startswith(":warning: ") and polaris.text.endswith(". Nothing was changed.")
    assert (
        guarded(audit, "U0A", "x", _raise(SlackError("users.info", "ratelimited"))).text
        == f":warning: {SLACK_UNANSWERED}"
    )
    oops = guarded(audit, "U0A", "x", _raise(KeyError("k")))
    assert "Something went wrong on my side (ref `" in oops.text and "nothing was changed" in oops.text
    assert audit.rows == []  # only refusals are audited here; the rest are logged


def test_form_problem_says_what_polaris_said_or_that_something_went_wrong():
    from bot.access.errors import form_problem
    from bot.polaris import PolarisUnavailable

    try:
        raise PolarisUnavailable(503, "ServiceUnavailable", "down")
    except PolarisUnavailable as e:
        assert form_problem(e).endswith(". Please try again later.")
    try:
        raise RuntimeError("x")
    except RuntimeError as e:
        assert form_problem(e) == "Something went wrong on my side. Please try again later."
