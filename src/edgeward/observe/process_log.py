"""The process log (stderr): its level and its format, text or JSON.

Set from the environment before anything is read (`EDGEWARD_LOG_LEVEL`, `EDGEWARD_LOG_FORMAT`),
so start-up lines already come in the chosen form; the config's `logging:` section sets them
too when the environment does not (the environment wins: it is how container platforms and
systemd units set a process's logging, and it lets an operator turn on debug for one run
without editing the shared file).

A record may carry structured fields (`extra={"fields": {...}}`): the JSON format writes them
as members of the line; the text format shows the message only, which says the same in words.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from edgeward.values import doc

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["text", "json"]
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
FORMATS: Final = ("text", "json")
# INFO, as nginx's error_log default is `error` but edgeward's info lines are few (start, reloads,
# endpoints joining) and are what an operator looks for first; debug is for one run.
DEFAULT_LEVEL: Final = "info"
# Text: read by people at a terminal first; JSON is one switch away for log shippers.
DEFAULT_FORMAT: Final = "text"
LEVEL_ENV: Final = "EDGEWARD_LOG_LEVEL"
FORMAT_ENV: Final = "EDGEWARD_LOG_FORMAT"

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """The `logging:` section: the process log on stderr (not the access log)."""

    level: LogLevel = field(
        default=DEFAULT_LEVEL,
        metadata=doc("debug, info, warning, error, critical; EDGEWARD_LOG_LEVEL wins"))
    format: LogFormat = field(
        default=DEFAULT_FORMAT,
        metadata=doc("text (for people) or json (one object per line, for log shippers); "
                     "EDGEWARD_LOG_FORMAT wins"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, the record's
    structured fields, and `exception` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update({k: v for k, v in fields.items() if k not in doc})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"), default=str)


def _rfc3339(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


def parse_level(text: str, where: str = LEVEL_ENV) -> int:
    """`debug` (any case) -> logging.DEBUG; ValueError naming `where` otherwise."""
    name = text.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"{where}: expected one of {', '.join(LEVELS)}, got {text!r}")
    return int(getattr(logging, name.upper()))


def parse_format(text: str, where: str = FORMAT_ENV) -> str:
    name = text.strip().lower()
    if name not in FORMATS:
        raise ValueError(f"{where}: expected one of {', '.join(FORMATS)}, got {text!r}")
    return name


class ProcessLog(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's one stderr handler; `apply` changes level and format in place. The
    root logger holds it, so no module state is needed to find it again."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(sys.stderr)
        self.env_level = environ.get(LEVEL_ENV) or None
        self.env_format = environ.get(FORMAT_ENV) or None
        # Checked now, so a bad variable stops the start with one line.
        self.level_no = parse_level(self.env_level or DEFAULT_LEVEL)
        self.format_name = parse_format(self.env_format or DEFAULT_FORMAT)

    def apply(self, level: str | None, fmt: str | None) -> None:
        """The config's `logging:` values (already validated); the environment wins."""
        self.level_no = parse_level(self.env_level or level or DEFAULT_LEVEL)
        self.format_name = parse_format(self.env_format or fmt or DEFAULT_FORMAT)
        self.install()

    def install(self) -> None:
        self.setFormatter(JsonFormatter() if self.format_name == "json"
                          else logging.Formatter(TEXT_FORMAT))
        root = logging.getLogger()
        if self not in root.handlers:
            for old in list(root.handlers):
                root.removeHandler(old)
            root.addHandler(self)
        root.setLevel(self.level_no)


def configure(environ: Mapping[str, str]) -> ProcessLog:
    """Set up the process log from the environment; ValueError for a bad variable."""
    process_log = ProcessLog(environ)
    process_log.install()
    return process_log


def apply_config(level: str | None, fmt: str | None) -> None:
    """Apply a config's `logging:` section to the process log, when `configure` set one up."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ProcessLog):
            handler.apply(level, fmt)


def announce(message: str, **fields: object) -> None:
    """A line shown whatever the level (the start banner), in the process log's format."""
    handler = next((h for h in logging.getLogger().handlers if isinstance(h, ProcessLog)), None)
    if handler is None or handler.format_name != "json":
        print(message, file=sys.stderr, flush=True)
        return
    record = logging.LogRecord("edgeward", logging.INFO, __file__, 0, message, None, None)
    record.fields = fields
    print(handler.format(record), file=sys.stderr, flush=True)
