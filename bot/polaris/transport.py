"""How the Polaris client talks HTTP (:class:`PolarisTransport`): one pooled ``requests.Session``, HTTP Basic
with the API key (RFC 7617 ``base64("<key>:")``, or the raw key), a connect and a read timeout on every attempt,
exact success codes, both error envelopes parsed into :class:`bot.polaris.errors.PolarisError`, and retries of
transient failures (429 honouring ``Retry-After``, 500/502/503/504, timeouts, dropped connections) with
exponential backoff and jitter through tenacity, for idempotent calls only. The key is never logged.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Callable

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_exponential_jitter

from .errors import PolarisError, PolarisUnavailable, error_for

log = logging.getLogger("bot.polaris")  # the name it always had (log configuration and tests rely on it)


CallHook = Callable[[str, str, "int | None", float, "str | None"], None]


class PolarisTransport:
    """HTTP to Polaris: one ``requests.Session`` with a pooled adapter, Basic auth, timeouts and retries.
    Thread-safe. :class:`bot.polaris.client.PolarisClient` adds the Identity endpoints on top.

    ``base_url``: ``https://ORG.api.imply.io`` (or ``.app.imply.io``, or a sandbox URL).
    ``timeout``: (connect, read) seconds for each attempt.
    ``max_attempts``/``retry_seconds``: bound on retries of transient failures for idempotent calls.
    ``on_call(method, path, status, duration_ms, error_code)``: called after every HTTP attempt (the audit
    log hooks in here); ``path`` has no query string, ``status`` is ``None`` when no response came.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = (3.05, 10.0),
        max_attempts: int = 4,
        retry_seconds: float = 20.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        on_call: CallHook | None = None,
        auth_style: str = "rfc7617",
        session: requests.Session | None = None,
        pool_size: int = 16,
    ):
        if not base_url:
            raise ValueError("Polaris base URL is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.retry_seconds = retry_seconds
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.on_call = on_call
        self._session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        credential = api_key if auth_style == "raw" else base64.b64encode(f"{api_key}:".encode()).decode()
        self._auth_header = f"Basic {credential}"
        self._session.headers.update({"Accept": "application/json", "User-Agent": "polaris-access-bot"})
        if self._session.trust_env:  # the environment's proxy and CA settings for Polaris, read once
            settings = self._session.merge_environment_settings(self.base_url, {}, None, None, None)
            self._session.proxies.update(settings["proxies"])
            self._session.verify = settings["verify"]
            self._session.trust_env = False  # not again on every call (a quarter of a call's CPU: issue 13)
        #: One HTTP attempt, ``(method, path, params, body, ok) -> requests.Response`` (raises
        #: :class:`PolarisError`); every call and retry goes through it. A deliberate seam: tests wrap it to
        #: lose an answer or end the process mid-call (``real = client.transport; client.transport = wrapper``).
        self.transport: Callable[[str, str, dict | None, Any, tuple[int, ...]], requests.Response] = self._once

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}({self.base_url!r})"

    @property
    def read_timeout(self) -> float:
        """Seconds one attempt waits for an answer: after that (plus a margin) a write that was sent has either
        landed or will not (used to decide when to look whether a write with a lost answer landed)."""
        return float(self.timeout[1] if isinstance(self.timeout, tuple) else self.timeout)

    # ------------------------------------------------------------------------------------ transport
    def _once(self, method: str, path: str, params: dict | None, body: Any, ok: tuple[int, ...]) -> requests.Response:
        started = time.monotonic()
        status: int | None = None
        error_code: str | None = None
        try:
            try:
                response = self._session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=body,
                    timeout=self.timeout,
                    headers={"Authorization": self._auth_header, "Content-Type": "application/json"},
                )
            except requests.Timeout:
                error_code = "Timeout"
                raise PolarisUnavailable(None, "Timeout", "no answer in time", method=method, path=path) from None
            except requests.RequestException:  # refused, reset, or dropped mid-response (ChunkedEncodingError)
                error_code = "ConnectionError"
                raise PolarisUnavailable(
                    None, "ConnectionError", "could not connect or the connection dropped", method=method, path=path
                ) from None
            status = response.status_code
            if status not in ok:
                err = error_for(status, method, path, response.content, response.headers)
                error_code = err.code
                raise err
            return response
        finally:
            if self.on_call is not None:
                try:
                    self.on_call(method, path, status, (time.monotonic() - started) * 1000.0, error_code)
                except Exception:  # the hook must never break a call
                    log.exception("Polaris call hook failed")

    def _wait(self, state) -> float:
        backoff = wait_exponential_jitter(multiplier=self.backoff_initial, max=self.backoff_max)(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return min(max(backoff, retry_after), max(self.retry_seconds, 0.0))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
        retry: bool | None = None,
    ) -> requests.Response:
        """Send one logical call, retrying transient failures when ``retry`` (default: GET/PUT/DELETE).

        Raises a :class:`PolarisError` subclass after the last attempt or at once for a non-transient error.
        """
        if retry is None:
            retry = method in ("GET", "PUT", "DELETE")
        if not retry:
            return self.transport(method, path, params, body, ok)
        return self.retrying()(self.transport, method, path, params, body, ok)

    def retrying(self) -> Retrying:
        """The retry policy of every retried call (tenacity): on :class:`PolarisUnavailable` only, at most
        ``max_attempts`` attempts within ``retry_seconds``, waiting the jittered exponential backoff or the
        answer's ``Retry-After``, whichever is longer; the last error is raised as it is."""
        return Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, PolarisUnavailable)),
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.retry_seconds),
            wait=self._wait,
            reraise=True,
        )

    def _json(self, method: str, path: str, *, expect_body: bool = True, **kw) -> Any:
        response = self.request(method, path, **kw)
        if not response.content:
            if expect_body:
                raise PolarisError(
                    response.status_code, "InvalidResponse", "Polaris sent an empty body", method=method, path=path
                )
            return None
        try:
            return response.json()
        except ValueError:
            raise PolarisError(
                response.status_code,
                "InvalidResponse",
                "Polaris sent a body that is not JSON",
                method=method,
                path=path,
            ) from None
