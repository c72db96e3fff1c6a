"""Tests for standins.polaris_sandbox: the stateful Polaris Identity API emulator.

Checks the behaviour required by /work/shared/polaris/README.md ("Facts the client and the sandbox
must honour") and the guide, and validates responses against openapi-identity.json.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standins.polaris_sandbox import (
    ALERTS_AND_REPORTS_ID,
    DATA_ANALYST_ID,
    DATA_MANAGER_ID,
    DEMO_PROJECT_IDS,
    ORGANIZATION_ADMIN_ID,
    SANDBOX_API_KEY,
    VIEWER_ID,
    Call,
    ConnectionDropped,
    Fault,
    PolarisSandbox,
    SandboxServer,
)
from tests.polaris_spec import SPEC_DIR, guide_json_blocks

RAW_AUTH = {"Authorization": f"Basic {SANDBOX_API_KEY}"}
RFC_AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SANDBOX_API_KEY}:".encode()).decode()}
BASE = "https://example.api.imply.io"
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
USER_KEYS = {
    "id",
    "username",
    "email",
    "firstName",
    "lastName",
    "enabled",
    "emailVerified",
    "permissions",
    "groups",
    "identities",
    "actions",
    "createdOn",
}
DANI = "880f6811-7e85-47ce-b3c5-a57a85ab95bd"
ALEX = "d88d4e47-d6ed-4820-880e-c0564ce99752"
JO = "b2e4d6f8-1a3c-4e5f-8b7d-9c0a2e4f6b81"


# ------------------------------------------------------------------ helpers / fixtures


@pytest.fixture
def sb() -> PolarisSandbox:
    return PolarisSandbox()


def api(sb: PolarisSandbox, method: str, path: str, body=None, query=None, headers=RAW_AUTH, raw: bytes | None = None):
    """Call sandbox.handle; returns (status, headers, parsed JSON body or None for empty)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    status, hdrs, payload = sb.handle(method, path, {k: str(v) for k, v in (query or {}).items()}, headers, data)
    assert hdrs["Content-Type"] == "application/json"
    assert hdrs["Content-Length"] == str(len(payload))
    return status, hdrs, (json.loads(payload) if payload else None)


def assert_bare(body, code):
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]


def assert_wrapped(body, code):
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]


_guide_json_blocks = guide_json_blocks


@pytest.fixture(scope="session")
def guide() -> list:
    if not (SPEC_DIR / "identity-management-guide.txt").exists():
        pytest.fail(f"guide not found under {SPEC_DIR} (tests/fixtures/polaris ships it)")
    return _guide_json_blocks()


@pytest.fixture(scope="session")
def spec() -> dict:
    path = SPEC_DIR / "openapi-identity.json"
    if not path.exists():
        pytest.fail(f"{path} not found (tests/fixtures/polaris ships it)")
    return json.loads(path.read_text())


class Spec:
    """Validates instances against the OpenAPI 3.0 schemas ($ref resolved against components)."""

    def __init__(self, spec: dict):
        from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

        self.spec = spec
        self._cls = OAS30ReadValidator
        self._fmt = oas30_format_checker

    def validate(self, instance, schema: dict) -> None:
        wrapped = {**schema, "components": self.spec["components"]}
        self._cls(wrapped, format_checker=self._fmt).validate(instance)

    def component(self, instance, name: str) -> None:
        self.validate(instance, {"$ref": f"#/components/schemas/{name}"})

    def response(self, instance, path: str, method: str, status: int) -> None:
        op = self.spec["paths"][path][method.lower()]["responses"][str(status)]
        self.validate(instance, op["content"]["application/json"]["schema"])


@pytest.fixture(scope="session")
def oas(spec) -> Spec:
    return Spec(spec)


# ------------------------------------------------------------------ seed data


def test_seed_matches_guide_exactly(sb, guide):
    perms, groups = guide[0]["values"], guide[1]["values"]
    status, _, body = api(sb, "GET", "/v1/permissions")
    assert status == 200 and body == {"values": perms}
    _, _, listed = api(sb, "GET", "/v1/groups")
    by_id = {g["id"]: g for g in listed["values"]}
    for g in groups:  # exact id, name, readOnly and permission list (userCount reflects our members)
        mine = by_id[g["id"]]
        assert {k: mine[k] for k in ("id", "name", "readOnly", "permissions")} == {
            k: g[k] for k in ("id", "name", "readOnly", "permissions")
        }
    custom = by_id[ALERTS_AND_REPORTS_ID]
    assert custom["name"] == "Alerts and reports" and custom["readOnly"] is False
    assert custom["permissions"] == guide[2]["permissions"]  # the guide's create-group request


