"""The Ed25519 key pair that signs checkpoints, kept as two PEM files, and the verifier keys
auditors hold (PEM, or C2SP vkeys that also name the log).

The private key (PKCS#8, unencrypted, mode 0600) is at the path a setting names, by default
``audit-signing-key.pem``; the public key (SubjectPublicKeyInfo), what auditors get, beside it
with ``.pub`` before the suffix (``audit-signing-key.pub.pem``). Both are written
atomically: a temporary file in the same directory, fsynced, then linked into place, so a
reader never sees half a key and two processes creating the pair at once end up sharing one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit.errors import AuditKeyError
from audit.note import ED25519, NoteError, Verifier, parse_vkey

PRIVATE_KEY_FILE = "audit-signing-key.pem"
ANY_ORIGIN = "*"  # the name of a key read from PEM: it signs under whatever origin it signs


def public_key_path(private_key: str | os.PathLike[str]) -> Path:
    """Where :func:`load_or_create_signing_key` keeps the public key of ``private_key``."""
    path = Path(private_key)
    return path.with_name(f"{path.stem}.pub{path.suffix or '.pem'}")


def load_or_create_signing_key(private_key: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The signing key at ``private_key``, created (with its public key file) when absent."""
    private_path = Path(private_key)
    folder = private_path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_new(private_path, pem, mode=0o600)
    key = _load_private_key(private_path)
    public_path = public_key_path(private_path)
    if not public_path.exists():
        _write_new(public_path, public_key_pem(key.public_key()), mode=0o644)
    if public_key_pem(load_public_key(public_path)) != public_key_pem(key.public_key()):
        raise AuditKeyError(
            f"{public_path} does not belong to the signing key {private_path}; delete it to have "
            "it written again from the signing key"
        )
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file at ``path``."""
    return _pem_public(Path(path), _read(Path(path), "public key"))


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """``public_key`` as PEM (SubjectPublicKeyInfo), the form :func:`load_public_key` reads."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    _refuse_if_exposed(path)
    data = _read(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(
            f"{path}: not an unencrypted PEM private key ({exc}); move it away to have a new "
            "key pair created, or restore the right file"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def _refuse_if_exposed(path: Path) -> None:
    if sys.platform == "win32":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AuditKeyError(
            f"{path}: the signing key is readable or writable by others (mode {mode:04o}); "
            f"run `chmod 600 {path}`"
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AuditKeyError(f"{path}: no {what} file there; check the path") from None
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot read the {what} ({exc.strerror})") from exc


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` atomically unless ``path`` exists; an existing file wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed or the platform ignored it
        _link_unless_exists(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _link_unless_exists(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:  # no hard links on this filesystem: replace, unless someone got there first
        if not path.exists():
            os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyFile:
    """The signing key at a path, loaded (or created, with its public key file) at first use;
    :meth:`reload` reads it again (after another process rotated the key)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._key: Ed25519PrivateKey | None = None

    def private_key(self) -> Ed25519PrivateKey:
        if self._key is None:
            self._key = load_or_create_signing_key(self.path)
        return self._key

    def public_key(self) -> Ed25519PublicKey | None:
        """The public key, without creating a key pair; None when there is none yet."""
        if self._key is not None:
            return self._key.public_key()
        public = public_key_path(self.path)
        return load_public_key(public) if public.exists() else None

    def reload(self) -> None:
        self._key = None


class StaticKey:
    """A signing key held in memory (tests, benchmarks, a key from a secrets manager)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    def public_key(self) -> Ed25519PublicKey | None:
        return self._key.public_key()

    def reload(self) -> None:
        return None


def log_verifier(public_key: Ed25519PublicKey, origin: str = ANY_ORIGIN) -> Verifier:
    """The verifier of a log's checkpoints (named after its origin; ``*`` for any)."""
    return Verifier(origin, ED25519, public_key)


def read_verifiers(source: str | os.PathLike[str]) -> list[Verifier]:
    """The keys in a file (PEM public keys and/or vkeys, one a line) or a vkey given as text.

    A PEM key names no log: it verifies checkpoints of whatever origin they carry (``*``).
    """
    text = str(source)
    if "+" in text and not Path(text).exists():
        try:
            return [parse_vkey(text)]
        except NoteError as exc:
            raise AuditKeyError(f"{text}: no such file, and not a verifier key ({exc})") from None
    path = Path(source)
    data = _read(path, "public key")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuditKeyError(f"{path}: not a PEM file or a verifier key (not UTF-8)") from None
    keys: list[Verifier] = []
    begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    inside: list[str] | None = None
    for number, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if stripped == begin:
            inside = [stripped]
        elif inside is not None:
            inside.append(stripped)
            if stripped == end:
                keys.append(log_verifier(_pem_public(path, "\n".join(inside).encode("ascii"))))
                inside = None
        else:
            if stripped and not stripped.startswith("#"):
                try:
                    keys.append(parse_vkey(stripped))
                except NoteError as exc:
                    raise AuditKeyError(f"{path} line {number}: {exc}") from None
    if not keys:
        raise AuditKeyError(
            f"{path}: no public key in it; give the PEM or the verifier key that "
            "`exdesk audit pubkey` prints"
        )
    return keys


def _pem_public(path: Path, data: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise AuditKeyError(f"{path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path}: holds a {type(key).__name__}, not an Ed25519 public key")
    return key
