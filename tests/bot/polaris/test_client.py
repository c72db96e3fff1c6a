"""Tests for bot.polaris: PolarisClient (the Polaris Identity API client) and GroupCatalog.

Checked against /work/shared/polaris/README.md (the facts), the public guide (sample requests and
responses) and openapi-identity.json (request bodies are validated against the schemas). Two kinds of
test double are used, both through the ``responses`` library: raw ``rsps.add`` stubs (exact bytes,
statuses and headers) and the stateful ``PolarisSandbox`` mounted on ``https://example.api.imply.io``
(real semantics: PUT replaces the user, faults, call log).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import time
import traceback
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.polaris import (
    READ_ONLY_USER_FIELDS,
    Group,
    GroupCatalog,
    Page,
    Permission,
    PolarisAuthError,
    PolarisBadRequest,
    PolarisClient,
    PolarisConflict,
    PolarisError,
    PolarisNotFound,
    PolarisUnavailable,
    User,
    normalize_group_name,
)
from standins.polaris_sandbox import (
    ALERTS_AND_REPORTS_ID,
    DATA_ANALYST_ID,
    DATA_MANAGER_ID,
    DEMO_PROJECT_IDS,
    ORGANIZATION_ADMIN_ID,
    PERMISSION_CATALOGUE,
    VIEWER_ID,
    Fault,
    PolarisSandbox,
)
from tests.polaris_spec import SPEC_DIR, guide_json_blocks

BASE = "https://example.api.imply.io"
KEY = "pok_SECRETSECRET123"
B64_CREDENTIAL = base64.b64encode(f"{KEY}:".encode()).decode()

DANI = "880f6811-7e85-47ce-b3c5-a57a85ab95bd"
ALEX = "d88d4e47-d6ed-4820-880e-c0564ce99752"
ALEXA = "48b08425-7393-4730-bb7d-736e69ef1d92"
SAM = "3f0c2a7e-5b1d-4c8e-9a6f-2d7b8e1c4a90"
JO = "b2e4d6f8-1a3c-4e5f-8b7d-9c0a2e4f6b81"

FAST = dict(backoff_initial=0.001, backoff_max=0.01)


# ============================================================================ helpers and fixtures
def make_client(base: str = BASE, key: str = KEY, **kw) -> PolarisClient:
    opts = {**FAST, "max_attempts": 4, "retry_seconds": 5.0, **kw}
    return PolarisClient(base, key, **opts)


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sandbox(rsps) -> PolarisSandbox:
    sb = PolarisSandbox(api_key=KEY)
    sb.mount(rsps, BASE)
    return sb


@pytest.fixture
def client() -> PolarisClient:
    return make_client()


def sent(call) -> tuple[str, str, dict, object]:
    """(method, path, query dict of single values, parsed JSON body or None) of a responses call."""
    req = call.request
    split = urlsplit(req.url)
    query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    body = req.body
    if isinstance(body, bytes):
        body = body.decode()
    return req.method, split.path, query, (json.loads(body) if body else None)


def wrapped(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def user_json(uid="u-1", username="pat@example.com", **extra) -> dict:
    data = {
        "id": uid,
        "username": username,
        "email": username,
        "firstName": "Pat",
        "lastName": "Doe",
        "enabled": True,
        "emailVerified": True,
        "permissions": [],
        "groups": [],
        "identities": [],
        "actions": [],
        "createdOn": "2024-01-02T03:04:05.678Z",
    }
    data.update(extra)
    return data


_guide_json_blocks = guide_json_blocks


@pytest.fixture(scope="session")
def guide() -> dict:
    """The guide's sample JSON documents, by role."""
    blocks = _guide_json_blocks()
    values = [b for b in blocks if "values" in b]
    users = [b for b in blocks if "username" in b]
    groups = [b for b in blocks if "readOnly" in b and "id" in b]
    out = {
        "permissions": next(b for b in values if b["values"][0]["name"] == "ManageDashboards"),
        "groups": next(b for b in values if "readOnly" in b["values"][0]),
        "effective": next(b for b in values if b["values"][0]["name"] == "AccessVisualization"),
        "members": next(b for b in values if "count" in b),
        "create_group_response": groups[0],
        "create_user_response": users[0],
        "put_user_response": users[1],
    }
    assert len(out["permissions"]["values"]) == 39 and len(out["groups"]["values"]) == 4
    return out


@pytest.fixture(scope="session")
def spec() -> dict:
    return json.loads((SPEC_DIR / "openapi-identity.json").read_text())


