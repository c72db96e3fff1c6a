"""Stateful emulator of the Imply Polaris Identity management API (dev/test tool).

``PolarisSandbox`` keeps users, groups, memberships, the permission catalogue and a couple of
projects in memory and answers the ``/v1/...`` identity routes the way Polaris does according to
``/work/shared/polaris/README.md`` ("Facts the client and the sandbox must honour") and the
public guide "Manage users and groups through API" (``identity-management-guide.txt``).
Rendered objects follow the schemas in ``openapi-identity.json``.

It can be reached three ways, all sharing the same state and fault rules:

* ``handle(method, path, query, headers, body)``: plain function call;
* ``serve()``: a real threaded HTTP/1.1 server on 127.0.0.1 (stdlib only, keep-alive,
  ``Content-Length`` always set) for end-to-end tests, the demo and benchmarks;
* ``mount(rsps, base_url)``: callbacks on a ``responses.RequestsMock`` so code using ``requests``
  talks to the sandbox without sockets;
* ``wsgi_app``: a WSGI application wrapping ``handle``.

Faults (``Fault``) inject error statuses with ``Retry-After``, latency, dropped connections and
"write landed but the response was lost" (``after_handle``) to exercise client retry logic.

Behaviour summary (see the docstrings of the handlers for details):

* Auth: ``Authorization: Basic <key>`` or ``Basic base64(<key>:)``; else 401 with the *wrapped*
  error ``{"error": {"code": "InvalidAuthentication", "message": ...}}``.
* Identity 400/404 errors are *bare* ``{"code": "BadArgument"|"ObjectNotFound", "message": ...}``;
  409 conflicts are *wrapped* ``{"error": {"code": "StateConflict", ...}}``.
* ``PUT /v1/users/{id}`` replaces the user: omitted ``firstName``/``lastName`` disappear from the
  representation, ``enabled`` falls back to ``true``, ``groups``/``permissions``/``actions`` to ``[]``.
* Lists of users and group members are ordered by username (case-insensitive), paged with
  ``top`` (1..100, default 100) and ``skip`` (>= 0) and filtered by ``search`` (case-insensitive
  substring of username, email, firstName, lastName); ``count`` is the total number of matches.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:  # pragma: no cover
    import responses

__all__ = [
    "SANDBOX_API_KEY",
    "PERMISSION_CATALOGUE",
    "PREDEFINED_GROUPS",
    "ORGANIZATION_ADMIN_ID",
    "DATA_MANAGER_ID",
    "DATA_ANALYST_ID",
    "VIEWER_ID",
    "ALERTS_AND_REPORTS_ID",
    "DEMO_PROJECT_IDS",
    "Fault",
    "Call",
    "ConnectionDropped",
    "PolarisSandbox",
    "SandboxServer",
]

SANDBOX_API_KEY = "pok_sandbox_demo_key"
"""Default API key accepted by a sandbox (raw or as base64 of ``<key>:``)."""

# --------------------------------------------------------------------------------------------
# Seed data (identity-management-guide.txt)
# --------------------------------------------------------------------------------------------

_ALL_PROJECTS = ["projects/*"]


def _p(name: str) -> dict:
    return {"name": name, "resources": list(_ALL_PROJECTS)}


#: ``GET /v1/permissions`` as in the guide's "List all permissions" sample response (exact order).
PERMISSION_CATALOGUE: list[dict] = [
    _p("ManageDashboards"),
    _p("ManageCollections"),
    _p("AdministerEmbedLinks"),
    _p("ReadDataSources"),
    _p("ManageFiles"),
    {"name": "AdministerProjects"},
    _p("CreateElevatedAlerts"),
    _p("AdministerAlerts"),
    _p("AdministerQueries"),
    {"name": "AdministerApiKeys"},
    _p("AccessMetrics"),
    _p("AccessVisualization"),
    _p("AccessScaling"),
    {"name": "AdministerBilling", "description": "Allows clients to see and update payment info"},
    _p("ManageAlertsWebhooks"),
    _p("ManageConnections"),
    _p("ManageDataCubes"),
    _p("ManageReports"),
    _p("AccessAlerts"),
    _p("AccessCollections"),
    {"name": "AdministerClients"},
    _p("ManageTables"),
    _p("AccessReports"),
    _p("AdministerScaling"),
    _p("AccessQueries"),
    _p("AccessQueryRawData"),
    _p("AccessMonitorQueries"),
    {"name": "ManageApiKeys"},
    _p("AdministerDataCubes"),
    _p("ManageProjects"),
    _p("ViewTables"),
    _p("ManageIngestionJobs"),
    {"name": "AdministerUsers"},
    _p("AdministerReports"),
    {"name": "AdministerCustomizations"},
    _p("AccessDownloadData"),
    _p("AdministerDashboards"),
    _p("AccessDownloadLargeData"),
    _p("ManageAlerts"),
]

#: Permission names that are organization-level (no ``resources``).
ORG_LEVEL_PERMISSIONS = frozenset(p["name"] for p in PERMISSION_CATALOGUE if "resources" not in p)
_KNOWN_PERMISSIONS = frozenset(p["name"] for p in PERMISSION_CATALOGUE)

DATA_ANALYST_ID = "de7af765-6235-4b18-a5ab-2314e28c9e0d"
DATA_MANAGER_ID = "6b7612cf-7687-4d6e-a036-665655f20550"
ORGANIZATION_ADMIN_ID = "540cbe7b-c283-4824-804e-566a3d22f3ac"
VIEWER_ID = "d919f276-7857-4b59-a616-0c2540fb4ad1"
ALERTS_AND_REPORTS_ID = "b694b590-8496-44c3-8994-078db6a09dbf"

#: The two project IDs used throughout the guide; ``GET /v1/projects`` returns these.
DEMO_PROJECT_IDS = ("45c024f4-1254-4b58-8207-4111d2f80669", "5c9116aa-91ae-41f3-b484-8e45300c961a")


def _perms(*names: str) -> list[dict]:
    return [{"name": n} if n in ORG_LEVEL_PERMISSIONS else _p(n) for n in names]


#: The 4 predefined (``readOnly``) groups in the guide's "List all groups" order, with their exact
#: permission lists (org-level permissions carry no ``resources``, all others ``["projects/*"]``).
PREDEFINED_GROUPS: list[dict] = [
    {
        "id": DATA_ANALYST_ID,
        "name": "Data Analyst",
        "readOnly": True,
        "permissions": _perms(
            "AccessQueries",
            "ManageDashboards",
            "ManageCollections",
            "ViewTables",
            "ManageDataCubes",
            "AccessAlerts",
            "AccessCollections",
            "AccessVisualization",
            "AccessScaling",
            "AccessReports",
            "AccessDownloadData",
            "AccessDownloadLargeData",
        ),
    },
    {
        "id": DATA_MANAGER_ID,
        "name": "Data Manager",
        "readOnly": True,
        "permissions": _perms(
            "ManageDashboards",
            "ManageCollections",
            "ManageFiles",
            "AdministerQueries",
            "AccessMetrics",
            "AccessVisualization",
            "AccessScaling",
            "ManageAlertsWebhooks",
            "ManageConnections",
            "ManageReports",
            "ManageDataCubes",
            "AccessAlerts",
            "AccessCollections",
            "ManageTables",
            "AccessReports",
            "AdministerScaling",
            "AccessQueries",
            "AccessQueryRawData",
            "AccessMonitorQueries",
            "ManageApiKeys",
            "ManageProjects",
            "ViewTables",
            "ManageIngestionJobs",
            "AccessDownloadData",
            "AccessDownloadLargeData",
            "ManageAlerts",
        ),
    },
    {
        "id": ORGANIZATION_ADMIN_ID,
        "name": "Organization Admin",
        "readOnly": True,
        "permissions": _perms(
            "ManageDashboards",
            "ManageCollections",
            "AdministerEmbedLinks",
            "ManageFiles",
            "AdministerProjects",
            "AdministerQueries",
            "AdministerAlerts",
            "AdministerApiKeys",
            "AccessMetrics",
            "AccessVisualization",
            "AccessScaling",
            "ManageAlertsWebhooks",
            "AdministerBilling",
            "ManageConnections",
            "ManageReports",
            "ManageDataCubes",
            "AdministerClients",
            "AccessAlerts",
            "AccessCollections",
            "ManageTables",
            "AccessReports",
            "AdministerScaling",
            "AccessQueries",
            "AccessQueryRawData",
            "AccessMonitorQueries",
            "ManageProjects",
            "ViewTables",
            "AdministerDataCubes",
            "ManageIngestionJobs",
            "AdministerUsers",
            "AdministerReports",
            "AdministerCustomizations",
            "AdministerDashboards",
            "AccessDownloadData",
            "AccessDownloadLargeData",
            "ManageAlerts",
        ),
    },
    {
        "id": VIEWER_ID,
        "name": "Viewer",
        "readOnly": True,
        "permissions": _perms("ViewTables", "AccessCollections", "AccessVisualization"),
    },
]

#: The custom group of the guide's "Create a group" example.
ALERTS_AND_REPORTS_GROUP = {
    "id": ALERTS_AND_REPORTS_ID,
    "name": "Alerts and reports",
    "readOnly": False,
    "permissions": [
        {"name": "AdministerReports", "resources": [f"projects/{p}" for p in DEMO_PROJECT_IDS]},
        {"name": "AdministerAlerts", "resources": [f"projects/{p}" for p in DEMO_PROJECT_IDS]},
    ],
}

# Demo users for seed=True: (id, username, first, last, groups, enabled, emailVerified, actions, createdOn)
_DEMO_USERS = [
    (
        "d88d4e47-d6ed-4820-880e-c0564ce99752",
        "alex.smith@example.com",
        "Alex",
        "Smith",
        [ORGANIZATION_ADMIN_ID],
        True,
        True,
        [],
        "2023-03-14T09:12:45.101Z",
    ),
    (
        "48b08425-7393-4730-bb7d-736e69ef1d92",
        "alexa.smith@example.com",
        "Alexa",
        "Smith",
        [DATA_MANAGER_ID],
        True,
        True,
        [],
        "2023-05-02T16:40:03.350Z",
    ),
    (
        "880f6811-7e85-47ce-b3c5-a57a85ab95bd",
        "dani.lee@example.com",
        "Dani",
        "Lee",
        [ALERTS_AND_REPORTS_ID, VIEWER_ID],
        True,
        False,
        ["VERIFY_EMAIL", "UPDATE_PASSWORD"],
        "2023-09-21T02:45:09.205Z",
    ),
    (
        "3f0c2a7e-5b1d-4c8e-9a6f-2d7b8e1c4a90",
        "sam.patel@example.com",
        "Sam",
        "Patel",
        [DATA_ANALYST_ID],
        True,
        True,
        [],
        "2023-10-11T11:05:27.418Z",
    ),
    (
        "b2e4d6f8-1a3c-4e5f-8b7d-9c0a2e4f6b81",
        "jo.kim@example.com",
        "Jo",
        "Kim",
        [VIEWER_ID],
        False,
        True,
        [],
        "2023-11-30T20:18:52.777Z",
    ),
]

_DEMO_PROJECTS = [
    {
        "metadata": {"uid": DEMO_PROJECT_IDS[0], "name": "demo", "createdOnTimestamp": "2023-01-10T08:00:00.000Z"},
        "spec": {
            "plan": "a.02",
            "desiredState": "running",
            "deletionProtection": False,
            "stopProtection": False,
            "region": "us-east-1",
        },
        "status": {
            "maxBytes": 200000000000,
            "currentBytes": 98201000,
            "deepStorageBytes": 19201290,
            "state": "running",
            "version": "c47f5b18",
        },
    },
    {
        "metadata": {"uid": DEMO_PROJECT_IDS[1], "name": "analytics", "createdOnTimestamp": "2023-02-22T14:30:00.000Z"},
        "spec": {
            "plan": "a.04",
            "desiredState": "running",
            "deletionProtection": True,
            "stopProtection": False,
            "region": "eu-central-1",
        },
        "status": {
            "maxBytes": 400000000000,
            "currentBytes": 1520300000,
            "deepStorageBytes": 402113000,
            "state": "running",
            "version": "c47f5b18",
        },
    },
]

_VALID_ACTIONS = ("VERIFY_EMAIL", "UPDATE_PASSWORD")
_INVITE_ACTIONS = ["VERIFY_EMAIL", "UPDATE_PASSWORD"]
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_RESOURCE_RE = re.compile(r"^projects/(\*|[A-Za-z0-9][A-Za-z0-9_-]*)$")
_BULK_NS = uuid.UUID("7d3c8f52-3e7b-4f0e-9b1c-5a6d2e8f9a01")
_MEMBER_FIELDS = ("id", "username", "email", "firstName", "lastName")


def _now_iso() -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (e.g. ``2023-09-21T02:45:09.205Z``)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(_EMAIL_RE.match(value))


# --------------------------------------------------------------------------------------------
# Faults and call records
# --------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault rule (add with ``PolarisSandbox.add_fault``).

    A rule matches a request when ``method`` (case-insensitive, ``None`` = any) equals the request
    method and ``path`` (a regex, ``re.search`` against the request path without query string,
    ``None`` = any) matches. Each match consumes one of ``times`` (``None`` = forever); a rule is
    removed once used up. Faults are checked *before* authentication and routing (they model the
    network / gateway).

    * ``delay``: sleep that many seconds before answering (outside the state lock, so other
      requests proceed concurrently). Delays of all matching rules add up.
    * ``status``: answer with this status and an error body instead of handling the request
      (``retry_after`` adds a ``Retry-After`` header; ``body`` overrides the default error body:
      bytes/str sent verbatim, anything else JSON-encoded; ``b""`` gives an empty body).
      Default bodies: 400/404 bare ``{"code","message"}``, other statuses wrapped
      ``{"error": {"code","message"}}`` (401 InvalidAuthentication, 409 StateConflict,
      429 TooManyRequests, 5xx InternalError/BadGateway/ServiceUnavailable/GatewayTimeout).
    * ``drop``: close the connection without a response (HTTP mode), raise
      ``requests.exceptions.ConnectionError`` (``mount`` mode), raise ``ConnectionDropped``
      (``handle``/``wsgi_app``).
    * ``after_handle``: with ``status``/``drop``, perform the real request first (the change lands)
      and then answer with the fault: "write landed but the response was lost".

    Only the first matching rule with ``status``/``drop`` is applied (and consumed) per request;
    matching delay-only rules are all applied.
    """

    method: str | None = None
    path: str | None = None
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False
    times: int | None = 1
    after_handle: bool = False
    body: Any = None

    def __post_init__(self) -> None:
        if self.status is not None and self.drop:
            raise ValueError("Fault: give either status or drop, not both")
        if self.after_handle and self.status is None and not self.drop:
            raise ValueError("Fault: after_handle needs status or drop")
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError(f"Fault: invalid status {self.status}")
        if self.delay < 0:
            raise ValueError("Fault: delay must be >= 0")
        if self.times is not None and self.times < 0:
            raise ValueError("Fault: times must be >= 0 or None")
        self._regex = re.compile(self.path) if self.path is not None else None

    @property
    def terminal(self) -> bool:
        """True when the rule replaces the answer (``status`` or ``drop``)."""
        return self.status is not None or self.drop

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to ``method`` + ``path`` (ignores ``times``)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self._regex is not None and not self._regex.search(path):
            return False
        return True


