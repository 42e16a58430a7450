"""Opening an installation's audit log for the `exdesk audit` commands, without creating
anything: a mistyped data dir is an error, not a new empty log. And reading what an auditor
brings (public keys, a trusted checkpoint, a witness policy) into a ``Trust``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc, make_url

from audit.checkpoint import SignedCheckpoint, parse_checkpoint
from audit.errors import AuditError
from audit.keys import KeyFile, log_verifier, read_verifiers
from audit.log import AuditLog
from audit.note import NoteError, Verifier
from audit.policy import load_policy
from audit.verify import Trust
from domain.errors import ExdeskError
from service.settings import Settings
from store.db import make_engine
from store.migrate import current_revisions, head_revisions


class NotAnInstallation(ExdeskError):
    """The data dir or database holds no exdesk audit log (nothing was created)."""


@dataclass
class Opened:
    settings: Settings
    log: AuditLog
    key: KeyFile

    def own_verifier(self) -> Verifier | None:
        """The installation's key, as the vkey of its log (when the key pair exists)."""
        public = self.key.public_key()
        return None if public is None else log_verifier(public, self.log.origin())


@contextmanager
def existing_log(settings: Settings) -> Iterator[Opened]:
    url = settings.database()
    where = make_url(url).render_as_string(hide_password=True)
    if settings.database_url is None:
        if not settings.data_dir.is_dir():
            raise NotAnInstallation(
                f"{settings.data_dir}: no such data dir (nothing was created); check the path "
                "or --data-dir"
            )
        if not (settings.data_dir / "exdesk.db").is_file():
            raise NotAnInstallation(
                f"{settings.data_dir}: no exdesk database in it (exdesk.db); check the path"
            )
    engine = make_engine(url)
    try:
        try:
            revisions = current_revisions(engine)
        except exc.SQLAlchemyError as error:
            raise NotAnInstallation(
                f"{where}: cannot be read ({error.__class__.__name__})"
            ) from None
        if not revisions:
            raise NotAnInstallation(f"{where}: holds no exdesk schema (nothing was created)")
        if revisions != head_revisions():
            raise NotAnInstallation(
                f"{where}: its schema is not this exdesk's (at {', '.join(sorted(revisions))}); "
                "any other exdesk command migrates it (e.g. `exdesk review list`)"
            )
        key = KeyFile(settings.signing_key_path())
        yield Opened(settings, AuditLog(engine, signer=key), key)
    finally:
        engine.dispose()


def read_trusted(path: Path) -> SignedCheckpoint:
    """A checkpoint the auditor kept: the JSON `exdesk audit checkpoint --json` prints, or the
    signed note itself."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AuditError(f"{path}: cannot read the trusted checkpoint ({error})") from None
    if text.lstrip().startswith("{"):
        try:
            note = json.loads(text)["note"]
            if not isinstance(note, str):
                raise TypeError("no note: the log was empty when this was printed")
            text = note
        except (ValueError, KeyError, TypeError):
            raise AuditError(
                f'{path}: JSON without a "note"; give what `exdesk audit checkpoint --json` '
                "prints, or the signed note"
            ) from None
    try:
        return parse_checkpoint(text)
    except NoteError as error:
        raise AuditError(f"{path}: not a signed checkpoint ({error})") from None


def build_trust(
    keys: list[str] | None,
    *,
    trusted: Path | None = None,
    witness_policy: Path | None = None,
    all_signatures: bool = False,
    fallback: Verifier | None = None,
) -> Trust:
    """What the auditor brings. Without ``--public-key`` (nor a policy's log keys), the
    installation's own key (``fallback``); without any key, an error: nothing can be checked."""
    verifiers: list[Verifier] = []
    for key in keys or []:
        verifiers += read_verifiers(key)
    policy = load_policy(witness_policy) if witness_policy is not None else None
    if not verifiers and not (policy and policy.logs) and fallback is not None:
        verifiers.append(fallback)
    if not verifiers and not (policy and policy.logs):
        raise AuditError(
            "no public key to verify the checkpoints with: give --public-key (the file or "
            "verifier key `exdesk audit pubkey` prints), or set EXDESK_SIGNING_KEY to the "
            "log's signing key"
        )
    return Trust(
        keys=tuple(verifiers),
        trusted=read_trusted(trusted) if trusted is not None else None,
        witnesses=policy,
        all_signatures=all_signatures,
    )
