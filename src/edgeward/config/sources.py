"""Where the config text comes from, and how a change to it is noticed: a file or an etcd key.

A source hands out text only; parsing, validation and the snapshot swap belong to the caller,
which keeps the last good snapshot when new text is refused. `on_change(text)` is called only
when the content really differs from what was last loaded or delivered (compared by hash), so
touching a file or re-putting the same value does not cause a reload.

FileSource polls (no inotify dependency, works on every filesystem including network and
overlay mounts, as Traefik's and Prometheus' file reloaders can fall back to). Each poll stats
the path (following symlinks), the symlink chain's resolved target and the parent directory,
so that both an in-place edit and a Kubernetes ConfigMap update - which swaps the `..data`
symlink to a new timestamped directory with an atomic rename - are noticed. Like git's "racily
clean" rule, a file whose mtime is within MTIME_GRANULARITY of the time it was read is hashed
again on the next poll, because a same-size edit in the same clock tick leaves stat unchanged.

EtcdSource reads one key and watches it from the revision of that read; on a lost connection
it keeps the current config, reconnects with capped backoff and resumes from the last revision
it saw, so a value written meanwhile is still delivered. Several puts received together are
delivered as their last value only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import stat
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, NamedTuple

import aetcd
import aetcd.exceptions

from edgeward.discovery.etcd import (
    DEFAULT_ETCD_TIMEOUT,
    RETRYABLE,
    Backoff,
    EtcdConnection,
    EtcdUnavailable,
)
from edgeward.discovery.etcd_client import EtcdAccess, access_from_env
from edgeward.values import parse_address

log = logging.getLogger(__name__)

# Poll once per second: a reload within ~1 s of an edit is what people expect from a "watch"
# (Traefik's file provider and Caddy's --watch react within a second), and a stat() of three
# paths per second costs nothing. Kubernetes itself takes up to a minute to project a new
# ConfigMap, so faster polling buys nothing there.
DEFAULT_POLL_INTERVAL = 1.0
# Filesystems with coarse timestamps (ext3, HFS+, some network mounts) record mtime in whole
# seconds; 2 s also covers FAT's 2-second resolution.
MTIME_GRANULARITY = 2.0
ETCD_SCHEME = "etcd://"

OnChange = Callable[[str], None]


class ConfigKeyMissing(LookupError):
    """The etcd key holding the config does not exist; the message names it."""


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class ConfigSource(ABC):
    """Config text plus change notification. `watch` needs a running event loop."""

    @abstractmethod
    async def load(self) -> tuple[str, str]:
        """Return (text, label): the config and a human name for it (path, etcd://...)."""

    @abstractmethod
    def watch(self, on_change: OnChange) -> None:
        """Start a background task calling on_change(text) after each real content change."""

    @abstractmethod
    async def close(self) -> None:
        """Stop watching."""

    async def store(self, text: str) -> None:
        """Write `text` as the new config, so every process watching this source applies it
        (the admin API's POST /config persists through here)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be written")

    async def __aenter__(self) -> ConfigSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Stamp(NamedTuple):
    """What a poll compares: any difference means "read the file and hash it"."""

    target: str          # the path with every symlink resolved
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    dir_mtime_ns: int    # the directory entry: a renamed-in symlink changes it


class FileSource(ConfigSource):
    def __init__(self, path: str | os.PathLike[str], *,
                 interval: float = DEFAULT_POLL_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.path = os.fspath(path)
        self.interval = interval
        self._digest: bytes | None = None
        self._stamp: _Stamp | None = None
        self._racy = False
        self._task: asyncio.Task[None] | None = None
        self._missing_logged = False

    @property
    def label(self) -> str:
        return self.path

    async def store(self, text: str) -> None:
        """Replace the file atomically (a temporary file in the same directory, renamed),
        keeping the file's mode, owner and group."""
        path = os.path.realpath(self.path)
        directory = os.path.dirname(path)

        def write() -> None:
            fd, tmp = tempfile.mkstemp(prefix=".edgeward-", dir=directory)
            try:
                _keep_mode_and_owner(fd, path)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

        await asyncio.get_running_loop().run_in_executor(None, write)

    def _stat(self) -> _Stamp:
        st = os.stat(self.path)
        parent = os.stat(os.path.dirname(os.path.abspath(self.path)))
        return _Stamp(os.path.realpath(self.path), st.st_dev, st.st_ino, st.st_size,
                      st.st_mtime_ns, st.st_ctime_ns, parent.st_mtime_ns)

    def _read(self) -> tuple[str, bytes, _Stamp]:
        stamp = self._stat()
        with open(self.path, "rb") as f:
            data = f.read()
        self._racy = time.time() - stamp.mtime_ns / 1e9 < MTIME_GRANULARITY
        return data.decode("utf-8"), _digest(data), stamp

    async def load(self) -> tuple[str, str]:
        text, digest, stamp = self._read()
        self._digest, self._stamp = digest, stamp
        return text, self.label

    def poll(self) -> str | None:
        """One check (what the watch task runs each interval): new text, or None if unchanged.

        A missing or unreadable file is logged and treated as unchanged, so a half-done
        replacement never unloads the config.
        """
        try:
            stamp = self._stat()
            if stamp == self._stamp and not self._racy:
                return None
            text, digest, stamp = self._read()
        except (OSError, UnicodeDecodeError) as exc:
            if not self._missing_logged:
                log.warning("config %s unreadable, keeping current config: %s", self.path, exc)
                self._missing_logged = True
            return None
        self._missing_logged = False
        self._stamp = stamp
        if digest == self._digest:
            return None
        self._digest = digest
        return text

    def watch(self, on_change: OnChange) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.path} is already watched")
        self._task = asyncio.get_running_loop().create_task(self._run(on_change))

    async def _run(self, on_change: OnChange) -> None:
        if self._stamp is None:  # watch without load: the current content is the baseline
            self.poll()
        while True:
            await asyncio.sleep(self.interval)
            text = self.poll()
            if text is not None:
                _deliver(on_change, text, self.label)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _keep_mode_and_owner(fd: int, path: str) -> None:
    """Give the replacement (mkstemp makes it 0600, owned by us) the mode and owner of the
    file it replaces, as editors and `install` do; a new file gets 0666 less the umask."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        return
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except PermissionError:
            log.warning("config %s: cannot keep its owner %d:%d (not permitted); the new "
                        "file is owned by %d:%d", path, st.st_uid, st.st_gid,
                        os.geteuid(), os.getegid())


def _deliver(on_change: OnChange, text: str, label: str) -> None:
    try:
        on_change(text)
    except Exception:
        log.exception("config change handler failed for %s", label)


class EtcdSource(ConfigSource):
    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        key: str,
        *,
        timeout: float = DEFAULT_ETCD_TIMEOUT,
        backoff: Backoff | None = None,
        access: EtcdAccess | None = None,
    ) -> None:
        if not key.startswith("/") or key == "/":
            raise ValueError(f"etcd key must be an absolute path like /edgeward/config, "
                             f"got {key!r}")
        self.key = key
        self._key = key.encode()
        self._conn = EtcdConnection(endpoints, timeout, access)
        self._backoff = backoff if backoff is not None else Backoff()
        self._digest: bytes | None = None
        self._revision: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: str | None = None
        self._flush_scheduled = False

    @property
    def label(self) -> str:
        return f"etcd://{self._conn.label}{self.key}"

    async def store(self, text: str) -> None:
        key, value = self._key, text.encode("utf-8")
        await self._conn.call(lambda c: c.put(key, value))

    @property
    def revision(self) -> int | None:
        """The etcd revision up to which this source has seen the key."""
        return self._revision

    async def _get(self) -> tuple[bytes | None, int]:
        key = self._key
        result = await self._conn.call(lambda c: c.get_range(key, key + b"\0"))
        value = bytes(result.kvs[0].value) if result.kvs else None
        return value, result.header.revision

    async def load(self) -> tuple[str, str]:
        """Raises EtcdUnavailable (a ConnectionError) naming the endpoints if etcd is down,
        ConfigKeyMissing if the key does not exist."""
        value, revision = await self._get()
        if value is None:
            raise ConfigKeyMissing(f"{self.label}: key {self.key} does not exist")
        text = value.decode("utf-8")
        self._digest, self._revision = _digest(value), revision
        return text, self.label

    def watch(self, on_change: OnChange) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.label} is already watched")
        self._task = asyncio.get_running_loop().create_task(self._run(on_change))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._conn.reset()

    async def _run(self, on_change: OnChange) -> None:
        resync = self._revision is None
        while True:
            try:
                if resync:
                    await self._resync(on_change)
                    resync = False
                await self._watch(on_change)
            except aetcd.exceptions.RevisionCompactedError as exc:
                log.warning("%s: revision %s compacted (%s); reading the key again",
                            self.label, self._revision, exc)
                resync = True
            except RETRYABLE as exc:
                delay = self._backoff.next_delay()
                log.warning("%s: watch lost (%s); keeping current config, retry in %.2fs",
                            self.label, exc, delay)
                await self._conn.reset(rotate=True)
                await asyncio.sleep(delay)

    async def _resync(self, on_change: OnChange) -> None:
        value, revision = await self._get()
        first = self._revision is None
        self._revision = revision
        if value is None:
            log.warning("%s: key is missing; keeping current config", self.label)
        elif first and self._digest is None:
            self._digest = _digest(value)  # watch without load: this is the baseline
        else:
            self._offer(value, on_change)

    async def _watch(self, on_change: OnChange) -> None:
        assert self._revision is not None
        client = await self._conn.client()
        watch = await client.watch(self._key, start_revision=self._revision + 1)
        self._backoff.reset()
        try:
            async for event in watch:
                self._apply(event, on_change)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watch.cancel(), self._conn.timeout)

    def _apply(self, event: Any, on_change: OnChange) -> None:
        kv = event.kv
        self._revision = max(self._revision or 0, kv.mod_revision)
        if event.kind == aetcd.rtypes.EventKind.DELETE:
            log.warning("%s: key deleted; keeping current config", self.label)
            return
        self._offer(bytes(kv.value), on_change)

    def _offer(self, value: bytes, on_change: OnChange) -> None:
        digest = _digest(value)
        if digest == self._digest:
            return
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            log.warning("%s: value is not UTF-8 (%s); keeping current config", self.label, exc)
            return
        self._digest = digest
        # Events of one watch response arrive back to back; deliver only the last value.
        self._pending = text
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, on_change)

    def _flush(self, on_change: OnChange) -> None:
        text, self._pending = self._pending, None
        self._flush_scheduled = False
        if text is not None and self._task is not None:
            _deliver(on_change, text, self.label)


def parse_etcd_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """`etcd://H1:P1,H2:P2/edgeward/config` -> ([(H1, P1), (H2, P2)], "/edgeward/config")."""
    if not url.startswith(ETCD_SCHEME):
        raise ValueError(f"expected etcd://HOST:PORT[,HOST:PORT]/KEY, got {url!r}")
    rest = url[len(ETCD_SCHEME):]
    hosts, slash, key = rest.partition("/")
    if not slash or not key:
        raise ValueError(f"missing /KEY after the endpoints in {url!r}")
    try:
        endpoints = [parse_address(h) for h in hosts.split(",")]
    except ValueError as exc:
        raise ValueError(f"bad endpoint in {url!r}: {exc}") from None
    return endpoints, "/" + key


def open_source(url_or_path: str, *, timeout: float = DEFAULT_ETCD_TIMEOUT,
                interval: float = DEFAULT_POLL_INTERVAL) -> ConfigSource:
    """`etcd://...` -> EtcdSource, anything else -> FileSource (no I/O until load/watch).
    An etcd source takes its user and TLS files from EDGEWARD_ETCD_* (etcd_client)."""
    if url_or_path.startswith(ETCD_SCHEME):
        endpoints, key = parse_etcd_url(url_or_path)
        return EtcdSource(endpoints, key, timeout=timeout, access=access_from_env(os.environ))
    return FileSource(url_or_path, interval=interval)


__all__ = [
    "ConfigKeyMissing",
    "ConfigSource",
    "EtcdSource",
    "EtcdUnavailable",
    "FileSource",
    "open_source",
    "parse_etcd_url",
]