def test_seed_demo_users_and_seed_false():
    sb = PolarisSandbox()
    _, _, users = api(sb, "GET", "/v1/users")
    assert 3 <= users["count"] <= 5 == len(users["values"])
    assert all(u["username"].endswith("@example.com") for u in users["values"])
    assert [u["enabled"] for u in users["values"]].count(False) == 1
    assert {g["id"] for u in users["values"] for g in u["groups"]} >= {
        ORGANIZATION_ADMIN_ID,
        DATA_MANAGER_ID,
        DATA_ANALYST_ID,
        VIEWER_ID,
        ALERTS_AND_REPORTS_ID,
    }
    _, _, groups = api(sb, "GET", "/v1/groups")
    counts = {g["id"]: g["userCount"] for g in groups["values"]}
    assert counts[VIEWER_ID] == 2 and counts[ALERTS_AND_REPORTS_ID] == 1

    empty = PolarisSandbox(seed=False)
    _, _, users = api(empty, "GET", "/v1/users")
    assert users == {"values": [], "count": 0}
    _, _, groups = api(empty, "GET", "/v1/groups")
    assert [g["name"] for g in groups["values"]] == ["Data Analyst", "Data Manager", "Organization Admin", "Viewer"]
    assert all(g["readOnly"] and g["userCount"] == 0 for g in groups["values"])
    assert api(empty, "GET", "/v1/permissions")[2]["values"] == api(sb, "GET", "/v1/permissions")[2]["values"]


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize("headers", [RAW_AUTH, RFC_AUTH, {"authorization": f"basic {SANDBOX_API_KEY}"}])
def test_auth_accepts_raw_and_rfc7617_forms(sb, headers):
    assert api(sb, "GET", "/v1/permissions", headers=headers)[0] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic pok_wrong"},
        {"Authorization": "Basic " + base64.b64encode(b"pok_wrong:").decode()},
        {"Authorization": "Basic " + base64.b64encode(f"{SANDBOX_API_KEY}:secret".encode()).decode()},
        {"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        {"Authorization": "Basic"},
    ],
)
def test_auth_rejects_with_wrapped_401(sb, headers):
    status, hdrs, body = api(sb, "GET", "/v1/users", headers=headers)
    assert status == 401
    assert_wrapped(body, "InvalidAuthentication")
    assert sb.calls[-1].status == 401 and sb.calls[-1].handled_status == 401


def test_custom_key_and_rotation():
    sb = PolarisSandbox(api_key="pok_other")
    assert api(sb, "GET", "/v1/users", headers={"Authorization": "Basic pok_other"})[0] == 200
    assert api(sb, "GET", "/v1/users")[0] == 401
    sb.api_key = SANDBOX_API_KEY
    assert api(sb, "GET", "/v1/users")[0] == 200


# ------------------------------------------------------------------ users: list / paging / search


def test_paging_count_and_order():
    sb = PolarisSandbox(seed=False)
    for i in range(25):
        sb.create_user(f"user{i:02d}@example.com", "First", f"Last{i}")
    _, _, page = api(sb, "GET", "/v1/users", query={"top": 10, "skip": 20})
    assert page["count"] == 25
    assert [u["username"] for u in page["values"]] == [f"user{i:02d}@example.com" for i in range(20, 25)]
    _, _, default = api(sb, "GET", "/v1/users")
    assert len(default["values"]) == 25 and default["count"] == 25
    _, _, beyond = api(sb, "GET", "/v1/users", query={"skip": 100})
    assert beyond == {"values": [], "count": 25}
    # walking all pages yields every user exactly once
    seen, skip = [], 0
    while True:
        _, _, p = api(sb, "GET", "/v1/users", query={"top": 7, "skip": skip})
        seen += [u["id"] for u in p["values"]]
        skip += 7
        if skip >= p["count"]:
            break
    assert len(seen) == len(set(seen)) == 25


@pytest.mark.parametrize("query", [{"top": 0}, {"top": 101}, {"top": "abc"}, {"skip": -1}, {"skip": "x"}, {"top": ""}])
def test_paging_out_of_range_is_bare_400(sb, query):
    status, _, body = api(sb, "GET", "/v1/users", query=query)
    assert status == 400
    assert_bare(body, "BadArgument")
    status, _, body = api(sb, "GET", f"/v1/groups/{VIEWER_ID}/members", query=query)
    assert status == 400
    assert_bare(body, "BadArgument")


def test_search_is_case_insensitive_substring_over_fields(sb):
    sb.create_user("zed@corp.example.org", "Quincy", "Orwell")

    def search(term):
        _, _, body = api(sb, "GET", "/v1/users", query={"search": term, "top": 2})
        return body["count"], {u["username"] for u in body["values"]}

    assert search("SMITH") == (2, {"alex.smith@example.com", "alexa.smith@example.com"})  # lastName + username
    assert search("quin") == (1, {"zed@corp.example.org"})  # firstName
    assert search("ORWEL") == (1, {"zed@corp.example.org"})  # lastName
    assert search("corp.EXAMPLE") == (1, {"zed@corp.example.org"})  # username/email
    assert search("alex")[0] == 2  # substring, not exact: the client must filter exact matches
    assert search("nobody-here") == (0, set())
    count, shown = search("example")
    assert count == 6 and len(shown) == 2  # count is the total matching, values paged


# ------------------------------------------------------------------ users: create


def test_create_user_201_shape(sb, oas):
    body = {
        "username": "new.person@example.com",
        "firstName": "New",
        "lastName": "Person",
        "groups": [{"id": ALERTS_AND_REPORTS_ID}],
    }
    status, _, user = api(sb, "POST", "/v1/users", body)
    assert status == 201
    oas.response(user, "/v1/users", "post", 201)
    assert set(user) == USER_KEYS
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", user["id"])
    assert user["email"] == user["username"] == "new.person@example.com"
    assert user["enabled"] is True and user["emailVerified"] is False
    assert user["permissions"] == [] and user["identities"] == []
    assert user["actions"] == ["VERIFY_EMAIL", "UPDATE_PASSWORD"]
    assert user["groups"] == [{"id": ALERTS_AND_REPORTS_ID, "name": "Alerts and reports"}]
    assert ISO_MS_Z.match(user["createdOn"])
    assert api(sb, "GET", f"/v1/users/{user['id']}")[2] == user
    assert sb.get_group(ALERTS_AND_REPORTS_ID)["userCount"] == 2


def test_create_user_skip_invite(sb):
    status, _, user = api(sb, "POST", "/v1/users", {"username": "quiet@example.com"}, query={"skipInvite": "true"})
    assert status == 201 and user["actions"] == [] and user["groups"] == []
    assert "firstName" not in user or user["firstName"] == ""
    status, _, body = api(sb, "POST", "/v1/users", {"username": "x@example.com"}, query={"skipInvite": "maybe"})
    assert status == 400