def request_schema(spec: dict, path: str, method: str) -> dict:
    return spec["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]


def validate_request(spec: dict, body, path: str, method: str) -> None:
    """Validate a request body against the operation's schema ($refs resolved against components).

    Types/enums are checked with OAS30Validator. readOnly is checked at the top level of the object
    being written (OAS30WriteValidator would also flag the nested ``{"id"}`` references to groups and
    users that the guide itself sends, so it cannot be used as is). ``email`` is readOnly in the schema,
    yet the guide's "Update a user" PUT sample sends it unchanged, so an unchanged ``email`` is allowed.
    """
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    schema = request_schema(spec, path, method)
    OAS30Validator({**schema, "components": spec["components"]}, format_checker=oas30_format_checker).validate(body)
    if isinstance(body, dict) and "$ref" in schema:
        target = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        read_only = {k for k, v in target.get("properties", {}).items() if v.get("readOnly")}
        offending = (set(body) & read_only) - {"email"}
        assert not offending, f"readOnly properties sent on {method} {path}: {offending}"


# ============================================================================ construction, auth, headers
def test_requires_base_url():
    with pytest.raises(ValueError):
        PolarisClient("", KEY)


def test_rfc7617_basic_auth_and_headers(rsps, client):
    rsps.add("GET", BASE + "/v1/permissions", json={"values": []})
    client.list_permissions()
    req = rsps.calls[0].request
    assert req.headers["Authorization"] == "Basic " + B64_CREDENTIAL
    assert base64.b64decode(req.headers["Authorization"].split(" ", 1)[1]) == f"{KEY}:".encode()
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["User-Agent"] == "polaris-access-bot"


def test_raw_auth_style_sends_the_raw_key(rsps):
    rsps.add("GET", BASE + "/v1/groups", json={"values": []})
    make_client(auth_style="raw").list_groups()
    assert rsps.calls[0].request.headers["Authorization"] == f"Basic {KEY}"


@pytest.mark.parametrize("style", ["rfc7617", "raw"])
def test_both_auth_styles_accepted_by_sandbox(sandbox, style):
    assert len(make_client(auth_style=style).list_groups()) == 5


def test_wrong_key_is_auth_error_not_retried(sandbox):
    with pytest.raises(PolarisAuthError) as info:
        make_client(key="pok_wrong").list_users()
    assert info.value.status == 401 and info.value.code == "InvalidAuthentication"
    assert len(sandbox.calls) == 1


def test_timeout_is_passed_on_every_call(rsps):
    rsps.add("GET", BASE + "/v1/groups", json={"values": []})
    make_client(timeout=(0.5, 1.5)).list_groups()
    assert rsps.calls[0].request.req_kwargs["timeout"] == (0.5, 1.5)


def test_default_timeout_is_connect_and_read(rsps):
    rsps.add("GET", BASE + "/v1/groups", json={"values": []})
    PolarisClient(BASE, KEY).list_groups()
    timeout = rsps.calls[0].request.req_kwargs["timeout"]
    assert isinstance(timeout, tuple) and len(timeout) == 2 and all(t > 0 for t in timeout)


def test_trailing_slash_in_base_url(rsps):
    rsps.add("GET", BASE + "/v1/groups", json={"values": []})
    make_client(base=BASE + "/").list_groups()
    assert urlsplit(rsps.calls[0].request.url).path == "/v1/groups"


def test_app_host_accepted_as_base_url(rsps):
    app = "https://example.app.imply.io"
    rsps.add("GET", app + "/v1/permissions", json={"values": [{"name": "AdministerUsers"}]})
    assert make_client(base=app).list_permissions() == [Permission("AdministerUsers")]


def test_repr_hides_key():
    client = make_client()
    assert KEY not in repr(client) and B64_CREDENTIAL not in repr(client)
    assert KEY not in str(client)


# ============================================================================ request shapes
def test_list_users_query_clamped_and_search(rsps, client):
    rsps.add("GET", BASE + "/v1/users", json={"values": [], "count": 0})
    client.list_users()
    client.list_users(top=500, skip=-3, search="Al+x@example.com")
    client.list_users(top=0, skip=7)
    shapes = [sent(c) for c in rsps.calls]
    assert shapes[0] == ("GET", "/v1/users", {"top": "100", "skip": "0"}, None)
    assert shapes[1] == ("GET", "/v1/users", {"top": "100", "skip": "0", "search": "Al+x@example.com"}, None)
    assert shapes[2] == ("GET", "/v1/users", {"top": "1", "skip": "7"}, None)
    assert "%2B" in rsps.calls[1].request.url  # '+' encoded, not turned into a space


def test_list_members_query(rsps, client):
    rsps.add("GET", BASE + f"/v1/groups/{VIEWER_ID}/members", json={"values": [], "count": 0})
    client.list_members(VIEWER_ID, top=25, skip=50, search="smith")
    assert sent(rsps.calls[0]) == (
        "GET",
        f"/v1/groups/{VIEWER_ID}/members",
        {"top": "25", "skip": "50", "search": "smith"},
        None,
    )


def test_create_user_request(rsps, client, spec):
    rsps.add("POST", BASE + "/v1/users", status=201, json=user_json())
    client.create_user("dani.lee@example.io", first_name="Dani", last_name="Lee", group_ids=[ALERTS_AND_REPORTS_ID])
    method, path, query, body = sent(rsps.calls[0])
    assert (method, path, query) == ("POST", "/v1/users", {})
    # the guide's "Create a user with group membership" payload
    assert body == {
        "username": "dani.lee@example.io",
        "firstName": "Dani",
        "lastName": "Lee",
        "groups": [{"id": ALERTS_AND_REPORTS_ID}],
    }
    validate_request(spec, body, "/v1/users", "POST")
    assert rsps.calls[0].request.headers["Content-Type"] == "application/json"


def test_create_user_skip_invite_and_no_names(rsps, client, spec):
    rsps.add("POST", BASE + "/v1/users", status=201, json=user_json())
    client.create_user("x@example.com", skip_invite=True)
    method, path, query, body = sent(rsps.calls[0])
    assert query == {"skipInvite": "true"}
    assert body == {"username": "x@example.com", "groups": []}
    validate_request(spec, body, "/v1/users", "POST")


def test_create_group_request(rsps, client, spec, guide):
    rsps.add("POST", BASE + "/v1/groups", status=201, json=guide["create_group_response"])
    projects = tuple(f"projects/{p}" for p in DEMO_PROJECT_IDS)
    group = client.create_group(
        "Alerts and reports", [Permission("AdministerReports", projects), Permission("AdministerAlerts", projects)]
    )
    method, path, query, body = sent(rsps.calls[0])
    assert (method, path) == ("POST", "/v1/groups")
    # exactly the guide's "Create a group" request
    create_request = next(b for b in _guide_json_blocks() if set(b) == {"name", "permissions"})
    assert body == create_request
    validate_request(spec, body, "/v1/groups", "POST")
    assert group.id == ALERTS_AND_REPORTS_ID and group.user_count == 0 and not group.read_only


def test_create_group_org_level_permission_has_no_resources(rsps, client, spec):
    rsps.add("POST", BASE + "/v1/groups", status=201, json={"id": "g", "name": "Admins", "readOnly": False})
    client.create_group("Admins", [Permission("AdministerUsers"), Permission("ViewTables", ("projects/*",))])
    body = sent(rsps.calls[0])[3]
    assert body == {
        "name": "Admins",
        "permissions": [{"name": "AdministerUsers"}, {"name": "ViewTables", "resources": ["projects/*"]}],
    }
    validate_request(spec, body, "/v1/groups", "POST")


def test_add_and_remove_members_requests(rsps, client, spec):
    url = BASE + f"/v1/groups/{ALERTS_AND_REPORTS_ID}/members"
    rsps.add("POST", url, status=200, body=b"")
    rsps.add("DELETE", url, status=200, body=b"")
    assert client.add_members(ALERTS_AND_REPORTS_ID, [ALEX, ALEXA]) is None
    assert client.remove_members(ALERTS_AND_REPORTS_ID, [ALEX]) is None
    add, remove = (sent(c) for c in rsps.calls)
    path = f"/v1/groups/{ALERTS_AND_REPORTS_ID}/members"
    assert add == ("POST", path, {}, [{"id": ALEX}, {"id": ALEXA}])  # the guide's payload
    assert remove == ("DELETE", path, {}, [{"id": ALEX}])  # a DELETE with a body
    validate_request(spec, add[3], "/v1/groups/{id}/members", "POST")
    validate_request(spec, remove[3], "/v1/groups/{id}/members", "DELETE")
    for c in rsps.calls:
        assert c.request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "call, method, path",
    [
        (lambda c: c.list_permissions(), "GET", "/v1/permissions"),
        (lambda c: c.get_user(DANI), "GET", f"/v1/users/{DANI}"),
        (lambda c: c.effective_permissions(DANI), "GET", f"/v1/users/{DANI}/effectivepermissions"),
        (lambda c: c.list_groups(), "GET", "/v1/groups"),
        (lambda c: c.get_group(VIEWER_ID), "GET", f"/v1/groups/{VIEWER_ID}"),
        (lambda c: c.list_projects(), "GET", "/v1/projects"),
        (lambda c: c.delete_user(SAM), "DELETE", f"/v1/users/{SAM}"),
        (lambda c: c.delete_group(ALERTS_AND_REPORTS_ID), "DELETE", f"/v1/groups/{ALERTS_AND_REPORTS_ID}"),
    ],
)
def test_simple_endpoints_method_and_path(sandbox, client, call, method, path):
    call(client)
    assert [(c.method, c.path, c.query, c.status) for c in sandbox.calls] == [(method, path, {}, 200)]


def test_delete_sends_no_body(rsps, client):
    rsps.add("DELETE", BASE + f"/v1/users/{SAM}", status=200, body=b"")
    client.delete_user(SAM)
    assert not rsps.calls[0].request.body


# ============================================================================ parsing
def test_parse_guide_permissions(rsps, client, guide):
    rsps.add("GET", BASE + "/v1/permissions", json=guide["permissions"])
    perms = client.list_permissions()
    assert len(perms) == 39 and all(isinstance(p, Permission) for p in perms)
    assert perms[0] == Permission("ManageDashboards", ("projects/*",))
    by_name = {p.name: p for p in perms}
    assert by_name["AdministerProjects"].resources == ()
    assert by_name["AdministerUsers"] == Permission("AdministerUsers")
    assert by_name["AdministerBilling"].description == "Allows clients to see and update payment info"
    assert [p.name for p in perms] == [p["name"] for p in guide["permissions"]["values"]]


def test_parse_guide_groups(rsps, client, guide):
    rsps.add("GET", BASE + "/v1/groups", json=guide["groups"])
    groups = client.list_groups()
    assert [(g.id, g.name, g.read_only, g.user_count) for g in groups] == [
        (DATA_ANALYST_ID, "Data Analyst", True, 9),
        (DATA_MANAGER_ID, "Data Manager", True, 163),
        (ORGANIZATION_ADMIN_ID, "Organization Admin", True, 39),
        (VIEWER_ID, "Viewer", True, 18),
    ]
    viewer = groups[3]
    assert viewer.permissions == (
        Permission("ViewTables", ("projects/*",)),
        Permission("AccessCollections", ("projects/*",)),
        Permission("AccessVisualization", ("projects/*",)),
    )
    admin = groups[2]
    assert Permission("AdministerUsers") in admin.permissions
    assert len(admin.permissions) == 36


def test_parse_guide_created_group(rsps, client, guide):
    rsps.add("GET", BASE + f"/v1/groups/{ALERTS_AND_REPORTS_ID}", json=guide["create_group_response"])
    g = client.get_group(ALERTS_AND_REPORTS_ID)
    assert isinstance(g, Group)
    assert g == Group(
        ALERTS_AND_REPORTS_ID,
        "Alerts and reports",
        False,
        (
            Permission("AdministerReports", (f"projects/{DEMO_PROJECT_IDS[1]}", f"projects/{DEMO_PROJECT_IDS[0]}")),
            Permission("AdministerAlerts", tuple(f"projects/{p}" for p in DEMO_PROJECT_IDS)),
        ),
        0,
    )


def test_group_parse_defaults():
    g = Group.parse({"id": "g1", "name": "Custom"})
    assert g == Group("g1", "Custom", False, (), None)


def test_parse_guide_created_user(rsps, client, guide):
    rsps.add("POST", BASE + "/v1/users", status=201, json=guide["create_user_response"])
    u = client.create_user("dani.lee@example.io", first_name="Dani", last_name="Lee", group_ids=[ALERTS_AND_REPORTS_ID])
    assert isinstance(u, User)
    assert (u.id, u.username, u.email, u.first_name, u.last_name, u.enabled) == (
        DANI,
        "dani.lee@example.io",
        "dani.lee@example.io",
        "Dani",
        "Lee",
        True,
    )
    assert u.groups == ((ALERTS_AND_REPORTS_ID, "Alerts and reports"),)
    assert u.group_ids == {ALERTS_AND_REPORTS_ID}
    assert u.actions == ("VERIFY_EMAIL", "UPDATE_PASSWORD")
    assert u.display_name == "Dani Lee"
    assert u.raw == guide["create_user_response"]


def test_parse_guide_put_response(rsps, client, guide):
    rsps.add("GET", BASE + f"/v1/users/{DANI}", json=guide["put_user_response"])
    u = client.get_user(DANI)
    assert u.group_ids == {ALERTS_AND_REPORTS_ID, VIEWER_ID}
    assert u.groups == ((ALERTS_AND_REPORTS_ID, "Alerts and reports"), (VIEWER_ID, "Viewer"))
    assert u.actions == ("UPDATE_PASSWORD", "VERIFY_EMAIL")


def test_user_raw_is_a_copy(rsps, client):
    data = user_json(groups=[{"id": "g", "name": "G"}])
    rsps.add("GET", BASE + "/v1/users/u-1", json=data)
    u = client.get_user("u-1")
    u.raw["groups"].append({"id": "x"})
    assert client.get_user("u-1").raw == data


