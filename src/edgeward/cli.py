"""Command line: `edgeward run | proxy | validate | demo | register | canary`."""

from __future__ import annotations

import argparse
import asyncio
import os
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


EXAMPLES = """\
examples:
  edgeward proxy --listen 127.0.0.1:8080 --to 127.0.0.1:9000,127.0.0.1:9001
  edgeward proxy --listen 0.0.0.0:8080 --to 10.0.0.5:80 --admin 127.0.0.1:9901
  edgeward validate gateway.yaml
  edgeward run -c gateway.yaml --workers 4
  EDGEWARD_CONFIG=/etc/edgeward/gateway.yaml edgeward run
  edgeward run -c etcd://10.0.0.9:2379/edgeward/config
  EDGEWARD_LOG_LEVEL=debug EDGEWARD_LOG_FORMAT=json edgeward demo

environment:
  EDGEWARD_CONFIG      config file or etcd:// URL when none is given (run, validate)
  EDGEWARD_LOG_LEVEL   debug | info | warning | error | critical (default info)
  EDGEWARD_LOG_FORMAT  text | json (default text)
  EDGEWARD_NATIVE=0    run as plain Python, skip the compiled build

signals: SIGTERM/SIGINT drain and exit 0; SIGHUP rereads the config and reopens the logs.
docs: README.md, docs/deploy.md, docs/troubleshooting.md
"""

CONFIG_ENV = "EDGEWARD_CONFIG"
WORKERS_HELP = ("worker processes sharing the port with SO_REUSEPORT (default 1: predictable "
                "for a first run)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeward", description="Edge API gateway.",
                                epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"edgeward {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                         help="what to do (edgeward COMMAND --help for its options)")

    run = sub.add_parser("run", help="serve a YAML config (file path or etcd://HOST:PORT/KEY)",
                         description="Serve a YAML config and follow its changes.")
    run.add_argument("-c", "--config", metavar="FILE|URL",
                     help=f"config file or etcd://HOST:PORT/KEY URL (default: ${CONFIG_ENV})")
    run.add_argument("path", nargs="?", metavar="FILE|URL", help="the same, positionally")
    run.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS, metavar="N",
                     help=WORKERS_HELP)

    proxy = sub.add_parser("proxy", help="quick reverse proxy, no config file",
                           description="Reverse proxy to fixed targets, round robin.")
    proxy.add_argument("--listen", type=_address, required=True, metavar="HOST:PORT",
                       help="address for client traffic")
    proxy.add_argument("--to", type=_targets, required=True, metavar="HOST:PORT[,...]",
                       help="upstream targets, comma-separated")
    proxy.add_argument("--admin", type=_address, metavar="HOST:PORT",
                       help="serve the admin API, /metrics and the dashboard here "
                            "(default: off; keep it on a private address)")
    proxy.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS, metavar="N",
                       help=WORKERS_HELP)

    val = sub.add_parser("validate", help="check a config file; exit 1 listing each problem",
                         description="Check a config; print every problem as "
                                     "FILE: key.path: reason and exit 1, or exit 0.")
    val.add_argument("file", nargs="?", metavar="FILE",
                     help=f"config file (default: ${CONFIG_ENV})")

    demo = sub.add_parser("demo", help="serve a built-in demo with two echo origins",
                          description="A gateway with a gray split over two echo origins.")
    demo.add_argument("--listen", type=_address, default=("127.0.0.1", 8080),
                      metavar="HOST:PORT", help="address for client traffic "
                                                "(default 127.0.0.1:8080)")
    demo.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS, metavar="N",
                      help=WORKERS_HELP)

    sub.add_parser("register", help="register a service in the etcd registry "
                                    "(edgeward register --help)", add_help=False)
    sub.add_parser("canary", help="show or drive a route's canary: start | status | promote "
                                  "| pause | abort ROUTE (edgeward canary --help)",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["register"]:
        from edgeward.discovery.register import main as register_main

        return register_main(argv[1:])
    if argv[:1] == ["canary"]:
        from edgeward.canary.cli import main as canary_main

        return canary_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    from edgeward.observe.process_log import configure

    try:
        configure(os.environ)
    except ValueError as exc:
        print(f"edgeward: {exc}", file=sys.stderr)
        return 2
    try:
        return _command(parser, args)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"edgeward: {exc}", file=sys.stderr)
        return 1


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "validate":
        return _validate(_config_location(parser, args.file))
    if args.command == "proxy":
        from edgeward.launch import run_text

        text = _proxy_yaml(args.listen, args.to, args.admin)
        return run_text(text, "edgeward proxy", args.workers)
    if args.command == "demo":
        from edgeward.demo import run_demo

        return run_demo(args.listen, args.workers)
    if args.command == "run":
        if args.config is not None and args.path is not None:
            parser.error("run: give the config once (-c FILE or FILE)")
        return _run_source(_config_location(parser, args.config or args.path), args.workers)
    return 2


def _config_location(parser: argparse.ArgumentParser, given: str | None) -> str:
    location = given or os.environ.get(CONFIG_ENV)
    if not location:
        parser.error(f"no config: give a FILE (or -c FILE with run), or set {CONFIG_ENV}")
    return location


def _validate(path: str) -> int:
    import asyncio

    from edgeward.compose import Registry, compile_snapshot
    from edgeward.config.text import load_file
    from edgeward.launch import check_tls

    cfg = load_file(path)
    check_tls(cfg, path)  # the listeners' certificates and keys, read and checked
    loop = asyncio.new_event_loop()
    try:
        compile_snapshot(cfg, loop, Registry(), source=path)
    finally:
        loop.close()
    print(f"{path}: ok ({len(cfg.routes)} routes, {len(cfg.upstreams)} upstreams)")
    if not cfg.routes:
        print(f"{path}: note: no routes, so every request is answered 404 until routes "
              "come (a reload, POST /config)")
    return 0


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _proxy_yaml(listen: tuple[str, int], targets: list[tuple[str, int]],
                admin: tuple[str, int] | None = None) -> str:
    import json

    doc: dict[str, object] = {
        "listen": _hostport(listen),
        "upstreams": {"default": {"targets": [_hostport(t) for t in targets]}},
        # WebSocket handshakes are tunnelled with the defaults, as `caddy reverse-proxy` does.
        "routes": [{"name": "default", "match": {"path_prefix": "/"}, "upstream": "default",
                    "websocket": True}],
    }
    if admin is not None:
        doc["admin"] = _hostport(admin)
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