def test_create_duplicate_is_wrapped_409_case_insensitive(sb):
    status, _, body = api(sb, "POST", "/v1/users", {"username": "Alex.SMITH@Example.com"})
    assert status == 409
    assert_wrapped(body, "StateConflict")
    assert api(sb, "GET", "/v1/users")[2]["count"] == 5


@pytest.mark.parametrize(
    "body",
    [
        {"username": "not-an-email"},
        {"username": "a@b"},
        {"firstName": "No", "lastName": "Username"},
        {"username": "ok@example.com", "groups": [{"id": "00000000-0000-4000-8000-000000000000"}]},
        {"username": "ok@example.com", "groups": [{"name": "Viewer"}]},  # by name: not allowed
        {"username": "ok@example.com", "groups": ["d919f276-7857-4b59-a616-0c2540fb4ad1"]},
        {"username": "ok@example.com", "enabled": "yes"},
        {"username": "ok@example.com", "actions": ["RESET"]},
        {"username": "ok@example.com", "permissions": [{"name": "NoSuchPermission"}]},
        [{"username": "ok@example.com"}],
    ],
)
def test_create_user_invalid_is_bare_400(sb, body):
    status, _, err = api(sb, "POST", "/v1/users", body)
    assert status == 400
    assert_bare(err, "BadArgument")
    assert sb.find_user("ok@example.com") is None


def test_malformed_json_and_missing_body_are_bare_400(sb):
    for raw in (b"{not json", b"\xff\xfe", b""):
        status, _, err = api(sb, "POST", "/v1/users", raw=raw)
        assert status == 400
        assert_bare(err, "BadArgument")
    assert sb.calls[-1].body is None


# ------------------------------------------------------------------ users: get / put / delete


def test_put_replaces_user_omitted_fields_lost(sb, oas):
    created = sb.create_user(
        "pat@example.com", "Pat", "Doe", groups=[VIEWER_ID, DATA_ANALYST_ID], enabled=False, actions=["UPDATE_PASSWORD"]
    )
    status, _, user = api(sb, "PUT", f"/v1/users/{created['id']}", {"username": "pat@example.com"})
    assert status == 200
    oas.response(user, "/v1/users/{id}", "put", 200)
    assert user.get("firstName", "") == "" and user.get("lastName", "") == ""
    assert user["enabled"] is True  # schema default
    assert user["groups"] == [] and user["actions"] == [] and user["permissions"] == []
    for key in ("id", "username", "email", "emailVerified", "identities", "createdOn"):
        assert user[key] == created[key]
    # membership really changed (group side agrees)
    assert created["id"] not in sb.group_member_ids(VIEWER_ID)
    _, _, members = api(sb, "GET", f"/v1/groups/{DATA_ANALYST_ID}/members")
    assert created["id"] not in {m["id"] for m in members["values"]}


def test_put_full_object_roundtrip_and_password_reset(sb):
    user = sb.get_user(DANI)
    user["groups"].append({"id": DATA_ANALYST_ID})
    user["actions"] = ["UPDATE_PASSWORD"]  # "password reset is a PUT that adds UPDATE_PASSWORD"
    status, _, updated = api(sb, "PUT", f"/v1/users/{DANI}", user)  # rendered groups carry id+name: fine
    assert status == 200
    assert updated["firstName"] == "Dani" and updated["lastName"] == "Lee"
    assert [g["id"] for g in updated["groups"]] == [ALERTS_AND_REPORTS_ID, VIEWER_ID, DATA_ANALYST_ID]
    assert updated["actions"] == ["UPDATE_PASSWORD"]
    assert DANI in sb.group_member_ids(DATA_ANALYST_ID)


@pytest.mark.parametrize("change", [{"username": "someone.else@example.com"}, {"email": "other@example.com"}])
def test_put_username_and_email_immutable(sb, change):
    user = sb.get_user(ALEX)
    status, _, err = api(sb, "PUT", f"/v1/users/{ALEX}", {**user, **change})
    assert status == 400
    assert_bare(err, "BadArgument")
    assert sb.get_user(ALEX) == user  # nothing changed


def test_put_unknown_group_is_400_and_changes_nothing(sb):
    before = sb.get_user(ALEX)
    status, _, err = api(sb, "PUT", f"/v1/users/{ALEX}", {**before, "groups": [{"id": "nope"}]})
    assert status == 400
    assert_bare(err, "BadArgument")
    assert sb.get_user(ALEX) == before


def test_unknown_ids_are_bare_404(sb):
    missing = "00000000-0000-4000-8000-000000000000"
    for method, path, body in [
        ("GET", f"/v1/users/{missing}", None),
        ("PUT", f"/v1/users/{missing}", {"username": "x@example.com"}),
        ("DELETE", f"/v1/users/{missing}", None),
        ("GET", f"/v1/users/{missing}/effectivepermissions", None),
        ("GET", f"/v1/groups/{missing}", None),
        ("PUT", f"/v1/groups/{missing}", {"name": "x", "permissions": []}),
        ("DELETE", f"/v1/groups/{missing}", None),
        ("GET", f"/v1/groups/{missing}/members", None),
        ("POST", f"/v1/groups/{missing}/members", [{"id": ALEX}]),
        ("DELETE", f"/v1/groups/{missing}/members", [{"id": ALEX}]),
    ]:
        status, _, err = api(sb, method, path, body)
        assert status == 404, (method, path)
        assert_bare(err, "ObjectNotFound")


def test_unknown_route_and_method(sb):
    status, _, err = api(sb, "GET", "/v2/users")
    assert status == 404 and set(err) == {"code", "message"}
    assert api(sb, "GET", "/v1/user")[0] == 404
    status, hdrs, _ = api(sb, "PATCH", f"/v1/users/{ALEX}", {"enabled": False})
    assert status == 405 and "PUT" in hdrs["Allow"]


