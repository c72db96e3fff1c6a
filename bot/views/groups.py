"""Block Kit for groups themselves (issue 11): ``/polaris groups <name>`` (one group in detail), what a group
change request changes (the approval card's part for ``create_group``, ``edit_group``, ``delete_group``) and
the group form (``create-group`` / ``edit-group``).

Permissions are shown by resource, with project names (``labels``: resource -> words, from ``GET
/v1/projects`` via :class:`bot.polaris.ProjectCatalog`), organization-level ones first. Block Kit limits
hold: a ``multi_static_select`` has at most 100 options (option groups of at most 100 each, at most 100
groups), text fields are clipped.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from .. import privilege
from ..models import CREATE_GROUP, DELETE_GROUP, EDIT_GROUP, AccessRequest
from ..polaris import Group, Permission
from .blocks import bullet_list, clip, context, counted, esc, header, section

GROUP_MODAL = "group_modal"
GROUP_NAME_BLOCK, GROUP_NAME_ACTION = "group_name", "group_name_input"
GROUP_PERMS_BLOCK, GROUP_PERMS_ACTION = "group_permissions", "group_permissions_select"
GROUP_SCOPE_BLOCK, GROUP_SCOPE_ACTION = "group_scope", "group_scope_select"
GROUP_PROJECTS_BLOCK, GROUP_PROJECTS_ACTION = "group_projects", "group_projects_select"
OPTIONS_MAX = 100  # Block Kit: options of a select, and option groups of one
ALL_PROJECTS = "all"
CHOSEN_PROJECTS = "chosen"


def as_dicts(permissions: Iterable[Permission]) -> list[dict]:
    """``[Permission]`` -> ``[{"name", "resources"?}]`` (the JSON a plan stores and Polaris takes)."""
    return [{"name": p.name, **({"resources": list(p.resources)} if p.resources else {})} for p in permissions]


def as_permissions(items: Iterable[dict]) -> list[Permission]:
    """The inverse of :func:`as_dicts` (entries that are not objects with a name are skipped)."""
    return [
        Permission(str(d["name"]), tuple(str(r) for r in d.get("resources") or ()))
        for d in items or ()
        if isinstance(d, dict) and d.get("name")
    ]


def grants(permissions: Iterable[Permission]) -> set[tuple[str, str]]:
    """What permissions grant, as a set of ``(name, resource)`` pairs (``""``: an organization-level one), so
    that two lists granting the same are equal whatever the order of their entries or of their ``resources``."""
    return {(p.name, r) for p in permissions for r in (p.resources or ("",))}


def from_grants(pairs: Iterable[tuple[str, str]]) -> list[Permission]:
    """The inverse of :func:`grants`: one :class:`Permission` per name (its resources sorted), by name."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for name, resource in sorted(pairs):
        if resource:
            by_name[name].append(resource)
        else:
            by_name.setdefault(name, [])
    return [Permission(name, tuple(resources)) for name, resources in sorted(by_name.items())]


def scoped_lines(permissions: Iterable[Permission], labels: Mapping[str, str]) -> list[str]:
    """One escaped line per resource: "Organization: A, B", "all projects: C", "analytics: D" (a project's
    name from ``labels``, else its resource string)."""
    by_scope: dict[str, set[str]] = defaultdict(set)
    for p in permissions:
        for scope in p.resources or ("organization",):
            by_scope[scope].add(p.name)
    out = []
    for scope in sorted(by_scope, key=lambda s: (s != "organization", s != "projects/*", labels.get(s, s))):
        label = "Organization" if scope == "organization" else labels.get(scope, scope)
        out.append(f"*{esc(label)}*: {esc(', '.join(sorted(by_scope[scope])))}")
    return out


def _privileged_note(group: Group) -> dict | None:
    if not privilege.is_privileged(group):
        return None
    why = ", ".join(privilege.privileged_grants(group)) or privilege.ORG_ADMIN
    return context(
        f":rotating_light: Privileged ({esc(why)}): needs {privilege.PRIVILEGED_APPROVALS} approvals by "
        f"{privilege.ORG_ADMIN} members in Polaris."
    )


