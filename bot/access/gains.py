"""What the approver grants: the group's permissions the person does not already have through other groups,
read when the approval card is built (:class:`GainsReader`, used by :mod:`bot.access.notifications`).

While a grant (``request``, ``invite``) is pending, each sync of its cards reads Polaris once (:meth:`GainsReader.one_reading`): the person's user (``req.polaris_user_id``, else a
search by email; none: a new account, everything is a gain) and ``GET /v1/users/{id}/effectivepermissions``, compared with the group's permissions by
:func:`bot.grants.compare`. What was read is kept with the request (``plan["gains"]``, beside anything else the
plan holds) and is what the card shows once the request is decided: what the approvers saw when they decided
(read again at the approval it would tell nothing new, and cost two Polaris calls per approval: issue 13; once
applied, the person's effective permissions include the group itself and tell nothing more). Cards are built on a work lane or the
worker, never before an ack. A failing read never loses the card: it shows the last reading kept, or says it
could not read what they already have.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace

from .. import grants
from ..grants import Gains
from ..models import GRANTS, PENDING, AccessRequest
from ..polaris import Group, PolarisError
from .context import Context
from .store import RequestStore

log = logging.getLogger(__name__)


def _plan(req: AccessRequest) -> dict:
    try:
        plan = json.loads(req.plan) if req.plan else {}
    except ValueError:
        return {}
    return plan if isinstance(plan, dict) else {}


def _live(req: AccessRequest) -> bool:
    """True while what the person has is read afresh for the card: pending (not decided yet)."""
    return req.state == PENDING


class GainsReader:
    """Reads and keeps what a grant gives (see the module docstring). Polaris errors never escape."""

    def __init__(self, ctx: Context, store: RequestStore):
        self.ctx, self.store = ctx, store
        self._local = threading.local()  # .readings: {(request ID, group ID): Gains} inside one_reading

    @contextlib.contextmanager
    def one_reading(self) -> Iterator[None]:
        """Within the block, on this thread, Polaris is read at most once per request and group: one sync of a
        request's cards renders them again after a post (the row changed) and once per copy (the manager's),
        and each showed the same reading for a second pair of Polaris calls. Nested blocks share the outer's
        readings; a failed read is not kept (the next render tries again)."""
        outer = getattr(self._local, "readings", None)
        if outer is None:
            self._local.readings = {}
        try:
            yield
        finally:
            if outer is None:
                self._local.readings = None

    def kept(self, req: AccessRequest) -> Gains | None:
        """The reading kept with ``req`` (``None``: none yet)."""
        return Gains.from_json(_plan(req).get("gains"))

    def for_card(self, req: AccessRequest, group: Group | None, *, session=None) -> Gains | None:
        """What ``req`` gives, for its card: ``None`` for a request that grants no group (or whose group
        is gone); read from Polaris while live, else the reading kept. Polaris failing: the reading kept,
        or a :class:`Gains` with ``unread`` set. Projects are named (``labels``) as ``groups <name>`` names
        them (:class:`bot.polaris.ProjectCatalog`, cached); when the names cannot be read, by their ID
        (``projects/<id>``). The request is read again, and the reading kept, in ``session`` when given."""
        gains = self._gains(req, group, session)
        if gains is None:
            return None
        resources = {r for p in gains.gained for r in p.resources}
        try:
            labels = {r: self.ctx.projects.label(r) for r in resources}
        except PolarisError as e:
            log.info("could not read the project names for request %s: %s", req.id, e.code)
            labels = {}  # each shown as its resource string, `projects/<id>`
        return replace(gains, labels=labels)

    def _gains(self, req: AccessRequest, group: Group | None, session=None) -> Gains | None:
        if req.kind not in GRANTS or group is None:
            return None
        kept = self.kept(req)
        if not _live(req):
            return kept
        readings = getattr(self._local, "readings", None)
        try:
            gains = readings.get((req.id, group.id)) if readings is not None else None
            if gains is None:
                gains = self._read(req, group)
        except PolarisError as e:
            log.info("could not read effective permissions for request %s: %s", req.id, e.code)
            return kept or grants.unread(group.permissions, e.code or "error")
        if readings is not None:
            readings[(req.id, group.id)] = gains
        fresh = self.store.get(req.id, session=session)
        if fresh is None or not _live(fresh):  # applied meanwhile: what was read may include the group itself
            return self.kept(fresh) if fresh is not None else kept
        if kept is not None and kept == gains:
            return kept  # unchanged since it was first read: the card (and its "read at") stays as it is
        plan = _plan(fresh)
        plan["gains"] = gains.to_json()
        self.store.update(req.id, session=session, plan=json.dumps(plan))
        return gains

    def _read(self, req: AccessRequest, group: Group) -> Gains:
        polaris = self.ctx.polaris
        user_id = req.polaris_user_id
        if not user_id:
            user = polaris.find_user_by_email(req.target_email)
            if user is None:
                return replace(grants.compare(group.permissions, None), read_at=self.ctx.clock())
            user_id = user.id
        effective = polaris.effective_permissions(user_id)
        return replace(grants.compare(group.permissions, effective), read_at=self.ctx.clock())