def test_user_parse_minimal_and_disabled():
    u = User.parse({"id": "u", "username": "min@example.com", "enabled": False})
    assert (u.email, u.first_name, u.last_name, u.enabled, u.groups, u.actions) == (
        "min@example.com",
        "",
        "",
        False,
        (),
        (),
    )
    assert u.display_name == "min@example.com"


def test_parse_guide_members_page(rsps, client, guide):
    rsps.add("GET", BASE + f"/v1/groups/{ALERTS_AND_REPORTS_ID}/members", json=guide["members"])
    page = client.list_members(ALERTS_AND_REPORTS_ID)
    assert isinstance(page, Page) and page.count == 3
    assert [(u.id, u.username, u.email, u.display_name) for u in page.values] == [
        (ALEX, "alex.smith@email.com", "alex.smith@email.com", "Alex Smith"),
        (ALEXA, "alexa.smith@example.com", "alexa.smith@example.com", "Alexa Smith"),
        (DANI, "dani.lee@example.io", "dani.lee@example.io", "Dani Lee"),
    ]


def test_parse_guide_effective_permissions(rsps, client, guide):
    rsps.add("GET", BASE + f"/v1/users/{DANI}/effectivepermissions", json=guide["effective"])
    perms = client.effective_permissions(DANI)
    assert perms[0] == Permission("AccessVisualization", ("projects/*",))
    assert [p.name for p in perms] == [p["name"] for p in guide["effective"]["values"]]
    assert all(p.resources for p in perms)


def test_list_users_page_from_sandbox(sandbox, client):
    page = client.list_users(top=2, skip=1)
    assert isinstance(page, Page) and page.count == 5
    assert [u.username for u in page.values] == ["alexa.smith@example.com", "dani.lee@example.com"]
    dani = page.values[1]
    assert dani.id == DANI and dani.group_ids == {ALERTS_AND_REPORTS_ID, VIEWER_ID}
    assert set(dani.actions) == {"VERIFY_EMAIL", "UPDATE_PASSWORD"}


def test_list_users_count_defaults_to_len(rsps, client):
    rsps.add("GET", BASE + "/v1/users", json={"values": [user_json()]})
    assert client.list_users().count == 1


def test_iter_users_pages_until_count(sandbox, client):
    sandbox.seed_bulk(230, 0)
    users = list(client.iter_users())
    assert len(users) == 235 and len({u.id for u in users}) == 235
    skips = [c.query["skip"] for c in sandbox.calls]
    assert skips == ["0", "100", "200"]
    assert len(list(client.iter_users(limit=150))) == 150


def test_sandbox_objects_parse(sandbox, client):
    jo = client.get_user(JO)
    assert jo.enabled is False and jo.groups == ((VIEWER_ID, "Viewer"),)
    viewer = client.get_group(VIEWER_ID)
    assert viewer.read_only and viewer.user_count == 2
    perms = client.effective_permissions(JO)
    assert {p.name for p in perms} == {"ViewTables", "AccessCollections", "AccessVisualization"}
    projects = client.list_projects()
    assert isinstance(projects, list) and [p["metadata"]["uid"] for p in projects] == list(DEMO_PROJECT_IDS)
    groups = client.list_groups()
    assert all(isinstance(g, Group) for g in groups) and len(groups) == 5
    perms = client.list_permissions()
    assert [p.name for p in perms] == [p["name"] for p in PERMISSION_CATALOGUE]


def test_list_projects_bare_array(rsps, client):
    rsps.add("GET", BASE + "/v1/projects", json=[{"metadata": {"uid": "p1", "name": "demo"}, "spec": {}}])
    assert client.list_projects() == [{"metadata": {"uid": "p1", "name": "demo"}, "spec": {}}]


def test_create_through_sandbox(sandbox, client):
    user = client.create_user("new.person@example.com", first_name="New", group_ids=[VIEWER_ID])
    assert sandbox.find_user("new.person@example.com")["id"] == user.id
    assert user.group_ids == {VIEWER_ID} and user.actions == ("VERIFY_EMAIL", "UPDATE_PASSWORD")
    quiet = client.create_user("quiet@example.com", skip_invite=True)
    assert quiet.actions == ()
    group = client.create_group("Readers", [Permission("ViewTables", ("projects/*",))])
    assert sandbox.get_group(group.id)["name"] == "Readers"
    client.add_members(group.id, [user.id, quiet.id])
    assert set(sandbox.group_member_ids(group.id)) == {user.id, quiet.id}
    client.remove_members(group.id, [quiet.id])
    assert sandbox.group_member_ids(group.id) == [user.id]
    assert [u.id for u in client.list_members(group.id).values] == [user.id]
    client.delete_group(group.id)
    assert sandbox.get_group(group.id) is None
    client.delete_user(quiet.id)
    assert sandbox.get_user(quiet.id) is None


# ============================================================================ exact success codes
def test_create_user_200_is_an_error(rsps, client):
    rsps.add("POST", BASE + "/v1/users", status=200, json=user_json())
    with pytest.raises(PolarisError) as info:
        client.create_user("pat@example.com")
    assert type(info.value) is PolarisError
    assert info.value.status == 200 and info.value.code == "UnexpectedStatus"
    assert len(rsps.calls) == 1


def test_create_group_200_is_an_error(rsps, client):
    rsps.add("POST", BASE + "/v1/groups", status=200, json={"id": "g", "name": "X"})
    with pytest.raises(PolarisError) as info:
        client.create_group("X", [])
    assert info.value.status == 200 and not info.value.transient


@pytest.mark.parametrize("status", [201, 202, 204])
def test_non_200_success_for_get_is_an_error(rsps, client, status):
    rsps.add("GET", BASE + "/v1/groups", status=status, body=b"")
    with pytest.raises(PolarisError) as info:
        client.list_groups()
    assert info.value.status == status and info.value.code == "UnexpectedStatus"
    assert len(rsps.calls) == 1


def test_delete_returns_200_ok(rsps, client):
    rsps.add("DELETE", BASE + "/v1/users/u-1", status=200, body=b"")
    rsps.add("DELETE", BASE + "/v1/groups/g-1", status=200, body=b"")
    assert client.delete_user("u-1") is None
    assert client.delete_group("g-1") is None


def test_delete_204_is_an_error(rsps, client):
    rsps.add("DELETE", BASE + "/v1/users/u-1", status=204, body=b"")
    with pytest.raises(PolarisError) as info:
        client.delete_user("u-1")
    assert info.value.status == 204 and info.value.method == "DELETE" and info.value.path == "/v1/users/u-1"


# ============================================================================ errors
@pytest.mark.parametrize(
    "status, body, cls, code, message",
    [
        (
            400,
            {"code": "BadArgument", "message": "'username' must be a valid email address"},
            PolarisBadRequest,
            "BadArgument",
            "'username' must be a valid email address",
        ),
        (
            404,
            {"code": "ObjectNotFound", "message": "User 'u-9' not found"},
            PolarisNotFound,
            "ObjectNotFound",
            "User 'u-9' not found",
        ),
        (
            401,
            wrapped("InvalidAuthentication", "The provided authorization is invalid."),
            PolarisAuthError,
            "InvalidAuthentication",
            "The provided authorization is invalid.",
        ),
        (
            403,
            wrapped("Forbidden", "Missing AdministerUsers"),
            PolarisAuthError,
            "Forbidden",
            "Missing AdministerUsers",
        ),
        (
            409,
            wrapped("StateConflict", "A user with username 'pat@example.com' already exists"),
            PolarisConflict,
            "StateConflict",
            "A user with username 'pat@example.com' already exists",
        ),
        (418, {"code": "Teapot", "message": "short and stout"}, PolarisError, "Teapot", "short and stout"),
    ],
)
def test_error_envelopes(rsps, client, status, body, cls, code, message):
    rsps.add("GET", BASE + "/v1/users/u-9", status=status, json=body)
    with pytest.raises(PolarisError) as info:
        client.get_user("u-9")
    err = info.value
    assert type(err) is cls
    assert (err.status, err.code, err.message) == (status, code, message)
    assert (err.method, err.path) == ("GET", "/v1/users/u-9")
    assert not err.transient
    assert str(err) == f"GET /v1/users/u-9 -> {status} {code}: {message}"
    assert len(rsps.calls) == 1


def test_empty_error_body(rsps, client):
    rsps.add("GET", BASE + "/v1/users/u-9", status=404, body=b"")
    with pytest.raises(PolarisNotFound) as info:
        client.get_user("u-9")
    assert (info.value.status, info.value.code, info.value.message) == (404, "UnexpectedStatus", "")
    assert info.value.plain() == "Polaris could not find it"


def test_html_502_body(rsps):
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    rsps.add("GET", BASE + "/v1/groups", status=502, body=html, content_type="text/html")
    with pytest.raises(PolarisUnavailable) as info:
        make_client(max_attempts=2).list_groups()
    err = info.value
    assert err.status == 502 and err.code == "UnexpectedStatus" and err.transient
    assert "502 Bad Gateway" in err.message and len(err.message) <= 200
    assert len(rsps.calls) == 2


