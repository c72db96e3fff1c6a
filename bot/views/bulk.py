"""A bulk invite (``invite a@x b@y <group>``, kind ``invite_many``): its people and their per-person state, kept
in the request's JSON ``plan`` column, and the words the card, the reply and the requester's DM use for them.

The plan is ``{"people": [person, ...]}``; a person is a dict with ``email``, ``slack_id`` (or ``None``),
``first``/``last`` (names from the Slack profile, for a new account), ``user_id`` (the Polaris user, once known),
``state`` (one of :data:`PERSON_STATES`), ``why`` (a sentence: why dropped or failed) and, for a create whose
answer may be lost, ``create_started`` (ISO time committed just before ``POST /v1/users``).
"""

from __future__ import annotations

import hashlib
import json

from ..models import AccessRequest
from .blocks import SECTION_MAX, clip, esc, mention, section

#: At most this many people in one bulk invite: one card line each within Block Kit's text limits.
MAX_PEOPLE = 25

ASKED = "asked"  # waiting for the decision / the apply
ADDING = "adding"  # committed just before the one ``POST /v1/groups/{id}/members``
CREATING = "creating"  # committed just before its ``POST /v1/users``
MEMBER = "member"  # already a member when applied: done, nothing sent
ADDED = "added"  # added by the members POST
CREATED = "created"  # a new account made with the group
DROPPED = "dropped"  # not given access at apply (deactivated, guest or bot in Slack; a disabled account)
FAILED_P = "failed"  # Polaris refused this person's write
PERSON_STATES = (ASKED, ADDING, CREATING, MEMBER, ADDED, CREATED, DROPPED, FAILED_P)
DONE = (MEMBER, ADDED, CREATED)  # has the membership
SETTLED = (*DONE, DROPPED, FAILED_P)  # nothing more will be sent for them

_WORDS = {
    ASKED: "asked",
    ADDING: "being added",
    CREATING: "account being created",
    MEMBER: "already a member",
    ADDED: "added",
    CREATED: "account created",
    DROPPED: "dropped",
    FAILED_P: "failed",
}


def person(email: str, slack_id: str | None, first: str = "", last: str = "", user_id: str | None = None) -> dict:
    """A new person of a bulk invite, in state :data:`ASKED`."""
    return {
        "email": email.lower(),
        "slack_id": slack_id,
        "first": first,
        "last": last,
        "user_id": user_id,
        "state": ASKED,
        "why": "",
    }


def people_of(req: AccessRequest) -> list[dict]:
    """The people of ``req``'s plan (a list of person dicts, see the module docstring); ``[]`` when unreadable."""
    try:
        plan = json.loads(req.plan) if req.plan else {}
    except ValueError:
        return []
    people = plan.get("people") if isinstance(plan, dict) else None
    return [p for p in people if isinstance(p, dict) and p.get("email")] if isinstance(people, list) else []


def plan_json(people: list[dict]) -> str:
    """The ``plan`` column's text for ``people``."""
    return json.dumps({"people": people}, sort_keys=True)


def plan_names(email: str) -> str:
    """The text :func:`plan_json` writes for a person's ``email`` (lower case), to find the plans naming them with
    a ``LIKE`` (``/polaris audit <email>``)."""
    return f'"email": {json.dumps(email.lower())}'


def target_label(emails: list[str]) -> str:
    """The request's ``target_email`` (the audit's ``target``; with the group, its open key): the people sorted,
    ``3 people: a@x, b@y, c@z``; over 320 characters, cut and ended with a digest of the whole set, so one set
    of people has one label and two sets never share one."""
    people = sorted({e.lower() for e in emails})
    text = f"{len(people)} people: " + ", ".join(people)
    if len(text) <= 320:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return text[:300] + f"… #{digest}"


def phrase(req: AccessRequest) -> str:
    """What a bulk invite is for, escaped: "access to *Viewer* for 3 people"."""
    n = len(people_of(req))
    return f"access to *{esc(req.group_name)}* for {n} {'person' if n == 1 else 'people'}"


def _line(p: dict, *, show_state: bool) -> str:
    who = f"{mention(p['slack_id'])} (`{esc(p['email'])}`)" if p.get("slack_id") else f"`{esc(p['email'])}`"
    if not p.get("user_id") and p.get("state") in (ASKED, CREATING, CREATED):
        full = clip(" ".join(n for n in (p.get("first"), p.get("last")) if n), 100)
        who += f" — new account ({esc(full) + ', from Slack' if full else 'names unknown'})"
    if not show_state:
        return who
    state = p.get("state", ASKED)
    why = f": {esc(clip(p['why'], 300))}" if p.get("why") else ""
    return f"{who} — *{_WORDS.get(state, esc(state))}*{why}"


def people_blocks(req: AccessRequest, *, show_state: bool) -> list[dict]:
    """The card's list of people: every person, one line each (with their state once the request is decided),
    in as many sections as their lines need, each within Block Kit's 3,000 characters (a long reason or name
    is cut, never a person left out: the approver sees everyone they grant)."""
    people = people_of(req)
    texts = [f"*People ({len(people)})*"]
    for p in people:
        line = "• " + _line(p, show_state=show_state)
        if len(texts[-1]) + 1 + len(line) > SECTION_MAX - 100:
            texts.append(line)
        else:
            texts[-1] += "\n" + line
    return [section(text) for text in texts]


def outcome(people: list[dict]) -> str:
    """The apply's outcome, one clause per person (plain text, not escaped: the card and DM escape it)."""
    parts = []
    for p in people:
        why = f" ({p['why']})" if p.get("why") else ""
        parts.append(f"{p['email']}: {_WORDS.get(p.get('state'), p.get('state'))}{why}")
    done = sum(1 for p in people if p.get("state") in DONE)
    return f"{done} of {len(people)} have the membership. " + "; ".join(parts) + "."


def invitee_note(req: AccessRequest, p: dict) -> str:
    """The DM to one person a bulk invite gave the membership (mrkdwn, escaped), as a one-person invite's."""
    what = "a Polaris account was created for you in" if p.get("state") == CREATED else "you are now a member of"
    return (
        f"For your information: {mention(req.requester_id)} invited you to Polaris, approved by "
        f"{mention(req.decided_by)}: {what} *{esc(req.group_name)}* (`{esc(p['email'])}`, request `{req.id[:8]}`)."
    )