@dataclass
class Call:
    """One request received by the sandbox, recorded in ``PolarisSandbox.calls`` in arrival order.

    ``status`` is what the client got (``0`` = no response: dropped connection or client-side
    read timeout in ``mount`` mode; ``0`` also while the request is still in flight).
    ``handled_status`` is the status the real handler produced (``None`` if a fault pre-empted the
    request); with ``after_handle`` faults the two differ. ``body`` is the parsed JSON request body
    (``None`` when empty or not JSON). ``at`` is ``time.monotonic()`` at arrival.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    handled_status: int | None = None
    at: float = field(default_factory=time.monotonic, repr=False)


class ConnectionDropped(Exception):
    """Raised by ``PolarisSandbox.handle`` when a ``Fault(drop=True)`` applies (no response)."""


class _ReadTimedOut(Exception):
    """Internal: the client's read timeout elapsed before the (delayed) answer (mount mode)."""


class _ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, wrapped: bool = False, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.wrapped = wrapped
        self.headers = headers or {}


def _bad(message: str) -> _ApiError:
    return _ApiError(400, "BadArgument", message)


def _not_found(message: str) -> _ApiError:
    return _ApiError(404, "ObjectNotFound", message)


def _conflict(message: str) -> _ApiError:
    return _ApiError(409, "StateConflict", message, wrapped=True)


