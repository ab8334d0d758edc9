"""ACME state on disk: the account key and URL per directory, a certificate per name.

    STORAGE/                                  0700
      <directory host and path>/account.key   the account's P-256 key (PEM, 0600)
      <directory host and path>/account.url   its URL at the CA
      certificates/<first domain>/cert.pem    chain, leaf first (0600)
      certificates/<first domain>/key.pem     the certificate's key (0600)
      locks/                                  file locks (lock.py)

Every file is written whole to a temporary file beside it, flushed, and renamed over the old
one, then the directory is flushed: a reader (this gateway's certificate watch, another
worker) sees the old file or the new one, never half of one. The key is written before the
certificate, so a watcher that sees the new certificate finds its key already there.
"""

from __future__ import annotations

import os
import re
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeward.tls.acme.jws import AccountKey
from edgeward.tls.certs import CertifiedKey, PrivateKey, TlsError, read_pair
from edgeward.tls.config import AcmeKeyType, CertificateConfig


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` all at once, created with `mode`."""
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def new_certificate_key(kind: AcmeKeyType) -> PrivateKey:
    if kind == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "_"


class AcmeStorage:
    """Files under one storage root."""

    def __init__(self, root: str, directory_url: str) -> None:
        self.root = root
        self.account_dir = os.path.join(root, slug(directory_url.partition("://")[2]))
        for folder in (root, self.account_dir, os.path.join(root, "certificates"),
                       os.path.join(root, "locks")):
            os.makedirs(folder, mode=0o700, exist_ok=True)

    def account_key(self) -> AccountKey:
        """The account key of this directory, made and saved on first use."""
        path = os.path.join(self.account_dir, "account.key")
        try:
            with open(path, "rb") as fh:
                return AccountKey.from_pem(fh.read())
        except FileNotFoundError:
            key = AccountKey.generate()
            atomic_write(path, key.to_pem())
            return key

    def account_url(self) -> str | None:
        try:
            with open(os.path.join(self.account_dir, "account.url")) as fh:
                return fh.read().strip() or None
        except FileNotFoundError:
            return None

    def save_account_url(self, url: str) -> None:
        atomic_write(os.path.join(self.account_dir, "account.url"), url.encode())

    def certificate_config(self, name: str) -> CertificateConfig:
        """The files of the certificate for `name`, as a `certificates[]` entry."""
        folder = os.path.join(self.root, "certificates", slug(name))
        return CertificateConfig(cert=os.path.join(folder, "cert.pem"),
                                 key=os.path.join(folder, "key.pem"))

    def save_certificate(self, name: str, chain_pem: bytes, key: PrivateKey) -> None:
        files = self.certificate_config(name)
        assert files.cert is not None and files.key is not None
        os.makedirs(os.path.dirname(files.cert), mode=0o700, exist_ok=True)
        atomic_write(files.key, key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        atomic_write(files.cert, chain_pem)

    def load_certificate(self, name: str, now: float | None = None) -> CertifiedKey | None:
        """The stored certificate for `name` if there is a valid one, else None."""
        files = self.certificate_config(name)
        assert files.cert is not None
        if not os.path.exists(files.cert):
            return None
        try:
            return read_pair(files, f"acme:{name}", time.time() if now is None else now)
        except TlsError:
            return None
