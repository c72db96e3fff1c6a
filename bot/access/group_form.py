"""The group form (``/polaris create-group`` with nothing after it, ``/polaris edit-group <name>``): open a
loading modal at once (the ``trigger_id`` lives 3 seconds), then admit the person, check they are an admin and
fill in the permissions (``GET /v1/permissions``) and projects (``GET /v1/projects``), and for an edit the
group as Polaris has it now; a refusal or a failure is shown in the modal.

Its ``view_submission``: :meth:`GroupForm.errors` runs before the ack (no Polaris call beyond the cached group
list): a bad field keeps the form open with ``response_action: errors``. :meth:`GroupForm.submit` then runs on a
work lane and asks for the change (:mod:`bot.access.group_changes`); the answer goes to the person by DM.
"""

from __future__ import annotations

from .. import views
from ..commands import GROUP_MAX, UsageError, clean
from ..polaris import Group, Permission, normalize_group_name
from ..views.groups import (
    CHOSEN_PROJECTS,
    GROUP_NAME_BLOCK,
    GROUP_PERMS_BLOCK,
    GROUP_PROJECTS_BLOCK,
    chosen_projects,
    group_modal,
    group_modal_message,
)
from .admission import Admission
from .context import Context
from .errors import form_problem, guarded
from .group_changes import GroupChanges
from .reply import Reply


class GroupForm:
    """The group form's Slack side; ``changes`` asks for what it submits."""

    def __init__(self, ctx: Context, admission: Admission, changes: GroupChanges):
        self.ctx, self.admission, self.changes = ctx, admission, changes

    def open(self, trigger_id: str) -> str | None:
        """Open the loading modal (``views.open``); its view ID, or ``None`` when Slack did not open it."""
        return self.ctx.slack.open_view(trigger_id, group_modal_message(":hourglass_flowing_sand: Loading…"))

    def fill(self, user_id: str, view_id: str, name: str = "") -> None:
        """Admit ``user_id`` (audited, rate limited), check they are an admin, and show the form (filled in
        with the group called ``name`` when given), or the refusal or failure, in the modal."""
        try:
            why = self.admission.form_refusal(user_id)
            if why:
                raise UsageError(why)
            self.changes.check_admin(user_id)
            group = self.changes.editable(name) if name else None
            permissions = self.ctx.polaris.list_permissions()
            projects = self.ctx.projects.names()
            self.ctx.catalog.all()  # fresh for the submission's name check, which runs before the ack
        except UsageError as e:
            self.ctx.slack.update_view(view_id, group_modal_message(f":no_entry: {views.esc(str(e))}"))
            return
        except Exception as e:  # Polaris down: said in the form
            self.ctx.slack.update_view(view_id, group_modal_message(f":warning: {form_problem(e)}"))
            return
        view = group_modal(permissions, projects, group=group, chosen=chosen_projects(group))
        self.ctx.slack.update_view(view_id, view)

    def errors(self, form: dict) -> dict[str, str]:
        """The fields to fix, by block ID (empty: fine). ``form``: ``name``, ``permissions`` (names),
        ``scope`` (``all`` or ``chosen``), ``projects`` (IDs), ``group_id`` (the edited group, or "").
        A name another group has (the cached group list, when fresh) is refused here; Polaris is asked again
        when it is submitted and when it is applied."""
        out: dict[str, str] = {}
        name = " ".join(clean(form.get("name") or "", limit=None).split())
        if not name:
            out[GROUP_NAME_BLOCK] = "The group needs a name."
        elif len(name) > GROUP_MAX:
            out[GROUP_NAME_BLOCK] = f"At most {GROUP_MAX} characters (this has {len(name)})."
        else:
            catalog = self.ctx.catalog  # never a Polaris call before the ack: only a fresh cached list
            taken = catalog.by_name(name) if catalog.fresh() else None
            if taken is not None and taken.id != form.get("group_id"):
                out[GROUP_NAME_BLOCK] = f"There is already a group called {taken.name}."
        if not form.get("permissions"):
            out[GROUP_PERMS_BLOCK] = "Choose at least one permission."
        if form.get("scope") == CHOSEN_PROJECTS and not form.get("projects"):
            out[GROUP_PROJECTS_BLOCK] = "Choose the projects, or scope it to all projects."
        return out

    def submit(self, user_id: str, form: dict) -> Reply:
        """Ask for the change the form describes (a new group, or ``group_id`` changed); the answer, or the
        refusal, as a :class:`Reply` (never raises)."""

        def work() -> Reply:
            what = f"group form {normalize_group_name(form.get('name') or '')[:64]}"
            why = self.admission.admit(user_id, what, check_identity=False)
            if why:
                return Reply(f":no_entry: {why}")
            projects = list(form.get("projects") or []) if form.get("scope") == CHOSEN_PROJECTS else None
            names = list(form.get("permissions") or [])
            permissions = self.changes.permissions(names, projects)
            if form.get("group_id"):
                current = self.ctx.polaris.get_group(form["group_id"])
                if _untouched(current, names, projects):  # only renamed: its permissions stay exactly as they are
                    permissions = [Permission(p.name, p.resources) for p in current.permissions]
                return self.changes.ask_edit(user_id, form["group_id"], form.get("name") or "", permissions)
            return self.changes.ask_create(user_id, form.get("name") or "", permissions)

        return guarded(self.ctx.audit, user_id, "group form", work)

    def submit_and_tell(self, user_id: str, form: dict) -> Reply:
        """:meth:`submit`, its answer sent to ``user_id`` by DM (a modal has no response_url)."""
        reply = self.submit(user_id, form)
        self.ctx.slack.dm(user_id, reply.text, reply.blocks)
        return reply


def _untouched(group: Group, names: list[str], projects: list[str] | None) -> bool:
    """Whether the form's permissions and scope are what it was filled in with for ``group``: then a
    group whose permissions have different scopes (which the form cannot show) keeps them as they are."""
    same_names = {n.lower() for n in names} == {p.name.lower() for p in group.permissions}
    return same_names and sorted(projects or []) == sorted(chosen_projects(group))
