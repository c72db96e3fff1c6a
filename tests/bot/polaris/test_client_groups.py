"""Issue 11: the group writes of :class:`PolarisClient` (POST, GET-change-PUT of the whole group, DELETE) and
the project names (:class:`ProjectCatalog`), against the sandbox and checked against ``openapi-identity.json``."""

from __future__ import annotations

import copy

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.polaris import (
    READ_ONLY_GROUP_FIELDS,
    Permission,
    PolarisBadRequest,
    PolarisClient,
    PolarisConflict,
    PolarisNotFound,
    PolarisWriteUnknown,
    ProjectCatalog,
)
from standins.polaris_sandbox import (
    ALERTS_AND_REPORTS_ID,
    DEMO_PROJECT_IDS,
    PERMISSION_CATALOGUE,
    VIEWER_ID,
    Fault,
    PolarisSandbox,
)
from tests.bot.polaris.test_client import BASE, KEY, make_client, validate_request
from tests.polaris_spec import openapi_spec

ALEX = "d88d4e47-d6ed-4820-880e-c0564ce99752"


@pytest.fixture
def spec() -> dict:
    return openapi_spec()


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sandbox(rsps) -> PolarisSandbox:
    sb = PolarisSandbox(api_key=KEY)
    sb.mount(rsps, BASE)
    return sb


def test_create_group_201_and_body_matches_the_spec(sandbox, spec):
    group = make_client().create_group(
        "Report Readers", [Permission("AccessReports", ("projects/*",)), Permission("AdministerBilling")]
    )
    post = sandbox.writes("POST")[0]
    assert post.status == 201
    validate_request(spec, post.body, "/v1/groups", "POST")
    assert post.body == {
        "name": "Report Readers",
        "permissions": [{"name": "AccessReports", "resources": ["projects/*"]}, {"name": "AdministerBilling"}],
    }
    assert group.name == "Report Readers" and not group.read_only and group.user_count == 0


def test_create_group_conflict_and_lost_answer(sandbox):
    client = make_client()
    with pytest.raises(PolarisConflict):
        client.create_group("viewer", [])
    sandbox.add_fault(Fault(method="POST", path="/v1/groups$", status=503, after_handle=True))
    with pytest.raises(PolarisWriteUnknown):
        client.create_group("Landed", [])
    posts = [c for c in sandbox.calls if (c.method, c.path) == ("POST", "/v1/groups")]
    assert [c.status for c in posts] == [409, 503]  # sent once each, never resent
    assert "Landed" in [g.name for g in client.list_groups()]


def test_update_group_keeps_everything_but_the_change(sandbox, spec):
    client = make_client()
    client.add_members(ALERTS_AND_REPORTS_ID, [ALEX])
    before = sandbox.get_group(ALERTS_AND_REPORTS_ID)
    group = client.update_group(ALERTS_AND_REPORTS_ID, lambda body: body.update(name="Alerts & reports"))
    put = sandbox.writes("PUT")[0]
    validate_request(spec, put.body, "/v1/groups/{id}", "PUT")
    assert not set(put.body) & READ_ONLY_GROUP_FIELDS
    assert put.body["permissions"] == before["permissions"]  # kept: Polaris's PUT would have dropped them
    assert sandbox.get_group(ALERTS_AND_REPORTS_ID) == {**before, "name": "Alerts & reports"}
    assert group.name == "Alerts & reports" and ALEX in sandbox.group_member_ids(ALERTS_AND_REPORTS_ID)


def test_update_group_refused_for_a_predefined_group_and_missing_one(sandbox):
    client = make_client()
    before = sandbox.get_group(VIEWER_ID)
    with pytest.raises(PolarisBadRequest):
        client.update_group(VIEWER_ID, lambda body: body.update(name="Watchers"))
    assert sandbox.get_group(VIEWER_ID) == before
    with pytest.raises(PolarisNotFound):
        client.update_group("no-such-group", lambda body: None)
    assert [c.method for c in sandbox.calls if c.path == "/v1/groups/no-such-group"] == ["GET"]


def test_update_group_transient_failure_starts_over_with_a_fresh_get(sandbox):
    client = make_client()
    sandbox.add_fault(Fault(method="PUT", status=503, after_handle=True))
    seen = []

    def change(body):
        seen.append(body["name"])
        body["name"] = "Renamed"

    client.update_group(ALERTS_AND_REPORTS_ID, change, done=lambda g: g.name == "Renamed")
    assert len(sandbox.writes("PUT")) == 1  # the first PUT landed; the fresh GET saw it, nothing resent
    assert seen == ["Alerts and reports"]


_SCOPED = [p["name"] for p in PERMISSION_CATALOGUE if "resources" in p]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.sampled_from(_SCOPED), min_size=0, max_size=6, unique=True),
    rename=st.booleans(),
)
def test_property_a_group_update_loses_nothing_it_did_not_change(names, rename):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sb = PolarisSandbox(api_key=KEY)
        sb.mount(rsps, BASE)
        client = make_client()
        client.add_members(ALERTS_AND_REPORTS_ID, [ALEX])
        before = copy.deepcopy(sb.get_group(ALERTS_AND_REPORTS_ID))
        new = [{"name": n, "resources": [f"projects/{DEMO_PROJECT_IDS[0]}"]} for n in names]

        def change(body):
            body["permissions"] = copy.deepcopy(new)
            if rename:
                body["name"] = "Renamed group"

        client.update_group(ALERTS_AND_REPORTS_ID, change)
        after = sb.get_group(ALERTS_AND_REPORTS_ID)
        assert after == {**before, "permissions": new, "name": "Renamed group" if rename else before["name"]}
        assert ALEX in sb.group_member_ids(ALERTS_AND_REPORTS_ID)


def test_delete_group_200_and_predefined_refused(sandbox):
    client = make_client()
    client.delete_group(ALERTS_AND_REPORTS_ID)
    assert sandbox.writes("DELETE")[0].status == 200
    with pytest.raises(PolarisBadRequest):
        client.delete_group(VIEWER_ID)


def test_project_catalog_names_and_labels(sandbox, spec):
    projects = ProjectCatalog(make_client(), ttl=60)
    assert projects.names() == {DEMO_PROJECT_IDS[0]: "demo", DEMO_PROJECT_IDS[1]: "analytics"}
    assert projects.label("projects/*") == "all projects"
    assert projects.label(f"projects/{DEMO_PROJECT_IDS[1]}") == "analytics"
    assert projects.label("projects/unknown-id") == "unknown-id"
    assert projects.by_name("Analytics") == DEMO_PROJECT_IDS[1] and projects.by_name("nope") is None
    projects.names()
    assert [c.path for c in sandbox.calls] == ["/v1/projects"]  # cached
    projects.invalidate()
    projects.names()
    assert len(sandbox.calls) == 2


def test_group_put_body_static():
    group = {"id": "g", "name": "N", "readOnly": False, "userCount": 3, "permissions": [{"name": "X", "extra": 1}]}
    assert PolarisClient.group_put_body(group) == {"name": "N", "permissions": [{"name": "X"}]}
