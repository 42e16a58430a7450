"""`exdesk audit`: verify, sign, export the audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from audit.keys import load_public_key, public_key_path, public_key_pem
from audit.log import VerifyResult, verify_export
from domain.errors import ExdeskError
from service.cli_common import DataDir, fail, opened, out
from service.render import safe

audit_app = typer.Typer(no_args_is_help=True, help="Verify and export the audit log.")


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None) -> None:
    """Walk the hash chain; say `ok` or the first entry that does not verify."""
    with opened(data_dir) as desk:
        report_verify(desk.audit.verify(desk.public_key()))


def report_verify(result: VerifyResult) -> None:
    if not result.ok:
        out.print(f"[red]FAILED[/] at entry {result.first_bad_seq}: {safe(result.problem)}")
        raise typer.Exit(1)
    out.print(f"ok: {result.count} entries, head {result.head}")
    signed = "signature checked" if result.signatures_checked else "signature not checked (no key)"
    out.print(f"signed checkpoints cover entries 1-{result.checkpointed_seq} ({signed})")


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = None) -> None:
    """Sign the log's current length and head (Ed25519), so truncation and rewrites show."""
    with opened(data_dir) as desk:
        cp = desk.checkpoint()
        out.print(f"checkpoint at entry {cp.seq}, head {cp.head}")
        out.print(f"public key for auditors: {safe(public_key_path(desk.signing_key_path))}")


@audit_app.command("pubkey")
def audit_pubkey(data_dir: DataDir = None) -> None:
    """Print the public key that verifies this installation's checkpoints (PEM), for
    `exdesk audit verify-export --public-key`."""
    with opened(data_dir) as desk:
        key = desk.public_key()
        if key is None:
            raise fail(
                f"no signing key yet at {desk.signing_key_path}; it is made by the first "
                "`exdesk run`, `exdesk eval` or `exdesk audit checkpoint`"
            )
        sys.stdout.write(public_key_pem(key).decode("ascii"))


@audit_app.command("verify-export")
def audit_verify_export(
    export: Annotated[Path, typer.Argument(help="A file written by `exdesk audit export`.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The desk's public key (PEM).")],
) -> None:
    """Verify an export with nothing but the file and the public key: no database needed."""
    try:
        key = load_public_key(public_key)
        with export.open(encoding="utf-8") as fp:
            result = verify_export(fp, key)
    except (OSError, UnicodeDecodeError, ExdeskError) as exc:
        raise fail(str(exc)) from exc
    report_verify(result)


@audit_app.command("export")
def audit_export(
    path: Annotated[Path, typer.Option("--out", help="Where to write the log (JSON Lines).")],
    data_dir: DataDir = None,
) -> None:
    """Export every entry (and checkpoint) as JSON Lines, for auditors."""
    with opened(data_dir) as desk, path.open("w", encoding="utf-8") as fp:
        count = desk.audit.export(fp)
    out.print(f"{count} entries written to {safe(path)}")
