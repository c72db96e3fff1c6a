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
- an edit applies the change to the group as Polaris has it now: the permissions added and removed (as
  planned) on the current list, the name when a new one was asked; a group already so is done.
- a delete of a group already gone is done.

Predefined (``readOnly``) groups are refused (:class:`Refused`), as when asked. Polaris faults propagate
(:class:`bot.polaris.PolarisError`): the apply retries them with backoff.
"""

from __future__ import annotations

import json

from ..models import CREATE_GROUP, EDIT_GROUP, AccessRequest
from ..polaris import Group, PolarisConflict, PolarisNotFound, PolarisUnavailable, normalize_group_name
from ..views.blocks import counted
from ..views.groups import as_dicts, as_permissions
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

    def _named(self, name: str) -> Group | None:
        wanted = normalize_group_name(name)
        return next((g for g in self.ctx.polaris.list_groups() if g.name.lower() == wanted), None)

    def _create(self, req: AccessRequest, plan: dict) -> str:
        name, perms = str(plan.get("name") or req.group_name), as_permissions(plan.get("permissions"))
        done = f"Created the Polaris group {name} with {len(perms)} permission{'' if len(perms) == 1 else 's'}."
        found = self._named(name)
        if found is not None:
            if req.write_started_at is not None:  # this request's POST landed; its answer was lost
                self.store.set(req.id, write_answered_at=self.ctx.clock(), group_id=found.id)
                return done
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
        before = {json.dumps(d, sort_keys=True) for d in plan.get("before") or []}
        after = {json.dumps(d, sort_keys=True) for d in plan.get("after") or []}
        added, removed = after - before, before - after
        changed = bool(plan.get("permissions_changed"))

        def change(body: dict) -> None:
            if new_name:
                body["name"] = new_name
            if changed:
                kept = [p for p in body["permissions"] if json.dumps(_entry(p), sort_keys=True) not in removed]
                have = {json.dumps(_entry(p), sort_keys=True) for p in kept}
                body["permissions"] = kept + [json.loads(a) for a in sorted(added) if a not in have]

        def is_done(group: Group) -> bool:
            have = {json.dumps(d, sort_keys=True) for d in as_dicts(group.permissions)}
            named = not new_name or group.name == new_name
            return named and (not changed or (added <= have and not (removed & have)))

        group = self.ctx.polaris.update_group(current.id, change, done=is_done)
        parts = [f"renamed {current.name} to {group.name}"] if new_name else []
        if changed:
            parts.append(f"{counted(len(added), 'permission')} added and {len(removed)} removed")
        return f"Changed the Polaris group {group.name}: {', '.join(parts)}; everything else it had is kept."

    def _delete(self, req: AccessRequest, plan: dict) -> str:
        try:
            current = self.ctx.polaris.get_group(req.group_id)
        except PolarisNotFound:
            return f"The Polaris group {req.group_name} no longer exists; nothing to delete."
        if current.read_only:
            raise Refused(f"{current.name} is a predefined Polaris group (read-only); nothing was deleted.")
        members = current.user_count if current.user_count is not None else plan.get("members")
        try:
            self.ctx.polaris.delete_group(current.id)
        except PolarisNotFound:
            return f"The Polaris group {current.name} no longer exists; nothing to delete."
        whose = f"its {counted(members, 'member')}" if isinstance(members, int) else "its members"
        return f"Deleted the Polaris group {current.name}; {whose} lost it."


def _entry(p: dict) -> dict:
    """A permission entry as the plan keeps it (``name`` and ``resources`` when it has some)."""
    return {"name": p.get("name"), **({"resources": list(p["resources"])} if p.get("resources") else {})}


def _plan(req: AccessRequest) -> dict:
    try:
        plan = json.loads(req.plan or "{}")
    except ValueError:
        return {}
    return plan if isinstance(plan, dict) else {}
