"""A refusal quotes what people typed and is escaped once, where it is answered (bot/access/errors.py guarded):
texts escaped again inside the message showed ``R&amp;amp;D`` (found reviewing the session's change)."""

from __future__ import annotations

from tests.conftest import ADMIN


def test_a_refusal_naming_a_group_with_an_ampersand_is_escaped_once(service, db, sandbox, groups):
    sandbox.create_group("R&D", [{"name": "ViewTables", "resources": ["projects/*"]}])
    taken = service.handle_command(ADMIN, 'create-group "R&D" ViewTables').text
    assert "*R&amp;D*" in taken and "&amp;amp;" not in taken, taken
    hint = service.handle_command(ADMIN, 'create-group "X&Y" Readers ViewTables').text
    assert '"X&amp;Y Readers"' in hint and "&amp;amp;" not in hint, hint
    one = service.handle_command(ADMIN, "invite a@example.com b@example.com R&D for 2h onboarding").text
    assert "R&amp;D for" in one and "&amp;amp;" not in one, one
