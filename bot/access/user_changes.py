"""What ``/polaris update-user`` changes on a Polaris user (:class:`UserChange`), pure: no I/O.

A change is the user's first name, last name and ``enabled`` flag as the admin left them in the modal. It is
checked field by field (:func:`check_fields`, the ``response_action: errors`` of the modal's
``view_submission``), kept in an access request's JSON ``plan`` (:meth:`UserChange.plan` /
:meth:`UserChange.from_plan`), shown on the card as before → after (:meth:`UserChange.lines`) and applied as
the ``change`` of :meth:`bot.polaris.PolarisClient.update_user` (GET, change, PUT of the whole user:
:meth:`UserChange.apply` touches only ``firstName``, ``lastName`` and ``enabled``; everything else Polaris
returned is sent back as it was, following the Identity API's ``PUT /v1/users/{id}``, which replaces the user).

Used by :mod:`bot.access.user_updates` (``/polaris update-user``, its form) and :mod:`bot.access.user_side`
(the apply).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..commands import clean
from ..polaris import User

#: Longest first or last name accepted, in characters (the request row keeps names in ``String(200)``).
NAME_MAX = 200
#: ``block_id`` of each modal input, the keys of :func:`check_fields`'s answer.
FIRST_BLOCK, LAST_BLOCK, ENABLED_BLOCK = "first_name", "last_name", "enabled"


def check_fields(first: str | None, last: str | None) -> dict[str, str]:
    """The modal's errors, ``{block_id: sentence}`` (empty when both names are fine), for Slack's
    ``{"response_action": "errors", "errors": ...}``. A name is cleaned (:func:`bot.commands.clean`: NFC,
    control characters dropped, whitespace folded) before it is measured; empty or over :data:`NAME_MAX`
    characters is refused with its length."""
    errors = {}
    for block, label, value in ((FIRST_BLOCK, "first", first), (LAST_BLOCK, "last", last)):
        text = clean(value, limit=None)
        if not text:
            errors[block] = f"Give a {label} name."
        elif len(text) > NAME_MAX:
            errors[block] = f"That {label} name is {len(text):,} characters long; the limit is {NAME_MAX}."
    return errors


@dataclass(frozen=True)
class UserChange:
    """The names and ``enabled`` flag a user is to have after the change (cleaned, each ≤ :data:`NAME_MAX`)."""

    first_name: str
    last_name: str
    enabled: bool

    @classmethod
    def of(cls, first: str | None, last: str | None, enabled: bool) -> "UserChange":
        """From the modal's values. Raises :class:`ValueError` with :func:`check_fields`'s sentences when a
        name is empty or too long."""
        errors = check_fields(first, last)
        if errors:
            raise ValueError(" ".join(errors.values()))
        return cls(clean(first, limit=None), clean(last, limit=None), bool(enabled))

    def plan(self) -> dict:
        """The JSON kept in the request's ``plan`` column: ``{"firstName", "lastName", "enabled"}``."""
        return {"firstName": self.first_name, "lastName": self.last_name, "enabled": self.enabled}

    @classmethod
    def from_plan(cls, plan: dict) -> "UserChange":
        """The change :meth:`plan` wrote. Raises :class:`ValueError` when ``plan`` is not one."""
        try:
            return cls.of(plan["firstName"], plan["lastName"], plan["enabled"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a user change: {e}") from None

    def apply(self, body: dict) -> None:
        """Edit a full PUT body (:meth:`bot.polaris.PolarisClient.put_body`) in place: only ``firstName``,
        ``lastName`` and ``enabled``."""
        body["firstName"] = self.first_name
        body["lastName"] = self.last_name
        body["enabled"] = self.enabled

    def done(self, user: User) -> bool:
        """Whether ``user`` (as Polaris gives it now) already has the change: the ``done`` of
        :meth:`bot.polaris.PolarisClient.update_user` (a PUT whose answer was lost but that landed)."""
        return (user.first_name, user.last_name, user.enabled) == (self.first_name, self.last_name, self.enabled)

    def lines(self, user: User) -> list[str]:
        """Before → after, one plain (unescaped) line per field that changes; ``[]`` when nothing does."""
        out = []
        for label, before, after in (
            ("First name", user.first_name, self.first_name),
            ("Last name", user.last_name, self.last_name),
            ("Enabled", _yes(user.enabled), _yes(self.enabled)),
        ):
            if before != after:
                out.append(f"{label}: {before or '(none)'} → {after}")
        return out

    def disables(self, user: User) -> bool:
        """Whether the change disables ``user`` (an enabled user set to not enabled): the case the last
        enabled Organization Admin's guard must check."""
        return user.enabled and not self.enabled


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
