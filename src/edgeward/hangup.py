"""SIGHUP in a worker: reopen the access log and reread the config source, as nginx does.

The file watch would see a change within its poll interval anyway; the signal is for scripts
and service managers (`systemctl reload`) that reload at a moment of their choosing, and it
applies the source's text even when the watch saw nothing (a same text is recorded at
`/reloads` as `unchanged`). The supervisor of `--workers` passes the signal to each worker.
"""

from __future__ import annotations

import asyncio
import logging
import time

from edgeward.config.sources import ConfigSource
from edgeward.control import Control
from edgeward.redact import redact_text
from edgeward.sections import Sections

log = logging.getLogger("edgeward")


class Hangup:
    def __init__(self, control: Control, sections: Sections) -> None:
        self.control = control
        self.sections = sections
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def handle(self) -> None:
        self.sections.reopen_logs()
        source = self.control.source
        if source is None:
            log.info("SIGHUP: logs reopened; no config file or etcd key to reload")
            return
        task = asyncio.get_running_loop().create_task(self._reread(source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reread(self, source: ConfigSource) -> None:
        where = self.control.runtime.source
        log.info("SIGHUP: reloading the config from %s", where)
        try:
            text, _ = await source.load()
        except Exception as exc:  # unreadable, etcd away: the running config stays
            log.error("SIGHUP: cannot read %s, keeping the current config: %s", where,
                      redact_text(str(exc)))
            self.control.telemetry.metrics.config_loaded(False, None, time.time())
            return
        self.control.on_source_change(text)
