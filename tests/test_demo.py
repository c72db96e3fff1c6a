"""``python app.py demo`` driven through standard input, as README's quick start runs it."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """as alice
/polaris request viewer I need the dashboards <!channel>
approve
as bob
approve
/polaris whois alice@example.com
as dan
/polaris request Data Analyst
as carol
approve
/polaris whois dan@example.com
quit
"""


def test_demo_request_approval_and_whois_show_the_change(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=SCRIPT, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "went to the approvers" in text
    assert "You cannot decide your own request." in text
    assert "Approved and applied" in text and "Created Polaris user alice@example.com in Viewer." in text
    whois_alice = text.split("bob> /polaris whois alice@example.com", 1)[1]
    assert "*Alice Ng* (`alice@example.com`) — enabled" in whois_alice and "• Viewer" in whois_alice
    whois_dan = text.split("carol> /polaris whois dan@example.com", 1)[1]
    assert "• Viewer" in whois_dan and "• Data Analyst" in whois_dan
    assert "Traceback" not in out.stderr


def test_demo_mentions_people_by_at_name_and_shows_the_request_form(tmp_path):
    """New-user trial: `whois @dan` was refused (the console has no @-menu) and the form printed nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    script = "as bob\n/polaris whois @dan\n/polaris request\naudit abc\nquit\n"
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=script, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    whois = out.stdout.split("bob> /polaris whois @dan", 1)[1]
    assert "dan@example.com" in whois.split("bob> ", 1)[0] and "I can't tell who" not in whois
    form = out.stdout.split("bob> /polaris request\n", 1)[1].split("bob> ", 1)[0]
    assert "a form opens" in form and "Choose a Polaris group" in form and "/polaris request <group>" in form
    assert "Give a number of rows" in out.stdout


def test_demo_deny_with_a_reason_and_the_thread_replies(tmp_path):
    """Deny opens a form; the console's `deny N <reason>` sends it; the thread replies are shown as such."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    script = "as alice\n/polaris request Viewer dashboards\nas bob\ndeny 1 not this quarter\nquit\n"
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=script, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "*Reason for denial:* not this quarter" in out.stdout
    assert "Reason: not this quarter" in out.stdout.split("--- DM to alice ---")[-1]
    assert "--- #polaris-approvals thread of card 1 ---\n:no_entry_sign: Denied by <@U0BOB>" in out.stdout
    assert "Traceback" not in out.stderr
