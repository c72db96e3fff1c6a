"""Buttons (``block_actions``): Approve, Approve with options…, Deny, Retry on the approval card (and on the
reminder and escalation DMs); Cancel in ``status`` and the App Home; Extend and I'm done on the DM before
time-bound access ends. Deny and Approve with options… open a form (``views.open`` with the click's
``trigger_id``, in this thread: it lives 3 seconds)."""

from __future__ import annotations

import re

from slack_bolt import Ack, App, Respond

from bot import views
from bot.lanes import LOCAL, POLARIS

from .commands import BUSY
from .payload import dig, request_id, text, user_id


def register(app: App, service) -> None:
    def handle(ack: Ack, body: dict, respond: Respond, action: str) -> None:
        ack()
        who = user_id(body, "user", "id")
        rid = request_id(body)
        if who is None:
            return

        def work() -> None:
            if rid is None:
                message = service.refuse_malformed_button(who, action)
            elif action == "retry":
                message = service.retry(rid, who)
            elif action == "cancel":
                message = cancel_and_show(service, body, rid, who)
            else:
                message = service.decide(rid, who, approve=(action == "approve"))
            if message:
                respond(text=message, response_type="ephemeral", replace_original=False)

        # A decision reads Polaris (authority, the group); a malformed button is refused locally.
        service.background(
            work,
            on_busy=lambda: respond(text=BUSY, response_type="ephemeral", replace_original=False),
            lane=LOCAL if rid is None else POLARIS,
        )

    @app.action(views.APPROVE_ACTION)
    def approve(ack: Ack, body: dict, respond: Respond) -> None:
        handle(ack, body, respond, "approve")

    @app.action(views.RETRY_ACTION)
    def retry(ack: Ack, body: dict, respond: Respond) -> None:
        handle(ack, body, respond, "retry")

    @app.action(re.compile(rf"^{views.CANCEL_ACTION}(:[0-9a-f]{{8}})?$"))
    def cancel(ack: Ack, body: dict, respond: Respond) -> None:
        handle(ack, body, respond, "cancel")

    register_decision_buttons(app, service)
    register_lease_buttons(app, service)


def register_decision_buttons(app: App, service) -> None:
    """Deny and Approve with options…: each opens its form."""

    def open_form(ack: Ack, body: dict, respond: Respond, approve: bool) -> None:
        ack()
        who, rid = user_id(body, "user", "id"), request_id(body)
        tell = lambda message: service.background(  # noqa: E731
            lambda: respond(text=message, response_type="ephemeral", replace_original=False), lane=LOCAL
        )
        if who is None:
            return
        if rid is None:
            tell(service.refuse_malformed_button(who, "approve" if approve else "deny"))
            return
        view_id, message = service.open_decision_form(text(body, "trigger_id", limit=200), rid, who, approve=approve)
        if message:
            tell(message)
        elif view_id:  # the click-time authority check: a refusal replaces the form
            service.background(lambda: service.check_decision_form(view_id, rid, who, approve=approve))

    @app.action(views.DENY_ACTION)
    def deny(ack: Ack, body: dict, respond: Respond) -> None:
        open_form(ack, body, respond, approve=False)

    @app.action(views.APPROVE_OPTIONS_ACTION)
    def approve_options(ack: Ack, body: dict, respond: Respond) -> None:
        open_form(ack, body, respond, approve=True)


def register_lease_buttons(app: App, service) -> None:
    """Extend and I'm done on the DM before a lease ends."""

    def lease_click(ack: Ack, body: dict, respond: Respond, action: str) -> None:
        """Extend / I'm done on the DM before a lease ends (``value`` = the lease ID)."""
        ack()
        who = user_id(body, "user", "id")
        lease_id = request_id(body)  # a UUID, like a request ID
        if who is None:
            return

        def work() -> None:
            if lease_id is None:
                message = service.refuse_malformed_button(who, action)
            elif action == "extend":
                message = service.extend_lease(lease_id, who).text
            else:
                message = service.end_lease(lease_id, who).text
            respond(text=message, response_type="ephemeral", replace_original=False)

        service.background(work, on_busy=lambda: respond(text=BUSY, response_type="ephemeral", replace_original=False))

    @app.action(views.LEASE_EXTEND_ACTION)
    def lease_extend(ack: Ack, body: dict, respond: Respond) -> None:
        lease_click(ack, body, respond, "extend")

    @app.action(views.LEASE_DONE_ACTION)
    def lease_done(ack: Ack, body: dict, respond: Respond) -> None:
        lease_click(ack, body, respond, "done")


def cancel_and_show(service, body: dict, rid: str, who: str) -> str | None:
    """The Cancel button: the answer for the clicker, or ``None`` when it was pressed on the App Home (which has
    no response_url: the Home tab is published afresh, showing the request cancelled)."""
    message = service.cancel_request(rid, who)
    if dig(body, "container", "type") == "view":
        service.publish_home(who)
        return None
    return message
