"""TCP_NODELAY on the stand-ins' accepted sockets: without it, a kept-alive connection stalled ~44 ms per call
(Nagle holding the body behind the headers until the client's delayed ACK)."""

from __future__ import annotations

import socket
import time

import requests

from standins.polaris_sandbox import PolarisSandbox
from standins.slack_api import SlackStandIn


def _nodelay_of(conns) -> list[int]:
    return [c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in conns]


def test_sandbox_sets_nodelay_on_kept_alive_connections():
    sandbox = PolarisSandbox()
    with sandbox.serve() as server, requests.Session() as session:
        for _ in range(3):
            assert session.get(server.url + "/v1/permissions", auth=("pok_sandbox_demo_key", "")).status_code == 200
        conns = list(server._server._conns)
        assert conns and all(_nodelay_of(conns))


def test_sandbox_answers_a_kept_alive_connection_without_a_delayed_ack_stall():
    sandbox = PolarisSandbox()
    with sandbox.serve() as server, requests.Session() as session:
        session.get(server.url + "/v1/permissions", auth=("pok_sandbox_demo_key", ""))
        t0 = time.perf_counter()
        for _ in range(10):
            session.get(server.url + "/v1/permissions", auth=("pok_sandbox_demo_key", ""))
        # 10 calls stalled 40+ ms each (>= 0.4 s) before; a loaded machine still answers them well inside 0.35 s
        assert time.perf_counter() - t0 < 0.35


def test_slack_standin_sets_nodelay_on_kept_alive_connections():
    slack = SlackStandIn(bot_token="xoxb-test")
    slack.serve()
    try:
        with requests.Session() as session:
            for _ in range(2):
                session.post(slack.api_url + "auth.test", headers={"Authorization": "Bearer xoxb-test"})
            conns = list(slack._server.open_connections)
            assert conns and all(_nodelay_of(conns))
    finally:
        slack.shutdown()
