"""Client for the Imply Polaris Identity management API.

Follows ``shared/polaris/README.md`` (the fact sheet), the public guide "Manage users and groups through
API" and the OpenAPI document ``openapi-identity.json``: one :class:`PolarisClient` over one
``requests.Session`` covers permissions, users (list/get/create/update/delete, effective permissions),
groups (list/get/create/update/delete) and group members (list/add/remove).

- Authentication is HTTP Basic with the API key, sent as RFC 7617 ``base64("<key>:")`` like the official
  SDK (``auth_style="raw"`` sends the raw key as the guide's examples do).
- Every call has a connect and a read timeout (seconds).
- Success codes are exact (users create and groups create: 201; everything else: 200); any other status
  raises a :class:`PolarisError` subclass carrying ``status``, ``code`` and ``message`` parsed from either
  error envelope (bare ``{"code","message"}`` or wrapped ``{"error": {...}}``), or from an empty or non-JSON
  body.
- Transient failures (429 honouring ``Retry-After``, 500/502/503/504, timeouts, dropped connections) are
  retried with exponential backoff and jitter, bounded in attempts and total seconds, through tenacity,
  for idempotent calls only (GET, PUT, DELETE, and adding members, which is idempotent in effect).
- A write that is not idempotent in effect (``POST /v1/users``, the password-reset PUT, which makes
  Polaris send an email) is sent once. When it was sent and no answer says whether it landed (a timeout, a
  dropped connection, a 5xx), :class:`PolarisWriteUnknown` is raised: the caller must let the write's time
  budget pass (:attr:`PolarisClient.read_timeout` plus a margin) and look in Polaris before sending it again.
- The API key never appears in a log line, an exception message or an audit row.
- :meth:`PolarisClient.update_user` is GET, change, PUT of the whole object: Polaris's PUT replaces the
  user, so every property the user had is carried over.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import urllib.parse
from typing import Any, Callable, Iterator

from .errors import PolarisError, PolarisUnavailable, PolarisWriteUnknown
from .models import Group, Page, Permission, PolarisAuditEvent, User
from .transport import PolarisTransport

log = logging.getLogger("bot.polaris")  # the name it always had (log configuration and tests rely on it)

#: Properties Polaris generates; they are never sent back on PUT (the OpenAPI schema marks them readOnly).
READ_ONLY_USER_FIELDS = frozenset({"id", "emailVerified", "identities", "createdOn"})
#: The same for a group (``GroupRepresentation``).
READ_ONLY_GROUP_FIELDS = frozenset({"id", "readOnly", "userCount"})
PAGE_SIZE = 100


def _seg(identifier: str) -> str:
    """An ID as one path segment (percent-encoded): an ID from a form or a payload can never reach another path
    (``../users/…``)."""
    return urllib.parse.quote(str(identifier), safe="")


class PolarisClient(PolarisTransport):
    """The one way this bot reaches Polaris: the Identity endpoints over :class:`PolarisTransport` (whose
    constructor it takes: ``base_url``, ``api_key``, ``timeout`` (connect, read) seconds, ``max_attempts``,
    ``retry_seconds``, ``on_call`` hook, ``auth_style``). Thread-safe."""

    # ------------------------------------------------------------------------------------ permissions
    def list_permissions(self) -> list[Permission]:
        """``GET /v1/permissions`` -> every permission of the organization."""
        return [Permission.parse(p) for p in (self._json("GET", "/v1/permissions") or {}).get("values", [])]

    # ------------------------------------------------------------------------------------ users
    def list_users(self, *, top: int = PAGE_SIZE, skip: int = 0, search: str | None = None) -> Page:
        """``GET /v1/users?top=&skip=&search=`` -> one :class:`Page` of :class:`User` (``top`` 1..100)."""
        params: dict[str, Any] = {"top": max(1, min(top, PAGE_SIZE)), "skip": max(0, skip)}
        if search:
            params["search"] = search
        data = self._json("GET", "/v1/users", params=params) or {}
        values = [User.parse(u) for u in data.get("values", [])]
        return Page(values, int(data.get("count", len(values))))

    def iter_users(self, *, search: str | None = None, limit: int | None = None) -> Iterator[User]:
        """Every user matching ``search``, page by page (stops after ``limit`` users when given)."""
        skip, seen = 0, 0
        while True:
            page = self.list_users(top=PAGE_SIZE, skip=skip, search=search)
            for user in page.values:
                yield user
                seen += 1
                if limit is not None and seen >= limit:
                    return
            skip += len(page.values)
            if not page.values or skip >= page.count:
                return

    def find_user_by_email(self, email: str) -> User | None:
        """The user whose username (or email) equals ``email`` ignoring case, or ``None``.

        Uses ``search`` and filters exact matches client-side (the search is a case-insensitive substring
        match of username, email and names, in no documented order): every page of matches is read
        (``top=100``, until ``count`` or an empty page) until the exact one turns up, so the answer is right
        however many substring matches there are, and one call when there are at most 100. Never lists
        every user (always searched).
        """
        wanted = email.strip().lower()
        if not wanted:
            return None
        for user in self.iter_users(search=wanted):
            if user.username.lower() == wanted or user.email.lower() == wanted:
                return user
        return None

    def get_user(self, user_id: str) -> User:
        """``GET /v1/users/{id}``. Raises :class:`PolarisNotFound` for an unknown ID."""
        return User.parse(self._json("GET", f"/v1/users/{_seg(user_id)}"))

    def create_user(
        self,
        username: str,
        *,
        first_name: str = "",
        last_name: str = "",
        group_ids: list[str] | tuple[str, ...] = (),
        skip_invite: bool = False,
    ) -> User:
        """``POST /v1/users`` (201) with group membership by ID. Not retried (not idempotent).

        Raises :class:`PolarisConflict` when the username exists, :class:`PolarisBadRequest` for an invalid
        email or unknown group ID, :class:`PolarisWriteUnknown` when it was sent and the answer was lost (look
        the user up by email, after :attr:`read_timeout` and a margin, before creating it again).
        """
        body: dict[str, Any] = {"username": username, "groups": [{"id": g} for g in group_ids]}
        if first_name:
            body["firstName"] = first_name
        if last_name:
            body["lastName"] = last_name
        params = {"skipInvite": "true"} if skip_invite else None
        try:
            return User.parse(self._json("POST", "/v1/users", params=params, body=body, ok=(201,), retry=False))
        except PolarisUnavailable as e:
            if e.status == 429:  # refused before it was processed
                raise
            raise PolarisWriteUnknown.of(e) from None

    @staticmethod
    def put_body(user: dict) -> dict:
        """The PUT body that recreates ``user`` (a ``UserRepresentation`` dict) exactly: every property but
        the read-only ones, groups as ``[{"id"}]``, permissions as ``{name, resources}``."""
        body = {k: copy.deepcopy(v) for k, v in user.items() if k not in READ_ONLY_USER_FIELDS}
        body["groups"] = [{"id": g["id"]} for g in user.get("groups") or () if g.get("id")]
        if "permissions" in body:
            body["permissions"] = [
                {k: v for k, v in p.items() if k in ("name", "resources")} for p in body["permissions"] or ()
            ]
        return body

    def replace_user(self, user_id: str, body: dict) -> User:
        """``PUT /v1/users/{id}`` with ``body`` as is, sent once (a resent PUT could undo a newer change).
        Prefer :meth:`update_user`, which keeps properties."""
        return User.parse(self._json("PUT", f"/v1/users/{_seg(user_id)}", body=body, retry=False))

    def update_user(
        self, user_id: str, change: Callable[[dict], None], done: Callable[[User], bool] | None = None
    ) -> User:
        """GET the user, let ``change(body)`` edit the full PUT body in place, PUT it back. Only for changes
        that are idempotent in effect (a second identical PUT does no harm); see :meth:`request_password_reset`.

        Nothing the user had is dropped: ``body`` starts as :meth:`put_body` of the current user. The PUT
        itself is never resent as it was: a transient failure starts over with a fresh GET (so a change an
        admin made meanwhile is not undone), and when ``done(current_user)`` says the change already took
        effect (the lost answer of a PUT that landed), nothing more is sent.
        Raises :class:`PolarisNotFound` when the user is gone, :class:`PolarisUnavailable` after the retries.
        """
        state = {"put_sent": False}

        def cycle() -> User:
            current = self._json("GET", f"/v1/users/{_seg(user_id)}")
            if state["put_sent"] and done is not None and done(User.parse(current)):
                return User.parse(current)
            body = self.put_body(current)
            change(body)
            body["username"] = current.get("username", body.get("username"))  # immutable
            if "email" in current:
                body["email"] = current["email"]
            state["put_sent"] = True
            return User.parse(self._json("PUT", f"/v1/users/{_seg(user_id)}", body=body, retry=False))

        return self.retrying()(cycle)

    def request_password_reset(self, user_id: str, *, before_put: Callable[[User], None] | None = None) -> User:
        """Adds ``UPDATE_PASSWORD`` to the user's actions (guide, "Reset password"), keeping everything else;
        Polaris then emails the user a link. Returns the user as the PUT's answer gave it.

        A fresh ``GET /v1/users/{id}`` (retried like any GET), then ``before_put(current_user)`` (the caller
        records that the write is about to be sent, and whether ``UPDATE_PASSWORD`` was already pending: a
        new account has it, and the PUT still sends the email), then **one** ``PUT`` of the whole user. The
        PUT is never resent here, since every PUT that lands sends an email. When its answer is lost, one
        fresh GET tells whether it landed only if the action was absent before and is present now; otherwise
        :class:`PolarisWriteUnknown` is raised (it may still land: let :attr:`read_timeout` and a margin pass,
        then look, e.g. in :meth:`list_audit_events`). A 429 answer to the PUT means it was not processed
        (:class:`PolarisUnavailable`). Raises :class:`PolarisNotFound` when the user is gone."""
        current = self._json("GET", f"/v1/users/{_seg(user_id)}")
        had = "UPDATE_PASSWORD" in (current.get("actions") or [])
        body = self.put_body(current)
        actions = list(body.get("actions") or [])
        if "UPDATE_PASSWORD" not in actions:
            actions.append("UPDATE_PASSWORD")
        body["actions"] = actions
        body["username"] = current.get("username", body.get("username"))  # immutable
        if "email" in current:
            body["email"] = current["email"]
        if before_put is not None:
            before_put(User.parse(current))
        try:
            return User.parse(self._json("PUT", f"/v1/users/{_seg(user_id)}", body=body, retry=False))
        except PolarisUnavailable as e:
            if e.status == 429:
                raise
            lost = e
        if not had:
            try:
                now = self.get_user(user_id)
            except PolarisError:
                now = None
            if now is not None and "UPDATE_PASSWORD" in now.actions:
                return now  # absent before, present now: this PUT landed
        raise PolarisWriteUnknown.of(lost)

    def delete_user(self, user_id: str) -> None:
        """``DELETE /v1/users/{id}`` (200)."""
        self.request("DELETE", f"/v1/users/{_seg(user_id)}")

    def effective_permissions(self, user_id: str) -> list[Permission]:
        """``GET /v1/users/{id}/effectivepermissions`` -> the union of the user's groups' permissions."""
        data = self._json("GET", f"/v1/users/{_seg(user_id)}/effectivepermissions") or {}
        return [Permission.parse(p) for p in data.get("values", [])]

    # ------------------------------------------------------------------------------------ groups
    def list_groups(self) -> list[Group]:
        """``GET /v1/groups`` -> every group (unpaged)."""
        return [Group.parse(g) for g in (self._json("GET", "/v1/groups") or {}).get("values", [])]

    def get_group(self, group_id: str) -> Group:
        """``GET /v1/groups/{id}``. Raises :class:`PolarisNotFound`."""
        return Group.parse(self._json("GET", f"/v1/groups/{_seg(group_id)}"))

    @staticmethod
    def permission_body(permissions) -> list[dict]:
        """``[Permission]`` -> the ``permissions`` array of a group body: ``{name}`` for organization-level
        ones, ``{name, resources}`` for project-scoped ones (guide, "Create a group")."""
        return [{"name": p.name, **({"resources": list(p.resources)} if p.resources else {})} for p in permissions]

    def create_group(self, name: str, permissions: list[Permission]) -> Group:
        """``POST /v1/groups`` (201). Sent once (not idempotent). Raises :class:`PolarisConflict` when the name
        is taken, :class:`PolarisBadRequest` for an invalid permission, :class:`PolarisWriteUnknown` when it
        was sent and the answer was lost (look the group up by name, after :attr:`read_timeout` and a
        margin, before creating it again)."""
        body = {"name": name, "permissions": self.permission_body(permissions)}
        try:
            return Group.parse(self._json("POST", "/v1/groups", body=body, ok=(201,), retry=False))
        except PolarisUnavailable as e:
            if e.status == 429:  # refused before it was processed
                raise
            raise PolarisWriteUnknown.of(e) from None

    @staticmethod
    def group_put_body(group: dict) -> dict:
        """The PUT body that recreates ``group`` (a ``GroupRepresentation`` dict): every property but the
        read-only ones (``id``, ``readOnly``, ``userCount``), permissions as ``{name, resources}``."""
        body = {k: copy.deepcopy(v) for k, v in group.items() if k not in READ_ONLY_GROUP_FIELDS}
        body["permissions"] = [
            {k: v for k, v in p.items() if k in ("name", "resources")} for p in group.get("permissions") or ()
        ]
        return body

    def update_group(
        self, group_id: str, change: Callable[[dict], None], done: Callable[[Group], bool] | None = None
    ) -> Group:
        """GET the group, let ``change(body)`` edit the whole PUT body in place, PUT it back (Polaris's PUT
        replaces the group: an omitted ``permissions`` becomes ``[]``). Nothing the group had is dropped:
        ``body`` starts as :meth:`group_put_body` of the current group. Like :meth:`update_user`, the PUT is
        never resent as it was: a transient failure starts over with a fresh GET, and when ``done(group)``
        says the change already took effect nothing more is sent. Raises :class:`PolarisNotFound` (gone),
        :class:`PolarisBadRequest` (a predefined, ``readOnly`` group, or an invalid permission),
        :class:`PolarisConflict` (the new name is taken), :class:`PolarisUnavailable` after the retries."""
        state = {"put_sent": False}

        def cycle() -> Group:
            current = self._json("GET", f"/v1/groups/{_seg(group_id)}") or {}
            if state["put_sent"] and done is not None and done(Group.parse(current)):
                return Group.parse(current)
            body = self.group_put_body(current)
            change(body)
            state["put_sent"] = True
            return Group.parse(self._json("PUT", f"/v1/groups/{_seg(group_id)}", body=body, retry=False))

        return self.retrying()(cycle)

    def delete_group(self, group_id: str) -> None:
        """``DELETE /v1/groups/{id}`` (200). Predefined groups are read-only (400)."""
        self.request("DELETE", f"/v1/groups/{_seg(group_id)}")

    def list_members(self, group_id: str, *, top: int = PAGE_SIZE, skip: int = 0, search: str | None = None) -> Page:
        """``GET /v1/groups/{id}/members`` -> a :class:`Page` of :class:`User` (id, username, email, names)."""
        params: dict[str, Any] = {"top": max(1, min(top, PAGE_SIZE)), "skip": max(0, skip)}
        if search:
            params["search"] = search
        data = self._json("GET", f"/v1/groups/{_seg(group_id)}/members", params=params) or {}
        values = [User.parse(u) for u in data.get("values", [])]
        return Page(values, int(data.get("count", len(values))))

    def add_members(self, group_id: str, user_ids: list[str]) -> None:
        """``POST /v1/groups/{id}/members`` with ``[{"id": ...}]`` (200, empty body). Adding an existing
        member changes nothing, so this call is retried like an idempotent one."""
        self.request("POST", f"/v1/groups/{_seg(group_id)}/members", body=[{"id": u} for u in user_ids], retry=True)

    def remove_members(self, group_id: str, user_ids: list[str]) -> None:
        """``DELETE /v1/groups/{id}/members`` with a body ``[{"id": ...}]`` (200, empty body)."""
        self.request("DELETE", f"/v1/groups/{_seg(group_id)}/members", body=[{"id": u} for u in user_ids])

    def list_projects(self) -> list[dict]:
        """``GET /v1/projects`` -> the bare JSON array of projects (each ``{"metadata": {"uid", "name"}, ...}``
        in the OpenAPI ``Project`` schema)."""
        return list(self._json("GET", "/v1/projects") or [])

    def list_audit_events(
        self,
        *,
        type: str | None = None,
        user: str | None = None,
        since: "dt.datetime | None" = None,
        until: "dt.datetime | None" = None,
    ) -> list[PolarisAuditEvent]:
        """``GET /v1/audit/events?type=&user=&from=&to=`` -> Polaris's own audit events (fact sheet; unpaged;
        ``from``/``to`` sent as ISO 8601 UTC). Raises :class:`PolarisAuthError` (403) when the key lacks
        ``AccessAuditLogs``."""
        params: dict[str, Any] = {}
        if type:
            params["type"] = type
        if user:
            params["user"] = user
        for name, value in (("from", since), ("to", until)):
            if value is not None:
                params[name] = value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        data = self._json("GET", "/v1/audit/events", params=params) or {}
        return [PolarisAuditEvent.parse(e) for e in data.get("values", []) if isinstance(e, dict)]
