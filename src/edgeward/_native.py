"""Optional native build of the data-plane modules with mypyc, and the guard against stale builds.

The per-request path (listener, upstream codec, exchange, routing table, balancers, metric
children) is strictly typed Python; compiled with mypyc it runs about twice as fast, which is
most of the gap to nginx. The build is optional: without a C compiler the same modules run as
plain Python. `build()` (scripts/bootstrap.sh calls it) compiles in place: the shared objects
sit next to the sources, where the import system prefers them; `clean()` removes them.

Staleness: a compiled module that no longer matches its sources would silently run old code.
What a build depends on is more than the compiled modules: mypyc reads every module they
import and inlines `Final` constants taken from them (routing/split.py compiles in
PERCENT_BUCKETS from routing/config.py, which stays interpreted). So `build()` records, in
MANIFEST, a SHA-256 of every source in the import closure of MODULES (package `__init__`s
included, imports under TYPE_CHECKING too, since mypyc sees them). `guard()` runs when the
package is imported: when any recorded source differs, the manifest is missing or a shared
object is missing, it removes every compiled shim of the group (they call each other natively,
so they are used all together or not at all) and says so once on stderr. If they cannot be
removed (a read-only install), it fails closed all the same: an import hook makes each of
MODULES load from its source.

A process that starts without a usable build (none yet, or one being compiled) also loads
MODULES from their sources for its whole life, through the same hook: a build finished while
it runs must not mix compiled modules into an interpreted data plane. A build under way
holds LOCK (the builder's process id), so that a process starting meanwhile leaves the
half-written build alone; the next start uses the finished build. `scripts/bootstrap.sh`
with EDGEWARD_NATIVE=background (what `scripts/demo.sh` does) builds so, in the background,
and the gateway answers at once as plain Python.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from types import ModuleType

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
    "edgeward/http/date.py",
    "edgeward/http/h1/head.py",
    "edgeward/http/h1/server.py",
    "edgeward/http/h1/client.py",
    "edgeward/http/h1/wire.py",
    "edgeward/http/h2/client.py",
    "edgeward/http/h2/pool.py",
    "edgeward/http/h2/limits.py",
    "edgeward/http/h2/codec.py",
    "edgeward/http/h2/request_head.py",
    "edgeward/http/h2/stream.py",
    "edgeward/http/h2/server.py",
    "edgeward/http/h2/select.py",
    "edgeward/http/ws_frames.py",
    "edgeward/http/ws_handshake.py",
    "edgeward/http/ws_liveness.py",
    "edgeward/http/tunnel.py",
    "edgeward/http/ws_codec.py",
    "edgeward/http/ws_endpoint.py",
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
    "edgeward/filters/cache.py",
    "edgeward/cache/policy.py",
    "edgeward/cache/store.py",
    "edgeward/cache/key.py",
    "edgeward/cache/rules.py",
    "edgeward/cache/tier.py",
    "edgeward/grpc/status.py",
    "edgeward/grpc/web.py",
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
    "edgeward/canary/arms.py",
    "edgeward/canary/filter.py",
    "edgeward/filters/subset.py",
    "edgeward/balance/endpoint.py",
    "edgeward/balance/base.py",
    "edgeward/balance/round_robin.py",
    "edgeward/balance/least_request.py",
    "edgeward/balance/peak_ewma.py",
    "edgeward/balance/hashed.py",
    "edgeward/balance/ring_hash.py",
    "edgeward/balance/maglev.py",
    "edgeward/balance/hashing.py",
    "edgeward/balance/locality.py",
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
    "edgeward/auth/certnames.py",
    "edgeward/auth/clientcert.py",
)

_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
# Beside the compiled modules: {source path relative to the source root: SHA-256}.
MANIFEST = "native-build.json"
# Beside them too while a build runs: the process id of the build (or of the background job
# that runs it).
LOCK = "native-build.lock"
# What guard() found in this process: "compiled", "none", "building", "stale", "disabled".
state = "none"


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
    try:
        os.unlink(_manifest_path(src, modules))
    except FileNotFoundError:
        pass


def _manifest_path(src: str, modules: Sequence[str]) -> str:
    return os.path.join(src, modules[0].split("/")[0], MANIFEST)


def _lock_path(src: str, modules: Sequence[str]) -> str:
    return os.path.join(src, modules[0].split("/")[0], LOCK)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def builder(src: str = _SRC, modules: Sequence[str] = MODULES) -> int | None:
    """The process id of a build under way (its lock names a live process), else None."""
    try:
        with open(_lock_path(src, modules), encoding="ascii") as f:
            pid = int(f.read().strip() or "0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _alive(pid) else None


def dependencies(src: str = _SRC, modules: Sequence[str] = MODULES) -> list[str]:
    """Every source the build reads: the import closure of `modules` within their top-level
    packages, with the `__init__.py` of each package on the way (paths relative to `src`)."""
    roots = {m.split("/")[0] for m in modules}
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        rel = todo.pop()
        if rel in seen or not os.path.isfile(os.path.join(src, rel)):
            continue
        seen.add(rel)
        parts = rel[:-3].split("/")
        todo += ["/".join(parts[:i]) + "/__init__.py" for i in range(1, len(parts))]
        with open(os.path.join(src, rel), "rb") as f:
            tree = ast.parse(f.read(), rel)
        for name in _imported(tree, parts[:-1]):
            if name.split(".")[0] in roots:
                todo += _module_files(src, name)
    return sorted(seen)


def _imported(tree: ast.Module, package: list[str]) -> list[str]:
    """Dotted names a module imports, relative imports resolved; for `from X import y` both
    X and X.y (y may be a submodule)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.append(module)
            names += [f"{module}.{a.name}" for a in node.names]
    return names


