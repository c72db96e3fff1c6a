"""GroupCatalog's refresh on a miss (finding 11): a group made in Polaris outside the bot is found at once,
and misses cost at most one Polaris call every few seconds, however many threads miss together."""

from __future__ import annotations

import threading

from bot.polaris import MISS_REFRESH_SECONDS, GroupCatalog, PolarisClient
from standins.polaris_sandbox import SANDBOX_API_KEY


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def group_gets(sandbox) -> int:
    return len([c for c in sandbox.calls if c.method == "GET" and c.path == "/v1/groups"])


def make(sandbox, ttl=60.0):
    clock = FakeClock()
    return GroupCatalog(PolarisClient(sandbox.url, SANDBOX_API_KEY), ttl=ttl, clock=clock), clock


def test_refresh_reads_a_group_made_outside_the_bot(sandbox):
    catalog, clock = make(sandbox)
    catalog.all()
    sandbox.create_group("Finance Readers", [{"name": "ViewTables", "resources": ["projects/*"]}])
    assert catalog.by_name("Finance Readers") is None  # cached list, as before
    assert "Finance Readers" in [g.name for g in catalog.refresh()]
    assert catalog.by_name("Finance Readers") is not None


def test_refresh_is_at_most_once_every_few_seconds(sandbox):
    catalog, clock = make(sandbox)
    catalog.all()
    sandbox.reset_calls()
    for _ in range(5):
        catalog.refresh()  # the first reads the list again, the next four use it
    assert group_gets(sandbox) == 1
    clock.now += MISS_REFRESH_SECONDS - 0.5
    catalog.refresh()
    assert group_gets(sandbox) == 1
    clock.now += 0.5
    for _ in range(5):
        catalog.refresh()
    assert group_gets(sandbox) == 2


def test_threads_missing_together_make_one_call(sandbox):
    catalog, clock = make(sandbox)
    catalog.all()
    sandbox.reset_calls()
    barrier = threading.Barrier(12)
    results = []

    def miss():
        barrier.wait()
        results.append(len(catalog.refresh()))

    threads = [threading.Thread(target=miss) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and group_gets(sandbox) == 1


def test_refresh_without_a_cached_list_reads_it(sandbox):
    catalog, _ = make(sandbox)
    assert catalog.refresh() and group_gets(sandbox) == 1
