"""The Polaris side of an approved group change (:class:`GroupSide`): ``create_group`` (``POST /v1/groups``),
``edit_group`` (GET, then PUT of the whole group, changing only the name and the permissions asked for) and
``delete_group`` (``DELETE /v1/groups/{id}``).

:meth:`bot.access.execution.Execution.apply` dispatches here by kind, under the request's claim and the
``user:group:<name>`` claim. Each is idempotent in effect:

- a create looks for the group by name first (``GET /v1/groups``). Its ``POST`` is bracketed like ``POST
  /v1/users`` (``write_started_at`` committed before, ``write_answered_at`` after): a create whose answer was
  lost is never resent blindly; the apply waits out the write's time budget and looks by name again. A group
  of that name found after this request's POST was sent is this request's; found before, it was made by
  someone else: :class:`Refused` (checked when asked and again here).
- an edit applies the change to the group as Polaris has it now: the grants added and removed (as
  planned) on the current list, the name when a new one was asked; a group already so is done.
- a delete of a group already gone is done.

Predefined (``readOnly``) groups are refused (:class:`Refused`), as when asked. Polaris faults propagate
(:class:`bot.polaris.PolarisError`): the apply retries them with backoff.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from ..models import BOT_REQUESTER, CREATE_GROUP, DELETE_GROUP, EDIT_GROUP, OPEN_STATES, AccessRequest
from ..polaris import Group, PolarisConflict, PolarisNotFound, PolarisUnavailable, normalize_group_name
from ..views.blocks import counted
from ..views.groups import as_permissions, grants
from .context import Context
from .removal_side import Refused
from .store import RequestStore


class GroupSide:
    """The Polaris calls of applying a group change; ``store`` records the create's write brackets."""

    def __init__(self, ctx: Context, store: RequestStore):
        self.ctx, self.store = ctx, store

    def run(self, req: AccessRequest) -> tuple[str, None]:
        """The Polaris side of an approved group change: (outcome sentence, ``None``: no Polaris user).
        Raises :class:`Refused`, :class:`bot.polaris.PolarisError`."""
        plan = _plan(req)
        if req.kind == CREATE_GROUP:
            outcome = self._create(req, plan)
        elif req.kind == EDIT_GROUP:
            outcome = self._edit(req, plan)
        else:
            outcome = self._delete(req, plan)
        self.ctx.catalog.invalidate()
        return outcome, None

    def open_of_group(self, req: AccessRequest, *, session=None) -> list[AccessRequest]:
        """The open (pending or approved) requests, of any kind, for the group ``req`` changed, but ``req``."""
        if not req.group_id:
            return []
        with self.ctx.db.joining(session) as s:
            return list(
                s.scalars(
                    select(AccessRequest).where(
                        AccessRequest.id != req.id,
                        AccessRequest.group_id == req.group_id,
                        AccessRequest.state.in_(OPEN_STATES),
                    )
                )
            )

    def settle(self, req: AccessRequest, *, session, now: dt.datetime) -> list[str]:
        """In the transaction that marks a group change applied: a deleted group's open requests are closed
        (:meth:`RequestStore.close`, audited ``request.cancelled``), as an offboarding closes the person's.
        Returns the IDs closed (their cards and requesters are told after the commit)."""
        if req.kind != DELETE_GROUP:
            return []
        why = f"the group {req.group_name} was deleted (request {req.id[:8]})"
        closed = []
        for other in self.open_of_group(req, session=session):
            if self.store.close(other, by=BOT_REQUESTER, now=now, outcome=f"Closed: {why}", session=session):
                self.ctx.audit.record(
                    "bot",
                    "request.cancelled",
                    request_id=other.id,
                    target=other.target_email,
                    session=session,
                    detail=f"closed: {why}",
                )
                closed.append(other.id)
        return closed

    def _named(self, name: str) -> Group | None:
        wanted = normalize_group_name(name)
        return next((g for g in self.ctx.polaris.list_groups() if normalize_group_name(g.name) == wanted), None)

    def _create(self, req: AccessRequest, plan: dict) -> str:
        name, perms = str(plan.get("name") or req.group_name), as_permissions(plan.get("permissions"))
        done = f"Created the Polaris group {name} with {len(perms)} permission{'' if len(perms) == 1 else 's'}."
        found = self._named(name)
        if found is not None:
            if req.write_started_at is not None and _same_grants(found, perms):  # our POST landed, answer lost
                self.store.set(req.id, write_answered_at=self.ctx.clock(), group_id=found.id)
                return done
            if req.write_started_at is not None:  # a group renamed into this name meanwhile is not ours
                raise Refused(
                    f"A Polaris group called {found.name} exists, but with other permissions than asked: it is not "
                    "the one this request would have made (renamed or made meanwhile); nothing was created."
                )
            raise Refused(f"A Polaris group called {found.name} exists already (made meanwhile); nothing was created.")
        self.store.set(req.id, write_started_at=self.ctx.clock(), write_answered_at=None)
        try:
            group = self.ctx.polaris.create_group(name, perms)
        except PolarisConflict:
            raise Refused(
                f"A Polaris group called {name} exists already (made meanwhile); nothing was created."
            ) from None
        except PolarisUnavailable as e:
            found = self._named(name)  # it may have landed although the answer was lost
            if found is None:
                if not e.outcome_unknown:  # refused before it was processed (429): nothing in flight
                    self.store.set(req.id, write_started_at=None)
                raise
            group = found
        self.store.set(req.id, write_answered_at=self.ctx.clock(), group_id=group.id)
        return done

    def _edit(self, req: AccessRequest, plan: dict) -> str:
        current = self.ctx.polaris.get_group(req.group_id)  # PolarisNotFound: deleted meanwhile (failed)
        if current.read_only:
            raise Refused(f"{current.name} is a predefined Polaris group (read-only); nothing was changed.")
        new_name = plan.get("new_name")
        clash = self._named(new_name) if new_name else None
        if clash is not None and clash.id != current.id:
            raise Refused(f"A Polaris group called {new_name} exists already; nothing was changed.")
        before, after = grants(as_permissions(plan.get("before"))), grants(as_permissions(plan.get("after")))
        added, removed = after - before, before - after  # (name, resource) pairs: only what was asked
        changed = bool(plan.get("permissions_changed"))

        def change(body: dict) -> None:
            if new_name:
                body["name"] = new_name
            if changed:
                body["permissions"] = _changed(body.get("permissions") or [], added, removed)

        def is_done(group: Group) -> bool:
            have = grants(group.permissions)
            named = not new_name or group.name == new_name
            return named and (not changed or (added <= have and not (removed & have)))

        group = self.ctx.polaris.update_group(current.id, change, done=is_done)
        parts = [f"renamed {current.name} to {group.name}"] if new_name else []
        if changed:
            gained, lost = {n for n, _ in added}, {n for n, _ in removed}
            parts.append(f"{counted(len(gained), 'permission')} added and {len(lost)} removed")
        return f"Changed the Polaris group {group.name}: {', '.join(parts)}; everything else it had is kept."

    def _delete(self, req: AccessRequest, plan: dict) -> str:
        """``DELETE /v1/groups/{id}``, bracketed like the create (``write_started_at``): a 404 after this
        request's DELETE was sent (its answer lost, then resent) is this request's deletion and says so. The
        member count is read again now and written to the plan, so the card says how many lost it."""
        name = req.group_name
        try:
            current = self.ctx.polaris.get_group(req.group_id)
        except PolarisNotFound:
            if req.write_started_at is not None:  # this request's DELETE landed; its answer was lost
                return f"Deleted the Polaris group {name}; its {plan.get('members', '?')} member(s) lost it."
            return f"The Polaris group {name} no longer exists; nothing to delete."
        if current.read_only:
            raise Refused(f"{current.name} is a predefined Polaris group (read-only); nothing was deleted.")
        members = current.user_count
        if members is None:
            members = self.ctx.polaris.list_members(current.id, top=1).count
        if members is not None and members != plan.get("members"):
            self.store.set(req.id, plan=json.dumps({**plan, "members": members}))
        self.store.set(req.id, write_started_at=self.ctx.clock(), write_answered_at=None)
        try:
            self.ctx.polaris.delete_group(current.id)
        except PolarisNotFound:
            pass  # read just above: the DELETE landed and its answer was lost (the resend found it gone)
        self.store.set(req.id, write_answered_at=self.ctx.clock())
        whose = f"its {counted(members, 'member')}" if isinstance(members, int) else "its members"
        return f"Deleted the Polaris group {current.name}; {whose} lost it."


