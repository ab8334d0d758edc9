"""Consumers stored in etcd: one key per consumer, `PREFIX/NAME` -> the consumer in YAML or
JSON (the shape of a `consumers.NAME` entry), followed by a watch like the service registry.

A value that does not read as a consumer is logged with its key path and left out; the others
apply. Etcd's consumers go to the worker's ConsumerDirectory as a whole after each change (a
name also in the config file keeps the file's entry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from edgeward.auth.config import ConsumerConfig, check_consumer_name
from edgeward.auth.directory import ConsumerDirectory
from edgeward.discovery.etcd import DEFAULT_ETCD_TIMEOUT, EtcdPrefixWatcher
from edgeward.discovery.etcd_client import EtcdAccess
from edgeward.structs import ConfigError, load_struct

log = logging.getLogger("edgeward.auth")

Entry = tuple[str, ConsumerConfig]


def parse_consumer(key: bytes, value: bytes, prefix: bytes) -> Entry | None:
    """`PREFIX/NAME` and its value -> (NAME, config); None (logged) when it is not one."""
    from edgeward.config.text import safe_load

    name = key[len(prefix):].decode("utf-8", "replace")
    where = key.decode("utf-8", "replace")
    reason = check_consumer_name(name)
    if reason is not None:
        log.error("etcd %s: %s; ignored", where, reason)
        return None
    try:
        raw = safe_load(value.decode("utf-8"))
        return name, load_struct(ConsumerConfig, raw, source=f"etcd {where}")
    except ConfigError as exc:
        for line in exc.lines():
            log.error("%s; ignored", line)
    except Exception as exc:  # noqa: BLE001 - YAML errors of every kind
        log.error("etcd %s: not a consumer in YAML or JSON (%s); ignored", where,
                  type(exc).__name__)
    return None


class ConsumerWatcher(EtcdPrefixWatcher[Entry]):
    def __init__(self, endpoints: list[tuple[str, int]], prefix: str,
                 directory: ConsumerDirectory, environ: Mapping[str, str], *,
                 timeout: float = DEFAULT_ETCD_TIMEOUT, access: EtcdAccess | None = None) -> None:
        self.directory = directory
        self.environ = environ
        on_update: Callable[[list[Entry]], None] = self._install
        super().__init__(endpoints, prefix.encode(), on_update, timeout=timeout, access=access)

    def parse(self, key: bytes, value: bytes) -> Entry | None:
        return parse_consumer(key, value, self.prefix)

    def _install(self, entries: list[Entry]) -> None:
        self.directory.set_dynamic(entries, self.environ)
        log.info("%d consumers from etcd %s", len(entries), self.prefix.decode())