def test_non_json_error_body_is_truncated(rsps, client):
    rsps.add("GET", BASE + "/v1/users/x", status=400, body="x" * 5000, content_type="text/plain")
    with pytest.raises(PolarisBadRequest) as info:
        client.get_user("x")
    assert info.value.message == "x" * 200


def test_json_error_without_code_or_message(rsps, client):
    rsps.add("GET", BASE + "/v1/users/x", status=409, json={"error": {}})
    with pytest.raises(PolarisConflict) as info:
        client.get_user("x")
    assert (info.value.code, info.value.message) == ("UnexpectedStatus", "")


def test_sandbox_errors(sandbox, client):
    with pytest.raises(PolarisNotFound) as nf:
        client.get_user("nope")
    assert nf.value.code == "ObjectNotFound" and "nope" in nf.value.message
    with pytest.raises(PolarisConflict) as conflict:
        client.create_user("ALEX.SMITH@example.com")
    assert conflict.value.code == "StateConflict" and conflict.value.status == 409
    with pytest.raises(PolarisBadRequest) as bad:
        client.create_user("not-an-email")
    assert bad.value.code == "BadArgument"
    with pytest.raises(PolarisBadRequest):
        client.delete_group(VIEWER_ID)  # predefined groups are read-only
    with pytest.raises(PolarisBadRequest):
        client.add_members(VIEWER_ID, ["no-such-user"])
    assert sandbox.get_group(VIEWER_ID) is not None


def test_200_with_non_json_body(rsps, client):
    rsps.add("GET", BASE + "/v1/groups", status=200, body="<html>login</html>", content_type="text/html")
    with pytest.raises(PolarisError) as info:
        client.list_groups()
    assert info.value.code == "InvalidResponse" and info.value.status == 200


def test_200_with_empty_body_for_a_user_is_a_polaris_error(rsps, client):
    # A 200 whose body is empty carries no user: like a non-JSON body it must surface as a PolarisError
    # (callers catch PolarisError), not as an AttributeError from parsing ``None``.
    rsps.add("GET", BASE + "/v1/users/u-1", status=200, body=b"")
    with pytest.raises(PolarisError):
        client.get_user("u-1")


def test_plain_messages_have_no_traceback():
    cases = {
        PolarisBadRequest: "Polaris rejected the request",
        PolarisAuthError: "The bot's Polaris API key was refused (wrong key or missing AdministerUsers)",
        PolarisNotFound: "Polaris could not find it",
        PolarisConflict: "It already exists in Polaris",
        PolarisUnavailable: "Polaris is unavailable right now",
        PolarisError: "Polaris answered with an error",
    }
    for cls, sentence in cases.items():
        err = cls(400, "Code", "details here", method="GET", path="/v1/x")
        assert err.plain() == f"{sentence}: details here"
        assert cls(400, "Code", "").plain() == sentence
        assert "Traceback" not in err.plain() and "\n" not in err.plain()
        assert isinstance(err, PolarisError)
    assert PolarisUnavailable.transient and not PolarisNotFound.transient


def test_plain_of_raised_error_has_no_traceback(rsps, client):
    rsps.add("GET", BASE + "/v1/users/u-9", status=404, json={"code": "ObjectNotFound", "message": "gone"})
    try:
        client.get_user("u-9")
    except PolarisError as e:
        assert e.plain() == "Polaris could not find it: gone"
        assert "Traceback" not in e.plain() and "File " not in e.plain()
    else:  # pragma: no cover
        pytest.fail("no error")


def test_no_response_error_str(rsps, client):
    rsps.add("GET", BASE + "/v1/groups", body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(PolarisUnavailable) as info:
        make_client(max_attempts=1).list_groups()
    assert str(info.value) == (
        "GET /v1/groups -> no response ConnectionError: could not connect or the connection dropped"
    )


# ============================================================================ retries
def _503():
    return dict(status=503, json=wrapped("ServiceUnavailable", "try later"))


def test_get_503_twice_then_200(rsps, client):
    url = BASE + "/v1/groups"
    rsps.add("GET", url, **_503())
    rsps.add("GET", url, **_503())
    rsps.add("GET", url, json={"values": [{"id": "g", "name": "G"}]})
    assert client.list_groups() == [Group("g", "G")]
    assert len(rsps.calls) == 3


def test_429_retry_after_zero_is_retried(rsps, client):
    url = BASE + "/v1/users"
    rsps.add("GET", url, status=429, headers={"Retry-After": "0"}, json=wrapped("TooManyRequests", "slow"))
    rsps.add("GET", url, json={"values": [], "count": 0})
    assert client.list_users() == Page([], 0)
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_retried(sandbox, client, status):
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/groups$", status=status, times=1))
    assert len(client.list_groups()) == 5
    assert [c.status for c in sandbox.calls] == [status, 200]


def test_retry_after_is_honoured(rsps, client):
    url = BASE + "/v1/groups"
    rsps.add("GET", url, status=503, headers={"Retry-After": "0.2"}, json=wrapped("ServiceUnavailable", "x"))
    rsps.add("GET", url, json={"values": []})
    started = time.monotonic()
    client.list_groups()
    assert time.monotonic() - started >= 0.19
    assert len(rsps.calls) == 2


@pytest.mark.parametrize(
    "value, expected", [("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)]
)
def test_retry_after_parsed(rsps, value, expected):
    rsps.add(
        "GET", BASE + "/v1/groups", status=429, headers={"Retry-After": value}, json=wrapped("TooManyRequests", "x")
    )
    with pytest.raises(PolarisUnavailable) as info:
        make_client(max_attempts=1).list_groups()
    assert info.value.retry_after == expected
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_attempts_bounded(sandbox, attempts):
    sandbox.add_fault(Fault(method="GET", status=503, times=None))
    with pytest.raises(PolarisUnavailable) as info:
        make_client(max_attempts=attempts).list_users()
    assert info.value.status == 503 and info.value.code == "ServiceUnavailable"
    assert len(sandbox.calls) == attempts


def test_max_attempts_below_one_means_one(rsps):
    rsps.add("GET", BASE + "/v1/groups", **_503())
    with pytest.raises(PolarisUnavailable):
        make_client(max_attempts=0).list_groups()
    assert len(rsps.calls) == 1


def test_backoff_bounded_by_backoff_max(rsps):
    rsps.add("GET", BASE + "/v1/groups", **_503())
    started = time.monotonic()
    with pytest.raises(PolarisUnavailable):
        make_client(max_attempts=5).list_groups()  # backoff_max=0.01: no 1 s jitter sneaks in
    assert time.monotonic() - started < 1.0
    assert len(rsps.calls) == 5


def test_backoff_waits_between_attempts(rsps):
    rsps.add("GET", BASE + "/v1/groups", **_503())
    started = time.monotonic()
    with pytest.raises(PolarisUnavailable):
        make_client(max_attempts=4, backoff_initial=0.05, backoff_max=0.05).list_groups()
    assert 0.15 <= time.monotonic() - started < 2.0  # three waits of backoff_max
    assert len(rsps.calls) == 4


def test_retry_seconds_bounds_number_of_attempts(sandbox):
    sandbox.add_fault(Fault(method="GET", status=503, retry_after=0.15, times=None))
    started = time.monotonic()
    with pytest.raises(PolarisUnavailable):
        make_client(max_attempts=50, retry_seconds=0.4).list_groups()
    assert time.monotonic() - started < 2.0
    assert 2 <= len(sandbox.calls) < 50


def test_retry_seconds_bounds_total_time(rsps):
    # Retry-After says 0.6 s, the retry budget is 0.7 s: one wait fits, the second would end after the
    # budget. A client bounded by retry_seconds must give up instead of sleeping past it.
    rsps.add(
        "GET", BASE + "/v1/groups", status=503, headers={"Retry-After": "0.6"}, json=wrapped("ServiceUnavailable", "x")
    )
    client = make_client(max_attempts=10, retry_seconds=0.7)
    started = time.monotonic()
    with pytest.raises(PolarisUnavailable):
        client.list_groups()
    elapsed = time.monotonic() - started
    assert elapsed <= 0.7 + 0.25, f"retried for {elapsed:.2f}s with retry_seconds=0.7 ({len(rsps.calls)} calls)"


def test_retry_seconds_zero_means_single_attempt(rsps):
    rsps.add("GET", BASE + "/v1/groups", **_503())
    with pytest.raises(PolarisUnavailable):
        make_client(retry_seconds=0).list_groups()
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, PolarisBadRequest),
        (401, PolarisAuthError),
        (403, PolarisAuthError),
        (404, PolarisNotFound),
        (409, PolarisConflict),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_non_transient_never_retried(sandbox, client, status, cls, method):
    sandbox.add_fault(Fault(method=method, path=r"^/v1/users/", status=status, times=None))
    calls = {
        "GET": lambda: client.get_user(SAM),
        "PUT": lambda: client.replace_user(SAM, {"username": "sam.patel@example.com"}),
        "DELETE": lambda: client.delete_user(SAM),
    }
    with pytest.raises(cls) as info:
        calls[method]()
    assert info.value.status == status
    assert [(c.method, c.status) for c in sandbox.calls] == [(method, status)]


def test_create_user_never_retried_on_503(sandbox, client):
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", status=503, times=None))
    with pytest.raises(PolarisUnavailable):
        client.create_user("once@example.com")
    assert len(sandbox.calls) == 1
    assert sandbox.find_user("once@example.com") is None and sandbox.writes() == []


def test_create_user_not_retried_when_response_lost(sandbox, client):
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", drop=True, after_handle=True))
    with pytest.raises(PolarisUnavailable) as info:
        client.create_user("landed@example.com")
    assert info.value.status is None and info.value.code == "ConnectionError"
    assert len(sandbox.calls) == 1 and len(sandbox.writes("POST")) == 1
    assert sandbox.find_user("landed@example.com") is not None


def test_create_group_not_retried(rsps, client):
    rsps.add("POST", BASE + "/v1/groups", **_503())
    with pytest.raises(PolarisUnavailable):
        client.create_group("G", [])
    assert len(rsps.calls) == 1


def test_add_members_is_retried(sandbox, client):
    sandbox.add_fault(Fault(method="POST", path=r"/members$", status=503, times=1))
    client.add_members(VIEWER_ID, [SAM])
    assert [(c.method, c.status) for c in sandbox.calls] == [("POST", 503), ("POST", 200)]
    assert SAM in sandbox.group_member_ids(VIEWER_ID)


def test_add_members_retried_after_lost_response_is_idempotent(sandbox, client):
    sandbox.add_fault(Fault(method="POST", path=r"/members$", status=502, after_handle=True))
    client.add_members(DATA_ANALYST_ID, [ALEX])
    assert len(sandbox.writes("POST", r"/members$")) == 2
    assert sandbox.group_member_ids(DATA_ANALYST_ID).count(ALEX) == 1
    assert [g["id"] for g in sandbox.get_user(ALEX)["groups"]].count(DATA_ANALYST_ID) == 1


def test_update_starts_over_with_a_fresh_get_and_delete_is_retried(sandbox, client):
    sandbox.add_fault(Fault(method="PUT", status=503, times=1))
    sandbox.add_fault(Fault(method="DELETE", status=504, times=1))
    client.update_user(SAM, lambda body: body.update(lastName="Patel-Ng"))
    client.remove_members(VIEWER_ID, [JO])
    assert [(c.method, c.status) for c in sandbox.calls] == [
        ("GET", 200),
        ("PUT", 503),
        ("GET", 200),
        ("PUT", 200),
        ("DELETE", 504),
        ("DELETE", 200),
    ]
    assert sandbox.get_user(SAM)["lastName"] == "Patel-Ng"
    assert JO not in sandbox.group_member_ids(VIEWER_ID)


def test_reset_put_answered_503_is_not_resent_and_its_outcome_is_unknown(sandbox, client):
    """Issue 8 #7: the reset PUT is sent once; a 503 after sending leaves its outcome unknown."""
    sandbox.add_fault(Fault(method="PUT", status=503, times=1))
    with pytest.raises(PolarisUnavailable) as info:
        client.request_password_reset(SAM)
    assert info.value.outcome_unknown
    assert [(c.method, c.status) for c in sandbox.calls] == [("GET", 200), ("PUT", 503), ("GET", 200)]


def test_reset_put_answered_429_was_not_processed(sandbox, client):
    sandbox.add_fault(Fault(method="PUT", status=429, retry_after=3, times=1))
    with pytest.raises(PolarisUnavailable) as info:
        client.request_password_reset(SAM)
    assert not info.value.outcome_unknown and info.value.retry_after == 3
    assert [(c.method, c.status) for c in sandbox.calls] == [("GET", 200), ("PUT", 429)]


def test_reset_before_put_sees_the_fresh_get(sandbox, client):
    seen = []
    client.request_password_reset(DANI, before_put=lambda u: seen.append((u.id, u.actions, len(sandbox.calls))))
    assert seen == [(DANI, ("VERIFY_EMAIL", "UPDATE_PASSWORD"), 1)]  # after the GET, before the PUT
    assert len(sandbox.writes("PUT")) == 1  # already pending: the PUT is still sent (it sends the email)


@pytest.mark.parametrize(
    "exc, code",
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), "Timeout"),
        (requests.exceptions.ReadTimeout("read timed out"), "Timeout"),
        (requests.exceptions.ConnectionError("connection refused"), "ConnectionError"),
    ],
)
def test_network_failures_become_unavailable_and_retried(rsps, exc, code):
    url = BASE + "/v1/groups"
    rsps.add("GET", url, body=exc)
    rsps.add("GET", url, json={"values": []})
    hook = []
    client = make_client(on_call=lambda *a: hook.append(a))
    assert client.list_groups() == []
    assert len(rsps.calls) == 2
    assert [(h[2], h[4]) for h in hook] == [(None, code), (200, None)]


