"""Paged lookups, within Block Kit limits however large the organization (``shared/slack/README.md``: 50 blocks
a message, 3000 characters a section): ``members <group> [page N]``, ``groups [page N]`` and
``whois [email | @user] [page N]``. Each page is a fixed number of lines packed into as many sections as their
length needs (:func:`packed_sections`), and ends with a context line saying which page of how many, how many in
all, and the command for the next page (:func:`page_line`)."""

from __future__ import annotations

from typing import Sequence

from ..polaris import Group, Permission, User
from .blocks import HEADER_MAX, SECTION_MAX, clip, context, counted, esc, header, permission_lines, section, user_label

MEMBERS_PAGE = 40  # members a page (one Polaris call: top=40, skip=(N-1)*40)
GROUPS_PAGE = 50  # groups a page of /polaris groups
WHOIS_GROUPS_PAGE = 40  # a user's groups a page of whois
WHOIS_PERMISSIONS_PAGE = 30  # effective-permission lines a page of whois
LINE_MAX = 300  # one line of a list, at most


def pages_for(total: int, per_page: int) -> int:
    """How many pages ``total`` items make, ``per_page`` a page (at least 1)."""
    return max(1, -(-total // per_page))


def packed_sections(lines: Sequence[str], *, title: str = "") -> list[dict]:
    """``lines`` (escaped) as ``• line`` bullets packed into sections of at most 3000 characters, ``title``
    (mrkdwn) leading the first; ``_none_`` when there are no lines. Each line is cut to :data:`LINE_MAX`."""
    budget = SECTION_MAX - 50
    chunks: list[str] = []
    current = f"{title}\n" if title else ""
    for line in lines:
        bullet = f"• {clip(line, LINE_MAX)}\n"
        if current and len(current) + len(bullet) > budget:
            chunks.append(current)
            current = ""
        current += bullet
    if not lines:
        current += "_none_"
    chunks.append(current)
    return [section(c.rstrip("\n")) for c in chunks]


def page_line(page: int, pages: int, total: int, noun: str, next_command: str) -> str:
    """ "Page 2 of 7 · 250 members in all · next page: `/polaris members Viewer page 3`" (no next on the last)."""
    head = f"Page {page} of {pages} · {total} {noun} in all"
    return f"{head} · next page: `{next_command}`" if page < pages else head


def quoted(name: str) -> str:
    """A group name as it is typed back: quoted when it has a space (not escaped: the caller escapes)."""
    return f'"{name}"' if " " in name else name


def member_page(group: Group, members: Sequence[User], total: int, page: int) -> tuple[str, list[dict]]:
    """``/polaris members <group> [page N]``: one page of the group's members (:data:`MEMBERS_PAGE`)."""
    pages = pages_for(total, MEMBERS_PAGE)
    noun = "member" if total == 1 else "members"
    first = (page - 1) * MEMBERS_PAGE + 1
    lines = [user_label(m) for m in members]
    blocks = [header(clip(f"Members of {group.name}", HEADER_MAX))]
    blocks += packed_sections(lines, title=f"*{esc(group.name)}*: {_shown(first, len(members), total, 'member')}")
    blocks.append(
        context(page_line(page, pages, total, noun, f"/polaris members {esc(quoted(group.name))} page {page + 1}"))
    )
    return f"{total} {noun} of {esc(group.name)} (page {page} of {pages})", blocks


def _shown(first: int, count: int, total: int, noun: str) -> str:
    """Which of ``total`` a page shows: "3 members" (all of them), "members 41–80 of 250", "member 81 of 81"."""
    if first == 1 and count == total:
        return counted(total, noun)
    if count == 1:
        return f"{noun} {first} of {total}"
    return f"{noun}s {first}–{first + count - 1} of {total}" if count else f"no {noun}s on this page of {total}"


def group_line(g: Group) -> str:
    """One group of ``/polaris groups``: name, predefined or not, members, permissions (escaped)."""
    members = g.user_count if g.user_count is not None else "?"
    n = len(g.permissions)
    return (
        f"*{esc(g.name)}*{' (predefined)' if g.read_only else ''} — "
        f"{members} member{'' if g.user_count == 1 else 's'}, {n} permission{'' if n == 1 else 's'}"
    )


def group_page(groups: Sequence[Group], page: int) -> tuple[str, list[dict]]:
    """``/polaris groups [page N]``: :data:`GROUPS_PAGE` groups a page, in name order."""
    total = len(groups)
    pages = pages_for(total, GROUPS_PAGE)
    shown = groups[(page - 1) * GROUPS_PAGE : page * GROUPS_PAGE]
    blocks = [header("Polaris groups")] + packed_sections([group_line(g) for g in shown])
    if pages > 1:
        blocks.append(context(page_line(page, pages, total, "groups", f"/polaris groups page {page + 1}")))
    suffix = f" (page {page} of {pages})" if pages > 1 else ""
    return f"{total} Polaris groups{suffix}", blocks


def whois_pages(user: User, permissions: Sequence[Permission]) -> int:
    """How many pages ``whois`` takes for ``user``: its groups and its effective-permission lines, paged side
    by side."""
    lines = len(permission_lines(permissions))
    return max(pages_for(len(user.groups), WHOIS_GROUPS_PAGE), pages_for(lines, WHOIS_PERMISSIONS_PAGE))


def whois_page(
    user: User, permissions: Sequence[Permission], *, asked_for: str, page: int, again: str
) -> tuple[str, list[dict]]:
    """``/polaris whois [email | @user] [page N]``: the user, enabled or not, then page ``page`` of their
    groups (:data:`WHOIS_GROUPS_PAGE`) and of their effective permissions by resource
    (:data:`WHOIS_PERMISSIONS_PAGE` lines). ``again``: the command that asked, for the next page's hint."""
    status = "enabled" if user.enabled else "*disabled*"
    groups = [esc(name or gid) for gid, name in user.groups]
    lines = permission_lines(permissions)
    pages = whois_pages(user, permissions)
    g0, p0 = (page - 1) * WHOIS_GROUPS_PAGE, (page - 1) * WHOIS_PERMISSIONS_PAGE
    g_page, p_page = groups[g0 : g0 + WHOIS_GROUPS_PAGE], lines[p0 : p0 + WHOIS_PERMISSIONS_PAGE]
    blocks = [
        header(clip(f"Polaris user {user.username}", HEADER_MAX)),
        section(
            f"{user_label(user, bold=True)} — {status}"
            + (f"\nPending actions: {esc(', '.join(user.actions))}" if user.actions else "")
        ),
    ]
    for what, start, shown, total, unit in (
        ("Groups", g0, g_page, len(groups), ""),
        ("Effective permissions", p0, p_page, len(lines), " lines"),
    ):
        title = _range_title(what, start, len(shown), total, unit=unit)
        blocks += packed_sections(shown, title=title) if shown or not total else [section(title)]
    if pages > 1:
        more = f" · next page: `{esc(again)} page {page + 1}`" if page < pages else ""
        blocks.append(
            context(f"Page {page} of {pages} · {len(groups)} groups, {len(lines)} permission lines in all{more}")
        )
    suffix = f" (page {page} of {pages})" if pages > 1 else ""
    return f"Polaris user {esc(asked_for)}{suffix}", blocks


def _range_title(what: str, start: int, count: int, total: int, unit: str = "") -> str:
    """A whois list's title: "*Groups*" (all shown), "*Groups* (41–80 of 95)", "*Groups* (81 of 81)", or
    "*Effective permissions*: all 4 lines are on earlier pages" (none left for this page: no "_none_" follows)."""
    if total <= count and start == 0:
        return f"*{what}*"
    if not count:
        return f"*{what}*: all {total}{unit} are on earlier pages" if total != 1 else f"*{what}*: on page 1"
    if count == 1:
        return f"*{what}* ({start + 1} of {total}{unit})"
    return f"*{what}* ({start + 1}–{start + count} of {total}{unit})"
