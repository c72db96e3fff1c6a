"""Pieces of the demo console (``standins.console``): the movable clock (``wait 2h``), the request form as a text
form to fill in, and the Events API body of opening the App Home."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from typing import Callable

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """``"90"``, ``"30m"``, ``"2h"``, ``"3d"``, and what the bot reads (``1h30m``, ``2 hours``) -> seconds;
    ``None`` when it is none of those."""
    m = _DURATION.match(text or "")
    if m:
        return float(int(m.group(1)) * _UNITS[m.group(2).lower()])
    from bot.commands import UsageError
    from bot.durations import split_duration

    try:
        seconds, rest = split_duration(f"for {text}")
    except UsageError:
        return None
    return float(seconds) if seconds is not None and not rest else None


class DemoClock:
    """The core's clock (aware UTC now) plus an offset the console moves forward with ``wait``."""

    def __init__(self, real: Callable[[], dt.datetime]):
        self.real, self.offset = real, dt.timedelta()

    def __call__(self) -> dt.datetime:
        return self.real() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


def home_opened_body(user_id: str) -> str:
    """The JSON body Slack sends when ``user_id`` opens the bot's App Home tab."""
    return json.dumps(
        {
            "token": "demo",
            "team_id": "T0STANDIN",
            "api_app_id": "A0DEMO",
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0STANDIN", "user_id": "U0BOT", "is_bot": True}],
            "event": {"type": "app_home_opened", "user": user_id, "channel": "D" + user_id, "tab": "home"},
        }
    )


def user_change_body(user: dict) -> str:
    """The JSON body Slack sends when a workspace member's account changes (``user_change``), e.g. deactivated."""
    return json.dumps(
        {
            "token": "demo",
            "team_id": "T0STANDIN",
            "api_app_id": "A0DEMO",
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "event": {"type": "user_change", "user": user},
        }
    )


def _plain(obj) -> str:
    return str((obj or {}).get("text", "")) if isinstance(obj, dict) else str(obj or "")


def _options(element: dict) -> list[tuple[str, str]]:
    """(label, value) of a select's options, option groups flattened."""
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return [(_plain(o.get("text")), str(o.get("value"))) for o in options]


def fill_form(view: dict, ask: Callable[[str], str | None], say: Callable[[str], None]) -> dict | None:
    """Ask for each input of a modal ``view`` as a text form: a select by number or name, a text input as a line.
    ``ask(prompt)`` returns the line typed (``None`` at the end of input). Returns the ``state.values`` of the
    submission, or ``None`` when the person closed the form (an empty answer to a required select)."""
    values: dict = {}
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            continue
        element, label = block.get("element") or {}, _plain(block.get("label"))
        block_id, action_id = block.get("block_id"), element.get("action_id")
        kind = element.get("type")
        if kind == "static_select":
            options = _options(element)
            for i, (name, _value) in enumerate(options, 1):
                say(f"  {i:>2}. {name}")
            chosen = _choose(options, ask(f"{label} (a number or a name; empty closes the form): "), say, ask)
            if chosen is None:
                return None
            name, value = chosen
            selected = {"text": {"type": "plain_text", "text": name}, "value": value}
            values[block_id] = {action_id: {"type": kind, "selected_option": selected}}
        elif kind == "radio_buttons":
            options = _options(element)
            for i, (name, _value) in enumerate(options, 1):
                say(f"  {i:>2}. {name}")
            start = element.get("initial_option") or {}
            answer = ask(f"{label} (a number or a name; empty: {_plain(start.get('text')) or 'none'}): ")
            chosen = _choose(options, answer, say, ask) if answer and answer.strip() else None
            value = chosen[1] if chosen else start.get("value")
            values[block_id] = {action_id: {"type": kind, "selected_option": {"value": value} if value else None}}
        elif kind == "multi_static_select":
            values[block_id] = {action_id: {"type": kind, "selected_options": _choose_many(block, element, ask, say)}}
        elif kind == "plain_text_input":
            optional = " (optional)" if block.get("optional") else ""
            start = element.get("initial_value") or ""
            shown = f" (empty: {start})" if start else optional
            typed = ask(f"{label}{shown}: ") or start
            values[block_id] = {action_id: {"type": kind, "value": typed or None}}
    return values


def _choose_many(block: dict, element: dict, ask, say) -> list[dict]:
    """A multi_static_select as a text field: numbers or names separated by commas; empty keeps the
    ``initial_options``. Unknown entries are said and skipped."""
    options = _options(element)
    for i, (name, _value) in enumerate(options, 1):
        say(f"  {i:>2}. {name}")
    initial = element.get("initial_options") or []
    start = [str(o.get("value")) for o in initial]
    hint = ", ".join(_plain((o.get("text") or {}).get("text")) or str(o.get("value")) for o in initial) or "none"
    answer = ask(f"{_plain(block.get('label'))} (numbers or names, separated by commas; - for none; empty: {hint}): ")
    answer = answer or ""
    if answer.strip() == "-":  # as clearing every chosen option in Slack
        return []
    if not answer.strip():
        return [{"value": v} for v in start]
    chosen: list[dict] = []
    for part in answer.split(","):
        part = part.strip()
        if not part:
            continue
        found = options[int(part) - 1] if part.isdigit() and 1 <= int(part) <= len(options) else None
        found = found or next((o for o in options if o[0].lower() == part.lower()), None)
        if found is None:
            say(f"  No option {part!r}; skipped.")
        elif {"value": found[1]} not in chosen:
            chosen.append({"value": found[1]})
    return chosen


def _choose(options, answer, say, ask, tries: int = 2):
    for _ in range(tries):
        if answer is None or not answer.strip():
            return None
        answer = answer.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return options[int(answer) - 1]
        exact = [o for o in options if o[0].lower() == answer.lower()]
        if exact:
            return exact[0]
        say(f"  No option {answer!r}: give its number (1 to {len(options)}) or its name.")
        answer = ask("  again: ")
    return None


def submission_body(view: dict, view_id: str, user_id: str, user_name: str, values: dict) -> dict:
    """The ``view_submission`` payload Slack sends when the form is submitted."""
    return {
        "type": "view_submission",
        "team": {"id": "T0STANDIN"},
        "user": {"id": user_id, "name": user_name},
        "api_app_id": "A0DEMO",
        "trigger_id": f"{int(time.time())}.demo",
        "view": {
            "id": view_id,
            "type": "modal",
            "callback_id": view.get("callback_id"),
            "private_metadata": view.get("private_metadata", ""),
            "state": {"values": values},
        },
    }