@pytest.mark.parametrize(
    "exc, code",
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), "Timeout"),
        (requests.exceptions.ConnectionError("connection refused"), "ConnectionError"),
    ],
)
def test_network_failure_after_last_attempt(rsps, exc, code):
    rsps.add("GET", BASE + "/v1/users/u", body=exc)
    with pytest.raises(PolarisUnavailable) as info:
        make_client(max_attempts=3).get_user("u")
    err = info.value
    assert (err.status, err.code, err.method, err.path) == (None, code, "GET", "/v1/users/u")
    assert err.transient and len(rsps.calls) == 3
    assert err.__cause__ is None and err.__suppress_context__


def test_connection_error_on_post_user_not_retried(rsps, client):
    rsps.add("POST", BASE + "/v1/users", body=requests.exceptions.ConnectTimeout("x"))
    with pytest.raises(PolarisUnavailable) as info:
        client.create_user("x@example.com")
    assert info.value.status is None and len(rsps.calls) == 1


def test_connection_dropped_mid_response_is_unavailable(rsps, client):
    # A connection that drops while the body is read surfaces from requests as ChunkedEncodingError
    # ("Connection broken: IncompleteRead"); it is a dropped connection: PolarisUnavailable, retried for GET.
    url = BASE + "/v1/groups"
    rsps.add("GET", url, body=requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"))
    rsps.add("GET", url, json={"values": []})
    assert client.list_groups() == []
    assert len(rsps.calls) == 2


def test_sandbox_drop_and_read_timeout(sandbox):
    client = make_client(timeout=(0.05, 0.05))
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/groups$", drop=True, times=1))
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/permissions$", delay=0.2, times=1))
    assert len(client.list_groups()) == 5
    assert len(client.list_permissions()) == len(PERMISSION_CATALOGUE)
    assert [(c.path, c.status) for c in sandbox.calls] == [
        ("/v1/groups", 0),
        ("/v1/groups", 200),
        ("/v1/permissions", 0),
        ("/v1/permissions", 200),
    ]


# ============================================================================ on_call hook
def test_on_call_every_attempt(sandbox):
    hook = []
    client = make_client(on_call=lambda *a: hook.append(a))
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/users$", status=503, times=2))
    client.list_users(search="smith")
    with pytest.raises(PolarisNotFound):
        client.get_user("missing")
    assert [(m, p, s, e) for m, p, s, _, e in hook] == [
        ("GET", "/v1/users", 503, "ServiceUnavailable"),
        ("GET", "/v1/users", 503, "ServiceUnavailable"),
        ("GET", "/v1/users", 200, None),
        ("GET", "/v1/users/missing", 404, "ObjectNotFound"),
    ]
    assert all(isinstance(d, float) and d >= 0 for _, _, _, d, _ in hook)


def test_on_call_path_has_no_query_and_duration_measured(rsps):
    hook = []
    rsps.add("GET", BASE + f"/v1/groups/{VIEWER_ID}/members", json={"values": [], "count": 0})
    rsps.add("POST", BASE + "/v1/users", status=201, json=user_json())
    client = make_client(on_call=lambda *a: hook.append(a))
    client.list_members(VIEWER_ID, top=5, skip=10, search="x")
    client.create_user("pat@example.com", skip_invite=True)
    assert [(h[0], h[1], h[2], h[4]) for h in hook] == [
        ("GET", f"/v1/groups/{VIEWER_ID}/members", 200, None),
        ("POST", "/v1/users", 201, None),
    ]


def test_on_call_duration_ms(sandbox):
    hook = []
    sandbox.add_fault(Fault(method="GET", delay=0.05, times=1))
    make_client(on_call=lambda *a: hook.append(a)).list_groups()
    assert 45.0 <= hook[0][3] < 2000.0


def test_on_call_reports_unexpected_success_status(rsps):
    hook = []
    rsps.add("POST", BASE + "/v1/users", status=200, json=user_json())
    with pytest.raises(PolarisError):
        make_client(on_call=lambda *a: hook.append(a)).create_user("pat@example.com")
    assert [(h[2], h[4]) for h in hook] == [(200, "UnexpectedStatus")]


def test_raising_hook_does_not_break_the_call(sandbox, caplog):
    seen = []

    def hook(*args):
        seen.append(args)
        raise RuntimeError("hook exploded")

    client = make_client(on_call=hook)
    with caplog.at_level(logging.ERROR, logger="bot.polaris"):
        assert len(client.list_groups()) == 5
        with pytest.raises(PolarisNotFound):  # the call's own error still wins over the hook's
            client.get_user("missing")
    assert len(seen) == 2
    assert any("hook" in r.getMessage() for r in caplog.records)


# ============================================================================ secrets
def _assert_no_secret(text: str) -> None:
    assert KEY not in text
    assert B64_CREDENTIAL not in text
    assert "SECRETSECRET" not in text


def _exception_texts(err: BaseException) -> list[str]:
    return [
        str(err),
        repr(err),
        getattr(err, "message", ""),
        getattr(err, "plain", lambda: "")(),
        repr(err.args),
        "".join(traceback.format_exception(err)),
    ]


@pytest.mark.parametrize("style", ["rfc7617", "raw"])
def test_key_never_in_exceptions_or_logs(rsps, caplog, style):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "bot.polaris", "responses"):
        caplog.set_level(logging.DEBUG, logger=name)
    url = BASE + "/v1/users/u"
    rsps.add("GET", url, status=401, json=wrapped("InvalidAuthentication", "bad key"))
    rsps.add("GET", url, status=400, json={"code": "BadArgument", "message": "bad"})
    rsps.add("GET", url, status=503, body="<html>down</html>")
    rsps.add("GET", url, body=requests.exceptions.ConnectTimeout("timed out"))
    rsps.add("GET", url, body=requests.exceptions.ConnectionError("refused"))
    rsps.add("GET", url, status=404, json={"code": "ObjectNotFound", "message": "gone"})

    def bad_hook(*args):
        raise ValueError("hook failed")

    client = make_client(auth_style=style, max_attempts=1, on_call=bad_hook)
    errors = []
    for _ in range(6):
        with pytest.raises(PolarisError) as info:
            client.get_user("u")
        errors.append(info.value)
    assert [type(e) for e in errors] == [
        PolarisAuthError,
        PolarisBadRequest,
        PolarisUnavailable,
        PolarisUnavailable,
        PolarisUnavailable,
        PolarisNotFound,
    ]
    # the key really was sent, so the checks below are meaningful
    assert (
        KEY in rsps.calls[0].request.headers["Authorization"]
        or B64_CREDENTIAL in rsps.calls[0].request.headers["Authorization"]
    )
    for err in errors:
        for text in _exception_texts(err):
            _assert_no_secret(text)
    assert caplog.records, "expected at least the hook failure to be logged"
    for record in caplog.records:
        _assert_no_secret(record.getMessage())
        _assert_no_secret(caplog.text)
    _assert_no_secret(repr(client))


