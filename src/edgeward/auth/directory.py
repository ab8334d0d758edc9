"""The consumers in force for one worker, indexed by credential.

Consumers come from the config file (`consumers:`, replaced at each reload) and from etcd
(`/edgeward/consumers/NAME`, followed by a watch); a name in the file wins over the same name
in etcd. Each change builds a new immutable `Index` off to the side and swaps one reference,
so a lookup is one dict read on whatever index is in force. Credentials are digests
(secrets.py); no secret is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeward.auth import certnames
from edgeward.auth.config import ConsumerConfig, check_consumer_name
from edgeward.auth.consumer import Consumer
from edgeward.auth.secrets import resolve_digest

log = logging.getLogger("edgeward.auth")


@dataclass(frozen=True)
class Resolved:
    """One consumer with its credentials resolved to digests."""

    consumer: Consumer
    key_digests: tuple[bytes, ...] = ()
    username: str | None = None
    password_digest: bytes | None = None
    subjects: tuple[str, ...] = ()
    certs: tuple[tuple[str, str], ...] = ()  # (kind, normalised value): certnames.parse


def resolve(name: str, cfg: ConsumerConfig, environ: Mapping[str, str]
            ) -> tuple[Resolved | None, list[tuple[str, str]]]:
    """The consumer `name` resolved, or the problems (key, reason) that refuse it."""
    problems: list[tuple[str, str]] = []
    reason = check_consumer_name(name)
    if reason is not None:
        problems.append(("", reason))
    keys: list[bytes] = []
    for i, ref in enumerate(cfg.api_keys):
        try:
            keys.append(resolve_digest(ref, environ))
        except ValueError as exc:
            problems.append((f"api_keys[{i}]", str(exc)))
    password = None
    if cfg.password is not None:
        try:
            password = resolve_digest(cfg.password, environ)
        except ValueError as exc:
            problems.append(("password", str(exc)))
    certs: list[tuple[str, str]] = []
    for i, entry in enumerate(cfg.client_certs):
        try:
            certs.append(certnames.parse(entry))
        except ValueError as exc:
            problems.append((f"client_certs[{i}]", str(exc)))
    if problems:
        return None, problems
    limit = cfg.rate_limit
    rate = limit.rate if limit is not None else 0.0
    burst = 0
    if limit is not None:
        burst = limit.burst if limit.burst is not None else max(1, int(limit.rate + 0.999999))
    consumer = Consumer(name, frozenset(cfg.groups), cfg.labels, configured=True,
                        metric_label=name if cfg.metrics else "", rate=rate, burst=burst)
    username = cfg.username or name if password is not None else None
    return Resolved(consumer, tuple(keys), username, password,
                    tuple(dict.fromkeys([name, *cfg.jwt_subjects])), tuple(certs)), []


@dataclass(frozen=True)
class Index:
    """Lookups over one set of consumers."""

    by_name: dict[str, Consumer] = field(default_factory=dict)
    by_key: dict[bytes, Consumer] = field(default_factory=dict)
    by_username: dict[str, tuple[Consumer, bytes]] = field(default_factory=dict)
    by_subject: dict[str, Consumer] = field(default_factory=dict)
    # certnames kind -> normalised name or fingerprint -> consumer
    by_cert: dict[str, dict[str, Consumer]] = field(
        default_factory=lambda: {kind: {} for kind in certnames.KINDS})

    @staticmethod
    def build(entries: list[Resolved]) -> Index:
        index = Index()
        for r in entries:
            index.by_name[r.consumer.name] = r.consumer
            for d in r.key_digests:
                if index.by_key.setdefault(d, r.consumer) is not r.consumer:
                    log.warning("consumers %s and %s share an API key; %s keeps it",
                                index.by_key[d].name, r.consumer.name, index.by_key[d].name)
            if r.username is not None and r.password_digest is not None:
                index.by_username.setdefault(r.username, (r.consumer, r.password_digest))
            for s in r.subjects:
                index.by_subject.setdefault(s, r.consumer)
            for kind, value in r.certs:
                held = index.by_cert[kind].setdefault(value, r.consumer)
                if held is not r.consumer:
                    log.warning("consumers %s and %s both list client certificate %s:%s; %s "
                                "keeps it", held.name, r.consumer.name, kind, value, held.name)
        return index


class ConsumerDirectory:
    """The worker's consumers: `index` is the one in force (read it, never change it)."""

    def __init__(self) -> None:
        self.index = Index()
        self._static: dict[str, Resolved] = {}
        self._dynamic: dict[str, Resolved] = {}

    def prepare(self, configs: Mapping[str, ConsumerConfig], environ: Mapping[str, str]
                ) -> tuple[dict[str, Resolved], list[tuple[str, str]]]:
        """The file's consumers resolved, or problems with key paths under `consumers.`."""
        out: dict[str, Resolved] = {}
        problems: list[tuple[str, str]] = []
        for name, cfg in configs.items():
            resolved, found = resolve(name, cfg, environ)
            path = f"consumers.{name}"
            problems.extend((f"{path}.{k}" if k else path, r) for k, r in found)
            if resolved is not None:
                out[name] = resolved
        return out, problems

    def install_static(self, resolved: dict[str, Resolved]) -> None:
        self._static = resolved
        self._rebuild()

    def set_dynamic(self, entries: list[tuple[str, ConsumerConfig]],
                    environ: Mapping[str, str]) -> None:
        """etcd's consumers (all of them, as now); one that cannot be resolved is logged and
        left out, the others apply."""
        out: dict[str, Resolved] = {}
        for name, cfg in entries:
            resolved, problems = resolve(name, cfg, environ)
            if resolved is None:
                for key, reason in problems:
                    log.error("consumer %s from etcd refused: %s%s", name,
                              f"{key}: " if key else "", reason)
                continue
            out[name] = resolved
        self._dynamic = out
        self._rebuild()

    def _rebuild(self) -> None:
        merged = dict(self._dynamic)
        for name in self._static:
            if name in merged:
                log.info("consumer %s is in the config file and in etcd; the file's applies",
                         name)
        merged.update(self._static)
        self.index = Index.build(list(merged.values()))

    def __len__(self) -> int:
        return len(self.index.by_name)
