"""The device API's end-to-end gateway config, shared by its test modules: an own-device
route behind API keys and an open route."""

from __future__ import annotations


def config(redis_url: str, consumers: tuple[str, ...], api: str) -> str:
    """`consumers` get the API key `k-NAME`; `api` is the open route's `devices:` mapping."""
    keys = "".join(f"  {name}: {{api_keys: [k-{name}]}}\n" for name in consumers)
    return (
        "listen: {listen}\nadmin: {admin}\n"
        f"redis: {{url: '{redis_url}'}}\n"
        "devices: {shards: 4, stream_maxlen: 1000}\n"
        "consumers:\n" + keys +
        "routes:\n"
        "  - name: own\n"
        "    match: {path_prefix: /own/}\n"
        "    devices: {own_device_only: true}\n"
        "    filters: [{api_key: {}}]\n"
        "  - name: api\n"
        "    match: {path_prefix: /}\n"
        f"    devices: {api}\n"
    )