def test_key_never_in_urllib3_logs_over_real_http(caplog):
    """Over a real socket (sandbox.serve) so urllib3 logs its connections and requests at DEBUG."""
    sb = PolarisSandbox(api_key=KEY)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with sb.serve() as srv:
        session = requests.Session()
        session.trust_env = False  # no proxies from the environment for 127.0.0.1
        client = PolarisClient(srv.url, KEY, session=session, **FAST)
        sb.add_fault(Fault(method="GET", path=r"^/v1/users$", status=503, times=1))
        sb.add_fault(Fault(method="GET", path=r"^/v1/groups$", drop=True, times=1))
        assert client.list_users().count == 5
        assert len(client.list_groups()) == 5
        client.request_password_reset(SAM)
        errors = []
        for call in (
            lambda: client.get_user("missing"),
            lambda: PolarisClient(srv.url, "pok_other_key", session=session).list_groups(),
        ):
            with pytest.raises(PolarisError) as info:
                call()
            errors.append(info.value)
        session.close()
    assert any(r.name.startswith("urllib3") for r in caplog.records), "urllib3 debug logs not captured"
    for record in caplog.records:
        _assert_no_secret(record.getMessage())
    _assert_no_secret(caplog.text)
    for err in errors:
        for text in _exception_texts(err):
            _assert_no_secret(text)
    assert sb.get_user(SAM)["actions"] == ["UPDATE_PASSWORD"]


# ============================================================================ find_user_by_email
def test_find_user_uses_search_and_exact_match(sandbox, client):
    u = client.find_user_by_email("alex.smith@example.com")
    assert u is not None and u.id == ALEX  # alexa.smith is not a match, although "alex.smith" is a substring
    assert all("search" in c.query for c in sandbox.calls if c.path == "/v1/users")
    assert sandbox.calls[0].query["search"] == "alex.smith@example.com"


def test_find_user_case_insensitive(sandbox, client):
    u = client.find_user_by_email("  Dani.LEE@Example.COM ")
    assert u is not None and u.id == DANI


def test_find_user_substring_is_not_a_match(sandbox, client):
    sandbox.create_user("sal@example.com", "Sal", "Nitro")
    assert client.find_user_by_email("al@example.com") is None
    assert len(sandbox.calls) == 1 and sandbox.calls[0].query.get("search") == "al@example.com"
    assert client.find_user_by_email("sal@example.com").username == "sal@example.com"


def test_find_user_absent(sandbox, client):
    assert client.find_user_by_email("nobody@example.com") is None
    assert [(c.method, c.path, c.query.get("search")) for c in sandbox.calls] == [
        ("GET", "/v1/users", "nobody@example.com")
    ]


def test_find_user_empty_makes_no_call(rsps, client):
    assert client.find_user_by_email("   ") is None
    assert len(rsps.calls) == 0


def test_find_user_pages_through_search_results(sandbox, client):
    for i in range(150):
        sandbox.create_user(f"a{i:03d}zz@example.com", "Bulk", str(i))
    sandbox.create_user("zz@example.com", "Target", "User")
    u = client.find_user_by_email("ZZ@example.com")
    assert u is not None and u.username == "zz@example.com"
    users_calls = [c for c in sandbox.calls if c.path == "/v1/users"]
    assert [(c.query["skip"], c.query["search"]) for c in users_calls] == [
        ("0", "zz@example.com"),
        ("100", "zz@example.com"),
    ]
    assert len(sandbox.calls) == len(users_calls)


def test_find_user_raw_stub_paging_and_case(rsps, client):
    url = BASE + "/v1/users"
    page1 = [user_json(f"id{i}", f"x{i}.al@example.com") for i in range(100)]
    page2 = [user_json("id-sal", "sal@example.com"), user_json("id-al", "AL@Example.com")]
    rsps.add("GET", url, json={"values": page1, "count": 102})
    rsps.add("GET", url, json={"values": page2, "count": 102})
    u = client.find_user_by_email("al@example.com")
    assert u is not None and u.id == "id-al"
    queries = [sent(c)[2] for c in rsps.calls]
    assert queries == [
        {"top": "100", "skip": "0", "search": "al@example.com"},
        {"top": "100", "skip": "100", "search": "al@example.com"},
    ]


def test_find_user_stops_on_empty_page(rsps, client):
    # a server whose count overstates the results must not make the client loop forever
    served = []

    def overstated(request):
        served.append(request.url)
        if len(served) > 3:
            raise AssertionError("the client keeps asking for empty pages")
        return 200, {}, json.dumps({"values": [], "count": 500})

    rsps.add_callback("GET", BASE + "/v1/users", callback=overstated, content_type="application/json")
    assert client.find_user_by_email("ghost@example.com") is None
    assert len(served) == 1


# ============================================================================ update_user / password reset
RICH_USER = {
    "id": "u-rich",
    "username": "rich@example.com",
    "email": "rich@example.com",
    "firstName": "Ríchard",
    "lastName": "Ünïcode",
    "enabled": False,
    "emailVerified": True,
    "permissions": [
        {"id": "perm-1", "name": "AdministerUsers", "description": "admin"},
        {"name": "ViewTables", "resources": ["projects/*"]},
    ],
    "groups": [
        {"id": VIEWER_ID, "name": "Viewer"},
        {"id": ALERTS_AND_REPORTS_ID, "name": "Alerts and reports", "readOnly": False},
    ],
    "identities": [{"providerId": "okta"}],
    "actions": ["VERIFY_EMAIL"],
    "createdOn": "2023-09-21T02:45:09.205Z",
    "department": {"name": "Sales", "cost_center": 42},
}


def _stub_get_put(rsps, user: dict) -> list:
    """GET returns ``user``; PUT echoes the body merged with the read-only fields. Returns PUT bodies."""
    puts = []
    rsps.add("GET", BASE + f"/v1/users/{user['id']}", json=user)

    def on_put(request):
        body = json.loads(request.body)
        puts.append(body)
        merged = {**body, **{k: user[k] for k in READ_ONLY_USER_FIELDS if k in user}}
        return 200, {}, json.dumps(merged)

    rsps.add_callback("PUT", BASE + f"/v1/users/{user['id']}", callback=on_put, content_type="application/json")
    return puts


def test_password_reset_put_body_carries_everything(rsps, client, spec):
    puts = _stub_get_put(rsps, copy.deepcopy(RICH_USER))
    result = client.request_password_reset("u-rich")
    assert [sent(c)[:2] for c in rsps.calls] == [("GET", "/v1/users/u-rich"), ("PUT", "/v1/users/u-rich")]
    assert puts == [
        {
            "username": "rich@example.com",
            "email": "rich@example.com",
            "firstName": "Ríchard",
            "lastName": "Ünïcode",
            "enabled": False,
            "permissions": [{"name": "AdministerUsers"}, {"name": "ViewTables", "resources": ["projects/*"]}],
            "groups": [{"id": VIEWER_ID}, {"id": ALERTS_AND_REPORTS_ID}],
            "actions": ["VERIFY_EMAIL", "UPDATE_PASSWORD"],
            "department": {"name": "Sales", "cost_center": 42},
        }
    ]
    body = puts[0]
    assert not set(body) & {"id", "emailVerified", "identities", "createdOn"}
    validate_request(spec, body, "/v1/users/{id}", "PUT")
    assert isinstance(result, User) and result.actions == ("VERIFY_EMAIL", "UPDATE_PASSWORD")
    assert result.enabled is False