def test_delete_user_200_and_removed_from_groups(sb):
    status, _, body = api(sb, "DELETE", f"/v1/users/{DANI}")
    assert status == 200 and body is None
    assert sb.get_user(DANI) is None and sb.find_user("dani.lee@example.com") is None
    assert DANI not in sb.group_member_ids(VIEWER_ID)
    assert sb.get_group(ALERTS_AND_REPORTS_ID)["userCount"] == 0
    assert api(sb, "GET", f"/v1/users/{DANI}")[0] == 404
    # the username is free again
    assert api(sb, "POST", "/v1/users", {"username": "dani.lee@example.com"})[0] == 201


# ------------------------------------------------------------------ effective permissions


def test_effective_permissions_union_and_merge(sb, oas):
    status, _, body = api(sb, "GET", f"/v1/users/{DANI}/effectivepermissions")
    assert status == 200
    oas.response(body, "/v1/users/{id}/effectivepermissions", "get", 200)
    eff = {p["name"]: p.get("resources") for p in body["values"]}
    assert eff == {
        "AdministerReports": [f"projects/{p}" for p in DEMO_PROJECT_IDS],
        "AdministerAlerts": [f"projects/{p}" for p in DEMO_PROJECT_IDS],
        "ViewTables": ["projects/*"],
        "AccessCollections": ["projects/*"],
        "AccessVisualization": ["projects/*"],
    }
    # a custom group with an overlapping permission merges resources; org-level stays resource-less;
    # the user's own permissions are included
    proj = f"projects/{DEMO_PROJECT_IDS[0]}"
    g = sb.create_group("Tables p1", [{"name": "ViewTables", "resources": [proj]}, {"name": "AdministerUsers"}])
    api(sb, "POST", f"/v1/groups/{g['id']}/members", [{"id": DANI}])
    user = sb.get_user(DANI)
    user["permissions"] = [{"name": "ManageFiles", "resources": [proj]}]
    assert api(sb, "PUT", f"/v1/users/{DANI}", user)[0] == 200
    _, _, body = api(sb, "GET", f"/v1/users/{DANI}/effectivepermissions")
    names = [p["name"] for p in body["values"]]
    assert len(names) == len(set(names))
    eff = {p["name"]: p for p in body["values"]}
    assert eff["ViewTables"]["resources"] == ["projects/*", proj]
    assert eff["AdministerUsers"] == {"name": "AdministerUsers"}
    assert eff["ManageFiles"]["resources"] == [proj]


def test_effective_permissions_org_admin_is_its_group(sb, guide):
    _, _, body = api(sb, "GET", f"/v1/users/{ALEX}/effectivepermissions")
    admin = next(g for g in guide[1]["values"] if g["id"] == ORGANIZATION_ADMIN_ID)
    assert body["values"] == admin["permissions"]


# ------------------------------------------------------------------ groups and members


def test_group_members_add_idempotent_and_remove(sb, oas):
    path = f"/v1/groups/{DATA_ANALYST_ID}/members"
    status, _, body = api(sb, "POST", path, [{"id": DANI}, {"id": ALEX}])
    assert status == 200 and body is None
    status, _, body = api(sb, "POST", path, [{"id": DANI}])  # already a member: fine
    assert status == 200 and body is None
    status, _, members = api(sb, "GET", path)
    oas.response(members, "/v1/groups/{id}/members", "get", 200)
    assert members["count"] == 3
    assert all(set(m) == {"id", "username", "email", "firstName", "lastName"} for m in members["values"])
    assert [m["username"] for m in members["values"]] == sorted(m["username"] for m in members["values"])
    assert sb.get_group(DATA_ANALYST_ID)["userCount"] == 3
    assert [g["id"] for g in sb.get_user(DANI)["groups"]].count(DATA_ANALYST_ID) == 1
    _, _, paged = api(sb, "GET", path, query={"top": 1, "search": "SMITH"})
    assert paged["count"] == 1 and paged["values"][0]["id"] == ALEX
    _, _, paged = api(sb, "GET", path, query={"top": 2, "skip": 1})
    assert paged["count"] == 3 and [m["id"] for m in paged["values"]] == [m["id"] for m in members["values"][1:]]

    status, _, body = api(sb, "DELETE", path, [{"id": DANI}, {"id": JO}])  # JO is not a member: ignored
    assert status == 200 and body is None
    assert DANI not in sb.group_member_ids(DATA_ANALYST_ID)
    assert DATA_ANALYST_ID not in [g["id"] for g in sb.get_user(DANI)["groups"]]
    assert sb.get_group(DATA_ANALYST_ID)["userCount"] == 2


@pytest.mark.parametrize("body", [[{"id": "no-such-user"}], {"id": ALEX}, [ALEX], None])
def test_group_members_bad_body_is_400_atomic(sb, body):
    status, _, err = api(
        sb,
        "POST",
        f"/v1/groups/{DATA_ANALYST_ID}/members",
        body if body is None else [{"id": ALEX}] + body if isinstance(body, list) else body,
    )
    assert status == 400
    assert_bare(err, "BadArgument")
    assert ALEX not in sb.group_member_ids(DATA_ANALYST_ID)


def test_predefined_groups_are_read_only(sb):
    before = sb.get_group(VIEWER_ID)
    status, _, err = api(sb, "PUT", f"/v1/groups/{VIEWER_ID}", {"name": "Viewer", "permissions": []})
    assert status == 400
    assert_bare(err, "BadArgument")
    status, _, err = api(sb, "DELETE", f"/v1/groups/{VIEWER_ID}")
    assert status == 400
    assert_bare(err, "BadArgument")
    assert sb.get_group(VIEWER_ID) == before
    # membership of predefined groups can still be managed
    assert api(sb, "POST", f"/v1/groups/{VIEWER_ID}/members", [{"id": ALEX}])[0] == 200