def group_detail(
    group: Group, *, labels: Mapping[str, str], members: int | None, approvers: str
) -> tuple[str, list[dict]]:
    """``/polaris groups <name>``: read-only or not, member count, who approves it (``approvers``: already
    escaped words), and its permissions by resource with project names."""
    count = "?" if members is None else f"{members}"
    kind = "predefined (read-only in Polaris)" if group.read_only else "custom (can be edited or deleted)"
    fields = [
        f"*Kind*\n{kind}",
        f"*Members*\n{count}",
        f"*Permissions*\n{len(group.permissions)}",
        f"*Who approves a request for it*\n{clip(approvers, 1900)}",
    ]
    blocks: list[dict] = [
        header(clip(f"Group {group.name}", 150)),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        section("*Permissions by resource*\n" + bullet_list(scoped_lines(group.permissions, labels), limit=30)),
    ]
    note = _privileged_note(group)
    if note:
        blocks.append(note)
    blocks.append(context(f"Group ID `{esc(group.id)}` · `/polaris members {esc(group.name)}` lists its members"))
    return f"Polaris group {esc(group.name)}: {count} members, {len(group.permissions)} permissions", blocks


def change_phrase(req: AccessRequest) -> str:
    """What a group change request is for, in words (escaped)."""
    name = f"*{esc(req.group_name)}*"
    if req.kind == CREATE_GROUP:
        return f"the new group {name}"
    if req.kind == EDIT_GROUP:
        return f"changes to the group {name}"
    return f"the deletion of the group {name}"


def change_blocks(req: AccessRequest, plan: Mapping) -> list[dict]:
    """The approval card's account of exactly what a group change does (``plan``, written when asked; a
    rename's ``policy``: the rule the group is under now and the one it will be under, when they differ)."""
    labels = plan.get("labels") or {}
    if req.kind == CREATE_GROUP:
        perms = as_permissions(plan.get("permissions"))
        lines = [f"*Creates the group* {esc(plan.get('name'))} with these permissions:"]
        lines.append(bullet_list(scoped_lines(perms, labels), limit=20))
        blocks = [section("\n".join(lines))]
        note = _privileged_note(Group(id="", name=str(plan.get("name")), permissions=tuple(perms)))
        return blocks + ([note] if note else [])
    if req.kind == EDIT_GROUP:
        before, after = as_permissions(plan.get("before")), as_permissions(plan.get("after"))
        lines = ["*Changes the group* (everything else it has is kept):"]
        if plan.get("new_name"):
            lines.append(f"*Name*: {esc(plan.get('name'))} → {esc(plan.get('new_name'))}")
        rules = plan.get("policy")
        if isinstance(rules, dict):  # written when asked: the policy is keyed by group name
            lines.append(
                ":warning: *The rename moves the group under another policy rule.* Requests for it are decided "
                f"now under: {clip(str(rules.get('before')), 700)}\nAfter the rename: {clip(str(rules.get('after')), 700)}"
            )
        if plan.get("permissions_changed"):
            lines.append("*Permissions before*\n" + bullet_list(scoped_lines(before, labels), limit=15))
            lines.append("*Permissions after*\n" + bullet_list(scoped_lines(after, labels), limit=15))
            added = from_grants(grants(after) - grants(before))
            gone = from_grants(grants(before) - grants(after))
            lines.append(f"*Added*: {'; '.join(scoped_lines(added, labels)) or 'nothing'}")
            lines.append(f"*Removed*: {'; '.join(scoped_lines(gone, labels)) or 'nothing'}")
        blocks = [section(clip("\n".join(lines), 3000))]
        note = _privileged_note(Group(id="", name=req.group_name or "", permissions=tuple(before + after)))
        return blocks + ([note] if note else [])
    if req.kind == DELETE_GROUP:
        members = plan.get("members")
        perms = as_permissions(plan.get("permissions"))
        who = "its members (how many unknown) lose" if members is None else f"{counted(members, 'member')} lose"
        if members == 1:
            who = "1 member loses"
        lines = [
            f"*Deletes the group* {esc(plan.get('name'))}: {who} it and what it grants:",
            bullet_list(scoped_lines(perms, labels), limit=15),
        ]
        blocks = [section("\n".join(lines))]
        note = _privileged_note(Group(id="", name=req.group_name or "", permissions=tuple(perms)))
        return blocks + ([note] if note else [])
    return []


def offered(permissions: Sequence[Permission]) -> tuple[list[Permission], list[Permission]]:
    """The permissions the group form offers: (organization-level, project-scoped), at most
    :data:`OPTIONS_MAX` of each, by name as ``/polaris permissions`` lists them (``GET /v1/permissions`` has its
    own order)."""
    ordered = sorted(permissions, key=lambda p: p.name.lower())
    return [p for p in ordered if not p.resources][:OPTIONS_MAX], [p for p in ordered if p.resources][:OPTIONS_MAX]


