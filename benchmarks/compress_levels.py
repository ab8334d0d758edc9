"""MB/s per compression algorithm and level on a 1 MiB JSON body, as `compress` runs them.

    .venv/bin/python benchmarks/compress_levels.py [--seconds S]

Each line: algorithm, level, input MB/s (one core), compressed size / input size. The body is
1 MiB of generated API-like JSON (objects with ids, names, e-mails, numbers, tags), fed to the
filter's encoder in 64 KiB pieces as a response streams through it; the same seed every run.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from edgeward.filters.encoding import Codec

RUNS = (("gzip", (1, 4, 6, 9)), ("br", (0, 1, 2, 3, 4)), ("zstd", (1, 3, 6, 9)))
PIECE = 64 * 1024


def json_body(size: int = 1 << 20, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta"]
    items = []
    i = 0
    while True:
        items.append({"id": i, "name": f"{rng.choice(words)}-{rng.randrange(10**6)}",
                      "email": f"user{i}@example.com", "active": rng.random() < 0.5,
                      "score": round(rng.random() * 1000, 3),
                      "tags": rng.sample(words, 3)})
        i += 1
        if i % 1000 == 0 and len(json.dumps(items)) > size:
            break
    return json.dumps(items).encode()[:size]


def measure(body: bytes, coding: str, level: int, seconds: float) -> tuple[float, float]:
    runs = 0
    size = 0
    codec = Codec(coding, level)
    start = time.perf_counter()
    while True:
        enc = codec.encoder()
        out = [enc.compress(body[i:i + PIECE]) for i in range(0, len(body), PIECE)]
        size = sum(map(len, out)) + len(enc.finish())
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return len(body) * runs / elapsed / 1e6, size / len(body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    body = json_body()
    print(f"# body {len(body)} bytes of JSON, {PIECE // 1024} KiB pieces, one core")
    for coding, levels in RUNS:
        for level in levels:
            mbs, ratio = measure(body, coding, level, args.seconds)
            print(f"{coding:5s} level {level}: {mbs:7.1f} MB/s  ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
