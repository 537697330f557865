"""Bundle signatures: Ed25519 over the manifest's digest, with the `cryptography` package.

    shotlab keygen keys/team                          # keys/team.key (private, 0600), team.pub
    shotlab export RUN --sign-key keys/team.key       # writes manifest.sig beside manifest.json
    shotlab predict BUNDLE photos/ --trusted-key keys/team.pub
    SHOTLAB_TRUSTED_KEYS=keys/team.pub shotlab ...    # every command that loads a bundle
    shotlab serve BUNDLE --trusted-key keys/team.pub  # also explain and explain app

The digest already covers every manifest key and every file's sha256 (`runtime.bundle`), so a
signature over it covers the whole bundle. The digest alone stops accidents and tampering by
someone who does not rewrite the manifest consistently; a signature also stops someone who can
rewrite the whole folder but does not hold the private key. Where trusted keys are given, an
unsigned bundle, or one signed by another key, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from shotlab.core.errors import InputError

SIGNATURE_FILE = "manifest.sig"
TRUSTED_KEYS_ENV = "SHOTLAB_TRUSTED_KEYS"  # public key files, separated like PATH


def key_id(public_key) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of its raw bytes' sha256."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(prefix) -> tuple[Path, Path]:
    """PREFIX.key (PEM, private, 0600) and PREFIX.pub (PEM, public); refuses to overwrite."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise InputError(f"{path} already exists; choose another prefix (keys are never "
                             f"overwritten)")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def load_key(path, *, private: bool):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                                   Ed25519PublicKey)

    path = Path(path)
    try:
        data = path.read_bytes()
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (OSError, ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise InputError(f"{path}: not a readable {kind} key ({exc}); make a pair with "
                         f"`shotlab keygen PREFIX`") from None
    expected = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, expected):
        raise InputError(f"{path}: not an Ed25519 key; make one with `shotlab keygen PREFIX`")
    return key


def sign(folder: Path, manifest: dict, private_key_path) -> Path:
    """Write `manifest.sig` in `folder`: the Ed25519 signature of the manifest's digest."""
    key = load_key(private_key_path, private=True)
    signature = key.sign(manifest["digest"].encode())
    record = {"algorithm": "ed25519", "key_id": key_id(key.public_key()),
              "signature": base64.b64encode(signature).decode()}
    path = Path(folder) / SIGNATURE_FILE
    path.write_text(json.dumps(record, indent=1))
    return path


def trusted_key_option(command):
    """`--trusted-key` (repeatable; `trusted_keys`) for every command that loads a bundle:
    predict, serve, explain and the explanation page."""
    import click

    return click.option(
        "--trusted-key", "trusted_keys", multiple=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="Require the bundle to be signed by this public key (repeatable) [default: "
             "$SHOTLAB_TRUSTED_KEYS, else no signature needed].")(command)


def trusted_keys_from_env() -> list[str]:
    """The public key files `$SHOTLAB_TRUSTED_KEYS` names (unset or empty: none). A value that
    names no file (':', a space) is refused: it would switch signature checks off in silence."""
    value = os.environ.get(TRUSTED_KEYS_ENV, "")
    keys = [p for p in value.split(os.pathsep) if p.strip()]
    if value and not keys:
        raise InputError(f"${TRUSTED_KEYS_ENV}={value!r} names no key file; set it to public key "
                         f"files separated by '{os.pathsep}', or unset it to run unsigned bundles")
    return keys


def verify_signature(folder: Path, manifest: dict, public_key_paths, name=None) -> str:
    """The key id that signed the bundle, or InputError when no trusted key did. `name(member="")`
    names the bundle in messages (`runtime.bundle.naming`: a .zip, not its temporary folder)."""
    from cryptography.exceptions import InvalidSignature

    name = name or (lambda member="": str(Path(folder) / member))
    keys = [load_key(p, private=False) for p in public_key_paths]  # a missing key file first
    path = Path(folder) / SIGNATURE_FILE
    try:
        record = json.loads(path.read_text())
        signature = base64.b64decode(record["signature"], validate=True)
    except FileNotFoundError:
        raise InputError(f"{name()}: the bundle is not signed (no {SIGNATURE_FILE}) and trusted "
                         f"keys are required; export it with --sign-key") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{name(SIGNATURE_FILE)}: not a readable signature ({exc}); re-sign "
                         f"the bundle") from None
    for key in keys:
        try:
            key.verify(signature, manifest["digest"].encode())
            return key_id(key)
        except InvalidSignature:
            continue
    raise InputError(f"{name()}: the bundle's signature does not verify against any trusted key "
                     f"({', '.join(map(str, public_key_paths))}); do not run it")