def test_custom_group_lifecycle(sb, oas):
    body = {
        "name": "Report Readers",
        "permissions": [{"name": "AccessReports", "resources": ["projects/*"]}, {"name": "AdministerBilling"}],
    }
    status, _, group = api(sb, "POST", "/v1/groups", body)
    assert status == 201
    oas.response(group, "/v1/groups", "post", 201)
    assert group["readOnly"] is False and group["userCount"] == 0 and group["permissions"] == body["permissions"]
    status, _, err = api(sb, "POST", "/v1/groups", {"name": "report READERS", "permissions": []})
    assert status == 409
    assert_wrapped(err, "StateConflict")
    status, _, err = api(sb, "PUT", f"/v1/groups/{group['id']}", {"name": "viewer"})  # clashes with predefined
    assert status == 409
    assert_wrapped(err, "StateConflict")

    api(sb, "POST", f"/v1/groups/{group['id']}/members", [{"id": ALEX}, {"id": JO}])
    status, _, renamed = api(sb, "PUT", f"/v1/groups/{group['id']}", {"name": "Report readers"})
    assert status == 200
    oas.response(renamed, "/v1/groups/{id}", "put", 200)
    assert renamed["name"] == "Report readers" and renamed["permissions"] == []  # PUT replaces
    assert renamed["userCount"] == 2
    assert {"id": group["id"], "name": "Report readers"} in sb.get_user(ALEX)["groups"]

    status, _, body = api(sb, "DELETE", f"/v1/groups/{group['id']}")
    assert status == 200 and body is None
    assert group["id"] not in [g["id"] for g in sb.get_user(ALEX)["groups"]]
    assert api(sb, "GET", f"/v1/groups/{group['id']}")[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        {"permissions": []},
        {"name": "   ", "permissions": []},
        {"name": "No perms key"},
        {"name": "X", "permissions": [{"name": "Bogus", "resources": ["projects/*"]}]},
        {"name": "X", "permissions": [{"name": "AccessReports"}]},  # project-scoped needs resources
        {"name": "X", "permissions": [{"name": "AdministerUsers", "resources": ["projects/*"]}]},
        {"name": "X", "permissions": [{"name": "AccessReports", "resources": ["proj/1"]}]},
    ],
)
def test_create_group_invalid_is_bare_400(sb, body):
    status, _, err = api(sb, "POST", "/v1/groups", body)
    assert status == 400
    assert_bare(err, "BadArgument")


# ------------------------------------------------------------------ schemas


def test_responses_validate_against_openapi(sb, oas):
    from jsonschema.exceptions import ValidationError

    checks = [
        ("GET", "/v1/permissions", "/v1/permissions", "get"),
        ("GET", "/v1/users?top=3", "/v1/users", "get"),
        ("GET", f"/v1/users/{DANI}", "/v1/users/{id}", "get"),
        ("GET", "/v1/groups", "/v1/groups", "get"),
        ("GET", f"/v1/groups/{VIEWER_ID}", "/v1/groups/{id}", "get"),
        ("GET", f"/v1/groups/{VIEWER_ID}/members", "/v1/groups/{id}/members", "get"),
        ("GET", "/v1/projects", "/v1/projects", "get"),
    ]
    for method, path, spec_path, op in checks:
        status, _, body = api(sb, method, path)
        assert status == 200
        oas.response(body, spec_path, op, 200)
    _, _, projects = api(sb, "GET", "/v1/projects")
    assert isinstance(projects, list) and {p["metadata"]["uid"] for p in projects} == set(DEMO_PROJECT_IDS)
    oas.component(sb.get_user(ALEX), "UserRepresentation")
    oas.component(sb.get_group(VIEWER_ID), "GroupRepresentation")
    # the validator really resolves $refs: broken objects fail
    with pytest.raises(ValidationError):
        oas.component({"groups": "Viewer"}, "UserRepresentation")
    with pytest.raises(ValidationError):
        oas.component({"values": [{"permissions": [{"resources": "projects/*"}]}]}, "GroupListRepresentation")
    with pytest.raises(ValidationError):
        oas.component({"createdOn": "yesterday"}, "UserRepresentation")


# ------------------------------------------------------------------ call log and helpers


def test_calls_and_writes(sb):
    sb.reset_calls()
    api(sb, "GET", "/v1/users", query={"top": 2})
    api(sb, "POST", "/v1/users", {"username": "w1@example.com"}, query={"skipInvite": "true"})
    api(sb, "POST", "/v1/users", {"username": "w1@example.com"})  # 409: not a write
    api(sb, "DELETE", f"/v1/groups/{VIEWER_ID}/members", [{"id": JO}])
    assert [(c.method, c.path, c.status) for c in sb.calls] == [
        ("GET", "/v1/users", 200),
        ("POST", "/v1/users", 201),
        ("POST", "/v1/users", 409),
        ("DELETE", f"/v1/groups/{VIEWER_ID}/members", 200),
    ]
    assert sb.calls[0].query == {"top": "2"} and sb.calls[0].body is None
    assert sb.calls[1].query == {"skipInvite": "true"} and sb.calls[1].body == {"username": "w1@example.com"}
    assert sb.calls[3].body == [{"id": JO}]
    assert len(sb.writes()) == 2
    assert [c.status for c in sb.writes("post", r"^/v1/users$")] == [201]
    assert [c.method for c in sb.writes(path_regex=r"/members$")] == ["DELETE"]
    assert all(isinstance(c, Call) for c in sb.calls)
    sb.reset_calls()
    assert sb.calls == [] and sb.writes() == []


