"""The ``view_submission`` of the request form, the Deny form (a reason) and the Approve form (a comment, a
shorter time). Each answers at once: a bad field keeps the form open with ``response_action: errors``; the rest is
handed to a work lane."""

from __future__ import annotations

import json

from slack_bolt import Ack, App

from bot import views
from bot.commands import REASON_MAX, UsageError
from bot.durations import parse_duration
from bot.lanes import POLARIS

from .commands import BUSY
from .payload import REQUEST_ID, dig, text, user_id


def register(app: App, service) -> None:
    @app.view(views.REQUEST_MODAL)
    def submit_request(ack: Ack, body: dict, view: dict) -> None:
        values = dig(view, "state", "values")
        group_id = text(values, "group", "value", "selected_option", "value", limit=65)
        reason = dig(values, "reason", "value", "value")
        reason = reason if isinstance(reason, str) else ""
        if not group_id or len(group_id) > 64:
            ack(response_action="errors", errors={"group": "Choose a group."})
            return
        typed = text(values, "duration", "value", "value", limit=200).strip()
        duration = None
        if typed:
            try:  # pure parsing; the group's maximum is checked by the core, which answers by DM
                duration = parse_duration(typed[4:] if typed.lower().startswith("for ") else typed)
            except UsageError as e:
                ack(response_action="errors", errors={"duration": str(e).replace("`", "")})
                return
        if len(reason) > REASON_MAX:
            from bot.commands import reason_too_long  # its real length and the limit, as commands say it

            ack(response_action="errors", errors={"reason": reason_too_long(len(reason))})
            return
        who = user_id(body, "user", "id")
        if who is None:
            ack()
            return

        def work() -> None:
            service.submit_form_and_tell(who, group_id, reason, duration)

        # Handed off before the ack (which Bolt sends when this returns), so a full work lane keeps the form
        # open with the busy answer instead of dropping the submission.
        if service.background(work, lane=POLARIS):
            ack()
        else:
            ack(response_action="errors", errors={"group": BUSY.removeprefix(":hourglass: ")})

    register_decision_forms(app, service)
    register_group_form(app, service)
    register_user_form(app, service)


def _selected(values: dict, block: str, action: str) -> list[str]:
    """The values of a multi_static_select's chosen options (at most 100, each at most 150 characters)."""
    chosen = dig(values, block, action, "selected_options")
    if not isinstance(chosen, list):
        return []
    return [str(o.get("value"))[:150] for o in chosen[:100] if isinstance(o, dict) and o.get("value")]


def register_group_form(app: App, service) -> None:
    """The group form's submission (``create-group``, ``edit-group``): fields to fix keep it open
    (``response_action: errors``); the rest is handed to a work lane, answered by DM."""
    g = views.groups

    @app.view(g.GROUP_MODAL)
    def submit_group(ack: Ack, body: dict, view: dict) -> None:
        values = dig(view, "state", "values")
        if not isinstance(values, dict) or g.GROUP_NAME_BLOCK not in values:  # the loading or refusal modal
            ack()
            return
        name = dig(values, g.GROUP_NAME_BLOCK, g.GROUP_NAME_ACTION, "value")
        form = {
            "name": name if isinstance(name, str) else "",
            "permissions": _selected(values, g.GROUP_PERMS_BLOCK, g.GROUP_PERMS_ACTION),
            "scope": text(values, g.GROUP_SCOPE_BLOCK, g.GROUP_SCOPE_ACTION, "selected_option", "value", limit=10),
            "projects": _selected(values, g.GROUP_PROJECTS_BLOCK, g.GROUP_PROJECTS_ACTION),
            "group_id": text(view, "private_metadata", limit=64),
        }
        who = user_id(body, "user", "id")
        if who is None:
            ack()
            return
        errors = service.group_form_errors(form)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        if service.background(lambda: service.submit_group_form_and_tell(who, form), lane=POLARIS):
            ack()
        else:
            ack(response_action="errors", errors={g.GROUP_NAME_BLOCK: BUSY.removeprefix(":hourglass: ")})


def register_user_form(app: App, service) -> None:
    """The user form's submission (``update-user``): bad names or no change keep it open
    (``response_action: errors``); the rest is handed to a work lane, answered by DM."""
    u = views.users

    @app.view(u.USER_MODAL)
    def submit_user(ack: Ack, body: dict, view: dict) -> None:
        values = dig(view, "state", "values")
        who = user_id(body, "user", "id")
        if not isinstance(values, dict) or who is None:
            ack()
            return
        first, last = (
            dig(values, u.FIRST_BLOCK, u.FIRST_ACTION, "value"),
            dig(values, u.LAST_BLOCK, u.LAST_ACTION, "value"),
        )
        try:
            meta = json.loads(text(view, "private_metadata", limit=3000) or "{}")
        except ValueError:
            meta = {}
        form = {
            "first": first if isinstance(first, str) else "",
            "last": last if isinstance(last, str) else "",
            "enabled": text(values, u.ENABLED_BLOCK, u.ENABLED_ACTION, "selected_option", "value", limit=20)
            == u.ENABLED,
            "meta": meta if isinstance(meta, dict) else {},
        }
        errors = service.user_form_errors(form)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        if service.background(lambda: service.submit_user_form_and_tell(who, form), lane=POLARIS):
            ack()
        else:
            ack(response_action="errors", errors={u.FIRST_BLOCK: BUSY.removeprefix(":hourglass: ")})


def register_decision_forms(app: App, service) -> None:
    """The Deny and Approve forms' submissions."""

    def decision(ack: Ack, body: dict, view: dict, approve: bool) -> None:
        """A Deny or Approve form: the request ID in ``private_metadata``; the reason (required when the policy
        says so) or comment at most 500 characters, refused when longer (never cut)."""
        values = dig(view, "state", "values")
        rid = text(view, "private_metadata", limit=64)
        block = "comment" if approve else "reason"
        note = dig(values, block, "value", "value")
        note = note.strip() if isinstance(note, str) else ""
        chosen = text(values, "duration", "value", "selected_option", "value", limit=12)
        who = user_id(body, "user", "id")
        if who is None or not REQUEST_ID.match(rid):
            ack()
            return
        if len(note) > REASON_MAX:
            from bot.commands import reason_too_long

            ack(response_action="errors", errors={block: reason_too_long(len(note))})
            return
        if not approve and not note and service.deny_reason_required(rid):
            ack(response_action="errors", errors={"reason": "A reason is required to deny this request."})
            return
        duration = int(chosen) if chosen.isascii() and chosen.isdigit() else None

        def work() -> None:
            service.submit_decision_form(rid, who, approve=approve, note=note, duration=duration)

        if service.background(work, lane=POLARIS):
            ack()
        else:
            ack(response_action="errors", errors={block: BUSY.removeprefix(":hourglass: ")})

    @app.view(views.DENY_MODAL)
    def submit_deny(ack: Ack, body: dict, view: dict) -> None:
        decision(ack, body, view, approve=False)

    @app.view(views.APPROVE_MODAL)
    def submit_approve(ack: Ack, body: dict, view: dict) -> None:
        decision(ack, body, view, approve=True)
