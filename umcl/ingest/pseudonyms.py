"""Keyed pseudonyms for everything that could point back at a patient: patient, record and image
ids. Native ids stop at ingestion; every later table names a sample, a patient or an image only
by an HMAC of its native id under a secret key.

The key comes from the environment (`UMCL_PSEUDONYM_KEY`) or from the git-ignored file
`.umcl/pseudonym.key`, never from params: a key in `params.yaml` would reach git, `dvc.lock` and
every model's metadata, and with it a 10⁷ MRN space is enumerated in seconds. DVC sees only a
one-way fingerprint of the key (`umcl key-fingerprint`), so a new key reruns ingestion.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from umcl.demo.manifest import demo_folders
from umcl.errors import UMCLError
from umcl.keys import MAKE_A_KEY, MIN_KEY_LENGTH

KEY_ENV = "UMCL_PSEUDONYM_KEY"
KEY_FILE = Path(".umcl/pseudonym.key")
# The synthetic demo has no real patients; its data may use a public key so `make run` needs no
# set-up. Any source outside the demo's folder needs a secret of the site's own.
DEMO_KEY = "umcl-demo-key"


class PseudonymKeyError(UMCLError, ValueError):
    """No usable key for a non-demo source; the message says how to set one."""


def _key_from_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except UnicodeDecodeError:
        raise PseudonymKeyError(f"{path}: the key file is not UTF-8 text") from None


def resolve_key(
    source_paths: Iterable[Path], demo_root: Path | None, key_file: Path = KEY_FILE
) -> str:
    """The pseudonym key for these sources: the environment's, else the key file's, else (only
    when every source lies in a folder `umcl demo` wrote) the demo key."""
    key = os.environ.get(KEY_ENV, "").strip() or _key_from_file(key_file)
    if key is not None:
        if len(key) < MIN_KEY_LENGTH:
            raise PseudonymKeyError(
                f"the pseudonym key is {len(key)} characters; use at least {MIN_KEY_LENGTH} "
                f"(e.g. `{MAKE_A_KEY}`)"
            )
        return key
    synthetic = demo_folders(demo_root)
    outside = [
        str(p)
        for p in source_paths
        if not any(Path(p).resolve().is_relative_to(f) for f in synthetic)
    ]
    if outside:
        raise PseudonymKeyError(
            f"sources {outside} are not demo data and no pseudonym key is set. Set one of your "
            f"own: `export {KEY_ENV}=$({MAKE_A_KEY})` "
            f"or write it to {key_file} (git-ignored). Keep it: a new key gives every patient a "
            "new pseudonym."
        )
    return DEMO_KEY


def fingerprint(key: str) -> str:
    """A one-way fingerprint of the key for DVC: changes when the key does, and scrypt makes
    guessing a weak key from it slow."""
    digest = hashlib.scrypt(
        key.encode(), salt=b"umcl-pseudonym-key-fingerprint", n=2**14, r=8, p=1, dklen=16
    )
    return digest.hex()


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms under one key, separated by what they name and by source, so two
    datasets' ids never collide and a record id never equals a patient id."""

    def __init__(self, key: str):
        self._key = key.encode()

    def _digest(self, kind: str, namespace: str, native_id: str, length: int) -> str:
        message = f"{kind}\x00{namespace}\x00{native_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:length]

    def patient(self, namespace: str, native_id: str) -> str:
        return f"pt-{self._digest('patient', namespace, native_id, 20)}"

    def record(self, namespace: str, native_id: str) -> str:
        return f"{namespace}:{self._digest('record', namespace, native_id, 20)}"

    def image(self, namespace: str, location: str) -> str:
        """An image's key, from its path inside the source folder."""
        return f"img-{self._digest('image', namespace, location, 24)}"
