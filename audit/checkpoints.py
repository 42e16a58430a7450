"""Signing checkpoints and checking their signatures (Ed25519)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit.models import Checkpoint, checkpoint_message


def sign_checkpoint(private_key: Ed25519PrivateKey, *, seq: int, head: str, at: str) -> Checkpoint:
    """A checkpoint for a log of ``seq`` entries ending in ``head``, signed with ``private_key``."""
    signature = private_key.sign(checkpoint_message(seq=seq, head=head, at=at))
    return Checkpoint(seq=seq, head=head, at=at, signature=signature.hex())


def signature_problem(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> str | None:
    """None when ``checkpoint`` is signed by the key's owner; otherwise what is wrong."""
    try:
        signature = bytes.fromhex(checkpoint.signature)
    except ValueError:
        return f"checkpoint at seq {checkpoint.seq}: signature is not hex"
    message = checkpoint_message(seq=checkpoint.seq, head=checkpoint.head, at=checkpoint.at)
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return (
            f"checkpoint at seq {checkpoint.seq} (signed {checkpoint.at}): the signature does not "
            "verify with the given public key; the checkpoint was altered or forged, or the key "
            "is not the one that signed it"
        )
    return None
