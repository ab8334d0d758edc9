"""`edgeward canary start|status|promote|pause|abort [ROUTE]`: drive a gateway's canaries
through its admin API (POST /canaries/ACTION?route=ROUTE, GET /canaries)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_ADMIN = "127.0.0.1:9901"  # the admin listener's default (docs/admin.md)
TOKEN_ENV = "EDGEWARD_ADMIN_TOKEN"
ACTIONS = ("start", "status", "promote", "pause", "abort")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeward canary",
        description="Show or drive a route's canary through the admin API.")
    p.add_argument("action", choices=ACTIONS, help="what to do")
    p.add_argument("route", nargs="?", help="the route's name (status: all when omitted)")
    p.add_argument("--admin", default=os.environ.get("EDGEWARD_ADMIN", DEFAULT_ADMIN),
                   metavar="HOST:PORT",
                   help=f"admin listener (default: $EDGEWARD_ADMIN or {DEFAULT_ADMIN})")
    p.add_argument("--json", action="store_true", help="print the admin API's JSON")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    return p


def _summary(view: dict[str, Any]) -> str:
    window = view.get("window", {})
    s, c = window.get("stable", {}), window.get("canary", {})
    line = (f"{view['route']}: {view['phase']} weight {view['weight']}% step {view['step']} "
            f"({view['stable']} -> {view['canary']}); window stable "
            f"{s.get('requests', 0)} req {s.get('errors', 0)} err, canary "
            f"{c.get('requests', 0)} req {c.get('errors', 0)} err")
    history = view.get("history") or []
    if history:
        last = history[-1]
        line += f"\n  last: {last['decision']}: {last['reason']}"
    return line


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action != "status" and not args.route:
        print(f"edgeward canary {args.action}: name the ROUTE", file=sys.stderr)
        return 2
    base = f"http://{args.admin}"
    query = f"?route={urllib.parse.quote(args.route)}" if args.route else ""
    headers = {"Content-Type": "application/json"}
    token = os.environ.get(TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if args.action == "status":
        req = urllib.request.Request(f"{base}/canaries{query}", headers=headers)
    else:
        req = urllib.request.Request(f"{base}/canaries/{args.action}{query}", data=b"",
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:  # noqa: S310
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())
            message = f"{err.get('code')}: {err.get('message')}"
        except ValueError:
            message = str(exc)
        print(f"edgeward canary {args.action}: {exc.code} {message}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"edgeward canary: cannot reach the admin API at {args.admin}: {exc}",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
    elif isinstance(body, list):
        print("\n".join(_summary(v) for v in body) or "no canaries")
    elif "decision" in body:
        d = body["decision"]
        print(f"{d['decision']}: weight {d['weight_before']} -> {d['weight']}% "
              f"({d['phase']}): {d['reason']}")
    else:
        print(_summary(body))
    return 0