def test_direct_helpers(sb):
    u = sb.create_user("Helper@Example.com", "He", "Lper", groups=["viewer", DATA_MANAGER_ID], enabled=False)
    assert sb.find_user("helper@example.COM") == u == sb.get_user(u["id"])
    assert [g["name"] for g in u["groups"]] == ["Viewer", "Data Manager"] and u["enabled"] is False
    assert sb.group_by_name("alerts AND reports")["id"] == ALERTS_AND_REPORTS_ID
    assert sb.group_by_name("nope") is None and sb.get_user("nope") is None and sb.find_user("x@y.z") is None
    g = sb.create_group("Helpers", [{"name": "ManageFiles", "resources": ["projects/*"]}])
    assert g["readOnly"] is False and g["userCount"] == 0
    for bad in (
        lambda: sb.create_user("helper@example.com"),
        lambda: sb.create_user("bad"),
        lambda: sb.create_user("ok2@example.com", groups=["Nope"]),
        lambda: sb.create_group("HELPERS", []),
        lambda: sb.create_group("Y", [{"name": "Nope"}]),
    ):
        with pytest.raises(ValueError):
            bad()
    # returned dicts are copies: mutating them does not change state
    u["groups"].clear()
    assert len(sb.get_user(u["id"])["groups"]) == 2
    assert sb.calls == []  # helpers are not HTTP calls


def test_seed_bulk_fast_and_deterministic():
    t0 = time.perf_counter()
    a = PolarisSandbox(seed=False)
    a.seed_bulk(10_000, 200)
    assert time.perf_counter() - t0 < 3
    b = PolarisSandbox(seed=False)
    b.seed_bulk(10_000, 200)
    assert a.user_count() == 10_000
    _, _, groups = api(a, "GET", "/v1/groups")
    assert len(groups["values"]) == 204
    assert groups == api(b, "GET", "/v1/groups")[2]
    page_a = api(a, "GET", "/v1/users", query={"top": 100, "skip": 5000})[2]
    assert page_a == api(b, "GET", "/v1/users", query={"top": 100, "skip": 5000})[2]
    assert page_a["count"] == 10_000 and len(page_a["values"]) == 100
    assert sum(g["userCount"] for g in groups["values"][:4]) == 10_000  # one predefined group each
    assert any(not u["enabled"] for u in api(a, "GET", "/v1/users", query={"skip": 0})[2]["values"])
    assert api(a, "GET", "/v1/users", query={"search": "Tanaka", "top": 1})[2]["count"] > 0
    bulk = groups["values"][10]
    _, _, members = api(a, "GET", f"/v1/groups/{bulk['id']}/members", query={"top": 100})
    assert members["count"] == bulk["userCount"] > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.sampled_from(["add", "remove", "put"]), st.integers(0, 4), st.integers(0, 4)), max_size=25)
)
def test_membership_stays_consistent(ops):
    sb = PolarisSandbox()
    users = [u["id"] for u in api(sb, "GET", "/v1/users")[2]["values"]]
    groups = [g["id"] for g in api(sb, "GET", "/v1/groups")[2]["values"]]
    for op, ui, gi in ops:
        uid, gid = users[ui], groups[gi]
        if op == "add":
            assert api(sb, "POST", f"/v1/groups/{gid}/members", [{"id": uid}])[0] == 200
        elif op == "remove":
            assert api(sb, "DELETE", f"/v1/groups/{gid}/members", [{"id": uid}])[0] == 200
        else:
            user = sb.get_user(uid)
            user["groups"] = [{"id": gid}]
            assert api(sb, "PUT", f"/v1/users/{uid}", user)[0] == 200
    for g in api(sb, "GET", "/v1/groups")[2]["values"]:
        _, _, members = api(sb, "GET", f"/v1/groups/{g['id']}/members")
        holders = {
            u["id"] for u in api(sb, "GET", "/v1/users")[2]["values"] if g["id"] in {x["id"] for x in u["groups"]}
        }
        assert g["userCount"] == members["count"] == len(holders)
        assert {m["id"] for m in members["values"]} == holders


# ------------------------------------------------------------------ faults (handle level)


def test_fault_status_retry_after_and_times(sb):
    sb.add_fault(Fault(method="GET", path=r"^/v1/users$", status=429, retry_after=2, times=2))
    for _ in range(2):
        status, hdrs, body = api(sb, "GET", "/v1/users")
        assert status == 429 and hdrs["Retry-After"] == "2"
        assert_wrapped(body, "TooManyRequests")
    assert api(sb, "GET", "/v1/users")[0] == 200  # used up
    assert api(sb, "GET", "/v1/groups")[0] == 200
    sb.add_fault(Fault(status=503, retry_after=0.5, times=None))
    for _ in range(3):
        status, hdrs, _ = api(sb, "GET", "/v1/permissions")
        assert status == 503 and hdrs["Retry-After"] == "0.5"
    sb.clear_faults()
    assert api(sb, "GET", "/v1/permissions")[0] == 200
    # a fault answer never touches state, even for writes; custom/empty bodies are possible
    sb.add_fault(Fault(method="POST", status=502, body=b""))
    status, _, body = api(sb, "POST", "/v1/users", {"username": "f@example.com"})
    assert status == 502 and body is None and sb.find_user("f@example.com") is None
    assert sb.calls[-1].status == 502 and sb.calls[-1].handled_status is None and sb.writes() == []


def test_fault_method_and_path_filters(sb):
    sb.add_fault(Fault(method="DELETE", path=r"/members$", status=500))
    assert api(sb, "GET", f"/v1/groups/{VIEWER_ID}/members")[0] == 200
    assert api(sb, "DELETE", f"/v1/users/{JO}")[0] == 200
    assert api(sb, "DELETE", f"/v1/groups/{VIEWER_ID}/members", [{"id": DANI}])[0] == 500
    assert sb.faults == []


