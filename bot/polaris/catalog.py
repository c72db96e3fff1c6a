"""The organization's groups, cached (:class:`GroupCatalog`), and how a group name given by a person is
matched (:func:`normalize_group_name`: case, spaces and one pair of quotes do not count)."""

from __future__ import annotations

import threading
import time
from typing import Callable

from .client import PolarisClient
from .errors import PolarisError
from .models import Group, Permission

MISS_REFRESH_SECONDS = 5.0  # a missed group name refreshes the list at most this often


class GroupCatalog:
    """The organization's groups, cached for ``ttl`` seconds (groups change rarely; a lookup per command
    would be a Polaris call per command). :meth:`invalidate` drops the cache when the bot changes a group;
    :meth:`refresh` reads it again on a miss, at most every :data:`MISS_REFRESH_SECONDS`. Thread-safe."""

    def __init__(self, client: PolarisClient, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.client, self.ttl, self.clock = client, ttl, clock
        self._lock = threading.Lock()
        self._refresh = threading.Lock()
        self._groups: list[Group] | None = None
        self._at = 0.0
        self._miss_at = float("-inf")  # when refresh() last read the list

    def all(self) -> list[Group]:
        """Every group, from the cache when fresh. One caller refreshes an expired list while the others keep
        using the previous one (or wait for it, when there is none yet), so an expiry under load is one
        Polaris call, not one per thread. Raises :class:`PolarisError` when Polaris fails."""
        with self._lock:
            if self._groups is not None and self.clock() - self._at < self.ttl:
                return self._groups
            stale = self._groups
        if stale is not None and not self._refresh.acquire(blocking=False):
            return stale  # someone else is refreshing
        if stale is None:
            self._refresh.acquire()
        try:
            with self._lock:  # another thread may have refreshed while we waited
                if self._groups is not None and self.clock() - self._at < self.ttl:
                    return self._groups
            groups = sorted(self.client.list_groups(), key=lambda g: g.name.lower())
            with self._lock:
                self._groups, self._at = groups, self.clock()
            return groups
        finally:
            self._refresh.release()

    def refresh(self, min_interval: float | None = None) -> list[Group]:
        """Every group read again from Polaris, for a name or ID that was not in the cached list (a group made
        in Polaris outside the bot is then found at once, not after ``ttl``). When a refresh read the list less
        than ``min_interval`` seconds ago (default :data:`MISS_REFRESH_SECONDS`) the cached one is returned:
        misses cost at most one Polaris call every ``min_interval`` seconds, and threads that miss together
        wait for the one call in flight instead of making their own. Raises :class:`PolarisError` when Polaris fails
        (the cached list is kept)."""
        interval = MISS_REFRESH_SECONDS if min_interval is None else min_interval
        with self._refresh:
            with self._lock:
                if self._groups is not None and self.clock() - self._miss_at < interval:
                    return self._groups
            groups = sorted(self.client.list_groups(), key=lambda g: g.name.lower())
            with self._lock:
                self._groups, self._at = groups, self.clock()
                self._miss_at = self._at
            return groups

    def invalidate(self) -> None:
        """Drop the cached list: the next lookup reads it from Polaris (after the bot changed a group or a
        membership, so member counts and permissions are current)."""
        with self._lock:
            self._groups = None

    def fresh(self) -> bool:
        """True when :meth:`all` would answer from the cache now, without a Polaris call."""
        with self._lock:
            return self._groups is not None and self.clock() - self._at < self.ttl

    def by_id(self, group_id: str) -> Group | None:
        return next((g for g in self.all() if g.id == group_id), None)

    def by_name(self, name: str) -> Group | None:
        """The group named ``name`` ignoring case and surrounding quotes/space, or ``None``."""
        wanted = normalize_group_name(name)
        return next((g for g in self.all() if normalize_group_name(g.name) == wanted), None)

    def nearest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` group names closest to ``name`` (difflib), for "did you mean" answers."""
        import difflib

        names = {normalize_group_name(g.name): g.name for g in self.all()}
        wanted = normalize_group_name(name)
        close = difflib.get_close_matches(wanted, list(names), n=n, cutoff=0.4)
        contains = [k for k in names if wanted and (wanted in k or k in wanted) and k not in close]
        return [names[k] for k in (close + contains)[:n]]


def normalize_group_name(name: str) -> str:
    """Lower-case, strip spaces and one pair of straight or curly quotes."""
    text = name.strip()
    for left, right in (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019")):
        if len(text) >= 2 and text[0] == left and text[-1] == right:
            text = text[1:-1].strip()
            break
    return " ".join(text.split()).lower()


class ProjectCatalog:
    """The organization's projects by ID (``GET /v1/projects``, a bare array of ``Project``, each with
    ``metadata.uid`` and ``metadata.name``), cached for ``ttl`` seconds like :class:`GroupCatalog`, so a
    permission's ``resources`` (``projects/<id>``) can be shown by name. Thread-safe; raises
    :class:`bot.polaris.PolarisError` when Polaris fails."""

    def __init__(self, client: PolarisClient, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.client, self.ttl, self.clock = client, ttl, clock
        self._lock = threading.Lock()
        self._names: dict[str, str] | None = None
        self._at = 0.0

    def names(self) -> dict[str, str]:
        """``{project ID: name}`` (the name falls back to the ID), from the cache when fresh."""
        with self._lock:
            if self._names is not None and self.clock() - self._at < self.ttl:
                return self._names
        names: dict[str, str] = {}
        for project in self.client.list_projects():
            meta = project.get("metadata") if isinstance(project, dict) else None
            if isinstance(meta, dict) and meta.get("uid"):
                names[str(meta["uid"])] = str(meta.get("name") or meta["uid"])
        with self._lock:
            self._names, self._at = names, self.clock()
        return names

    def cached(self) -> dict[str, str] | None:
        """:meth:`names` when the cache is fresh, else ``None`` (never a Polaris call: for checks before an
        ``ack``)."""
        with self._lock:
            fresh = self._names is not None and self.clock() - self._at < self.ttl
            return self._names if fresh else None

    def label(self, resource: str) -> str:
        """A resource as people read it: ``projects/*`` -> "all projects", ``projects/<id>`` -> the project's
        name (the ID when Polaris lists no such project, or when ``GET /v1/projects`` cannot be read: the names
        only label resources, so a refused or failed read never blocks what shows them); anything else as it is."""
        if resource == "projects/*":
            return "all projects"
        if resource.startswith("projects/"):
            uid = resource.split("/", 1)[1]
            try:
                return self.names().get(uid, uid)
            except PolarisError:
                return uid
        return resource

    def by_name(self, name: str) -> str | None:
        """The ID of the project named ``name`` (ignoring case) or with that ID, else ``None``."""
        wanted = name.strip().lower()
        for uid, label in self.names().items():
            if wanted in (uid.lower(), label.lower()):
                return uid
        return None

    def invalidate(self) -> None:
        """Drop the cache: the next lookup reads the projects again."""
        with self._lock:
            self._names = None


class PermissionCatalog:
    """The organization's permissions (``GET /v1/permissions``), cached for ``ttl`` seconds: the group form
    reads them when it opens, and its ``view_submission`` is checked against :meth:`cached` before the ack,
    without a Polaris call. Thread-safe; :meth:`all` raises :class:`bot.polaris.PolarisError`."""

    def __init__(self, client: PolarisClient, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.client, self.ttl, self.clock = client, ttl, clock
        self._lock = threading.Lock()
        self._permissions: list[Permission] | None = None
        self._at = 0.0

    def all(self) -> list[Permission]:
        """Every permission, read from Polaris now (and cached)."""
        permissions = self.client.list_permissions()
        with self._lock:
            self._permissions, self._at = permissions, self.clock()
        return permissions

    def cached(self) -> list[Permission] | None:
        """The permissions last read, when fresh, else ``None`` (never a Polaris call)."""
        with self._lock:
            fresh = self._permissions is not None and self.clock() - self._at < self.ttl
            return self._permissions if fresh else None