def _error_body(status: int, code: str, message: str, wrapped: bool) -> bytes:
    err = {"code": code, "message": message}
    return json.dumps({"error": err} if wrapped else err).encode()


_FAULT_DEFAULTS = {
    400: ("BadArgument", False),
    401: ("InvalidAuthentication", True),
    403: ("Forbidden", True),
    404: ("ObjectNotFound", False),
    408: ("RequestTimeout", True),
    409: ("StateConflict", True),
    429: ("TooManyRequests", True),
    500: ("InternalError", True),
    502: ("BadGateway", True),
    503: ("ServiceUnavailable", True),
    504: ("GatewayTimeout", True),
}


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    name = name.lower()
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------

_SEG = r"([^/]+)"
_ROUTES: list[tuple[re.Pattern, dict[str, str]]] = [
    (re.compile(r"^/v1/permissions$"), {"GET": "_r_list_permissions"}),
    (re.compile(r"^/v1/users$"), {"GET": "_r_list_users", "POST": "_r_create_user"}),
    (re.compile(rf"^/v1/users/{_SEG}$"), {"GET": "_r_get_user", "PUT": "_r_put_user", "DELETE": "_r_delete_user"}),
    (re.compile(rf"^/v1/users/{_SEG}/effectivepermissions$"), {"GET": "_r_effective_permissions"}),
    (re.compile(r"^/v1/groups$"), {"GET": "_r_list_groups", "POST": "_r_create_group"}),
    (re.compile(rf"^/v1/groups/{_SEG}$"), {"GET": "_r_get_group", "PUT": "_r_put_group", "DELETE": "_r_delete_group"}),
    (
        re.compile(rf"^/v1/groups/{_SEG}/members$"),
        {"GET": "_r_list_members", "POST": "_r_add_members", "DELETE": "_r_remove_members"},
    ),
    (re.compile(r"^/v1/projects$"), {"GET": "_r_list_projects"}),
    (re.compile(r"^/v1/audit/events$"), {"GET": "_r_audit_events"}),
]

_NO_BODY = object()  # marker: request had no body
_BAD_JSON = object()  # marker: request body was not valid JSON


def _parse_body(body: bytes) -> Any:
    if not body or not body.strip():
        return _NO_BODY
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _BAD_JSON


# --------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------