def test_fault_after_handle_write_lands(sb):
    sb.add_fault(Fault(method="POST", path=r"^/v1/users$", status=500, after_handle=True))
    status, _, _ = api(sb, "POST", "/v1/users", {"username": "landed@example.com"})
    assert status == 500
    assert sb.find_user("landed@example.com") is not None  # the write landed
    assert sb.calls[-1].status == 500 and sb.calls[-1].handled_status == 201
    assert len(sb.writes("POST", r"^/v1/users$")) == 1
    # a naive retry now conflicts
    status, _, body = api(sb, "POST", "/v1/users", {"username": "landed@example.com"})
    assert status == 409
    assert_wrapped(body, "StateConflict")
    assert len(sb.writes("POST")) == 1


def test_fault_drop_in_handle_raises(sb):
    sb.add_fault(Fault(method="PUT", drop=True, after_handle=True))
    user = sb.get_user(JO)
    with pytest.raises(ConnectionDropped):
        sb.handle("PUT", f"/v1/users/{JO}", {}, RAW_AUTH, json.dumps({**user, "enabled": True}).encode())
    assert sb.get_user(JO)["enabled"] is True
    assert sb.calls[-1].status == 0 and sb.calls[-1].handled_status == 200


def test_fault_validation():
    with pytest.raises(ValueError):
        Fault(status=500, drop=True)
    with pytest.raises(ValueError):
        Fault(after_handle=True)
    with pytest.raises(re.error):
        Fault(path="(unclosed")


def test_fault_delay(sb):
    sb.add_fault(Fault(path=r"^/v1/groups$", delay=0.2))
    t0 = time.perf_counter()
    assert api(sb, "GET", "/v1/groups")[0] == 200
    assert time.perf_counter() - t0 >= 0.19
    t0 = time.perf_counter()
    assert api(sb, "GET", "/v1/groups")[0] == 200
    assert time.perf_counter() - t0 < 0.15


# ------------------------------------------------------------------ HTTP server


@pytest.fixture
def server(sb):
    srv = sb.serve()
    yield srv
    srv.shutdown()


def test_http_server_end_to_end(sb, server, oas):
    assert isinstance(server, SandboxServer) and re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    with requests.Session() as s:
        s.headers.update(RFC_AUTH)
        r = s.post(
            f"{server.url}/v1/users",
            params={"skipInvite": "true"},
            json={"username": "http.user@example.com", "firstName": "Http", "groups": [{"id": VIEWER_ID}]},
        )
        assert r.status_code == 201 and r.headers["Content-Type"] == "application/json"
        oas.response(r.json(), "/v1/users", "post", 201)
        uid = r.json()["id"]
        r = s.get(f"{server.url}/v1/users", params={"search": "HTTP.user", "top": 5})
        assert r.status_code == 200 and r.json()["count"] == 1
        r = s.delete(f"{server.url}/v1/groups/{VIEWER_ID}/members", json=[{"id": uid}])  # DELETE with body
        assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"
        assert uid not in sb.group_member_ids(VIEWER_ID)
        r = s.get(f"{server.url}/v1/users/{uid}", headers={"Authorization": "Basic nope"})
        assert r.status_code == 401
        assert_wrapped(r.json(), "InvalidAuthentication")
        r = s.delete(f"{server.url}/v1/users/{uid}")
        assert r.status_code == 200 and r.content == b""
        r = s.get(f"{server.url}/v1/users/{uid}")
        assert r.status_code == 404
        assert_bare(r.json(), "ObjectNotFound")
    assert [c.method for c in sb.calls] == ["POST", "GET", "DELETE", "GET", "DELETE", "GET"]
    assert sb.calls[2].body == [{"id": uid}]


def test_http_keep_alive_and_content_length(sb, server):
    port = int(server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/v1/permissions", headers=RAW_AUTH)
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        for method, path, body, expect in [
            ("GET", "/v1/nope", None, 404),
            ("POST", f"/v1/groups/{DATA_ANALYST_ID}/members", json.dumps([{"id": JO}]), 200),
            ("POST", "/v1/users", "{broken", 400),
            ("GET", f"/v1/groups/{DATA_ANALYST_ID}", None, 200),
        ]:
            conn.request(method, path, body=body, headers={**RAW_AUTH, "Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == expect
            assert resp.version == 11 and resp.getheader("Content-Length") == str(len(data))
            assert conn.sock is sock  # same TCP connection reused
        assert json.loads(data)["userCount"] == 2
    finally:
        conn.close()


def test_http_concurrent_requests(sb, server):
    sb.add_fault(Fault(path=r"^/v1/groups$", delay=0.3, times=None))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: requests.get(f"{server.url}/v1/groups", headers=RAW_AUTH, timeout=5).status_code, range(8)
            )
        )
    assert codes == [200] * 8
    assert time.perf_counter() - t0 < 1.5  # 8 x 0.3 s would take 2.4 s if serialized
    sb.clear_faults()
    # concurrent creates of the same username: exactly one wins
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    requests.post(
                        f"{server.url}/v1/users", headers=RAW_AUTH, timeout=5, json={"username": "race@example.com"}
                    ).status_code
                ),
                range(8),
            )
        )
    assert sorted(codes) == [201] + [409] * 7


