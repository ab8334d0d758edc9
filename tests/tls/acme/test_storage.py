"""ACME storage: 0600 files, 0700 folders, atomic replacement, the account kept."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from tests.tls.certkit import Authority

from edgeward.tls.acme.storage import AcmeStorage, atomic_write


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_account_key_is_made_once_and_kept(tmp_path: Path) -> None:
    storage = AcmeStorage(str(tmp_path / "acme"), "https://ca.test:14000/dir")
    key = storage.account_key()
    assert storage.account_key().thumbprint() == key.thumbprint()
    assert mode(storage.account_dir) == 0o700 and mode(tmp_path / "acme") == 0o700
    assert mode(os.path.join(storage.account_dir, "account.key")) == 0o600
    assert storage.account_url() is None
    storage.save_account_url("https://ca.test/acct/1")
    assert AcmeStorage(str(tmp_path / "acme"), "https://ca.test:14000/dir").account_url() == (
        "https://ca.test/acct/1")
    assert AcmeStorage(str(tmp_path / "acme"), "https://other.test/dir").account_url() is None


def test_certificate_round_trip(tmp_path: Path, inter: Authority) -> None:
    storage = AcmeStorage(str(tmp_path), "https://ca.test/dir")
    assert storage.load_certificate("a.test") is None
    leaf = inter.issue(["a.test"])
    storage.save_certificate("a.test", leaf.chain_pem, leaf.key)
    files = storage.certificate_config("a.test")
    assert files.cert and files.key and mode(files.cert) == mode(files.key) == 0o600
    pair = storage.load_certificate("a.test", time.time())
    assert pair is not None and pair.leaf == leaf.cert
    assert storage.load_certificate("a.test", time.time() + 400 * 86400) is None  # expired


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    inode = os.stat(target).st_ino
    atomic_write(str(target), b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o600
    assert os.stat(target).st_ino != inode                   # renamed over, not rewritten
    assert os.listdir(tmp_path) == ["f"]
