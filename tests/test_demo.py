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
    script = "as bob\n/polaris whois @dan\n/polaris request\n\naudit abc\nquit\n"  # the empty line closes the form
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=script, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    whois = out.stdout.split("bob> /polaris whois @dan", 1)[1]
    assert "dan@example.com" in whois.split("bob> ", 1)[0] and "I can't tell who" not in whois
    form = out.stdout.split("bob> /polaris request\n", 1)[1].split("bob> ", 1)[0]
    assert "a form opens" in form and "Choose a Polaris group" in form and "/polaris request <group>" in form
    assert "Give a number of rows" in out.stdout


def run_demo(script: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=script, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return out.stdout


def test_the_request_form_is_a_text_form_and_a_second_clicker_hears_who_decided():
    script = (
        "as alice\n/polaris request\n5\n4h\nI need it <!here> &lt;!channel&gt; for <@U0BOB>\n"
        "as bob\napprove\nas carol\napprove\nquit\n"
    )
    text = run_demo(script)
    form = text.split("alice> /polaris request\n", 1)[1].split("alice> as bob", 1)[0]
    assert "a form opens" in form and "5. Viewer" in form
    assert "Group (a number or a name; empty closes the form): 5" in form and "(form submitted)" in form
    card = form.split("--- #polaris-approvals card 1 ---", 1)[1]
    # Rendered as Slack shows it: the person by name, what they typed as harmless text (no ping, no mention)
    assert "@alice asks for membership in *Viewer* for 4 hours" in card
    assert "I need it <!here> &lt;!channel&gt; for <@U0BOB>" in card and "@here" not in card
    second = text.split("carol> approve\n", 1)[1]
    assert "[only visible to you] Already approved by @bob" in second


def test_home_tab_and_a_moved_clock_show_expiry():
    text = run_demo("as dan\n/polaris request Data Analyst\nhome\nwait 2d\nwait soon\nquit\n")
    home = text.split("dan> home\n", 1)[1].split("dan> wait", 1)[0]
    assert "--- App Home of dan ---" in home and "[home]" in home and "Data Analyst" in home
    waited = text.split("dan> wait 2d\n", 1)[1].split("dan> wait soon", 1)[0]
    assert "(the bot's clock is now" in waited and "*Expired*" in waited and "expired before anyone decided" in waited
    assert "Say how long, e.g. `wait 2h`" in text


def test_a_form_closed_with_an_empty_answer_sends_nothing():
    text = run_demo("as alice\n/polaris request\n\nstatus\nquit\n")
    assert "(form closed; nothing was sent)" in text and "card 1" not in text


def test_line_editing_and_history_at_a_terminal():
    """Through a pseudo-terminal: Left and Backspace edit the line, Up recalls an earlier one (readline)."""
    pexpect = __import__("pytest").importorskip("pexpect")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    env["TERM"] = "xterm"
    child = pexpect.spawn(
        sys.executable, ["app.py", "demo"], cwd=ROOT, env=env, encoding="utf-8", timeout=60, dimensions=(40, 200)
    )
    try:
        child.expect_exact("alice> ")
        child.send("as dn\x1b[Da\r")  # Left, then the missing letter: "as dan"
        child.expect_exact("(you are now dan")
        child.expect_exact("dan> ")
        child.send("as bobx\x7f\r")  # Backspace drops the x: "as bob"
        child.expect_exact("(you are now bob")
        child.expect_exact("bob> ")
        child.send("\x1b[A\x1b[A\r")  # Up twice: "as dan" again
        child.expect_exact("(you are now dan")
        child.expect_exact("dan> ")
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_the_demo_shows_time_bound_access_ending():
    """Issue 10: a lease applied, the warning with Extend / I'm done, then its end on the card and by DM."""
    text = run_demo(
        "as alice\n/polaris request Viewer for 1h dashboards\nas bob\napprove\nas alice\n/polaris status\n"
        "wait 55m\nwait 5m\n/polaris whois alice@example.com\nquit\n"
    )
    assert "membership in *Viewer* for 1 hour" in text and "Access to *Viewer* until" in text
    assert "Your time-bound access" in text
    warning = text.split("alice> wait 55m", 1)[1].split("alice> wait 5m", 1)[0]
    assert "[Extend] (lease_extend)" in warning and "[I'm done] (lease_done)" in warning
    ended = text.split("alice> wait 5m", 1)[1]
    assert "Access ended at" in ended and "Your access to *Viewer* has ended" in ended
    assert "• Viewer" not in ended.split("/polaris whois alice@example.com", 1)[1]


def test_im_done_in_the_demo_ends_access_now():
    text = run_demo("as alice\n/polaris request Viewer for 2h\nas bob\napprove\nas alice\nwait 110m\ndone\nquit\n")
    assert "ended early by its holder" in text and "Your access to *Viewer* has ended" in text


def test_a_deactivated_slack_account_gets_an_offboarding_card_in_the_demo():
    text = run_demo("deactivate dan\nas carol\napprove\n/polaris whois dan@example.com\nquit\n")
    assert "the bot asks to offboard `dan@example.com`" in text
    assert "Removed dan@example.com from every group (Viewer) and disabled the account" in text
    assert "— *disabled*" in text.split("/polaris whois dan@example.com", 1)[1]


def test_an_offboarding_by_hand_is_decided_by_the_other_admin_in_the_demo():
    text = run_demo("as carol\n/polaris offboard dan@example.com leaving\nas bob\napprove\nquit\n")
    assert "Approved and applied" in text and "disabled the account" in text


def test_demo_deny_with_a_reason_and_the_thread_replies(tmp_path):
    """Deny opens a form; the console fills it in (the reason); the thread replies are shown as such."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    script = "as alice\n/polaris request Viewer dashboards\nas bob\ndeny\nnot this quarter\nquit\n"
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=script, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "*Reason for denial:* not this quarter" in out.stdout
    assert "Reason: not this quarter" in out.stdout.split("--- DM to alice ---")[-1]
    assert (
        "--- #polaris-approvals thread of card 1 ---\n:no_entry_sign: Denied by @bob — “not this quarter”" in out.stdout
    )
    assert "Traceback" not in out.stderr


def test_approve_with_options_grants_less_at_the_console():
    """New-user trial: the card's Approve with options… could not be pressed in the demo."""
    text = run_demo("as alice\n/polaris request Viewer for 4h dashboards\nas bob\noptions\n3\nok by me\nquit\n")
    assert "Granted for 1 hour (asked 4 hours)" in text and "ok by me" in text


def test_the_demo_reads_policy_file(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[groups.Viewer]\ndeny_reason_required = true\nremind_after = "1h"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    env["POLICY_FILE"] = str(policy)
    out = subprocess.run(
        [sys.executable, "app.py", "demo"],
        cwd=ROOT,
        input="as carol\n/polaris policy\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "reminds after 1 hour" in out.stdout and "policy.toml" in out.stdout


def test_demo_runs_the_group_commands_with_the_form(tmp_path):
    """Issue 11: the console fills the group form (a multi-select and radio buttons) and edits a group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    script = (
        "as carol\n/polaris create-group\nReport Readers\nAccessReports, ViewTables\n2\nanalytics\n"
        "as bob\napprove\n/polaris groups Report Readers\n"
        "as carol\n/polaris edit-group Report Readers\nReaders\n\n1\n-\nas bob\napprove\n/polaris groups Readers\nquit\n"
    )
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=script, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Created the Polaris group Report Readers with 2 permissions." in text
    detail = text.split("bob> /polaris groups Report Readers", 1)[1].split("bob> ", 1)[0]
    assert "*analytics*: AccessReports, ViewTables" in detail
    assert "*Name*: Report Readers → Readers" in text
    after = text.split("bob> /polaris groups Readers", 1)[1]
    assert "*all projects*: AccessReports, ViewTables" in after and "Traceback" not in out.stderr


def test_demo_update_user_form_is_filled_in_approved_and_applied():
    """Issue 11: the console fills the user form (text inputs filled in, radio buttons) and bob applies it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLARIS_", "DATABASE_URL"))}
    script = (
        "as carol\n/polaris update-user nobody@example.com\n/polaris update-user dan@example.com\n\nAnderson\n2\n"
        "as bob\napprove\n/polaris whois dan@example.com\nquit\n"
    )
    out = subprocess.run(
        [sys.executable, "app.py", "demo"], cwd=ROOT, input=script, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "No Polaris user has the email `nobody@example.com`" in text
    assert "First name (empty: Dan)" in text and "• Last name: Okafor → Anderson\n• Enabled: yes → no" in text
    whois = text.split("bob> /polaris whois dan@example.com", 1)[1]
    assert "*Dan Anderson* (`dan@example.com`) — *disabled*" in whois and "• Viewer" in whois
    assert "Traceback" not in out.stderr