def test_password_reset_does_not_duplicate_action(rsps, client):
    user = copy.deepcopy(RICH_USER)
    user["actions"] = ["UPDATE_PASSWORD", "VERIFY_EMAIL"]
    puts = _stub_get_put(rsps, user)
    client.request_password_reset("u-rich")
    assert puts[0]["actions"] == ["UPDATE_PASSWORD", "VERIFY_EMAIL"]


def test_password_reset_minimal_user(rsps, client, spec):
    puts = _stub_get_put(rsps, {"id": "u-min", "username": "min@example.com", "email": "min@example.com"})
    client.request_password_reset("u-min")
    assert puts == [
        {"username": "min@example.com", "email": "min@example.com", "groups": [], "actions": ["UPDATE_PASSWORD"]}
    ]
    validate_request(spec, puts[0], "/v1/users/{id}", "PUT")


def test_update_user_change_and_immutable_username(rsps, client, spec):
    puts = _stub_get_put(rsps, copy.deepcopy(RICH_USER))

    def change(body):
        body["firstName"] = "Rich"
        body["enabled"] = True
        body["username"] = "evil@example.com"
        body["email"] = "evil@example.com"

    user = client.update_user("u-rich", change)
    body = puts[0]
    assert body["username"] == "rich@example.com" and body["email"] == "rich@example.com"
    assert body["firstName"] == "Rich" and body["enabled"] is True
    assert body["lastName"] == "Ünïcode" and body["actions"] == ["VERIFY_EMAIL"]
    assert body["groups"] == [{"id": VIEWER_ID}, {"id": ALERTS_AND_REPORTS_ID}]
    assert body["department"] == {"name": "Sales", "cost_center": 42}
    validate_request(spec, body, "/v1/users/{id}", "PUT")
    assert user.first_name == "Rich"


def test_update_user_does_not_mutate_between_calls(rsps, client):
    puts = _stub_get_put(rsps, copy.deepcopy(RICH_USER))
    client.update_user("u-rich", lambda body: body["groups"].clear())
    client.request_password_reset("u-rich")
    assert puts[0]["groups"] == [] and len(puts[1]["groups"]) == 2


def test_put_body_static():
    original = copy.deepcopy(RICH_USER)
    body = PolarisClient.put_body(original)
    assert original == RICH_USER  # input untouched
    assert set(body) == set(RICH_USER) - READ_ONLY_USER_FIELDS
    body["department"]["name"] = "changed"
    assert RICH_USER["department"]["name"] == "Sales"  # deep copy


def test_update_user_missing_raises_not_found_without_put(sandbox, client):
    with pytest.raises(PolarisNotFound):
        client.request_password_reset("no-such-user")
    assert [c.method for c in sandbox.calls] == ["GET"]
    assert sandbox.writes() == []


def test_password_reset_in_sandbox_keeps_everything(sandbox, client, spec):
    before = sandbox.get_user(JO)  # disabled, Viewer, verified, no actions
    assert before["enabled"] is False
    user = client.request_password_reset(JO)
    after = sandbox.get_user(JO)
    assert after == {**before, "actions": ["UPDATE_PASSWORD"]}
    assert user.enabled is False and user.group_ids == {VIEWER_ID}
    assert JO in sandbox.group_member_ids(VIEWER_ID)
    put = [c for c in sandbox.calls if c.method == "PUT"]
    assert len(put) == 1 and put[0].status == 200
    assert put[0].body["enabled"] is False
    validate_request(spec, put[0].body, "/v1/users/{id}", "PUT")


def test_password_reset_in_sandbox_pending_invite(sandbox, client):
    before = sandbox.get_user(DANI)
    client.request_password_reset(DANI)
    after = sandbox.get_user(DANI)
    assert after == before  # both actions already there: nothing changes, nothing duplicated
    assert after["actions"].count("UPDATE_PASSWORD") == 1


def test_password_reset_in_sandbox_with_permissions(sandbox, client):
    created = sandbox.create_user(
        "perm.holder@example.com",
        "Perm",
        "Holder",
        groups=[DATA_ANALYST_ID, ALERTS_AND_REPORTS_ID],
        actions=["VERIFY_EMAIL"],
        permissions=[{"name": "AdministerUsers"}, {"name": "ManageFiles", "resources": ["projects/*"]}],
    )
    client.request_password_reset(created["id"])
    after = sandbox.get_user(created["id"])
    assert after == {**created, "actions": ["VERIFY_EMAIL", "UPDATE_PASSWORD"]}


def test_update_user_in_sandbox(sandbox, client):
    before = sandbox.get_user(DANI)
    client.update_user(DANI, lambda body: body.update(lastName="Lee-Park"))
    after = sandbox.get_user(DANI)
    assert after == {**before, "lastName": "Lee-Park"}


_GROUP_CHOICES = [DATA_ANALYST_ID, DATA_MANAGER_ID, ORGANIZATION_ADMIN_ID, VIEWER_ID, ALERTS_AND_REPORTS_ID]
_PERMISSION_CHOICES = [
    {"name": p["name"], **({"resources": ["projects/*"]} if "resources" in p else {})} for p in PERMISSION_CATALOGUE
]


@settings(max_examples=30, deadline=None)
@given(
    local=st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True),
    first=st.text(max_size=20),
    last=st.text(max_size=20),
    enabled=st.booleans(),
    groups=st.lists(st.sampled_from(_GROUP_CHOICES), unique=True),
    actions=st.lists(st.sampled_from(["VERIFY_EMAIL", "UPDATE_PASSWORD"]), unique=True),
    permissions=st.lists(st.sampled_from(_PERMISSION_CHOICES), unique_by=lambda p: p["name"], max_size=4),
    verified=st.booleans(),
)
def test_property_password_reset_changes_only_actions(
    local, first, last, enabled, groups, actions, permissions, verified
):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        sb = PolarisSandbox(api_key=KEY)
        sb.mount(mock, BASE)
        created = sb.create_user(
            f"{local}@example.com",
            first,
            last,
            groups=groups,
            enabled=enabled,
            actions=actions,
            permissions=permissions,
            email_verified=verified,
        )
        result = make_client().request_password_reset(created["id"])
        after = sb.get_user(created["id"])
    expected_actions = actions if "UPDATE_PASSWORD" in actions else actions + ["UPDATE_PASSWORD"]
    assert after == {**created, "actions": expected_actions}
    assert result.raw == after
    assert (result.first_name, result.last_name, result.enabled) == (first, last, enabled)
    assert [gid for gid, _ in result.groups] == groups
    writes = sb.writes()
    assert [(w.method, w.path) for w in writes] == [("PUT", f"/v1/users/{created['id']}")]
    assert not set(writes[0].body) & READ_ONLY_USER_FIELDS


# ============================================================================ GroupCatalog
class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _group_gets(sandbox) -> int:
    return sum(1 for c in sandbox.calls if (c.method, c.path) == ("GET", "/v1/groups"))


def test_catalog_caches_for_ttl(sandbox, client):
    clock = FakeClock()
    catalog = GroupCatalog(client, ttl=60, clock=clock)
    first = catalog.all()
    second = catalog.all()
    assert _group_gets(sandbox) == 1
    assert first == second
    assert [g.name for g in first] == [
        "Alerts and reports",
        "Data Analyst",
        "Data Manager",
        "Organization Admin",
        "Viewer",
    ]  # sorted by name, case-insensitive
    clock.now += 59.9
    catalog.by_name("viewer")
    catalog.by_id(VIEWER_ID)
    catalog.nearest("view")
    assert _group_gets(sandbox) == 1
    clock.now += 0.1  # ttl reached
    catalog.all()
    assert _group_gets(sandbox) == 2
    catalog.all()
    assert _group_gets(sandbox) == 2


def test_catalog_refetch_sees_new_groups(sandbox, client):
    clock = FakeClock()
    catalog = GroupCatalog(client, ttl=60, clock=clock)
    assert catalog.by_name("Engineers") is None
    sandbox.create_group("Engineers", [{"name": "ViewTables", "resources": ["projects/*"]}])
    assert catalog.by_name("Engineers") is None  # still cached
    clock.now += 61
    assert catalog.by_name("Engineers") is not None
    assert _group_gets(sandbox) == 2


def test_catalog_invalidate(sandbox, client):
    catalog = GroupCatalog(client, ttl=3600, clock=FakeClock())
    catalog.all()
    created = client.create_group("Fresh", [Permission("ViewTables", ("projects/*",))])
    assert catalog.by_id(created.id) is None
    catalog.invalidate()
    assert catalog.by_id(created.id) == created
    assert _group_gets(sandbox) == 2


