"""NOT the product as shipped: ``python app.py serve`` with one setting changed, to measure the fix proposed in
bench/RESULTS.md (used by ``bench/ack_latency.py``; skip it there with ``--no-prototype``).

The product builds its Bolt ``App`` with ``process_before_response=False``: each listener runs on Bolt's
listener executor, and the gunicorn request thread polls every 10 ms (``time.sleep(0.01)`` in
``slack_bolt/listener/thread_runner.py``) until that listener has called ``ack()``. So every ack costs a
thread hop plus up to 10 ms of polling, and waits behind whatever else holds the executor.

Since the listeners in ``handlers/`` only ``ack()`` and hand their work to ``AccessService.background``,
they can run in the request thread itself: ``process_before_response=True``. This launcher runs the
unchanged product (``app.main(["serve", ...])``: same core, handlers, worker, gunicorn settings) with only
that flag forced on, by wrapping ``slack_bolt.App.__init__`` in this process before ``app`` builds it.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)


def main() -> int:
    import slack_bolt

    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # diagnosis only: a shorter GIL switch interval
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))

    original = slack_bolt.App.__init__

    def init(self, *args, **kwargs):
        kwargs["process_before_response"] = os.environ.get("BENCH_PROCESS_BEFORE_RESPONSE", "1") == "1"
        original(self, *args, **kwargs)

    slack_bolt.App.__init__ = init  # type: ignore[method-assign]
    if os.environ.get("BENCH_POOL_SIZE"):  # diagnosis/fix: a database pool as large as the process's threads
        import bot.db as dbmod

        create = dbmod.create_engine

        def create_engine(url, **kwargs):
            if not str(url).startswith("sqlite"):
                kwargs["pool_size"] = int(os.environ["BENCH_POOL_SIZE"])
                kwargs["max_overflow"] = int(os.environ.get("BENCH_MAX_OVERFLOW", "10"))
                kwargs["pool_pre_ping"] = os.environ.get("BENCH_PRE_PING", "1") == "1"
            return create(url, **kwargs)

        dbmod.create_engine = create_engine
    if os.environ.get("BENCH_WORK_THREADS"):  # diagnosis: fewer threads for the work after the ack
        import inspect

        import bot.access.service as wf

        if "background_threads" in inspect.signature(wf.AccessService.__init__).parameters:
            init_service = wf.AccessService.__init__

            def service_init(self, *args, **kwargs):
                kwargs["background_threads"] = int(os.environ["BENCH_WORK_THREADS"])
                init_service(self, *args, **kwargs)

            wf.AccessService.__init__ = service_init
    import app

    return app.main(["serve", "--host", "127.0.0.1"])


if __name__ == "__main__":
    sys.exit(main())
