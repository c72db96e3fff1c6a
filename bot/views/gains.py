"""The approval card's "what they gain" section (:func:`gain_blocks`): the group's permissions the person does
not already have through other groups (:class:`bot.grants.Gains`), organization-level ones flagged (and the
privileged ones among them, :mod:`bot.privilege`), and what they already have summed up in one line.

Within Block Kit limits however many permissions: one section (at most 3000 characters, organization-level
permissions first, project-scoped ones grouped by resource, 12 names a line, cut with "…and N more") and one
context line.
"""

from __future__ import annotations

from typing import Mapping

from .. import privilege
from ..grants import Gains
from ..polaris import Group, Permission
from .blocks import bullet_list, context, esc, permission_lines, section

#: Lines of gained permissions shown on the card before "…and N more".
GAIN_LINES_MAX = 20


def _plural(n: int, word: str = "permission") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def gain_lines(gained: tuple[Permission, ...], labels: Mapping[str, str] | None = None) -> list[str]:
    """One escaped line per organization-level permission gained (flagged, privileged ones marked), then the
    project-scoped ones by resource (:func:`bot.views.blocks.permission_lines`; ``labels``: resource -> a
    project's name)."""
    org = list(dict.fromkeys(p.name for p in gained if not p.resources))
    lines = []
    for name in org:
        flag = " :rotating_light: privileged" if privilege.is_privileged_permission(Permission(name)) else ""
        lines.append(f":office: *{esc(name)}* — organization level{flag}")
    return lines + permission_lines([p for p in gained if p.resources], labels)


def summary(gains: Gains) -> str:
    """The one line saying what they already have ("Already has 5 of these 7 through other groups."), or why
    everything is listed (a new account; Polaris could not be read)."""
    total = gains.total
    every = f"all {_plural(total)} of the group are" if total != 1 else "the group's one permission is"
    if gains.unread:
        return f":warning: Could not read what they already have (Polaris: `{esc(gains.unread)}`): {every} listed."
    if gains.new_account:
        return f"A new Polaris account: {every} new to them."
    when = f" (read from Polaris {gains.read_at:%Y-%m-%d %H:%M} UTC)" if gains.read_at else ""
    if not gains.already:
        return f"Has none of these {total} yet{when}." if total != 1 else f"Does not have it yet{when}."
    if gains.already >= total:
        return f"Already has {'it' if total == 1 else f'all {total}'} through other groups{when}."
    return f"Already has {gains.already} of these {total} through other groups{when}."


def gain_blocks(group: Group, gains: Gains) -> list[dict]:
    """The card's blocks for what ``gains`` gives: a section with what is new and a context with the summary."""
    name = esc(group.name)
    if gains.total == 0:
        return [section(f"*{name}* grants no permissions.")]
    if not gains.gained:
        have = f"all {_plural(gains.total)}" if gains.total != 1 else "the one permission"
        head = f"*What they gain*: nothing new — they already have {have} of *{name}*."
        return [section(head), context(summary(gains))]
    verb = "grants" if gains.unread else "gives them"
    head = f"*What {name} {verb}* ({_plural(len(gains.gained))} new):"
    if gains.unread:
        head = f"*{name} grants:*"
    body = bullet_list(gain_lines(gains.gained, gains.labels), limit=GAIN_LINES_MAX)
    return [section(f"{head}\n{body}"), context(summary(gains))]
