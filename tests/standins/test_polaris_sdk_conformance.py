"""The Polaris sandbox spoken to by a client no one here wrote: Imply's official Python SDK, ``polaris-sdk``
(``polaris.sdk.client.GlobalClient``, generated from the API spec on azure-core; a test dependency only).

Each Identity operation the bot relies on, through the SDK against ``standins.polaris_sandbox`` on 127.0.0.1: list
permissions, users with paging, create, get, update and delete a user, groups, members add and remove, effective
permissions. A status code or shape the SDK does not accept would raise or deserialise wrongly here.

SDK quirks, written down (they are the SDK's, not the sandbox's, and the bot does not use the SDK):

- The spec marks ``id`` (and ``email``) read-only in ``UserRepresentation`` and ``GroupRepresentation``, so the
  SDK's serializer drops them from request bodies (it logs "Readonly attribute id will be ignored"): a member add
  built from models sends ``[{"enabled": true}]`` and a create with ``groups`` sends ``[{}]``, which Polaris (and
  the sandbox) refuse with 400 ``BadArgument``. Bodies that carry IDs must be passed as raw JSON (``IO[bytes]``),
  which the SDK sends as they are. The same goes for a GET-change-PUT of a user through the models: the PUT
  carries ``groups: [{"name": ...}]`` without IDs and is refused; read the user with ``cls=`` (the raw JSON) and
  PUT that.
- Member add and remove (``add_group_members``/``remove_group_members``) accept 200, 400 and 404: on 400 and 404
  they return an ``ErrorResponse`` object instead of raising; so do ``get_user``, ``update_user``,
  ``delete_user``, ``list_group_members``, ``list_effective_permissions`` and ``delete_group`` on 404 (and
  ``create_user``/``create_group``/``update_user`` on 400). Callers must check the type of what they get.
- A 200 with an empty body (member add and remove, delete) deserialises to ``None``.
- Lists return one page (``top`` 1..100, default 100): no automatic paging; ``count`` is the total.
- ``created_on`` is parsed as ISO 8601; a model's camelCase keys become snake_case attributes.
"""

from __future__ import annotations

import io
import json

import pytest

pytest.importorskip("polaris.sdk.client")

from polaris.sdk.client import GlobalClient  # noqa: E402
from polaris.sdk.global_api import models  # noqa: E402

from standins.polaris_sandbox import SANDBOX_API_KEY, PolarisSandbox  # noqa: E402


@pytest.fixture
def box():
    sandbox = PolarisSandbox(seed=True)
    server = sandbox.serve()
    sandbox.url = server.url
    yield sandbox
    server.shutdown()


@pytest.fixture
def sdk(box):
    # No retries: a status the sandbox should not send must show at once, not after azure-core's backoff.
    client = GlobalClient.from_endpoint(box.url, SANDBOX_API_KEY, retry_total=0, timeout=10)
    yield client.identity
    client.close()


def group_id(sdk, name: str) -> str:
    return next(g.id for g in sdk.list_groups().values if g.name == name)


def raw(body) -> io.BytesIO:
    """A JSON body the SDK sends as it is (its models drop read-only ``id``s)."""
    return io.BytesIO(json.dumps(body).encode())


def new_user(email: str, groups: list[str] | None = None):
    """A user to create: a model without groups, raw JSON with them (group IDs would be dropped from a model)."""
    if not groups:
        return models.UserRepresentation(username=email, first_name="Zed", last_name="Zimmer")
    return raw(
        {
            "username": email,
            "email": email,
            "firstName": "Zed",
            "lastName": "Zimmer",
            "groups": [{"id": g} for g in groups],
        }
    )


def as_json(pipeline_response, _deserialized, _headers):
    """``cls=`` for an SDK call: the answer's JSON as it came, not the model."""
    return pipeline_response.http_response.json()


def members(*ids: str) -> io.BytesIO:
    return raw([{"id": i} for i in ids])


def test_list_permissions(sdk):
    got = sdk.list_permissions()
    assert isinstance(got, models.PermissionListRepresentation)
    names = {p.name for p in got.values}
    assert {"AdministerUsers", "ManageTables"} <= names or "AdministerUsers" in names
    assert all(p.name for p in got.values)


