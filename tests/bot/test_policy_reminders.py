"""The approver keys of the policy (bot/policy_reminders.py): remind_after, max_reminders, escalate_after,
escalate_to, deny_reason_required; defaults, inheritance, errors naming the file and line, /polaris policy."""

from __future__ import annotations

import pytest

from bot.policy import PolicyError, load_policy
from tests.conftest import ADMIN


def write(tmp_path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


def test_the_defaults_remind_after_four_hours_twice_and_never_escalate():
    rule = load_policy(None).for_group("Viewer")
    assert (rule.remind_after, rule.max_reminders, rule.escalate_after, rule.escalate_to) == (4 * 3600, 2, None, ())
    assert rule.deny_reason_required is False
    assert "reminds after 4 hours (at most 2 times)" in rule.describe()


def test_the_keys_are_read_per_group_and_inherited_from_defaults(tmp_path):
    policy = load_policy(
        write(
            tmp_path,
            '[defaults]\nremind_after = "2h"\nmax_reminders = 3\nescalate_after = "6h"\n'
            'escalate_to = ["U0BACKUP", "S0ONCALL", "U0BACKUP"]\n'
            "[groups.Viewer]\nmax_reminders = 0\ndeny_reason_required = true\n",
        )
    )
    rule = policy.for_group("Data Analyst")
    assert (rule.remind_after, rule.max_reminders, rule.escalate_after) == (7200, 3, 6 * 3600)
    assert rule.escalate_to == ("U0BACKUP", "S0ONCALL")
    viewer = policy.for_group("viewer")
    assert (viewer.max_reminders, viewer.deny_reason_required, viewer.escalate_to) == (0, True, rule.escalate_to)
    described = viewer.describe()
    assert "no reminders" in described and "Deny needs a reason" in described
    assert "escalates to <@U0BACKUP>, <!subteam^S0ONCALL> after 6 hours" in described


@pytest.mark.parametrize(
    "text,line,words",
    [
        ('[defaults]\nremind_after = "soon"\n', 2, "remind_after"),
        ("[defaults]\nremind_after = 4\n", 2, "in quotes"),
        ("[groups.X]\nmax_reminders = 11\n", 2, "from 0 to 10"),
        ("[groups.X]\nmax_reminders = true\n", 2, "max_reminders"),
        ('[groups.X]\nescalate_after = "1h"\n', 2, "needs escalate_to"),
        ("[groups.X]\nescalate_to = ['U0BACKUP']\n", 2, "needs escalate_after"),
        ("[groups.X]\nescalate_after = '1h'\nescalate_to = ['bob']\n", 3, "not a Slack user ID"),
        ("[groups.X]\nescalate_after = '1h'\nescalate_to = []\n", 3, "non-empty list"),
        ("[groups.X]\nttl_hours = 2\nescalate_after = '3h'\nescalate_to = ['U0B1']\n", 3, "not before"),
        ("[groups.X]\ndeny_reason_required = 'yes'\n", 2, "true or false"),
    ],
)
def test_errors_name_the_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}:{line}:") and words in str(err.value), str(err.value)


def test_polaris_policy_shows_them(service, tmp_path, groups):
    service.policy = load_policy(
        write(
            tmp_path,
            '[groups.Viewer]\nescalate_after = "8h"\nescalate_to = ["U0BACKUP"]\ndeny_reason_required = true\n',
        )
    )
    text = str(service.handle_command(ADMIN, "policy").blocks)
    assert "escalates to <@U0BACKUP> after 8 hours" in text and "Deny needs a reason" in text
    assert "reminds after 4 hours (at most 2 times)" in text
