"""Letting a person or an event in: the Slack identity check, the per-person command rate limit, the
``command`` audit row every attempt writes, and the once-only check of an Events API delivery.

:meth:`Admission.admit` returns a refusal (a sentence) or ``None``; it raises :class:`bot.slack.SlackError`
when Slack cannot be asked (:mod:`bot.access.errors` says what the person is told).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ..models import CommandWindow, SlackEvent
from ..slack import SlackError
from .context import Context
from .errors import SLACK_UNANSWERED


WINDOW = dt.timedelta(seconds=60)


def _window_upsert(session, user_id: str, now: dt.datetime):
    """``INSERT … ON CONFLICT DO UPDATE … RETURNING count`` of ``user_id``'s window at ``now``: a window older
    than :data:`WINDOW` starts again at 1, else its count goes up by one."""
    table = CommandWindow.__table__
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(user_id=user_id, started_at=now, count=1)
    stale = table.c.started_at <= now - WINDOW
    return stmt.on_conflict_do_update(
        index_elements=[table.c.user_id],
        set_={
            "count": case((stale, 1), else_=table.c.count + 1),
            "started_at": case((stale, now), else_=table.c.started_at),
        },
    ).returning(table.c.count)


class Admission:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def admit(self, user_id: str, shown: str, *, check_identity: bool = True, need_email: bool = False) -> str | None:
        """Let a command in, or say why not: a guest, bot or deactivated account (``users.info``, 60 s
        cache), a profile without an email when ``need_email``, or over the per-person rate limit. Every
        attempt is a ``command`` audit row; the rate limit is counted and the row written in one transaction.
        Raises :class:`SlackError` when Slack cannot be asked."""
        ctx = self.ctx
        if check_identity:
            identity = ctx.slack.identity(user_id, max_age=60)
            if identity.barred or need_email:
                why = identity.refusal()
                if why:
                    ctx.audit.record(user_id, "command", outcome="refused", detail=f"{why} ({shown})")
                    return why
        with ctx.db.session() as s:
            over = self.over_command_limit(user_id, session=s)
            ctx.audit.record(
                user_id,
                "command",
                session=s,
                outcome="refused" if over else "ok",
                detail=f"rate limited: {shown}" if over else shown,
            )
        if over:
            return (
                f"You have sent more than {ctx.settings.max_commands_per_minute} commands in a minute; "
                "please wait a moment."
            )
        return None

    def over_command_limit(self, user_id: str, *, session=None) -> bool:
        """Count one command by ``user_id`` and say whether it is over ``MAX_COMMANDS_PER_MINUTE``: True when
        the person already sent that many in the window that started with their first command of the last 60 s.
        One upsert of their ``command_windows`` row (revision 0009), atomic on SQLite and PostgreSQL, so every
        process counts in the same window; ``session``: the transaction to count in (the ``command`` audit
        row's)."""
        if session is None:
            with self.ctx.db.session() as s:
                return self.over_command_limit(user_id, session=s)
        now = self.ctx.clock()
        count = session.execute(_window_upsert(session, user_id, now)).scalar_one()
        return count > self.ctx.settings.max_commands_per_minute

    def form_refusal(self, user_id: str) -> str | None:
        """Before the request form opens (``/polaris request`` with no arguments): admitted like a command
        (audited, rate limited, refused for guests, bots and deactivated accounts) and refused for a profile
        without an email. Returns the refusal or ``None``."""
        try:
            return self.admit(user_id, "request form", need_email=True)
        except SlackError:
            return SLACK_UNANSWERED

    def first_delivery(self, event_id: str) -> bool:
        """True the first time an Events API ``event_id`` is seen (Slack retries up to 3 times); recorded in
        ``slack_events`` so every process agrees."""
        if not event_id:
            return True
        try:
            with self.ctx.db.session() as s:
                s.add(SlackEvent(event_id=event_id[:64], received_at=self.ctx.clock()))
            return True
        except IntegrityError:
            return False
