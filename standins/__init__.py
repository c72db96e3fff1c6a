"""Stand-ins for the demo, the tests and the benchmarks: never imported by ``bot/`` (a test checks it).

- :mod:`standins.polaris_sandbox` — a stateful emulator of the Polaris Identity API (checked against its
  OpenAPI document), in process, on 127.0.0.1 or behind ``responses``.
- :mod:`standins.slack_api` — a Slack Web API and ``response_url`` stand-in on 127.0.0.1.
- :mod:`standins.console` — the local Slack console behind ``python app.py demo``.
"""
