"""Key rotation, announced in the log itself.

An ``audit.key_rotated`` entry names the retiring key and the new one (as vkeys) and carries a
statement signed by both: the retiring key hands over, the new key shows it is held. The
commit that appends it is the retiring key's last checkpoint; every later one is signed by the
new key. A verifier that trusts the retiring key learns the new one from the entry, so an
auditor needs only the key they were first given.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.note import ED25519, Verifier

ROTATION_EVENT = "audit.key_rotated"
_LABEL = b"exdesk audit key rotation/v1\n"


def statement(old: Verifier, new: Verifier) -> bytes:
    return _LABEL + old.vkey().encode("ascii") + b"\n" + new.vkey().encode("ascii") + b"\n"


def rotation_payload(
    old_key: Ed25519PrivateKey, new_key: Ed25519PrivateKey, origin: str, reason: str
) -> dict[str, Any]:
    old = Verifier(origin, ED25519, old_key.public_key())
    new = Verifier(origin, ED25519, new_key.public_key())
    message = statement(old, new)
    return {
        "old_key": old.vkey(),
        "new_key": new.vkey(),
        "reason": reason,
        "old_signature": base64.b64encode(old_key.sign(message)).decode("ascii"),
        "new_signature": base64.b64encode(new_key.sign(message)).decode("ascii"),
    }


def rotation_problem(payload: dict[str, Any], old: Verifier, new: Verifier) -> str | None:
    """None when both keys signed the hand-over; otherwise what is wrong with it."""
    if old.kind != ED25519 or new.kind != ED25519:
        return "a key rotation between keys that are not Ed25519 note signers"
    if old.name != new.name:
        return f"a key rotation from log {old.name!r} to log {new.name!r}"
    message = statement(old, new)
    for who, key in (("old", old), ("new", new)):
        try:
            signature = base64.b64decode(str(payload.get(f"{who}_signature", "")), validate=True)
        except binascii.Error:
            return f"the {who} key's signature on the key rotation is not base64"
        if not key.verify(message, signature):
            return f"the key rotation is not signed by the {who} key it names"
    return None
