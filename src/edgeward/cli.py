"""Command line: `edgeward run | proxy | validate | demo | register`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from edgeward import __version__
from edgeward.structs import ConfigError, Problem
from edgeward.values import parse_address

# One worker by default, as `caddy reverse-proxy`: predictable for a first run; `--workers`
# scales out over cores with SO_REUSEPORT.
DEFAULT_WORKERS = 1


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _targets(text: str) -> list[tuple[str, int]]:
    return [_address(t.strip()) for t in text.split(",") if t.strip()]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeward", description="Edge API gateway.")
    p.add_argument("--version", action="version", version=f"edgeward {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve a YAML config (file path or etcd://HOST:PORT/KEY)")
    run.add_argument("-c", "--config", required=True, help="config file or etcd:// URL")
    run.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS)

    proxy = sub.add_parser("proxy", help="quick reverse proxy, no config file")
    proxy.add_argument("--listen", type=_address, required=True, help="HOST:PORT")
    proxy.add_argument("--to", type=_targets, required=True, help="HOST:PORT[,HOST:PORT...]")
    proxy.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS)

    val = sub.add_parser("validate", help="check a config file; exit 1 listing each problem")
    val.add_argument("file")

    demo = sub.add_parser("demo", help="serve a built-in demo with two echo origins")
    demo.add_argument("--listen", type=_address, default=("127.0.0.1", 8080))
    demo.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS)

    sub.add_parser("register", help="register a service in the etcd registry", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["register"]:
        from edgeward.discovery.register import main as register_main

        return register_main(argv[1:])
    args = build_parser().parse_args(argv)
    from edgeward.gateway import configure_logging

    configure_logging()
    try:
        if args.command == "validate":
            return _validate(args.file)
        if args.command == "proxy":
            from edgeward.launch import run_text

            return run_text(_proxy_yaml(args.listen, args.to), "edgeward proxy", args.workers)
        if args.command == "demo":
            from edgeward.demo import run_demo

            return run_demo(args.listen, args.workers)
        if args.command == "run":
            return _run_source(args.config, args.workers)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"edgeward: {exc}", file=sys.stderr)
        return 1
    return 2


def _validate(path: str) -> int:
    import asyncio

    from edgeward.compose import Registry, compile_snapshot
    from edgeward.config.text import load_file

    cfg = load_file(path)
    loop = asyncio.new_event_loop()
    try:
        compile_snapshot(cfg, loop, Registry(), source=path)
    finally:
        loop.close()
    print(f"{path}: ok ({len(cfg.routes)} routes, {len(cfg.upstreams)} upstreams)")
    return 0


def _proxy_yaml(listen: tuple[str, int], targets: list[tuple[str, int]]) -> str:
    import json

    host = f"[{listen[0]}]" if ":" in listen[0] else listen[0]
    doc = {
        "listen": f"{host}:{listen[1]}",
        "upstreams": {"default": {"targets": [
            f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in targets]}},
        # WebSocket handshakes are tunnelled with the defaults, as `caddy reverse-proxy` does.
        "routes": [{"name": "default", "match": {"path_prefix": "/"}, "upstream": "default",
                    "websocket": True}],
    }
    return json.dumps(doc)  # JSON is YAML


def _run_source(location: str, workers: int) -> int:
    from edgeward.config.sources import open_source

    async def first_load() -> tuple[str, str]:
        source = open_source(location)
        try:
            return await source.load()
        finally:
            await source.close()

    try:
        text, label = asyncio.run(first_load())
    except ConfigError:
        raise
    except (OSError, LookupError, ValueError) as exc:
        raise ConfigError(location, [Problem("", str(exc))]) from None
    from edgeward.launch import run_text

    return run_text(text, label, workers, watch=location)


if __name__ == "__main__":
    sys.exit(main())