def test_list_users_with_paging(sdk, box):
    for i in range(5):
        box.create_user(f"page{i}@example.com", "Page", str(i), groups=[], actions=[])
    first = sdk.list_users(top=2, skip=0)
    assert isinstance(first, models.UserListRepresentation)
    total = first.count
    assert len(first.values) == 2 and total >= 5
    seen = [u.id for skip in range(0, total, 2) for u in sdk.list_users(top=2, skip=skip).values]
    assert len(seen) == total == len(set(seen))
    found = sdk.list_users(search="page3@example.com")
    assert [u.email for u in found.values] == ["page3@example.com"] and found.count == 1


def test_create_get_update_and_delete_a_user(sdk):
    viewer = group_id(sdk, "Viewer")
    created = sdk.create_user(new_user("zed@example.com", [viewer]), skip_invite=True)
    assert isinstance(created, models.UserRepresentation)
    assert created.id and created.username == created.email == "zed@example.com"
    assert [g.id for g in created.groups] == [viewer]
    got = sdk.get_user(created.id)
    assert isinstance(got, models.UserRepresentation) and got.first_name == "Zed" and got.enabled is True
    # GET, change, PUT the whole user, as raw JSON (the models would drop the group IDs: see the quirk test)
    whole = sdk.get_user(created.id, cls=as_json)
    whole["actions"] = sorted(set(whole.get("actions") or []) | {"UPDATE_PASSWORD"})
    whole["lastName"] = "Zeta"
    updated = sdk.update_user(created.id, raw(whole))
    assert isinstance(updated, models.UserRepresentation)
    assert updated.last_name == "Zeta" and "UPDATE_PASSWORD" in updated.actions
    assert [g.id for g in updated.groups] == [viewer]  # the whole user was sent back: nothing dropped
    assert sdk.delete_user(created.id) is None  # 200, empty body
    gone = sdk.get_user(created.id)
    assert isinstance(gone, models.ErrorResponse) and gone.code == "ObjectNotFound"  # the SDK's 404: no raise


def test_creating_a_user_twice_raises_conflict(sdk):
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

    sdk.create_user(new_user("twice@example.com"))
    with pytest.raises((ResourceExistsError, HttpResponseError)) as caught:
        sdk.create_user(new_user("twice@example.com"))
    assert caught.value.status_code == 409


def test_groups(sdk):
    got = sdk.list_groups()
    assert isinstance(got, models.GroupListRepresentation)
    by_name = {g.name: g for g in got.values}
    assert {"Organization Admin", "Viewer", "Data Analyst", "Data Manager"} <= set(by_name)
    viewer = sdk.get_group(by_name["Viewer"].id)
    assert isinstance(viewer, models.GroupRepresentation) and viewer.read_only is True
    assert all(p.name for p in viewer.permissions)


def test_members_add_and_remove(sdk):
    analyst = group_id(sdk, "Data Analyst")
    user = sdk.create_user(new_user("member@example.com"))
    assert sdk.add_group_members(analyst, members(user.id)) is None  # 200, empty body
    listed = sdk.list_group_members(analyst, top=100)
    assert isinstance(listed, models.UserListRepresentation)
    assert user.id in {m.id for m in listed.values} and listed.count == len(listed.values)
    assert analyst in {g.id for g in sdk.get_user(user.id).groups}
    assert sdk.remove_group_members(analyst, members(user.id)) is None
    assert user.id not in {m.id for m in sdk.list_group_members(analyst).values}


def test_member_add_and_remove_return_an_error_object_on_404_and_400(sdk):
    """The SDK quirk: no exception for these statuses, an ``ErrorResponse`` to look at."""
    user = sdk.create_user(new_user("quirk@example.com"))
    missing = sdk.add_group_members("00000000-0000-0000-0000-000000000000", members(user.id))
    assert isinstance(missing, models.ErrorResponse) and missing.code == "ObjectNotFound"
    gone = sdk.remove_group_members("00000000-0000-0000-0000-000000000000", members(user.id))
    assert isinstance(gone, models.ErrorResponse) and gone.code == "ObjectNotFound"
    bad = sdk.add_group_members(group_id(sdk, "Viewer"), raw([{"name": "no id"}]))
    assert isinstance(bad, models.ErrorResponse) and bad.code == "BadArgument"