def _project_options(projects: Mapping[str, str], chosen: Sequence[str]) -> list[dict]:
    """The projects field's options (at most :data:`OPTIONS_MAX`, by name): the ``chosen`` ones always (an
    ID Polaris does not list is shown as it is), then the others."""
    first = [(projects.get(uid, uid), uid) for uid in dict.fromkeys(chosen)][:OPTIONS_MAX]
    rest = sorted(((name, uid) for uid, name in projects.items() if uid not in set(chosen)), key=lambda x: x[0].lower())
    shown = sorted(first + rest[: OPTIONS_MAX - len(first)], key=lambda x: x[0].lower())
    return [_option(name, uid) for name, uid in shown]


def _option(text: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": clip(text, 75)}, "value": value[:150]}


def group_modal(
    permissions: Sequence[Permission],
    projects: Mapping[str, str],
    *,
    group: Group | None = None,
    chosen: Sequence[str] = (),
) -> dict:
    """The group form: a name, the permissions (``multi_static_select`` in two option groups, organization
    level and project-scoped, each at most :data:`OPTIONS_MAX`), the scope of the project-scoped ones (all
    projects or the chosen ones) and the projects (``projects``: ID -> name). ``group``: the group being
    edited (its ID is the ``private_metadata``; the fields start filled in), else a new group."""
    org, scoped = offered(permissions)
    have = {p.name for p in group.permissions} if group else set()
    groups = [
        {"label": {"type": "plain_text", "text": label}, "options": [_option(p.name, p.name) for p in items]}
        for label, items in (("Organization", org), ("Projects", scoped))
        if items
    ]
    perms_el: dict = {"type": "multi_static_select", "action_id": GROUP_PERMS_ACTION, "option_groups": groups}
    initial = [_option(p.name, p.name) for p in [*org, *scoped] if p.name in have]
    if initial:
        perms_el["initial_options"] = initial
    name_el: dict = {"type": "plain_text_input", "action_id": GROUP_NAME_ACTION, "max_length": 100}
    if group:
        name_el["initial_value"] = group.name
    scope_all = _option("All projects", ALL_PROJECTS)
    scope_el = {
        "type": "radio_buttons",
        "action_id": GROUP_SCOPE_ACTION,
        "options": [scope_all, _option("The projects chosen below", CHOSEN_PROJECTS)],
        "initial_option": _option("The projects chosen below", CHOSEN_PROJECTS) if chosen else scope_all,
    }
    blocks: list[dict] = [
        {"type": "input", "block_id": GROUP_NAME_BLOCK, "label": _label("Group name"), "element": name_el},
        {"type": "input", "block_id": GROUP_PERMS_BLOCK, "label": _label("Permissions"), "element": perms_el},
        {"type": "input", "block_id": GROUP_SCOPE_BLOCK, "label": _label("Project scope"), "element": scope_el},
    ]
    project_options = _project_options(projects, chosen)
    if project_options:
        proj_el: dict = {"type": "multi_static_select", "action_id": GROUP_PROJECTS_ACTION, "options": project_options}
        start = [o for o in project_options if o["value"] in set(chosen)]
        if start:
            proj_el["initial_options"] = start
        blocks.append(
            {
                "type": "input",
                "block_id": GROUP_PROJECTS_BLOCK,
                "optional": True,
                "label": _label("Projects (when scoped to chosen ones)"),
                "element": proj_el,
            }
        )
    title = "Edit group" if group else "New group"
    return {
        "type": "modal",
        "callback_id": GROUP_MODAL,
        "private_metadata": group.id if group else "",
        "title": _plain(title),
        "submit": _plain("Ask for approval"),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def _plain(text: str) -> dict:
    """A modal's title, submit or close text (Block Kit: at most 24 characters)."""
    return {"type": "plain_text", "text": clip(text, 24)}


def _label(text: str) -> dict:
    """An input block's label (Block Kit: at most 2000 characters)."""
    return {"type": "plain_text", "text": clip(text, 2000)}


def group_modal_message(escaped: str, *, title: str = "Polaris group") -> dict:
    """The group form while it loads, or when it cannot be used (``escaped``: mrkdwn, already escaped)."""
    return {
        "type": "modal",
        "callback_id": GROUP_MODAL,
        "title": _plain(title),
        "close": _plain("Close"),
        "blocks": [section(escaped)],
    }


def chosen_projects(group: Group | None) -> list[str]:
    """The project IDs a group's project-scoped permissions are limited to (``[]``: all projects, or none)."""
    if group is None:
        return []
    ids: list[str] = []
    for p in group.permissions:
        for r in p.resources:
            if r == "projects/*":
                return []
            uid = r.split("/", 1)[1] if r.startswith("projects/") else r
            if uid not in ids:
                ids.append(uid)
    return ids
