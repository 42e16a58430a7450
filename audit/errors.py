"""Errors the audit log raises on purpose; all descend from exdesk's one error root."""

from __future__ import annotations

from domain.errors import ExdeskError


class AuditError(ExdeskError):
    """The audit log could not do what was asked; the message says why and what to do."""


class AuditKeyError(AuditError):
    """A signing or public key file is missing, unreadable, unsafe or not an Ed25519 key."""
