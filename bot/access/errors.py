"""The one place that turns a failure into what the person is told.

- :class:`bot.commands.UsageError`: bad input or a refusal; its text (which quotes what people typed) is escaped
  here, once, and audited as ``command.invalid``.
- :class:`bot.polaris.PolarisError`: Polaris's own plain message, redacted, and "Nothing was changed".
- :class:`bot.slack.SlackError`: :data:`SLACK_UNANSWERED`.
- a decision whose checks Polaris or Slack could not answer: :data:`AUTHORITY_UNCHECKABLE`,
  :data:`EARLIER_APPROVALS_UNCHECKABLE`, :data:`GROUP_GONE` (used by :mod:`bot.access.decisions`).
- anything else: logged with a short reference that the person is given; nothing was changed.

:func:`guarded` applies this to a command's work (never raises); :func:`form_problem` is the same mapping for
the request form's modal, whose text is shown in the form.
"""

from __future__ import annotations

import contextlib

import logging
import uuid
from typing import Callable

from .. import metrics, views
from ..audit import AuditLog, audit_context
from ..commands import UsageError
from ..polaris import PolarisError
from ..redact import redact
from ..slack import SlackError
from .reply import Reply

log = logging.getLogger(__name__)

SLACK_UNANSWERED = "Slack did not answer a lookup I needed; please try again in a moment."
#: A click whose authority check needed Polaris or Slack, and they did not answer (nothing was decided).
AUTHORITY_UNCHECKABLE = "I could not check your authority right now (Polaris or Slack did not answer); try again."
#: The same for the earlier approvals of a two-person rule, re-checked when the last one arrives.
EARLIER_APPROVALS_UNCHECKABLE = "I could not re-check the earlier approvals right now; try again."
#: Retry of a request whose group Polaris no longer has (404): no Retry can apply it.
GROUP_GONE = (
    "The group of this request no longer exists in Polaris, so it cannot be applied; the requester can ask for a "
    "current group (`/polaris groups` lists them)."
)


def guarded(audit: AuditLog, user_id: str, shown: str, work: Callable[[], Reply]) -> Reply:
    """Run ``work`` turning every failure into a :class:`Reply` for the person (never raises). Each answer is
    counted in ``commands_total`` (:func:`bot.metrics.count_command`) under its outcome."""
    name = "request-form" if shown == "request form" else shown
    try:
        batch = getattr(audit, "batch", contextlib.nullcontext)  # its Polaris call and Slack rows together, at the end
        with audit_context(user_id), batch():
            reply = work()
        metrics.count_command(name, "refused" if reply.text.startswith(":no_entry:") else "ok")
        return reply
    except UsageError as e:
        audit.record(user_id, "command.invalid", outcome="refused", detail=str(e))
        metrics.count_command(name, "invalid")
        return Reply(f":warning: {views.esc(e)}")  # messages quote what people typed: escaped here, once
    except PolarisError as e:
        log.warning("command %r failed in Polaris: %s", shown[:40], e)
        metrics.count_command(name, "polaris_error")
        return Reply(f":warning: {views.esc(redact(e.plain()))}. Nothing was changed.")
    except SlackError as e:
        log.warning("command failed in Slack: %s", e)
        metrics.count_command(name, "slack_error")
        return Reply(f":warning: {SLACK_UNANSWERED}")
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("command failed (ref %s)", ref)
        metrics.count_command(name, "error")
        return Reply(f":warning: Something went wrong on my side (ref `{ref}`); nothing was changed.")


def form_problem(error: Exception) -> str:
    """What the request form shows when filling it failed (Polaris down, ...): the error's plain text, or, for
    an unexpected error (logged), that something went wrong; escaped for the modal."""
    plain = getattr(error, "plain", None)
    if plain is None:
        log.exception("request form failed")
    message = (plain() if plain else "Something went wrong on my side") + ". Please try again later."
    return views.esc(message)
