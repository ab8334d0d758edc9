"""The aetcd client with what aetcd leaves out: TLS (CA, client certificate) and a token that
is fetched again when etcd stops accepting it.

etcd's auth API hands out a token (`Authenticate(name, password)`); a `simple` token expires
after `--auth-token-ttl` seconds without use (300 s by default), a JWT token at its `exp`, and a
restarted or different member does not know a simple token at all. A call that comes back
UNAUTHENTICATED ("invalid auth token") is therefore retried once after a fresh Authenticate on
the same member (`EtcdConnection.call`); a watch stream is re-created with the new token when it
reconnects. etcdctl and clientv3 do the same (clientv3's `shouldRefreshToken`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aetcd
import grpc  # type: ignore[import-untyped]
from aetcd import rpc, watcher

from edgeward.tls.config import StoreTlsConfig


@dataclass(frozen=True)
class EtcdAccess:
    """Credentials and TLS for every etcd client of a gateway (`etcd:` keys, or the
    EDGEWARD_ETCD_* environment for an `etcd://` config source)."""

    username: str | None = None
    password: str | None = None
    tls: StoreTlsConfig | None = None

    def __repr__(self) -> str:      # never the password
        return f"EtcdAccess(username={self.username!r}, tls={self.tls is not None})"

    def credentials(self) -> Any:
        """grpc.ChannelCredentials for a TLS channel, None for a plain one."""
        if self.tls is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.tls.ca),
            private_key=_read(self.tls.client_key),
            certificate_chain=_read(self.tls.client_cert))


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class Client(aetcd.Client):  # type: ignore[misc]
    """aetcd.Client over a TLS channel when `access.tls` is set, with `reauthenticate()`."""

    def __init__(self, host: str, port: int, *, timeout: float, options: dict[str, Any],
                 access: EtcdAccess | None = None) -> None:
        access = access if access is not None else EtcdAccess()
        super().__init__(host=host, port=port, username=access.username,
                         password=access.password, timeout=timeout,
                         options=options)
        self.access = access
        self.authentications = 0          # how many tokens this client asked for

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        target = f"{self._host}:{self._port}"
        credentials = self.access.credentials()
        options = list(self._options.items())
        self.channel = (rpc.secure_channel(target, credentials, options=options)
                        if credentials is not None
                        else rpc.insecure_channel(target, options=options))
        try:
            if self.access.username is not None:
                await self._authenticate()
        except grpc.aio.AioRpcError as exc:
            await self.channel.close()
            aetcd.exceptions._handle_exception(exc)
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(
            rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
        self._connected.set()

    async def _authenticate(self) -> None:
        stub = rpc.AuthStub(self.channel)
        request = rpc.AuthenticateRequest(name=self.access.username,
                                          password=self.access.password)
        resp = await asyncio.wait_for(stub.Authenticate(request), self._timeout)
        self.metadata = (("token", resp.token),)
        self.authentications += 1

    async def reauthenticate(self) -> None:
        """A fresh token for the calls that follow (the old one expired)."""
        try:
            await self._authenticate()
        except grpc.aio.AioRpcError as exc:
            aetcd.exceptions._handle_exception(exc)
        if self._watcher is not None:
            self._watcher._metadata = self.metadata


# etcdctl reads ETCDCTL_USER ("name:password"), ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY;
# the same names under EDGEWARD_ETCD_ serve what has no `etcd:` block to read them from: an
# `etcd://` config source (`edgeward run -c etcd://...`) and `edgeward register`.
ENV_USER = "EDGEWARD_ETCD_USER"
ENV_CACERT = "EDGEWARD_ETCD_CACERT"
ENV_CERT = "EDGEWARD_ETCD_CERT"
ENV_KEY = "EDGEWARD_ETCD_KEY"


def access_from_env(environ: Mapping[str, str]) -> EtcdAccess:
    """EtcdAccess from EDGEWARD_ETCD_*; ValueError naming the variable when one is wrong."""
    username = password = None
    user = environ.get(ENV_USER)
    if user:
        username, colon, password = user.partition(":")
        if not colon or not username or not password:
            raise ValueError(f"{ENV_USER} must be NAME:PASSWORD")
    files = {name: environ.get(name) or None for name in (ENV_CACERT, ENV_CERT, ENV_KEY)}
    tls = None
    if any(files.values()):
        tls = StoreTlsConfig(ca=files[ENV_CACERT], client_cert=files[ENV_CERT],
                             client_key=files[ENV_KEY])
        for key, reason in tls.check():
            name = {"ca": ENV_CACERT, "client_cert": ENV_CERT, "client_key": ENV_KEY}[key]
            raise ValueError(f"{name}: {reason}")
    return EtcdAccess(username, password, tls)
