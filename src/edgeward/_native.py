"""Optional native build of the data-plane modules with mypyc, and the guard against stale builds.

The per-request path (listener, upstream codec, exchange, routing table, balancers, metric
children) is strictly typed Python; compiled with mypyc it runs about twice as fast, which is
most of the gap to nginx. The build is optional: without a C compiler the same modules run as
plain Python. `build()` (scripts/bootstrap.sh calls it) compiles in place: the shared objects
sit next to the sources, where the import system prefers them; `clean()` removes them.

Staleness: a compiled module that no longer matches its source would silently run old code.
`guard()` runs when the package is imported: if any listed source is newer than its shared
object, or a shared object is missing, it removes every compiled shim of the group (they call
each other natively, so they are used all together or not at all) and says so once on stderr.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys

# Modules compiled together (one mypyc group). Config dataclasses stay interpreted: the config
# loader reads their fields and type hints at run time.
MODULES = (
    "edgeward/http/message.py",
    "edgeward/http/fields.py",
    "edgeward/http/stream.py",
    "edgeward/http/listener.py",
    "edgeward/http/paths.py",
    "edgeward/http/outbox.py",
    "edgeward/http/headers.py",
    "edgeward/http/errors.py",
    "edgeward/http/h1/head.py",
    "edgeward/http/h1/server.py",
    "edgeward/http/h1/client.py",
    "edgeward/http/h1/wire.py",
    "edgeward/http/ws_frames.py",
    "edgeward/http/ws_handshake.py",
    "edgeward/http/ws_liveness.py",
    "edgeward/http/tunnel.py",
    "edgeward/filters/api.py",
    "edgeward/filters/governance.py",
    "edgeward/filters/events.py",
    "edgeward/filters/template.py",
    "edgeward/filters/headers.py",
    "edgeward/filters/rewrite.py",
    "edgeward/filters/reply.py",
    "edgeward/filters/cors.py",
    "edgeward/filters/ip.py",
    "edgeward/filters/encoding.py",
    "edgeward/filters/compress.py",
    "edgeward/proxy/states.py",
    "edgeward/proxy/chain.py",
    "edgeward/proxy/context.py",
    "edgeward/proxy/forwarded.py",
    "edgeward/proxy/phases.py",
    "edgeward/proxy/exchange.py",
    "edgeward/proxy/body.py",
    "edgeward/proxy/attempts.py",
    "edgeward/proxy/forward.py",
    "edgeward/proxy/factory.py",
    "edgeward/proxy/subrequest.py",
    "edgeward/proxy/trace.py",
    "edgeward/proxy/cluster.py",
    "edgeward/proxy/route.py",
    "edgeward/proxy/snapshot.py",
    "edgeward/proxy/telemetry.py",
    "edgeward/proxy/upgrade.py",
    "edgeward/admin/wire.py",
    "edgeward/routing/table.py",
    "edgeward/routing/split.py",
    "edgeward/routing/keys.py",
    "edgeward/balance/endpoint.py",
    "edgeward/balance/base.py",
    "edgeward/balance/round_robin.py",
    "edgeward/balance/least_request.py",
    "edgeward/balance/peak_ewma.py",
    "edgeward/balance/hashed.py",
    "edgeward/balance/ring_hash.py",
    "edgeward/balance/maglev.py",
    "edgeward/balance/hashing.py",
    "edgeward/observe/metrics.py",
    "edgeward/observe/gateway_metrics.py",
    "edgeward/ratelimit/decision.py",
    "edgeward/ratelimit/keymap.py",
    "edgeward/ratelimit/algorithm.py",
    "edgeward/ratelimit/gcra.py",
    "edgeward/ratelimit/token_bucket.py",
    "edgeward/ratelimit/leaky_bucket.py",
    "edgeward/ratelimit/sliding_window.py",
    "edgeward/ratelimit/concurrency.py",
    "edgeward/ratelimit/limiter.py",
    "edgeward/ratelimit/keys.py",
    "edgeward/resilience/outcome.py",
    "edgeward/resilience/breaker.py",
    "edgeward/auth/consumer.py",
    "edgeward/auth/method.py",
    "edgeward/auth/tokens.py",
    "edgeward/auth/filter.py",
    "edgeward/auth/jwt.py",
    "edgeward/auth/keyauth.py",
)

_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _shim(module: str, src: str = _SRC) -> str:
    return os.path.join(src, module[: -len(".py")] + _SUFFIX)


def _group_libraries(src: str = _SRC) -> list[str]:
    return [os.path.join(src, n) for n in os.listdir(src)
            if n.endswith("__mypyc" + _SUFFIX)]


def clean(src: str = _SRC, modules: tuple[str, ...] = MODULES) -> None:
    for module in modules:
        try:
            os.unlink(_shim(module, src))
        except FileNotFoundError:
            pass
    for lib in _group_libraries(src):
        os.unlink(lib)


def stale(src: str = _SRC, modules: tuple[str, ...] = MODULES) -> bool | None:
    """None: no native build; True: a build that must not be used; False: a fresh build."""
    shims = [_shim(m, src) for m in modules]
    present = [s for s in shims if os.path.exists(s)]
    if not present:
        return None
    if len(present) != len(shims) or not _group_libraries(src):
        return True
    for module, shim in zip(modules, shims, strict=True):
        if os.stat(os.path.join(src, module)).st_mtime_ns > os.stat(shim).st_mtime_ns:
            return True
    return False


def guard(src: str = _SRC, modules: tuple[str, ...] = MODULES) -> None:
    if stale(src, modules):
        try:
            clean(src, modules)
        except OSError:
            return
        print("edgeward: sources changed since the native build; running as plain Python "
              "(rebuild: scripts/bootstrap.sh)", file=sys.stderr)


def build() -> int:
    """Compile MODULES in place; returns the compiler's exit status (0 = built)."""
    mypyc = shutil.which("mypyc", path=os.path.dirname(sys.executable)) or shutil.which("mypyc")
    if mypyc is None:
        print("edgeward: mypyc not found (pip install mypy); staying plain Python",
              file=sys.stderr)
        return 1
    clean()
    work = os.path.join(_SRC, "build")
    result = subprocess.run([mypyc, *MODULES], cwd=_SRC, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, check=False)
    shutil.rmtree(work, ignore_errors=True)
    if result.returncode != 0:
        clean()
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        print(f"edgeward: native build failed; staying plain Python\n{tail}", file=sys.stderr)
    return result.returncode