def _same_grants(group: Group, perms) -> bool:
    """Whether ``group`` grants exactly ``perms`` (a group this request's create made), order ignored."""

    def keys(items) -> list[tuple[str, tuple[str, ...]]]:
        return sorted((p.name, tuple(sorted(p.resources))) for p in items)

    return keys(group.permissions) == keys(perms)


def _changed(entries: list, added: set[tuple[str, str]], removed: set[tuple[str, str]]) -> list:
    """A group's ``permissions`` as Polaris has them now (``entries``: JSON objects), with the ``removed``
    ``(name, resource)`` pairs taken out and the ``added`` ones put in (merged into the entry of that name,
    else a new entry); everything else, and any field Polaris sends that the bot does not know, is kept.
    A project-scoped entry left with no resource is dropped (it would grant nothing)."""
    out: list = []
    for entry in entries:
        if not isinstance(entry, dict):
            out.append(entry)
            continue
        name, resources = entry.get("name"), list(entry.get("resources") or [])
        if not resources:
            if (name, "") not in removed:
                out.append(entry)
            continue
        kept = [r for r in resources if (name, r) not in removed]
        if kept:
            out.append({**entry, "resources": kept})
    have = grants(as_permissions(e for e in out if isinstance(e, dict)))
    for name, resource in sorted(added - have):
        same = next((e for e in out if isinstance(e, dict) and e.get("name") == name), None)
        if not resource:
            out.append({"name": name})
        elif same is not None and same.get("resources"):
            same["resources"] = [*same["resources"], resource]
        else:
            out.append({"name": name, "resources": [resource]})
    return out


def _plan(req: AccessRequest) -> dict:
    try:
        plan = json.loads(req.plan or "{}")
    except ValueError:
        return {}
    return plan if isinstance(plan, dict) else {}