def test_catalog_failure_is_not_cached(sandbox, client):
    catalog = GroupCatalog(client, ttl=60, clock=FakeClock())
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/groups$", status=401, times=1))
    with pytest.raises(PolarisAuthError):
        catalog.all()
    assert len(catalog.all()) == 5
    assert _group_gets(sandbox) == 2


@pytest.mark.parametrize(
    "name",
    [
        "Data Analyst",
        "data analyst",
        "  DATA ANALYST  ",
        '"Data Analyst"',
        "'data analyst'",
        "\u201cData Analyst\u201d",
        "\u2018Data Analyst\u2019",
        "Data   Analyst",
        '" Data Analyst "',
    ],
)
def test_catalog_by_name_case_and_quotes(sandbox, client, name):
    catalog = GroupCatalog(client, ttl=60, clock=FakeClock())
    group = catalog.by_name(name)
    assert group is not None and group.id == DATA_ANALYST_ID


@pytest.mark.parametrize("name", ["Data", "Analyst", "Data Analysts", "", '""', "data-analyst"])
def test_catalog_by_name_no_partial_match(sandbox, client, name):
    assert GroupCatalog(client, clock=FakeClock()).by_name(name) is None


def test_catalog_by_id(sandbox, client):
    catalog = GroupCatalog(client, clock=FakeClock())
    assert catalog.by_id(ORGANIZATION_ADMIN_ID).name == "Organization Admin"
    assert catalog.by_id("nope") is None


def test_catalog_nearest(sandbox, client):
    catalog = GroupCatalog(client, clock=FakeClock())
    assert catalog.nearest("data anlyst")[0] == "Data Analyst"
    assert catalog.nearest("Data Managr")[0] == "Data Manager"
    assert "Organization Admin" in catalog.nearest("admin")
    assert catalog.nearest("Viewr")[0] == "Viewer"
    assert catalog.nearest('"alerts & reports"')[0] == "Alerts and reports"
    assert catalog.nearest("zzzzqqqq") == []
    assert len(catalog.nearest("data", n=1)) == 1
    assert set(catalog.nearest("data", n=5)) >= {"Data Analyst", "Data Manager"}
    assert len(catalog.nearest("a", n=2)) <= 2
    assert _group_gets(sandbox) == 1


def test_catalog_with_raw_stub(rsps, client, guide):
    rsps.add("GET", BASE + "/v1/groups", json=guide["groups"])
    clock = FakeClock()
    catalog = GroupCatalog(client, ttl=5, clock=clock)
    assert catalog.by_name("viewer").user_count == 18
    assert catalog.by_name("ORGANIZATION ADMIN").read_only
    assert len(rsps.calls) == 1
    clock.now += 5
    catalog.all()
    assert len(rsps.calls) == 2


def test_normalize_group_name():
    assert normalize_group_name('  "Data   Manager" ') == "data manager"
    assert normalize_group_name("\u201cViewer\u201d") == "viewer"
    assert normalize_group_name("'Viewer\"") == "'viewer\""  # mismatched quotes are kept
    assert normalize_group_name("") == ""


def test_reset_put_that_landed_but_lost_its_answer_is_not_sent_again(sandbox, client):
    sandbox.add_fault(Fault(method="PUT", status=503, after_handle=True, times=1))
    client.request_password_reset(SAM)
    assert len(sandbox.writes("PUT")) == 1
    assert sandbox.get_user(SAM)["actions"] == ["UPDATE_PASSWORD"]


def test_update_retry_does_not_undo_a_change_made_meanwhile(sandbox, client):
    """A PUT that failed is not resent with its old body: an admin's change in between survives."""
    sandbox.add_fault(Fault(method="PUT", status=503, times=1))

    def admin_disables_sam(method, path, status, duration_ms, error_code):
        if method == "PUT" and status == 503:
            body = {**client.put_body(sandbox.get_user(SAM)), "enabled": False}
            auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
            assert sandbox.handle("PUT", f"/v1/users/{SAM}", {}, auth, json.dumps(body).encode())[0] == 200

    client.on_call = admin_disables_sam
    client.update_user(SAM, lambda body: body.update(lastName="Patel-Ng"))
    after = sandbox.get_user(SAM)
    assert after["enabled"] is False and after["lastName"] == "Patel-Ng"


# ============================================================================ issue 8, finding 14
def test_find_user_is_exact_however_many_substring_matches_polaris_returns(sandbox, client):
    """1,200 users whose email contains ``sam@example.io`` sort before it: the exact one is still found."""
    for i in range(1200):
        sandbox.create_user(f"a{i:04d}sam@example.io", "Bulk", str(i), actions=[])
    sandbox.create_user("sam@example.io", "Sam", "Exact", actions=[])
    sandbox.reset_calls()
    u = client.find_user_by_email("sam@example.io")
    assert u is not None and u.username == "sam@example.io"
    skips = [c.query["skip"] for c in sandbox.calls if c.path == "/v1/users"]
    assert skips == [str(100 * i) for i in range(13)]
    assert {c.query["top"] for c in sandbox.calls} == {"100"}


def test_find_user_with_few_matches_is_one_call(sandbox, client):
    sandbox.create_user("xsam@example.io", "X", "Sam", actions=[])
    sandbox.create_user("sam@example.io", "Sam", "Exact", actions=[])
    sandbox.reset_calls()
    assert client.find_user_by_email("sam@example.io").username == "sam@example.io"
    assert len(sandbox.calls) == 1


# ============================================================================ issue 8, findings 3 and 7
def _http_client(sb, **kw):
    srv = sb.serve()
    session = requests.Session()
    session.trust_env = False
    return srv, PolarisClient(srv.url, KEY, session=session, **{**FAST, "max_attempts": 4, "retry_seconds": 5.0, **kw})


def test_reset_put_whose_answer_timed_out_is_never_sent_again():
    """Every PUT delayed past the read timeout: the PUT lands late; the client must not send it again."""
    sb = PolarisSandbox(api_key=KEY)
    srv, client = _http_client(sb, timeout=(1.0, 0.2))
    try:
        sb.add_fault(Fault(method="PUT", delay=0.6, times=None))
        with pytest.raises(PolarisUnavailable) as info:
            client.request_password_reset(SAM)
        assert getattr(info.value, "outcome_unknown", False)
        deadline = time.monotonic() + 5
        while not sb.writes("PUT") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.7)  # anything sent again would have landed by now
        assert len([c for c in sb.calls if c.method == "PUT"]) == 1
        assert sb.get_user(SAM)["actions"] == ["UPDATE_PASSWORD"]
    finally:
        srv.shutdown()


def test_create_user_whose_answer_was_lost_has_an_unknown_outcome(sandbox, client):
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", status=502, after_handle=True))
    with pytest.raises(PolarisUnavailable) as info:
        client.create_user("landed@example.com")
    assert info.value.outcome_unknown
    assert len([c for c in sandbox.calls if c.method == "POST"]) == 1


def test_list_audit_events_filters_and_needs_access_audit_logs(sandbox, client):
    import datetime as dt

    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    client.request_password_reset(SAM)
    client.request_password_reset(ALEX)
    events = client.list_audit_events(type="USER_PASSWORD_RESET", user=SAM, since=start)
    assert [(e.type, e.concerns(SAM), e.concerns(ALEX)) for e in events] == [("USER_PASSWORD_RESET", True, False)]
    query = [c.query for c in sandbox.calls if c.path == "/v1/audit/events"][0]
    assert query["type"] == "USER_PASSWORD_RESET" and query["user"] == SAM and query["from"].endswith("Z")
    assert (
        client.list_audit_events(
            type="USER_PASSWORD_RESET", user=SAM, since=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
        )
        == []
    )
    sandbox.audit_access = False
    with pytest.raises(PolarisAuthError):
        client.list_audit_events(type="USER_PASSWORD_RESET", user=SAM)


def test_an_id_from_a_form_is_one_path_segment_never_another_path(sandbox, client, rsps):
    # The attack review: an ID forged into a form's private_metadata (`../users/<id>`) made the bot GET another
    # Polaris path. Every ID is percent-encoded as one segment, so Polaris sees no such user.
    from bot.polaris import PolarisNotFound

    group = sandbox.group_by_name("Viewer")
    with pytest.raises(PolarisNotFound):
        client.get_user(f"../groups/{group['id']}")
    assert sent(rsps.calls[-1])[1] == f"/v1/users/..%2Fgroups%2F{group['id']}"


def test_the_environments_proxy_and_ca_settings_are_read_once_at_start(monkeypatch, tmp_path):
    # Issue 13: requests read the proxy variables on every call (a quarter of a Polaris call's CPU). They are read
    # once, when the client is made, for the one host it talks to; HTTPS_PROXY, NO_PROXY and the CA bundle are
    # still honoured.
    from bot.polaris.transport import PolarisTransport

    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    made = PolarisTransport("https://acme.api.imply.io", "key")
    assert made._session.proxies.get("https") == "http://proxy.internal:3128"
    assert made._session.verify == str(bundle) and made._session.trust_env is False
    monkeypatch.setenv("NO_PROXY", "acme.api.imply.io")
    assert not PolarisTransport("https://acme.api.imply.io", "key")._session.proxies.get("https")
    monkeypatch.delenv("HTTPS_PROXY")
    assert made._session.proxies.get("https") == "http://proxy.internal:3128"  # read once: a later change is not seen
