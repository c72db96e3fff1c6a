"""Approval card buttons (``block_actions``): Approve, Deny, Retry."""
from __future__ import annotations

import re

from slack_bolt import Ack, App, Respond

from bot import views

_REQUEST_ID = re.compile(r"^[0-9a-f-]{36}$")


def _request_id(body: dict) -> str | None:
    actions = body.get("actions") or [{}]
    value = str(actions[0].get("value") or "")
    return value if _REQUEST_ID.match(value) else None


def register(app: App, service) -> None:
    def decide(ack: Ack, body: dict, respond: Respond, approve: bool) -> None:
        ack()
        user_id = str((body.get("user") or {}).get("id", ""))
        request_id = _request_id(body)
        if request_id is None:
            service.audit.record(user_id, "decision.refused", outcome="refused", detail="malformed button value")
            respond(text="That button is not a valid access request.", response_type="ephemeral", replace_original=False)
            return
        message = service.decide(request_id, user_id, approve=approve)
        if message:
            respond(text=message, response_type="ephemeral", replace_original=False)

    @app.action(views.APPROVE_ACTION)
    def approve(ack: Ack, body: dict, respond: Respond) -> None:
        decide(ack, body, respond, True)

    @app.action(views.DENY_ACTION)
    def deny(ack: Ack, body: dict, respond: Respond) -> None:
        decide(ack, body, respond, False)

    @app.action(views.RETRY_ACTION)
    def retry(ack: Ack, body: dict, respond: Respond) -> None:
        ack()
        user_id = str((body.get("user") or {}).get("id", ""))
        request_id = _request_id(body)
        message = (service.retry(request_id, user_id) if request_id else "That button is not a valid access request.")
        if message:
            respond(text=message, response_type="ephemeral", replace_original=False)
