"""The Polaris side of an approved ``update-user`` (:class:`UserSide`): GET, then one PUT of the whole user
changing only ``firstName``, ``lastName`` and ``enabled`` (:class:`bot.access.user_changes.UserChange`); every
other property, the groups included, is sent back as Polaris returned it (``PUT /v1/users/{id}`` replaces the
user).

:meth:`bot.access.execution.Execution.apply` dispatches here by kind, under the request's claim and the
``user:{email}`` claim. Idempotent in effect: a user who already has the change is done without a PUT, and the
PUT's ``done`` check recognises one whose answer was lost. Disabling the last enabled Organization Admin is
refused (:class:`bot.access.removal_side.Refused`), here as when it was asked, under the organization-wide
``org-admin-members`` claim that removals and offboardings take, so two such changes at once cannot both pass.
A user deleted in Polaris since is refused (nothing to change). Polaris faults propagate
(:class:`bot.polaris.PolarisError`): the apply retries them with backoff.
"""

from __future__ import annotations

import contextlib
import json

from ..models import AccessRequest
from ..polaris import PolarisNotFound, PolarisUnavailable, User
from .authority import ORG_ADMIN
from .context import Context
from .removal_side import Refused, RemovalSide
from .user_changes import UserChange

LAST_ADMIN_DISABLED = (
    "`{email}` is the last enabled {org_admin} in Polaris; disabling them would leave nobody to administer the "
    "organization, so nothing was changed. Make someone else an {org_admin} first."
)


class UserSide:
    """The Polaris calls of applying a user update; ``removals`` knows the Organization Admin members."""

    def __init__(self, ctx: Context, removals: RemovalSide):
        self.ctx, self.removals = ctx, removals

    def last_admin_refusal(self, user: User, change: UserChange) -> str | None:
        """Why ``change`` may not be made to ``user`` (as Polaris has them now): it disables the last enabled
        member of Organization Admin. ``None`` when it may. Raises :class:`bot.polaris.PolarisError` when
        Polaris cannot say."""
        admins = self.removals.org_admin_group()
        if not change.disables(user) or admins is None or admins.id not in user.group_ids:
            return None
        if self.removals.another_enabled_admin(admins.id, user.id):
            return None
        return LAST_ADMIN_DISABLED.format(email=user.email or user.username, org_admin=ORG_ADMIN)

    @contextlib.contextmanager
    def _guard(self, user: User, change: UserChange):
        """The organization-wide claim around the last-admin check and the PUT, when ``change`` disables an
        Organization Admin member. Busy: a transient failure (the apply is retried)."""
        admins = self.removals.org_admin_group()
        if not change.disables(user) or admins is None or admins.id not in user.group_ids:
            yield
            return
        with self.ctx.claims.hold("org-admin-members", wait=10.0) as got:
            if not got:
                raise PolarisUnavailable(None, "Busy", f"another change to {ORG_ADMIN} is being made; retrying")
            yield

    def run(self, req: AccessRequest) -> tuple[str, str]:
        """Apply ``req``'s planned change: (outcome sentence, Polaris user ID). Raises :class:`Refused` (the
        user is gone, or is the last enabled Organization Admin), :class:`bot.polaris.PolarisError`."""
        try:
            change = UserChange.from_plan(json.loads(req.plan or "{}"))
        except ValueError as e:
            raise Refused(f"The request's change cannot be read ({e}); nothing was changed.") from None
        user = self._user(req)
        lines = change.lines(user)
        if not lines:
            return f"{req.target_email} already has these names and this state in Polaris; nothing to change.", user.id
        with self._guard(user, change):
            user = self.ctx.polaris.get_user(user.id)  # read again under the guard
            why = self.last_admin_refusal(user, change)
            if why:
                raise Refused(why)
            try:
                self.ctx.polaris.update_user(user.id, change.apply, done=change.done)
            except PolarisNotFound:
                raise Refused(f"{req.target_email} was deleted in Polaris meanwhile; nothing was changed.") from None
        return f"Changed the Polaris user {req.target_email}: {'; '.join(lines)}. Everything else is kept.", user.id

    def _user(self, req: AccessRequest) -> User:
        """The user as Polaris has it now, by the ID recorded when it was asked (never another account made
        since with the same email). Raises :class:`Refused` when it is gone."""
        try:
            if req.polaris_user_id:
                return self.ctx.polaris.get_user(req.polaris_user_id)
            user = self.ctx.polaris.find_user_by_email(req.target_email)
        except PolarisNotFound:
            user = None
        if user is None:
            raise Refused(f"There is no Polaris user {req.target_email} any more (deleted); nothing was changed.")
        return user