def test_http_faults(sb, server):
    url = f"{server.url}/v1/users"
    sb.add_fault(Fault(method="GET", path=r"^/v1/users$", status=503, retry_after=1, times=1))
    r = requests.get(url, headers=RAW_AUTH, timeout=5)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert requests.get(url, headers=RAW_AUTH, timeout=5).status_code == 200

    sb.add_fault(Fault(method="GET", drop=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, headers=RAW_AUTH, timeout=5)
    assert sb.calls[-1].status == 0
    assert requests.get(url, headers=RAW_AUTH, timeout=5).status_code == 200  # server still fine

    sb.add_fault(Fault(method="POST", drop=True, after_handle=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, headers=RAW_AUTH, json={"username": "ghost@example.com"}, timeout=5)
    assert sb.find_user("ghost@example.com") is not None

    sb.add_fault(Fault(delay=0.15))
    t0 = time.perf_counter()
    assert requests.get(url, headers=RAW_AUTH, timeout=5).status_code == 200
    assert time.perf_counter() - t0 >= 0.14

    sb.add_fault(Fault(method="GET", delay=0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, headers=RAW_AUTH, timeout=0.1)


def test_server_shutdown_releases_port(sb):
    srv = sb.serve()
    assert requests.get(f"{srv.url}/v1/permissions", headers=RAW_AUTH, timeout=5).status_code == 200
    srv.shutdown()
    srv.shutdown()  # idempotent
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{srv.url}/v1/permissions", headers=RAW_AUTH, timeout=2)
    with sb.serve() as srv2:
        assert requests.get(f"{srv2.url}/v1/projects", headers=RAW_AUTH, timeout=5).json()[0]["metadata"]["uid"]


# ------------------------------------------------------------------ responses mode (mount)


def test_mount_all_routes_and_faults(sb):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sb.mount(rsps, BASE + "/")
        s = requests.Session()
        s.headers.update(RAW_AUTH)
        r = s.get(f"{BASE}/v1/users", params={"top": 2, "skip": 1})
        assert r.status_code == 200 and r.json()["count"] == 5 and len(r.json()["values"]) == 2
        r = s.post(f"{BASE}/v1/users", json={"username": "mock@example.com"})
        assert r.status_code == 201 and r.headers["Content-Type"] == "application/json"
        uid = r.json()["id"]
        assert (
            s.put(f"{BASE}/v1/users/{uid}", json={"username": "mock@example.com", "firstName": "M"}).json()["firstName"]
            == "M"
        )
        assert s.post(f"{BASE}/v1/groups/{VIEWER_ID}/members", json=[{"id": uid}]).status_code == 200
        r = s.delete(f"{BASE}/v1/groups/{VIEWER_ID}/members", json=[{"id": uid}])
        assert r.status_code == 200 and r.content == b""
        assert uid not in sb.group_member_ids(VIEWER_ID)
        assert s.get(f"{BASE}/v1/users/{uid}/effectivepermissions").json() == {"values": []}
        assert s.delete(f"{BASE}/v1/users/{uid}").status_code == 200
        assert isinstance(s.get(f"{BASE}/v1/projects").json(), list)
        assert s.get(f"{BASE}/v1/permissions", headers={"Authorization": "Basic bad"}).status_code == 401

        sb.add_fault(Fault(method="GET", path=r"^/v1/groups$", drop=True))
        with pytest.raises(requests.exceptions.ConnectionError):
            s.get(f"{BASE}/v1/groups")
        sb.add_fault(Fault(method="POST", path=r"/members$", status=429, retry_after=3))
        r = s.post(f"{BASE}/v1/groups/{VIEWER_ID}/members", json=[{"id": ALEX}])
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        assert ALEX not in sb.group_member_ids(VIEWER_ID)
        sb.add_fault(Fault(method="POST", path=r"/members$", status=504, after_handle=True))
        assert s.post(f"{BASE}/v1/groups/{VIEWER_ID}/members", json=[{"id": ALEX}]).status_code == 504
        assert ALEX in sb.group_member_ids(VIEWER_ID)

        sb.add_fault(Fault(method="GET", delay=0.15))
        t0 = time.perf_counter()
        assert s.get(f"{BASE}/v1/groups").status_code == 200
        assert time.perf_counter() - t0 >= 0.14
        # delay beyond the client's read timeout: ReadTimeout, but the write still lands
        sb.add_fault(Fault(method="PUT", delay=0.3))
        with pytest.raises(requests.exceptions.ReadTimeout):
            s.put(f"{BASE}/v1/users/{JO}", json={"username": "jo.kim@example.com", "enabled": True}, timeout=(1, 0.05))
        assert sb.get_user(JO)["enabled"] is True and sb.calls[-1].status == 0
    assert [c.path for c in sb.writes("DELETE")] == [f"/v1/groups/{VIEWER_ID}/members", f"/v1/users/{uid}"]


def test_mount_with_base_path_prefix():
    sb = PolarisSandbox(seed=False)
    with responses.RequestsMock() as rsps:
        sb.mount(rsps, "http://proxy.local/polaris")
        r = requests.get("http://proxy.local/polaris/v1/groups", headers=RFC_AUTH)
        assert r.status_code == 200 and len(r.json()["values"]) == 4
    assert sb.calls[-1].path == "/v1/groups"


# ------------------------------------------------------------------ WSGI


def test_wsgi_app(sb):
    from wsgiref.util import setup_testing_defaults

    body = json.dumps({"username": "wsgi@example.com"}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/users",
        "QUERY_STRING": "skipInvite=true",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Basic {SANDBOX_API_KEY}",
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    out = b"".join(sb.wsgi_app(environ, start_response))
    assert seen["status"] == "201 Created"
    assert seen["headers"]["Content-Length"] == str(len(out))
    assert json.loads(out)["actions"] == []
    assert sb.find_user("wsgi@example.com") is not None


def test_lock_is_reentrant_and_shared(sb):
    assert hasattr(sb.lock, "acquire") and sb.lock.acquire(blocking=False)
    try:
        sb.create_user("locked@example.com")  # re-entrant: same thread can still use the helpers
        done = threading.Event()
        t = threading.Thread(target=lambda: (sb.get_user(ALEX), done.set()))
        t.start()
        assert not done.wait(0.1)  # another thread waits for the lock
    finally:
        sb.lock.release()
    assert done.wait(2)
    t.join()