def test_model_built_bodies_lose_their_ids(sdk):
    """The SDK quirk: ``id`` is read-only in its models, so a member add built from them carries no ID and is
    refused (400, returned as an ``ErrorResponse``); nothing was added."""
    viewer = group_id(sdk, "Viewer")
    user = sdk.create_user(new_user("lost@example.com"))
    assert models.UserRepresentation(id=user.id).serialize() == {"enabled": True}
    refused = sdk.add_group_members(viewer, [models.UserRepresentation(id=user.id)])
    assert isinstance(refused, models.ErrorResponse) and refused.code == "BadArgument"
    assert viewer not in {g.id for g in sdk.get_user(user.id).groups}


def test_a_model_round_trip_of_a_user_loses_its_group_ids(sdk):
    """The same quirk on update: GET as a model, change, PUT the model sends ``groups: [{"name": ...}]`` without
    IDs, which is refused (Polaris assigns groups by ID only), so the SDK's models cannot do the bot's GET-PUT."""
    viewer = group_id(sdk, "Viewer")
    user = sdk.create_user(new_user("roundtrip@example.com", [viewer]))
    model = sdk.get_user(user.id)
    model.last_name = "Changed"
    assert model.serialize()["groups"] == [{"name": "Viewer"}]
    refused = sdk.update_user(user.id, model)
    assert isinstance(refused, models.ErrorResponse) and refused.code == "BadArgument"
    assert sdk.get_user(user.id).last_name == "Zimmer"


def test_effective_permissions(sdk):
    viewer, analyst = group_id(sdk, "Viewer"), group_id(sdk, "Data Analyst")
    user = sdk.create_user(new_user("perms@example.com", [viewer, analyst]))
    got = sdk.list_effective_permissions(user.id)
    assert isinstance(got, models.PermissionListRepresentation)
    names = [p.name for p in got.values]
    groups = [sdk.get_group(g) for g in (viewer, analyst)]
    expected = {p.name for g in groups for p in g.permissions}
    assert set(names) == expected and len(names) == len(set(names))  # the union, once each
    missing = sdk.list_effective_permissions("00000000-0000-0000-0000-000000000000")
    assert isinstance(missing, models.ErrorResponse)


def test_a_wrong_key_raises_authentication_error(box):
    from azure.core.exceptions import ClientAuthenticationError

    client = GlobalClient.from_endpoint(box.url, "pok_wrong", retry_total=0)
    with pytest.raises(ClientAuthenticationError) as caught:
        client.identity.list_permissions()
    assert caught.value.status_code == 401


def unknown_fields(obj, path: str = "$") -> list[tuple[str, dict]]:
    """Fields the SDK's models did not expect (``additional_properties``), anywhere in a deserialised answer."""
    found = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found += unknown_fields(item, f"{path}[{i}]")
    elif hasattr(obj, "_attribute_map"):
        if getattr(obj, "additional_properties", None):
            found.append((path, obj.additional_properties))
        for name in obj._attribute_map:
            if name != "additional_properties":
                found += unknown_fields(getattr(obj, name, None), f"{path}.{name}")
    return found


def test_every_answer_has_exactly_the_fields_of_the_sdk_models(sdk):
    viewer = group_id(sdk, "Viewer")
    user = sdk.create_user(new_user("shape@example.com", [viewer]))
    answers = {
        "create_user": user,
        "list_permissions": sdk.list_permissions(),
        "list_users": sdk.list_users(top=3),
        "get_user": sdk.get_user(user.id),
        "list_groups": sdk.list_groups(),
        "get_group": sdk.get_group(viewer),
        "list_group_members": sdk.list_group_members(viewer),
        "list_effective_permissions": sdk.list_effective_permissions(user.id),
        "get_user 404": sdk.get_user("00000000-0000-0000-0000-000000000000"),
    }
    assert {name: unknown_fields(answer) for name, answer in answers.items() if unknown_fields(answer)} == {}
    assert user.created_on is not None and user.created_on.tzinfo is not None  # ISO 8601 with a zone
