"""Run a configuration: compile it per worker, watch its source, swap snapshots on change.

The reload rule: a new config is parsed, validated and compiled off to the side; only when
all of that succeeds is the snapshot reference swapped. A refused config is logged with
its precise problems and counted; the last good snapshot keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgeward.compose import Registry, compile_snapshot
from edgeward.config.schema import GatewayConfig
from edgeward.config.text import config_hash, load_text
from edgeward.gateway import Worker
from edgeward.sections import listener_settings, restart_problems
from edgeward.structs import ConfigError, Problem

__all__ = ["ConfigRuntime", "ReloadRecord", "listener_settings"]

log = logging.getLogger("edgeward.runtime")

# Recent reloads kept for the admin API and dashboard.
RELOAD_HISTORY = 50


@dataclass
class ReloadRecord:
    time: float
    result: str          # "applied" | "refused" | "unchanged"
    hash: str
    error: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"time": self.time, "result": self.result, "hash": self.hash,
                "error": self.error}


class ConfigRuntime:
    """Holds the config in force for one worker and applies changes to it."""

    def __init__(self, text: str, source: str, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.source = source
        self.registry = Registry()
        self.config = load_text(text, source)
        self.text = text
        self.hash = config_hash(text)
        self.snapshot = compile_snapshot(self.config, loop, self.registry, source=source,
                                         source_hash=self.hash)
        self.worker: Worker | None = None
        self.reloads: list[ReloadRecord] = [ReloadRecord(time.time(), "applied", self.hash)]
        # check(old, new): problems that refuse `new` before anything is swapped (the sections
        # outside the snapshot, see sections.py); listener(old, new): called once applied.
        self.checks: list[Callable[[GatewayConfig, GatewayConfig], list[Problem]]] = [
            restart_problems]
        self.listeners: list[Callable[[GatewayConfig, GatewayConfig], None]] = []

    def attach(self, worker: Worker) -> None:
        self.worker = worker

    async def apply(self, text: str, label: str | None = None) -> list[str]:
        """Validate, compile and swap. Returns the problems (empty when applied); they name
        `label` (default: the watched source) as where the text came from.

        Parsing and validating, the part that grows with the text, run in a worker thread so
        the event loop keeps serving meanwhile; compiling (which creates loop-bound objects)
        and the swap run on the loop. Callers apply one text at a time."""
        where = label or self.source
        digest = config_hash(text)
        if digest == self.hash:
            self._record(ReloadRecord(time.time(), "unchanged", digest))
            return []
        try:
            cfg = await self.loop.run_in_executor(None, load_text, text, where)
        except ConfigError as exc:
            return self._refuse(exc, digest)
        return self._install(cfg, text, digest, where)

    def _install(self, cfg: GatewayConfig, text: str, digest: str, where: str) -> list[str]:
        try:
            problems = [p for check in self.checks for p in check(self.config, cfg)]
            if problems:
                raise ConfigError(where, problems)
            snapshot = compile_snapshot(cfg, self.loop, self.registry, source=where,
                                        source_hash=digest)
        except ConfigError as exc:
            return self._refuse(exc, digest)
        old = self.config
        self.config, self.text, self.hash, self.snapshot = cfg, text, digest, snapshot
        if self.worker is not None:
            self.worker.swap(snapshot)
        self._record(ReloadRecord(time.time(), "applied", digest))
        log.info("config %s applied from %s", digest, self.source)
        for listener in self.listeners:
            listener(old, cfg)
        return []

    def _refuse(self, exc: ConfigError, digest: str) -> list[str]:
        lines = exc.lines()
        for line in lines:
            log.error("config refused: %s", line)
        self._record(ReloadRecord(time.time(), "refused", digest, lines))
        return lines

    def _record(self, record: ReloadRecord) -> None:
        self.reloads.append(record)
        del self.reloads[:-RELOAD_HISTORY]