def _module_files(src: str, dotted: str) -> list[str]:
    path = dotted.replace(".", "/")
    candidates = (f"{path}.py", f"{path}/__init__.py")
    return [p for p in candidates if os.path.isfile(os.path.join(src, p))]


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_manifest(src: str = _SRC, modules: tuple[str, ...] = MODULES) -> None:
    sources = {rel: _digest(os.path.join(src, rel)) for rel in dependencies(src, modules)}
    with open(_manifest_path(src, modules), "w", encoding="utf-8") as f:
        json.dump(sources, f, indent=0, sort_keys=True)


def stale(src: str = _SRC, modules: tuple[str, ...] = MODULES) -> bool | None:
    """None: no native build; True: a build that must not be used; False: a fresh build."""
    shims = [_shim(m, src) for m in modules]
    present = [s for s in shims if os.path.exists(s)]
    if not present:
        return None
    if len(present) != len(shims) or not _group_libraries(src):
        return True
    try:
        with open(_manifest_path(src, modules), encoding="utf-8") as f:
            recorded = json.load(f)
        if not isinstance(recorded, dict) or not set(modules) <= set(recorded):
            return True
        return any(_digest(os.path.join(src, rel)) != h for rel, h in recorded.items())
    except (OSError, ValueError):
        return True  # no manifest, an unreadable one, or a recorded source gone


class SourcesFirst(importlib.abc.MetaPathFinder):
    """Loads each of the compiled modules from its `.py` file, whatever lies beside it."""

    def __init__(self, src: str, modules: Sequence[str]) -> None:
        self.files = {m[:-3].replace("/", "."): os.path.join(src, m) for m in modules}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        return None if file is None else importlib.util.spec_from_file_location(fullname, file)


def guard(src: str = _SRC, modules: tuple[str, ...] = MODULES) -> SourcesFirst | None:
    """Use a fresh build; otherwise load MODULES from their sources (the hook returned), and
    remove a stale build unless one is being written. With EDGEWARD_NATIVE=0 in the
    environment, a fresh build is left in place but not used (the test script runs the codec
    tests so, beside the compiled run)."""
    global state
    if os.environ.get("EDGEWARD_NATIVE") == "0":
        state = "disabled"
        return _sources_first(src, modules)
    if builder(src, modules) is not None:
        state = "building"
        return _sources_first(src, modules)
    found = stale(src, modules)
    if found is None:
        state = "none"
        return _sources_first(src, modules)
    if not found:
        state = "compiled"
        return None
    state = "stale"
    try:
        clean(src, modules)
    except OSError as exc:
        print(f"edgeward: sources changed since the native build, which cannot be removed "
              f"({exc.strerror}); running as plain Python (rebuild: scripts/bootstrap.sh)",
              file=sys.stderr)
        return _sources_first(src, modules)
    print("edgeward: sources changed since the native build; running as plain Python "
          "(rebuild: scripts/bootstrap.sh)", file=sys.stderr)
    return _sources_first(src, modules)


def _sources_first(src: str, modules: Sequence[str]) -> SourcesFirst:
    hook = SourcesFirst(src, modules)
    sys.meta_path.insert(0, hook)
    return hook


def note() -> str | None:
    """What a serving process says once at start when its data plane is not compiled."""
    if state == "building":
        return ("data plane: plain Python for now; the native build is compiling in the "
                "background (about a minute) and the next start uses it (about twice as fast)")
    if state == "none":
        return ("data plane: plain Python, about half the compiled speed (no native build: "
                "scripts/bootstrap.sh, or `python -m edgeward.build_native` with mypy and a "
                "C compiler, compiles it)")
    return None


def build() -> int:
    """Compile MODULES in place; returns the compiler's exit status (0 = built). Holds LOCK
    meanwhile (or runs under the lock of the background job that started it)."""
    mypyc = shutil.which("mypyc", path=os.path.dirname(sys.executable)) or shutil.which("mypyc")
    if mypyc is None:
        print("edgeward: mypyc not found (pip install mypy); staying plain Python",
              file=sys.stderr)
        return 1
    holder = builder()
    if holder is not None and holder not in (os.getpid(), os.getppid()):
        print(f"edgeward: a native build is already under way (process {holder})",
              file=sys.stderr)
        return 1
    lock = _lock_path(_SRC, MODULES)
    if holder is None:
        with open(lock, "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
    try:
        return _compile(mypyc)
    finally:
        if holder is None:
            os.unlink(lock)


def _compile(mypyc: str) -> int:
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
    write_manifest()
    return 0

