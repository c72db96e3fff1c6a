"""``python app.py sandbox``: the Polaris sandbox and the Slack stand-in on 127.0.0.1, seeded with the demo's
people, and the environment that points ``python app.py serve`` at them, so ``serve`` can be tried without a
Slack workspace or a Polaris account.

It prints ``export NAME=value`` lines (paste them into the shell that runs ``migrate`` and ``serve``), then
keeps both stand-ins running until Ctrl-C or SIGTERM. Slash commands are sent to ``serve`` signed with the
printed ``SLACK_SIGNING_SECRET``; :func:`signed_post` does that (``python -m standins.sandbox post ...``).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import shlex
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
from typing import TextIO


from .console import ADMIN_IDS, APPROVAL_CHANNEL, APPROVER_IDS, PEOPLE, seed_people
from .polaris_sandbox import SANDBOX_API_KEY, PolarisSandbox
from .slack_api import SlackStandIn


def environment(polaris_url: str, slack: SlackStandIn, signing_secret: str, port: int, database: str) -> dict:
    """The variables ``serve`` needs to use these stand-ins (names as in README's Configuration)."""
    return {
        "POLARIS_API_URL": polaris_url,
        "POLARIS_API_KEY": SANDBOX_API_KEY,
        "SLACK_API_URL": slack.api_url,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": signing_secret,
        "APPROVAL_CHANNEL": APPROVAL_CHANNEL,
        "APPROVERS": ",".join(sorted(APPROVER_IDS)),
        "ADMINS": ",".join(sorted(ADMIN_IDS)),
        "DATABASE_URL": database,
        "PORT": str(port),
    }


def run_sandbox(
    *,
    polaris_port: int = 0,
    slack_port: int = 0,
    serve_port: int = 3000,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
) -> int:
    """Start both stand-ins, print the environment, and serve until ``stop`` is set (or SIGTERM / Ctrl-C)."""
    sandbox = PolarisSandbox(seed=True)
    polaris = sandbox.serve(port=polaris_port)
    slack = SlackStandIn()
    slack.serve(port=slack_port)
    seed_people(slack, sandbox)
    signing_secret = secrets.token_hex(16)
    database = "sqlite:///" + os.path.abspath("sandbox.sqlite3")
    env = environment(polaris.url, slack, signing_secret, serve_port, database)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    py = python_command()
    lines = ["# Polaris sandbox and Slack stand-in are running on 127.0.0.1. In another shell:"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    lines += [
        f"# then: {py} app.py migrate && {py} app.py serve --host 127.0.0.1",
        "# and send a signed slash command as alice (U0ALICE), e.g.:",
        f"#   {py} -m standins.sandbox post http://127.0.0.1:{serve_port} U0ALICE 'groups'",
        "# (it reads SLACK_SIGNING_SECRET and SLACK_API_URL from the environment and prints the answer)",
        "# people: " + ", ".join(f"{n} {p[0]}" for n, p in PEOPLE.items()) + ". Ctrl-C stops.",
    ]
    # Printed as they are, whatever LOG_FORMAT says: they are meant to be pasted into a shell, and the values are
    # the stand-ins' own (made up for this run), not secrets of a real deployment.
    print("\n".join(lines), file=out or sys.stdout, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        slack.shutdown()
        polaris.shutdown()
    return 0


def signed_post(url: str, body: str, signing_secret: str, content_type: str = "application/x-www-form-urlencoded"):
    """POST ``body`` to ``url`` signed as Slack signs (v0, HMAC-SHA256); returns (status, text)."""
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(signing_secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a local URL the user gives
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _post_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.sandbox post")
    parser.add_argument("serve_url", help="e.g. http://127.0.0.1:3000")
    parser.add_argument("user_id", help="who types it, e.g. U0ALICE")
    parser.add_argument("text", help="the /polaris text, e.g. 'request Viewer dashboards'")
    args = parser.parse_args(argv)
    secret, api = os.environ.get("SLACK_SIGNING_SECRET"), os.environ.get("SLACK_API_URL", "")
    if not secret or not api:
        print("set SLACK_SIGNING_SECRET and SLACK_API_URL as `python app.py sandbox` printed", file=sys.stderr)
        return 2
    key = secrets.token_hex(8)
    response_url = api.rstrip("/").rsplit("/api", 1)[0] + f"/response/{key}"
    body = urllib.parse.urlencode(
        {
            "command": "/polaris",
            "text": args.text,
            "user_id": args.user_id,
            "channel_id": "C0GENERAL",
            "team_id": "T0STANDIN",
            "response_url": response_url,
            "trigger_id": f"{time.time()}.sandbox",
        }
    )
    status, _ = signed_post(args.serve_url.rstrip("/") + "/slack/events", body, secret)
    if status != 200:
        print(f"serve answered HTTP {status}")
        return 1
    import json

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the answer comes on response_url, after the ack
        with urllib.request.urlopen(response_url, timeout=5) as response:  # noqa: S310 - the stand-in
            answers = json.loads(response.read()).get("answers") or []
        if answers:
            print("\n".join(answers))
            return 0
        time.sleep(0.2)
    print("no answer on response_url within 15 s")
    return 1


def python_command() -> str:
    """How to name this interpreter in a hint to paste: ``.venv/bin/python`` when it is the project's virtualenv
    (``make sandbox`` runs there, and a bare ``python`` may lack the requirements), else ``python``."""
    here = os.path.abspath(sys.executable)
    inside = os.path.commonpath([here, os.getcwd()]) == os.getcwd()
    return os.path.relpath(here) if inside and ".venv" in here.split(os.sep) else "python"


def main(argv: list[str]) -> int:
    """``python -m standins.sandbox [--help]`` runs the sandbox; ``... post URL USER TEXT`` sends a command."""
    if argv[:1] == ["post"]:
        return _post_command(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m standins.sandbox",
        description="The Polaris sandbox and the Slack stand-in on 127.0.0.1 (as `python app.py sandbox`). "
        "`python -m standins.sandbox post URL USER TEXT` sends a signed slash command to serve.",
    )
    parser.parse_args(argv)
    return run_sandbox()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
