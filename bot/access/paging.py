"""Paged lookups: ``members <group> [page N]`` (Polaris paging, one call a page: ``top``/``skip`` of
``GET /v1/groups/{id}/members``; only the users list and group members page, fact sheet "Paging"),
``groups [page N]`` (the cached group list, paged here: Polaris sends groups whole) and
``whois [email | @user] [page N]`` (the user's groups and effective permissions, sent whole, paged here). Every
page stays within Block Kit limits (:mod:`bot.views.paging`) and says which page of how many and how to get
the next; a page past the last gets a sentence naming the last.

Nothing here writes. Refusals are :class:`bot.commands.UsageError`; Polaris failures propagate (to
:func:`bot.access.errors.guarded`).
"""

from __future__ import annotations

import re

from .. import views
from ..commands import Command, UsageError, split_page
from ..views import paging
from .context import Context
from .queries import Queries
from .reply import Reply

_PAGE_WORDS = re.compile(r"^page\s+\S+$", re.IGNORECASE)


class Paging:
    def __init__(self, ctx: Context, queries: Queries):
        self.ctx, self.queries = ctx, queries

    def members(self, rest: str) -> Reply:
        """``members <group> [page N]``: page N (default 1) of the group's members, :data:`MEMBERS_PAGE` a
        page, read with one ``GET /v1/groups/{id}/members?top=…&skip=…``. Other words after the group are
        refused, quoted back; a page past the last is refused naming how many there are."""
        group, extra = self.queries.group_and_rest(rest)
        page = 1
        example = f"/polaris members {paging.quoted(group.name)} page 2"
        if extra and _PAGE_WORDS.match(extra):
            _, page = split_page(extra, example)
        elif extra:
            shown = extra if len(extra) <= 200 else extra[:199] + "…"
            raise UsageError(
                f"`/polaris members` takes one group name and a page; I don't know what to do with "
                f"`{shown.replace('`', chr(39))}` after *{group.name}*. Usage: `/polaris members <group> [page N]` "
                '(quote a name of several words: `/polaris members "Data Analyst" page 2`).'
            )
        per = paging.MEMBERS_PAGE
        found = self.ctx.polaris.list_members(group.id, top=per, skip=(page - 1) * per)
        pages = paging.pages_for(found.count, per)
        if page > pages:
            noun = "member" if found.count == 1 else "members"
            raise UsageError(
                f"*{group.name}* has {found.count} {noun}, on {pages} page{'s' * (pages > 1)}: there is no page "
                f"{page}. `/polaris members {paging.quoted(group.name)} page {pages}` shows the last."
            )
        return Reply(*paging.member_page(group, found.values, found.count, page))

    def groups(self, cmd: Command) -> Reply:
        """``groups [page N]``: :data:`GROUPS_PAGE` groups a page, from the cached group list (no Polaris
        call while it is fresh)."""
        groups = self.ctx.catalog.all()
        pages = paging.pages_for(len(groups), paging.GROUPS_PAGE)
        if cmd.page > pages:
            raise UsageError(
                f"There are {len(groups)} groups, on {pages} page{'s' * (pages > 1)}: there is no page {cmd.page}. "
                f"`/polaris groups page {pages}` shows the last."
            )
        return Reply(*paging.group_page(groups, cmd.page))

    def whois(self, user_id: str, cmd: Command) -> Reply:
        """``whois [email | @user] [page N]``: 2 Polaris calls (search, effective permissions) for any page."""
        email = self.queries.email_for(user_id, cmd.target)
        user = self.ctx.polaris.find_user_by_email(email)
        if user is None:
            return Reply(f"No Polaris user has the email `{views.esc(email)}`.")
        permissions = self.ctx.polaris.effective_permissions(user.id)
        pages = paging.whois_pages(user, permissions)
        again = "/polaris whois" if cmd.target.is_self else f"/polaris whois {email}"
        if cmd.page > pages:
            raise UsageError(
                f"`{email}` fits on {pages} page{'s' * (pages > 1)}: there is no page {cmd.page}. "
                f"`{again} page {pages}` shows the last."
            )
        return Reply(*paging.whois_page(user, permissions, asked_for=email, page=cmd.page, again=again))