class PolarisSandbox:
    """In-memory, thread-safe emulator of the Polaris Identity management API.

    ``PolarisSandbox(api_key=SANDBOX_API_KEY, seed=True)``

    * ``seed=True``: permission catalogue (exact list from the guide), the 4 predefined read-only
      groups with the guide's IDs and permission lists, the custom group "Alerts and reports"
      (``ALERTS_AND_REPORTS_ID``, permissions from the guide), and 5 demo users at example.com:
      alex.smith (Organization Admin), alexa.smith (Data Manager), dani.lee (Alerts and reports +
      Viewer, invite pending), sam.patel (Data Analyst), jo.kim (Viewer, disabled).
    * ``seed=False``: catalogue and the 4 predefined groups only, no users.

    Attributes: ``lock`` (``threading.RLock`` guarding all state), ``calls`` (``list[Call]``),
    ``api_key`` (mutable: change it to simulate key rotation / revocation), ``projects``,
    ``audit_events`` (Polaris's own audit events of the writes that landed, README "Polaris's own audit
    events": ``USER_CREATED``, ``USER_UPDATED``, ``USER_PASSWORD_RESET`` for a PUT carrying
    ``UPDATE_PASSWORD``, ``GROUP_MEMBER_ADDED``, ``GROUP_MEMBER_REMOVED``, ``USER_DELETED``),
    ``audit_access`` (False: the key lacks ``AccessAuditLogs`` and ``GET /v1/audit/events`` answers 403),
    ``actor`` (who the events name as having made a change: the API key by default; a test sets another, e.g.
    an admin making a change in Polaris's console, outside the bot).
    """

    def __init__(self, api_key: str = SANDBOX_API_KEY, seed: bool = True):
        self.api_key = api_key
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.projects: list[dict] = copy.deepcopy(_DEMO_PROJECTS)
        self._faults: list[Fault] = []
        self._permissions: list[dict] = copy.deepcopy(PERMISSION_CATALOGUE)
        self._users: dict[str, dict] = {}  # id -> internal record
        self._by_username: dict[str, str] = {}  # lower(username) -> id
        self._groups: dict[str, dict] = {}  # id -> {"id","name","readOnly","permissions"}
        self._members: dict[str, dict[str, None]] = {}  # group id -> ordered set of user ids
        self._sorted_ids: list[str] | None = None  # cache: user ids ordered by lower(username)
        self._bulk_users = 0
        self._bulk_groups: list[str] = []
        self.audit_events: list[dict] = []
        self.audit_access = True
        self.actor = {"actorType": "apikey", "actorId": "sandbox-api-key", "actorName": "sandbox API key"}
        for g in PREDEFINED_GROUPS:
            self._store_group(copy.deepcopy(g))
        if seed:
            self._store_group(copy.deepcopy(ALERTS_AND_REPORTS_GROUP))
            for uid, username, first, last, groups, enabled, verified, actions, created in _DEMO_USERS:
                self.create_user(
                    username,
                    first,
                    last,
                    groups=groups,
                    enabled=enabled,
                    actions=actions,
                    user_id=uid,
                    email_verified=verified,
                    created_on=created,
                )

    # ---------------------------------------------------------------- faults and call log

    def add_fault(self, fault: Fault) -> None:
        """Register a fault rule (applied in insertion order; see ``Fault``)."""
        with self.lock:
            if fault.times != 0:
                self._faults.append(fault)

    def clear_faults(self) -> None:
        """Remove all fault rules."""
        with self.lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Snapshot of the active fault rules."""
        with self.lock:
            return list(self._faults)

    def writes(self, method: str | None = None, path_regex: str | None = None) -> list[Call]:
        """Recorded POST/PUT/DELETE calls whose change landed (handler status 2xx).

        A call counts when the real handler answered 2xx, including ``after_handle`` faults where
        the client saw an error/dropped connection but the change was applied. Optional filters:
        ``method`` (case-insensitive) and ``path_regex`` (``re.search`` on the path).
        """
        rx = re.compile(path_regex) if path_regex is not None else None
        with self.lock:
            return [
                c
                for c in self.calls
                if c.method in ("POST", "PUT", "DELETE")
                and c.handled_status is not None
                and 200 <= c.handled_status < 300
                and (method is None or c.method == method.upper())
                and (rx is None or rx.search(c.path))
            ]

    def reset_calls(self) -> None:
        """Forget all recorded calls."""
        with self.lock:
            self.calls.clear()

    # ---------------------------------------------------------------- internal state helpers

    def _store_group(self, group: dict) -> None:
        self._groups[group["id"]] = group
        self._members.setdefault(group["id"], {})

    def _user_order(self) -> list[str]:
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self._users, key=lambda i: (self._users[i]["username"].lower(), i))
        return self._sorted_ids

    def _set_user_groups(self, uid: str, gids: list[str]) -> None:
        rec = self._users[uid]
        for g in rec["groups"]:
            self._members.get(g, {}).pop(uid, None)
        rec["groups"] = list(gids)
        for g in gids:
            self._members[g][uid] = None

    def _add_member(self, gid: str, uid: str) -> None:
        rec = self._users[uid]
        if gid not in rec["groups"]:
            rec["groups"].append(gid)
        self._members[gid][uid] = None

    def _remove_member(self, gid: str, uid: str) -> None:
        rec = self._users[uid]
        if gid in rec["groups"]:
            rec["groups"].remove(gid)
        self._members[gid].pop(uid, None)

    def _render_user(self, rec: dict) -> dict:
        out: dict[str, Any] = {"id": rec["id"], "username": rec["username"], "email": rec["username"]}
        for key in ("firstName", "lastName"):
            if rec.get(key) is not None:
                out[key] = rec[key]
        out["enabled"] = rec["enabled"]
        out["emailVerified"] = rec["emailVerified"]
        out["permissions"] = copy.deepcopy(rec["permissions"])
        out["groups"] = [{"id": g, "name": self._groups[g]["name"]} for g in rec["groups"] if g in self._groups]
        out["identities"] = copy.deepcopy(rec["identities"])
        out["actions"] = list(rec["actions"])
        out["createdOn"] = rec["createdOn"]
        return out

    def _render_member(self, rec: dict) -> dict:
        out = {"id": rec["id"], "username": rec["username"], "email": rec["username"]}
        for key in ("firstName", "lastName"):
            if rec.get(key) is not None:
                out[key] = rec[key]
        return out

    def _render_group(self, g: dict) -> dict:
        return {
            "id": g["id"],
            "name": g["name"],
            "readOnly": g["readOnly"],
            "permissions": copy.deepcopy(g["permissions"]),
            "userCount": len(self._members.get(g["id"], ())),
        }

    @staticmethod
    def _normalize_permissions(perms: Any, what: str) -> list[dict]:
        """Validate a permissions array (guide "Create a group"): known names; project-scoped ones need
        ``resources`` (``projects/*`` or ``projects/<id>``), org-level ones must carry none. Entries
        with the same name are merged (resources unioned, order kept)."""
        if not isinstance(perms, list):
            raise _bad(f"{what}: permissions must be an array")
        merged: dict[str, dict] = {}
        for p in perms:
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                raise _bad(f"{what}: each permission needs a string 'name'")
            name = p["name"]
            if name not in _KNOWN_PERMISSIONS:
                raise _bad(f"{what}: unknown permission '{name}'")
            res = p.get("resources")
            if name in ORG_LEVEL_PERMISSIONS:
                if res not in (None, []):
                    raise _bad(f"{what}: '{name}' is organization-level and takes no resources")
                merged.setdefault(name, {"name": name})
                continue
            if not isinstance(res, list) or not res:
                raise _bad(f"{what}: '{name}' needs resources, e.g. [\"projects/*\"]")
            for r in res:
                if not isinstance(r, str) or not _RESOURCE_RE.match(r):
                    raise _bad(
                        f"{what}: invalid resource {r!r} for '{name}' "
                        "(expected 'projects/*' or 'projects/<project id>')"
                    )
            entry = merged.setdefault(name, {"name": name, "resources": []})
            for r in res:
                if r not in entry["resources"]:
                    entry["resources"].append(r)
        return list(merged.values())

    def _resolve_group_refs(self, groups: Any) -> list[str]:
        """User bodies reference groups by ID only (README "Assign groups by ID, never by name")."""
        if not isinstance(groups, list):
            raise _bad('groups must be an array of {"id": ...}')
        out: list[str] = []
        for g in groups:
            if not isinstance(g, dict) or not isinstance(g.get("id"), str) or not g["id"]:
                raise _bad("each group must be an object with a group 'id' (assign groups by ID)")
            if g["id"] not in self._groups:
                raise _bad(f"group '{g['id']}' does not exist")
            if g["id"] not in out:
                out.append(g["id"])
        return out

    @staticmethod
    def _check_actions(actions: Any) -> list[str]:
        if not isinstance(actions, list) or any(a not in _VALID_ACTIONS for a in actions):
            raise _bad(f"actions must be an array of {list(_VALID_ACTIONS)}")
        return list(dict.fromkeys(actions))

    def _user_fields_from_body(self, body: dict) -> dict:
        """Validate the replaceable user properties of a POST/PUT body (missing -> schema defaults)."""
        out: dict[str, Any] = {}
        for key in ("firstName", "lastName"):
            v = body.get(key)
            if v is not None and not isinstance(v, str):
                raise _bad(f"{key} must be a string")
            out[key] = v
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise _bad("enabled must be a boolean")
        out["enabled"] = True if enabled is None else enabled
        out["groups"] = self._resolve_group_refs(body["groups"]) if body.get("groups") is not None else []
        out["permissions"] = (
            self._normalize_permissions(body["permissions"], "user") if body.get("permissions") is not None else []
        )
        out["actions"] = self._check_actions(body["actions"]) if body.get("actions") is not None else None
        return out

    def _insert_user(
        self,
        *,
        user_id: str,
        username: str,
        first: str | None,
        last: str | None,
        enabled: bool,
        email_verified: bool,
        permissions: list,
        groups: list[str],
        actions: list[str],
        created_on: str,
    ) -> dict:
        rec = {
            "id": user_id,
            "username": username,
            "firstName": first,
            "lastName": last,
            "enabled": enabled,
            "emailVerified": email_verified,
            "permissions": permissions,
            "groups": [],
            "identities": [],
            "actions": actions,
            "createdOn": created_on,
        }
        self._users[user_id] = rec
        self._by_username[username.lower()] = user_id
        self._sorted_ids = None
        self._set_user_groups(user_id, groups)
        return rec

    # ---------------------------------------------------------------- direct helpers (no HTTP)

    def create_user(
        self,
        username: str,
        first_name: str = "",
        last_name: str = "",
        groups: Iterable[str] = (),
        enabled: bool = True,
        actions: list[str] | None = None,
        *,
        user_id: str | None = None,
        permissions: list[dict] | None = None,
        email_verified: bool = False,
        created_on: str | None = None,
    ) -> dict:
        """Create a user directly (not recorded in ``calls``) and return it as the API renders it.

        ``groups`` are group IDs (names are accepted too, case-insensitive, for convenience).
        ``actions=None`` gives the invite default ``["VERIFY_EMAIL", "UPDATE_PASSWORD"]``.
        Raises ``ValueError`` on an invalid email, duplicate username (case-insensitive), unknown
        group or invalid permissions/actions.
        """
        with self.lock:
            if not _is_email(username):
                raise ValueError(f"username must be a valid email: {username!r}")
            if username.lower() in self._by_username:
                raise ValueError(f"user {username!r} already exists")
            uid = user_id or str(uuid.uuid4())
            if uid in self._users:
                raise ValueError(f"user id {uid!r} already exists")
            gids = []
            for g in groups:
                grp = self._groups.get(g) or self.group_by_name(g)
                if grp is None:
                    raise ValueError(f"unknown group {g!r}")
                if grp["id"] not in gids:
                    gids.append(grp["id"])
            try:
                perms = self._normalize_permissions(list(permissions or []), "user")
                acts = self._check_actions(list(_INVITE_ACTIONS if actions is None else actions))
            except _ApiError as e:
                raise ValueError(e.message) from None
            rec = self._insert_user(
                user_id=uid,
                username=username,
                first=first_name,
                last=last_name,
                enabled=bool(enabled),
                email_verified=email_verified,
                permissions=perms,
                groups=gids,
                actions=acts,
                created_on=created_on or _now_iso(),
            )
            return self._render_user(rec)

    def create_group(
        self, name: str, permissions: list[dict], *, group_id: str | None = None, read_only: bool = False
    ) -> dict:
        """Create a group directly and return it as rendered by the API (``userCount`` 0).

        Raises ``ValueError`` on an empty/duplicate (case-insensitive) name or invalid permissions.
        """
        with self.lock:
            if not isinstance(name, str) or not name.strip():
                raise ValueError("group name must be a non-empty string")
            if self.group_by_name(name) is not None:
                raise ValueError(f"group {name!r} already exists")
            try:
                perms = self._normalize_permissions(list(permissions), "group")
            except _ApiError as e:
                raise ValueError(e.message) from None
            gid = group_id or str(uuid.uuid4())
            if gid in self._groups:
                raise ValueError(f"group id {gid!r} already exists")
            self._store_group({"id": gid, "name": name, "readOnly": bool(read_only), "permissions": perms})
            return self._render_group(self._groups[gid])

    def add_group_permissions(self, group_id: str, permissions: list[dict]) -> dict:
        """Add ``permissions`` to a group directly (not recorded in ``calls``; allowed on predefined groups
        too, to model a change made in Polaris behind the bot's back) and return the group as rendered.
        Raises ``ValueError`` for an unknown group or invalid permissions."""
        with self.lock:
            g = self._groups.get(group_id)
            if g is None:
                raise ValueError(f"unknown group {group_id!r}")
            try:
                perms = self._normalize_permissions(list(permissions), "group")
            except _ApiError as e:
                raise ValueError(e.message) from None
            have = {p["name"] for p in g["permissions"]}
            g["permissions"] = g["permissions"] + [p for p in perms if p["name"] not in have]
            return self._render_group(g)

    def get_user(self, user_id: str) -> dict | None:
        """The user as ``GET /v1/users/{id}`` renders it, or ``None``."""
        with self.lock:
            rec = self._users.get(user_id)
            return self._render_user(rec) if rec else None

    def find_user(self, username: str) -> dict | None:
        """The user whose username equals ``username`` (case-insensitive), or ``None``."""
        with self.lock:
            uid = self._by_username.get(username.lower())
            return self._render_user(self._users[uid]) if uid else None

    def get_group(self, group_id: str) -> dict | None:
        """The group as ``GET /v1/groups/{id}`` renders it, or ``None``."""
        with self.lock:
            g = self._groups.get(group_id)
            return self._render_group(g) if g else None

    def group_by_name(self, name: str) -> dict | None:
        """The group named ``name`` (case-insensitive; names are unique that way), or ``None``."""
        with self.lock:
            low = name.lower()
            for g in self._groups.values():
                if g["name"].lower() == low:
                    return self._render_group(g)
            return None

    def group_member_ids(self, group_id: str) -> list[str]:
        """IDs of the members of a group (insertion order); ``[]`` for an unknown group."""
        with self.lock:
            return list(self._members.get(group_id, ()))

    def user_count(self) -> int:
        """Number of users."""
        with self.lock:
            return len(self._users)

    def seed_bulk(self, users: int, groups: int) -> None:
        """Add ``groups`` custom groups and ``users`` users, fast and deterministically (benchmarks).

        Groups are named ``Bulk Group 0000``.. with 1-4 project-scoped permissions each; users are
        ``bulk.user00000@example.com``.. with names from fixed lists, each in one predefined group
        plus up to two bulk groups; every 50th user is disabled, every 20th has a pending invite.
        IDs are UUIDv5 of the name, so repeated runs produce identical data. Calling it again
        continues the numbering. 10,000 users / 200 groups take well under a second.
        """
        first_names = [
            "Alex",
            "Blake",
            "Casey",
            "Dana",
            "Eli",
            "Frankie",
            "Gray",
            "Harper",
            "Indy",
            "Jordan",
            "Kai",
            "Logan",
            "Morgan",
            "Noa",
            "Oakley",
            "Parker",
            "Quinn",
            "Riley",
            "Sage",
            "Taylor",
            "Uma",
            "Val",
            "Wren",
            "Xen",
            "Yael",
            "Zion",
        ]
        last_names = [
            "Adams",
            "Brown",
            "Chen",
            "Diaz",
            "Evans",
            "Fischer",
            "Garcia",
            "Hughes",
            "Ito",
            "Jensen",
            "Khan",
            "Lopez",
            "Moreau",
            "Nakamura",
            "Okafor",
            "Patel",
            "Quist",
            "Rossi",
            "Silva",
            "Tanaka",
            "Ueda",
            "Varga",
            "Weber",
            "Xu",
            "Young",
            "Zhang",
        ]
        scoped = [p["name"] for p in PERMISSION_CATALOGUE if "resources" in p]
        predefined = [g["id"] for g in PREDEFINED_GROUPS]
        base = datetime(2022, 1, 1, tzinfo=timezone.utc)
        with self.lock:
            for _ in range(groups):
                idx = len(self._bulk_groups)
                name = f"Bulk Group {idx:04d}"
                gid = str(uuid.uuid5(_BULK_NS, "group:" + name))
                res = ["projects/*"] if idx % 3 else [f"projects/{DEMO_PROJECT_IDS[idx % 2]}"]
                names = list(dict.fromkeys(scoped[(idx * 7 + j * 5) % len(scoped)] for j in range(1 + idx % 4)))
                self._store_group(
                    {
                        "id": gid,
                        "name": name,
                        "readOnly": False,
                        "permissions": [{"name": n, "resources": list(res)} for n in names],
                    }
                )
                self._bulk_groups.append(gid)
            nb = len(self._bulk_groups)
            for _ in range(users):
                idx = self._bulk_users
                self._bulk_users += 1
                username = f"bulk.user{idx:05d}@example.com"
                if username in self._by_username:
                    continue
                gids = [predefined[idx % 4]]
                if nb:
                    for g in (self._bulk_groups[idx % nb], self._bulk_groups[(idx * 7 + 3) % nb]):
                        if g not in gids:
                            gids.append(g)
                    if idx % 3 == 0:
                        gids = gids[:2]
                created = base + timedelta(minutes=idx)
                rec = {
                    "id": str(uuid.uuid5(_BULK_NS, "user:" + username)),
                    "username": username,
                    "firstName": first_names[idx % len(first_names)],
                    "lastName": last_names[(idx // len(first_names)) % len(last_names)],
                    "enabled": idx % 50 != 49,
                    "emailVerified": idx % 20 != 7,
                    "permissions": [],
                    "groups": gids,
                    "identities": [],
                    "actions": list(_INVITE_ACTIONS) if idx % 20 == 7 else [],
                    "createdOn": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                }
                self._users[rec["id"]] = rec
                self._by_username[username] = rec["id"]
                for g in gids:
                    self._members[g][rec["id"]] = None
            self._sorted_ids = None

    # ---------------------------------------------------------------- request entry points

    def handle(
        self, method: str, path: str, query: dict[str, str] | None, headers: dict[str, str] | None, body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one API request: returns ``(status, headers, body_bytes)``.

        ``path`` is the decoded path (a ``?query`` suffix is parsed and merged into ``query``).
        Response headers always include ``Content-Type: application/json`` and ``Content-Length``.
        The request is recorded in ``calls``; matching faults are applied (delays sleep here).
        Raises ``ConnectionDropped`` for a ``Fault(drop=True)``.
        """
        return self._process(method, path, query, headers, body)

    def _take_faults(self, method: str, path: str) -> tuple[float, Fault | None]:
        delay = 0.0
        terminal: Fault | None = None
        for f in list(self._faults):
            if not f.matches(method, path):
                continue
            if f.terminal:
                if terminal is not None:
                    continue
                terminal = f
            delay += f.delay
            if f.times is not None:
                f.times -= 1
                if f.times <= 0:
                    self._faults.remove(f)
        return delay, terminal

    def _process(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None,
        headers: Any,
        body: bytes | str | None,
        read_timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        method = method.upper()
        query = dict(query or {})
        if "?" in path:
            path, qs = path.split("?", 1)
            query = {**dict(parse_qsl(qs, keep_blank_values=True)), **query}
        if isinstance(body, str):
            body = body.encode("utf-8")
        body = body or b""
        parsed = _parse_body(body)
        call = Call(method, path, query, None if parsed in (_NO_BODY, _BAD_JSON) else parsed, 0)
        with self.lock:
            self.calls.append(call)
            delay, fault = self._take_faults(method, path)
        timed_out = read_timeout is not None and delay > read_timeout
        sleep_for = read_timeout if timed_out else delay
        if sleep_for:
            time.sleep(sleep_for)
        result = None
        if fault is None or fault.after_handle:
            with self.lock:
                result = self._dispatch(method, path, query, headers, parsed)
                call.handled_status = result[0]
        if timed_out:
            call.status = 0
            raise _ReadTimedOut(f"sandbox answer delayed {delay}s > read timeout {read_timeout}s")
        if fault is not None:
            if fault.drop:
                call.status = 0
                raise ConnectionDropped(f"fault: connection dropped ({method} {path})")
            result = self._fault_response(fault)
        assert result is not None
        call.status = result[0]
        return result

    @staticmethod
    def _fault_response(fault: Fault) -> tuple[int, dict[str, str], bytes]:
        status = int(fault.status)  # type: ignore[arg-type]
        if fault.body is None:
            code, wrapped = _FAULT_DEFAULTS.get(status, ("InternalError" if status >= 500 else "Error", True))
            payload = _error_body(status, code, f"Injected fault: HTTP {status}", wrapped)
        elif isinstance(fault.body, bytes):
            payload = fault.body
        elif isinstance(fault.body, str):
            payload = fault.body.encode("utf-8")
        else:
            payload = json.dumps(fault.body).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
        if fault.retry_after is not None:
            headers["Retry-After"] = _format_seconds(fault.retry_after)
        return status, headers, payload

    def _authorized(self, headers: Any) -> bool:
        """README "Authentication": ``Basic <key>`` (guide) or ``Basic base64(<key>:)`` (RFC 7617)."""
        value = _header(headers, "Authorization")
        if not value:
            return False
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "basic" or not token:
            return False
        key = self.api_key.encode("utf-8")
        if hmac.compare_digest(token.encode("utf-8"), key):
            return True
        try:
            decoded = base64.b64decode(token, validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(decoded, key + b":")

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], headers: Any, parsed: Any
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            if not self._authorized(headers):
                raise _ApiError(
                    401,
                    "InvalidAuthentication",
                    "The provided authorization is invalid.",
                    wrapped=True,
                    headers={"WWW-Authenticate": 'Basic realm="Imply Polaris"'},
                )
            for regex, methods in _ROUTES:
                m = regex.match(path)
                if not m:
                    continue
                name = methods.get(method)
                if name is None:
                    raise _ApiError(
                        405,
                        "MethodNotAllowed",
                        f"{method} is not allowed on {path}",
                        headers={"Allow": ", ".join(methods)},
                    )
                status, payload = getattr(self, name)(*[unquote(g) for g in m.groups()], query=query, body=parsed)
                data = b"" if payload is None else json.dumps(payload).encode()
                return status, {"Content-Type": "application/json", "Content-Length": str(len(data))}, data
            raise _ApiError(404, "NotFound", f"No route for {method} {path}")
        except _ApiError as e:
            data = _error_body(e.status, e.code, e.message, e.wrapped)
            hdrs = {"Content-Type": "application/json", "Content-Length": str(len(data)), **e.headers}
            return e.status, hdrs, data

    # ---------------------------------------------------------------- request helpers

    @staticmethod
    def _require_body(body: Any, kind: type, what: str) -> Any:
        if body is _BAD_JSON:
            raise _bad("Malformed JSON in request body")
        if body is _NO_BODY or body is None:
            raise _bad(f"Request body required: {what}")
        if not isinstance(body, kind):
            raise _bad(f"Request body must be {what}")
        return body

    @staticmethod
    def _paging(query: dict[str, str]) -> tuple[int, int, str]:
        """README "Paging": ``top`` 1..100 (default 100), ``skip`` >= 0; else 400 BadArgument."""

        def as_int(name: str, default: int) -> int:
            raw = query.get(name)
            if raw is None:
                return default
            if not re.fullmatch(r"[+-]?\d+", raw.strip()):
                raise _bad(f"'{name}' must be an integer")
            return int(raw)

        top, skip = as_int("top", 100), as_int("skip", 0)
        if not 1 <= top <= 100:
            raise _bad("'top' must be between 1 and 100")
        if skip < 0:
            raise _bad("'skip' must be >= 0")
        return top, skip, query.get("search") or ""

    def _page_users(self, ids: Iterable[str], query: dict[str, str], render: Callable[[dict], dict]) -> dict:
        top, skip, search = self._paging(query)
        needle = search.lower()
        matched = []
        for uid in ids:
            rec = self._users[uid]
            if needle and not any(needle in (rec.get(k) or "").lower() for k in ("username", "firstName", "lastName")):
                continue  # email == username
            matched.append(rec)
        return {"values": [render(r) for r in matched[skip : skip + top]], "count": len(matched)}

    def _event(self, kind: str, uid: str, summary: str, **context: str) -> None:
        """Record one of Polaris's audit events (``category`` ADMIN, done by ``actor``) about user ``uid``;
        ``resource`` is ``users/<id>``, ``context.userId`` the user's ID (plus ``context``, e.g. ``groupId``)."""
        self.audit_events.append(
            {
                "time": _now_iso(),
                "accountId": "sandbox-account",
                "type": kind,
                "category": "ADMIN",
                "resource": f"users/{uid}",
                **self.actor,
                "summary": summary,
                "context": {"userId": uid, **context},
            }
        )

    def _user_or_404(self, uid: str) -> dict:
        rec = self._users.get(uid)
        if rec is None:
            raise _not_found(f"User '{uid}' not found")
        return rec

    def _group_or_404(self, gid: str) -> dict:
        g = self._groups.get(gid)
        if g is None:
            raise _not_found(f"Group '{gid}' not found")
        return g

    def _member_ids_from_body(self, body: Any) -> list[str]:
        body = self._require_body(body, list, 'an array of {"id": ...}')
        ids: list[str] = []
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise _bad('each member must be an object with a user "id"')
            if item["id"] not in self._users:
                raise _bad(f"user '{item['id']}' does not exist")
            if item["id"] not in ids:
                ids.append(item["id"])
        return ids

    # ---------------------------------------------------------------- route handlers
    # Each returns (status, payload); payload None -> empty body.

    def _r_list_permissions(self, *, query, body):
        """GET /v1/permissions -> 200 {"values": catalogue} (guide "List all permissions")."""
        return 200, {"values": copy.deepcopy(self._permissions)}

    def _r_list_users(self, *, query, body):
        """GET /v1/users?top&skip&search -> 200 {"values", "count"} ordered by username."""
        return 200, self._page_users(self._user_order(), query, self._render_user)

    def _r_create_user(self, *, query, body):
        """POST /v1/users[?skipInvite=true] -> 201 user (guide "Create a user with group membership").

        400 bare BadArgument: invalid email username, bad field types, unknown group id,
        bad skipInvite. 409 wrapped StateConflict: username exists (case-insensitive).
        ``email`` is set to ``username``; ``actions`` default to VERIFY_EMAIL+UPDATE_PASSWORD, or
        ``[]`` with ``skipInvite=true`` (explicit ``actions`` in the body win).
        """
        skip_raw = query.get("skipInvite", "false").strip().lower()
        if skip_raw not in ("true", "false"):
            raise _bad("'skipInvite' must be true or false")
        body = self._require_body(body, dict, "a user object")
        username = body.get("username")
        if not _is_email(username):
            raise _bad("'username' must be a valid email address")
        fields = self._user_fields_from_body(body)
        if username.lower() in self._by_username:
            raise _conflict(f"A user with username '{username}' already exists")
        actions = fields["actions"]
        if actions is None:
            actions = [] if skip_raw == "true" else list(_INVITE_ACTIONS)
        rec = self._insert_user(
            user_id=str(uuid.uuid4()),
            username=username,
            first=fields["firstName"],
            last=fields["lastName"],
            enabled=fields["enabled"],
            email_verified=False,
            permissions=fields["permissions"],
            groups=fields["groups"],
            actions=actions,
            created_on=_now_iso(),
        )
        self._event("USER_CREATED", rec["id"], f"User {username} created")
        return 201, self._render_user(rec)

    def _r_get_user(self, uid, *, query, body):
        """GET /v1/users/{id} -> 200 user; 404 bare ObjectNotFound."""
        return 200, self._render_user(self._user_or_404(uid))

    def _r_put_user(self, uid, *, query, body):
        """PUT /v1/users/{id} -> 200 user. README "PUT replaces the user".

        The user is rebuilt from the body: omitted firstName/lastName disappear, ``enabled`` -> true,
        ``groups``/``permissions``/``actions`` -> []. Kept: id, username, email, emailVerified,
        identities, createdOn. A different ``username`` or ``email`` -> 400 BadArgument (immutable);
        unknown group id -> 400; unknown user -> 404.
        """
        body = self._require_body(body, dict, "a user object")
        rec = self._user_or_404(uid)
        for key in ("username", "email"):
            if key in body and body[key] is not None:
                if not isinstance(body[key], str) or body[key].lower() != rec["username"].lower():
                    raise _bad(f"'{key}' cannot be modified")
        fields = self._user_fields_from_body(body)
        was_enabled = rec["enabled"]
        rec["firstName"] = fields["firstName"]
        rec["lastName"] = fields["lastName"]
        rec["enabled"] = fields["enabled"]
        rec["permissions"] = fields["permissions"]
        rec["actions"] = fields["actions"] or []
        self._set_user_groups(uid, fields["groups"])
        self._event("USER_UPDATED", uid, f"User {rec['username']} updated")
        if was_enabled != rec["enabled"]:
            kind = "USER_ENABLED" if rec["enabled"] else "USER_DISABLED"
            self._event(kind, uid, f"User {rec['username']} {'enabled' if rec['enabled'] else 'disabled'}")
        if "UPDATE_PASSWORD" in rec["actions"]:  # the PUT asks Polaris to send the reset email
            self._event("USER_PASSWORD_RESET", uid, f"Password reset requested for {rec['username']}")
        return 200, self._render_user(rec)

    def _r_delete_user(self, uid, *, query, body):
        """DELETE /v1/users/{id} -> 200 with an empty body; removes the user from all groups."""
        rec = self._user_or_404(uid)
        self._set_user_groups(uid, [])
        del self._users[uid]
        self._by_username.pop(rec["username"].lower(), None)
        self._sorted_ids = None
        return 200, None

    def _r_effective_permissions(self, uid, *, query, body):
        """GET /v1/users/{id}/effectivepermissions -> 200 {"values"} (guide "List user permissions").

        Union over the user's groups plus their own permissions, one entry per permission name with
        the resources merged (first-seen order). Org-level permissions carry no ``resources``.
        """
        rec = self._user_or_404(uid)
        merged: dict[str, dict] = {}
        sources = [self._groups[g]["permissions"] for g in rec["groups"] if g in self._groups]
        sources.append(rec["permissions"])
        for perms in sources:
            for p in perms:
                entry = merged.setdefault(p["name"], {"name": p["name"]})
                if "resources" in p:
                    res = entry.setdefault("resources", [])
                    for r in p["resources"]:
                        if r not in res:
                            res.append(r)
        return 200, {"values": list(merged.values())}

    def _r_list_groups(self, *, query, body):
        """GET /v1/groups -> 200 {"values": [group...]} (unpaged; predefined first)."""
        return 200, {"values": [self._render_group(g) for g in self._groups.values()]}

    def _validate_group_body(self, body: Any, *, exclude: str | None, require_permissions: bool) -> tuple[str, list]:
        body = self._require_body(body, dict, "a group object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _bad("'name' is required")
        if require_permissions and body.get("permissions") is None:
            raise _bad("'permissions' is required")
        perms = self._normalize_permissions(body.get("permissions") or [], "group")
        low = name.lower()
        for g in self._groups.values():
            if g["id"] != exclude and g["name"].lower() == low:
                raise _conflict(f"A group named '{g['name']}' already exists")
        return name, perms

    def _r_create_group(self, *, query, body):
        """POST /v1/groups -> 201 group (guide "Create a group"); ``name`` and ``permissions`` required.

        400 bare BadArgument on invalid input (unknown permission, missing/invalid resources,
        resources on org-level permissions); 409 wrapped StateConflict on a duplicate name
        (case-insensitive). ``readOnly`` is always false, ``userCount`` 0.
        """
        name, perms = self._validate_group_body(body, exclude=None, require_permissions=True)
        gid = str(uuid.uuid4())
        self._store_group({"id": gid, "name": name, "readOnly": False, "permissions": perms})
        return 201, self._render_group(self._groups[gid])

    def _r_get_group(self, gid, *, query, body):
        """GET /v1/groups/{id} -> 200 group; 404 bare ObjectNotFound."""
        return 200, self._render_group(self._group_or_404(gid))

    def _r_put_group(self, gid, *, query, body):
        """PUT /v1/groups/{id} -> 200 group. Replaces name and permissions (omitted permissions -> []);
        membership is kept. Predefined (readOnly) groups -> 400 BadArgument; duplicate name -> 409."""
        g = self._group_or_404(gid)
        if g["readOnly"]:
            raise _bad(f"Group '{g['name']}' is predefined (readOnly) and cannot be changed")
        name, perms = self._validate_group_body(body, exclude=gid, require_permissions=False)
        g["name"], g["permissions"] = name, perms
        return 200, self._render_group(g)

    def _r_delete_group(self, gid, *, query, body):
        """DELETE /v1/groups/{id} -> 200 empty body; members lose the group. readOnly -> 400."""
        g = self._group_or_404(gid)
        if g["readOnly"]:
            raise _bad(f"Group '{g['name']}' is predefined (readOnly) and cannot be deleted")
        for uid in list(self._members.get(gid, ())):
            self._remove_member(gid, uid)
        del self._groups[gid]
        self._members.pop(gid, None)
        return 200, None

    def _r_list_members(self, gid, *, query, body):
        """GET /v1/groups/{id}/members?top&skip&search -> 200 {"values": [{id,username,email,
        firstName,lastName}], "count"} (guide "List all group members"), ordered by username."""
        self._group_or_404(gid)
        members = self._members[gid]
        return 200, self._page_users((u for u in self._user_order() if u in members), query, self._render_member)

    def _r_add_members(self, gid, *, query, body):
        """POST /v1/groups/{id}/members, body ``[{"id": ...}]`` -> 200 empty body (idempotent).
        Unknown group -> 404; malformed body or unknown user id -> 400 (nothing is changed)."""
        self._group_or_404(gid)
        for uid in self._member_ids_from_body(body):
            if uid not in self._members[gid]:
                self._event("GROUP_MEMBER_ADDED", uid, f"User added to group {gid}", groupId=gid)
            self._add_member(gid, uid)
        return 200, None

    def _r_remove_members(self, gid, *, query, body):
        """DELETE /v1/groups/{id}/members, body ``[{"id": ...}]`` -> 200 empty body (non-members are
        ignored). Unknown group -> 404; malformed body or unknown user id -> 400."""
        self._group_or_404(gid)
        for uid in self._member_ids_from_body(body):
            if uid in self._members[gid]:
                self._event("GROUP_MEMBER_REMOVED", uid, f"User removed from group {gid}", groupId=gid)
            self._remove_member(gid, uid)
        return 200, None

    def _r_list_projects(self, *, query, body):
        """GET /v1/projects -> 200 bare JSON array of Project objects."""
        return 200, copy.deepcopy(self.projects)

    def _r_audit_events(self, *, query, body):
        """GET /v1/audit/events?from&to&user&type -> 200 {"values": [event...]} (no paging fields).

        ``type`` filters exactly; ``user`` matches the user an event is about (``context.userId``) or its
        actor; ``from``/``to`` are ISO 8601 (inclusive). Without ``AccessAuditLogs`` (``audit_access`` False):
        403 wrapped ``Forbidden``."""
        if not self.audit_access:
            raise _ApiError(403, "Forbidden", "The API key lacks the AccessAuditLogs permission.", wrapped=True)

        def when(name: str) -> datetime | None:
            raw = query.get(name)
            if not raw:
                return None
            try:
                return datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise _bad(f"'{name}' must be an ISO 8601 time") from None

        since, until = when("from"), when("to")
        out = []
        for e in self.audit_events:
            at = datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
            if query.get("type") and e["type"] != query["type"]:
                continue
            if query.get("user") and query["user"] not in (e["context"].get("userId"), e["actorId"]):
                continue
            if (since and at < since) or (until and at > until):
                continue
            out.append(copy.deepcopy(e))
        return 200, {"values": out}

    # ---------------------------------------------------------------- WSGI / HTTP / responses

    def wsgi_app(self, environ: dict, start_response: Callable) -> list[bytes]:
        """WSGI application wrapping ``handle``. A ``Fault(drop=True)`` raises ``ConnectionDropped``
        (WSGI cannot drop a connection; the host server decides what the client sees)."""
        path = environ.get("PATH_INFO", "") or "/"
        try:
            path = path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        status, hdrs, payload = self.handle(environ.get("REQUEST_METHOD", "GET"), path, query, headers, body)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(f"{status} {phrase}", list(hdrs.items()))
        return [payload]

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> "SandboxServer":
        """Start a threaded HTTP/1.1 server (stdlib) in a daemon thread; ``port=0`` picks a free port.
        Returns a ``SandboxServer`` (``.url``, ``.shutdown()``, usable as a context manager)."""
        return SandboxServer(self, host, port)

    def mount(self, rsps: "responses.RequestsMock", base_url: str) -> None:
        """Route every ``requests`` call under ``base_url`` through ``handle`` using ``rsps``.

        Registers one callback for every method on a regex of ``base_url`` (any path below it;
        DELETE with a body works; paths outside ``/v1/...`` get the sandbox's 404). Responses
        registered on ``rsps`` *before* ``mount`` for an overlapping URL are used once and then
        dropped (responses' first-match registry); prefer ``Fault`` to vary answers. ``Fault.drop`` raises ``requests.exceptions.ConnectionError``;
        ``Fault.delay`` sleeps, and if it exceeds the request's read timeout the callback sleeps
        the timeout, lets the change land (as a real server would, late) and raises
        ``requests.exceptions.ReadTimeout``.
        """
        import requests

        base = base_url.rstrip("/")
        prefix = urlsplit(base).path.rstrip("/")
        pattern = re.compile(re.escape(base) + r"(?:[/?#]|$)", re.IGNORECASE)

        def callback(request):
            split = urlsplit(request.url)
            path = unquote(split.path) or "/"
            if prefix and path.startswith(prefix):
                path = path[len(prefix) :] or "/"
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            body = request.body
            if body is None:
                body = b""
            elif isinstance(body, str):
                body = body.encode("utf-8")
            elif not isinstance(body, (bytes, bytearray)):
                body = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in body)
            read_timeout = _read_timeout(getattr(request, "req_kwargs", {}).get("timeout"))
            try:
                return self._process(
                    request.method, path, query, dict(request.headers), bytes(body), read_timeout=read_timeout
                )
            except ConnectionDropped as e:
                return requests.exceptions.ConnectionError(str(e), request=request)
            except _ReadTimedOut as e:
                return requests.exceptions.ReadTimeout(str(e), request=request)

        import responses as _responses

        class _AnyMethodCallback(_responses.CallbackResponse):
            """One registration for every method, so ``assert_all_requests_are_fired`` is satisfied
            as soon as any request reached the sandbox."""

            def matches(self, request):  # noqa: D401 - responses API
                if not self._url_matches(self.url, str(request.url)):
                    return False, "URL does not match"
                return True, ""

        rsps.add(_AnyMethodCallback("ANY", pattern, callback=callback, content_type=None))


def _read_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) > 1 else timeout[0]
    elif not isinstance(timeout, (int, float)):
        timeout = getattr(timeout, "read_timeout", None)
    return float(timeout) if isinstance(timeout, (int, float)) else None


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


NODELAY = True  # TCP_NODELAY on accepted sockets; bench/sandbox_latency.py turns it off to show the difference


def nodelay(conn: socket.socket) -> None:
    """Set ``TCP_NODELAY`` on an accepted connection (when :data:`NODELAY`). ``BaseHTTPRequestHandler`` writes the
    headers and the body in two ``send`` calls: on a kept-alive connection Nagle holds the body until the
    client's delayed ACK of the headers (about 40 ms on Linux), so every call looked 44 ms slow."""
    if NODELAY:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not TCP (a socketpair in a test)
            pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PolarisSandbox/1.0"
    timeout = 60  # idle keep-alive connections are closed after this many seconds

    def setup(self) -> None:
        super().setup()
        nodelay(self.connection)
        self.server.track(self.connection, True)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        sandbox: PolarisSandbox = self.server.sandbox  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        try:
            status, headers, payload = sandbox.handle(
                self.command, unquote(split.path), query, dict(self.headers.items()), body
            )
        except ConnectionDropped:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:  # client went away (e.g. it timed out during a delay fault)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], sandbox: PolarisSandbox):
        self.sandbox = sandbox
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:  # keep test output quiet
        pass


class SandboxServer:
    """A running HTTP server for a ``PolarisSandbox`` (see ``PolarisSandbox.serve``).

    ``url`` is e.g. ``"http://127.0.0.1:54321"``; ``shutdown()`` stops the server, closes open
    keep-alive connections and joins the thread. Usable as ``with sandbox.serve() as srv: ...``.
    """

    def __init__(self, sandbox: PolarisSandbox, host: str = "127.0.0.1", port: int = 0):
        self.sandbox = sandbox
        self._server = _Server((host, port), sandbox)
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"polaris-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    def shutdown(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "SandboxServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
