"""An independent reader of the Prometheus text format 0.0.4, written from the format's rules
(not from our renderer), shared by the observe tests."""

from __future__ import annotations

import math

Sample = tuple[str, tuple[tuple[str, str], ...]]


def parse_exposition(text: str) -> tuple[dict[str, str], dict[str, str], dict[Sample, float]]:
    """A strict reader of the Prometheus text format 0.0.4 written from its rules, not from
    our renderer: returns HELP texts, TYPEs and samples keyed by (name, sorted labels)."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: dict[Sample, float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, rest = line[7:].partition(" ")
            helps[name] = rest.replace("\\n", "\n").replace("\\\\", "\\")
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            types[name] = kind
            continue
        assert line and not line.startswith("#"), line
        i = 0
        while i < len(line) and line[i] not in "{ ":
            i += 1
        name = line[:i]
        labels: list[tuple[str, str]] = []
        if line[i] == "{":
            i += 1
            while line[i] != "}":
                eq = line.index("=", i)
                lname = line[i:eq]
                assert line[eq + 1] == '"'
                j = eq + 2
                value = []
                while line[j] != '"':
                    if line[j] == "\\":
                        nxt = line[j + 1]
                        value.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                        j += 2
                    else:
                        value.append(line[j])
                        j += 1
                labels.append((lname, "".join(value)))
                i = j + 1
                if line[i] == ",":
                    i += 1
            i += 1
        assert line[i] == " "
        raw = line[i + 1:]
        value_f = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(raw)
        key = (name, tuple(sorted(labels)))
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(raw) if value_f is None else value_f
    return helps, types, samples
