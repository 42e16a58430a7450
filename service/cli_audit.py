"""`exdesk audit`: verify, export, prove, witness, rotate, erase, replay.

Every command that reads the log opens an existing data dir or database and creates nothing;
a verification that cannot vouch for the log (no key, no checkpoint over the head, a trusted
checkpoint the log is not consistent with) exits 1 naming the first entry it cannot vouch for.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.replay import WhatIf
from audit.errors import AuditError
from audit.export import verify_export
from audit.keys import load_or_create_signing_key, public_key_path, public_key_pem
from audit.log import AuditEntry, AuditLog
from audit.models import VerifyResult
from audit.personal import refs_in
from audit.proof import about_order, build_bundle, verify_bundle
from audit.rotation import ROTATION_EVENT
from domain.errors import ExdeskError
from service.audit_access import Opened, build_trust, existing_log
from service.cli_common import DatabaseUrl, DataDir, err, fail, opened, out, settings_for
from service.cli_witness import register_witness_commands
from service.render import safe
from service.replay import replay_log, what_if_log

audit_app = typer.Typer(no_args_is_help=True, help="Verify, export and prove the audit log.")

PublicKeys = Annotated[
    list[str] | None,
    typer.Option(
        "--public-key",
        help="The log's key: a PEM file or a verifier key (file or text), as `exdesk audit "
        "pubkey` prints it. Repeat for several (a rotation).",
    ),
]
Trusted = Annotated[
    Path | None,
    typer.Option(
        "--trusted",
        help="A checkpoint you kept earlier (`exdesk audit checkpoint --json`): the log must "
        "extend it.",
    ),
]
WitnessPolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--witness-policy",
        help="A C2SP tlog-policy file: the witnesses and the quorum a checkpoint needs.",
    ),
]
AllSignatures = Annotated[
    bool,
    typer.Option("--all-signatures", help="Check the signature of every checkpoint, not some."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@contextmanager
def opened_log(data_dir: Path | None, database_url: str | None = None) -> Iterator[Opened]:
    try:
        with existing_log(settings_for(data_dir, database_url=database_url)) as opened:
            yield opened
    except ExdeskError as error:
        raise fail(str(error)) from error


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    public_key: PublicKeys = None,
    trusted: Trusted = None,
    witness_policy: WitnessPolicyOption = None,
    all_signatures: AllSignatures = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify the log in the database: entries, Merkle tree, signed checkpoints, and what you
    bring (keys, a trusted checkpoint, a witness policy). Exit 1 names the first bad entry."""
    with opened_log(data_dir, database_url) as opened:
        try:
            trust = build_trust(
                public_key,
                trusted=trusted,
                witness_policy=witness_policy,
                all_signatures=all_signatures,
                fallback=opened.own_verifier(),
            )
            result = opened.log.verify(trust)
        except ExdeskError as error:
            raise fail(str(error)) from error
    report_verify(result, as_json)


def report_verify(result: VerifyResult, as_json: bool = False) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
        if not result.ok:
            raise typer.Exit(1)
        return
    if not result.ok:
        where = f" at entry {result.first_bad_seq}" if result.first_bad_seq else ""
        out.print(f"[red]FAILED[/]{where}: {safe(result.problem)}")
        raise typer.Exit(1)
    out.print(f"ok: {result.count} entries, head {result.head}")
    out.print(f"log {safe(result.origin)}, Merkle root {result.root}")
    out.print(f"signed checkpoints cover entries 1-{result.checkpointed_seq} (signature checked)")
    if result.trusted_seq is not None:
        out.print(f"consistent with the checkpoint you trust (size {result.trusted_seq})")
    if result.witnessed_seq:
        out.print(f"witnessed: entries 1-{result.witnessed_seq} carry the policy's quorum")
    for note in result.notes:
        out.print(f"note: {safe(note)}")


@audit_app.command("verify-export")
def audit_verify_export(
    export: Annotated[Path, typer.Argument(help="A file written by `exdesk audit export`.")],
    public_key: PublicKeys = None,
    trusted: Trusted = None,
    witness_policy: WitnessPolicyOption = None,
    all_signatures: AllSignatures = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify an export with nothing but the file and the log's public key: no database."""
    try:
        trust = build_trust(
            public_key,
            trusted=trusted,
            witness_policy=witness_policy,
            all_signatures=all_signatures,
        )
        with export.open(encoding="utf-8") as fp:
            result = verify_export(fp, trust)
    except (OSError, UnicodeDecodeError, ExdeskError) as error:
        raise fail(str(error)) from error
    report_verify(result, as_json)


@audit_app.command("checkpoint")
def audit_checkpoint(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, as_json: JsonFlag = False
) -> None:
    """Print the newest signed checkpoint (a C2SP signed note), to keep for `--trusted`.

    Makes the installation ready first (the schema and the signing key), as every command that
    writes does; on a log with no entry yet there is nothing signed to print."""
    with opened(data_dir, database_url=database_url) as desk:
        try:
            desk.signing_key.private_key()
            checkpoint = desk.audit.latest_checkpoint()
            stored = desk.audit.checkpoints(since=checkpoint.size - 1) if checkpoint else []
            origin = desk.audit.origin()
        except ExdeskError as error:
            raise fail(str(error)) from error
    if checkpoint is None:
        if as_json:
            print_json({"origin": origin, "size": 0, "root": None, "at": None, "note": None})
        else:
            out.print(
                f"the log {safe(origin)} is empty: nothing is signed yet (the first entry "
                "signs the first checkpoint)"
            )
        return
    if as_json:
        print_json(
            {
                "origin": checkpoint.origin,
                "size": checkpoint.size,
                "root": checkpoint.root.hex(),
                "at": stored[0].at if stored else None,
                "note": checkpoint.render(),
            }
        )
    else:
        sys.stdout.write(checkpoint.render())


@audit_app.command("pubkey")
def audit_pubkey(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    pem: Annotated[bool, typer.Option("--pem", help="PEM instead of the verifier key.")] = False,
) -> None:
    """Print the key that verifies this log's checkpoints, as `--public-key` takes it: a C2SP
    verifier key naming the log (or PEM)."""
    with opened_log(data_dir, database_url) as opened:
        verifier = opened.own_verifier()
        if verifier is None:
            raise fail(
                f"no signing key yet at {opened.key.path}; it is made by the first entry "
                "(`exdesk run`, `exdesk eval`)"
            )
    if pem:
        sys.stdout.write(public_key_pem(verifier.public_key).decode("ascii"))
    else:
        sys.stdout.write(verifier.vkey() + "\n")


@audit_app.command("export")
def audit_export(
    path: Annotated[Path, typer.Option("--out", help="Where to write the log (JSON Lines).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Export every entry, checkpoint and cosignature as JSON Lines, for auditors (never a
    private key; personal data only as salted digests)."""
    with opened_log(data_dir, database_url) as opened, path.open("w", encoding="utf-8") as fp:
        try:
            count = opened.log.export(fp)
        except ExdeskError as error:
            raise fail(str(error)) from error
    out.print(f"{count} entries written to {safe(path)}")


@audit_app.command("prove")
def audit_prove(
    order_id: Annotated[str, typer.Argument(help="The order whose entries to prove.")],
    path: Annotated[Path, typer.Option("--out", help="Where to write the proof bundle (JSON).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    with_personal: Annotated[
        bool,
        typer.Option(
            "--with-personal",
            help="Include the order's personal data (clear values and salts) that the "
            "entries refer to, for the person it is about.",
        ),
    ] = False,
) -> None:
    """Write every entry about one order with its inclusion proof against one signed
    checkpoint: what a dispute needs, without the rest of the log."""
    with opened_log(data_dir, database_url) as opened:
        log = opened.log
        try:
            checkpoint = log.latest_checkpoint()
            if checkpoint is None:
                raise AuditError("the log has no checkpoint yet: nothing has been recorded")
            chosen = about_order(log.entries(), order_id)
            if not chosen:
                raise AuditError(f"no entry of the log is about order {order_id!r}")
            personal = None
            if with_personal:
                refs = sorted(set().union(*(refs_in(e.payload) for e in chosen)))
                values, salts = log.clear_values(refs), log.salts(refs)
                personal = {r: {"value": values[r], "salt": salts[r]} for r in values if r in salts}
            leaves = log.leaf_hashes(checkpoint.size)
            bundle = build_bundle(chosen, leaves, checkpoint, order_id, personal)
        except (ExdeskError, ValueError) as error:
            raise fail(str(error)) from error
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    out.print(
        f"{len(bundle['entries'])} entries about {safe(order_id)} written to {safe(path)}, "
        f"proved against the checkpoint of size {checkpoint.size}"
    )


@audit_app.command("verify-proof")
def audit_verify_proof(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `exdesk audit prove`.")],
    public_key: PublicKeys = None,
    witness_policy: WitnessPolicyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a proof bundle with nothing else: the entries, their inclusion in the signed
    checkpoint, the checkpoint's signature (and cosignatures)."""
    try:
        trust = build_trust(public_key, witness_policy=witness_policy)
        result = verify_bundle(bundle.read_text(encoding="utf-8"), trust)
    except (OSError, UnicodeDecodeError, ExdeskError) as error:
        raise fail(str(error)) from error
    if as_json:
        sys.stdout.write(json.dumps(result.__dict__, indent=2, ensure_ascii=False) + "\n")
    elif result.ok:
        out.print(
            f"ok: {result.entries} entries about {safe(result.order_id)} are in log "
            f"{safe(result.origin)} at size {result.size}, signed by {safe(result.signed_by)}"
        )
        if result.cosigners:
            out.print(f"cosigned by {safe(', '.join(result.cosigners))}")
        if result.personal_checked:
            out.print(f"{result.personal_checked} personal values match their digests")
    else:
        out.print(f"[red]FAILED[/]: {safe(result.problem)}")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("rotate-key")
def audit_rotate_key(
    data_dir: DataDir = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the log).")] = "rotation",
) -> None:
    """Make a new signing key and announce it in the log, signed by the current one; the
    current key is kept as `<name>.retired-<n>.pem` beside the new one."""
    with opened_log(data_dir) as opened:
        path = opened.key.path
        pending = path.with_name(path.stem + ".next" + path.suffix)
        try:
            resumed = pending.exists()
            new_key = load_or_create_signing_key(pending)
            if resumed and opened.log.signed_with(new_key):
                # an earlier rotation was announced (committed) but its key file was not put
                # in place: finish it, and announce nothing twice
                entry = _announcement(opened.log)
            else:
                entry = opened.log.rotate_key(new_key, actor="operator", reason=reason)
            _install_key(path, pending, new_key)
            opened.key.reload()
            verifier = opened.own_verifier()
        except ExdeskError as error:
            raise fail(str(error)) from error
    out.print(f"entry {entry.seq} announces the new key; give auditors:")
    sys.stdout.write((verifier.vkey() if verifier else "") + "\n")


def _announcement(log: AuditLog) -> AuditEntry:
    """The entry that announced the key the log is signed with now (the newest rotation)."""
    found = [e for e in log.entries() if e.event == ROTATION_EVENT]
    if not found:
        raise AuditError("the log names a new key but holds no rotation entry; run verify")
    return found[-1]


def _install_key(path: Path, pending: Path, new_key: Ed25519PrivateKey) -> None:
    """Move the current key pair aside and the new one into its place."""
    n = 1
    while path.with_name(f"{path.stem}.retired-{n}{path.suffix}").exists():
        n += 1
    retired = path.with_name(f"{path.stem}.retired-{n}{path.suffix}")
    path.replace(retired)
    public = public_key_path(path)
    if public.exists():
        public.replace(public_key_path(retired))
    pending.replace(path)
    public_key_path(pending).replace(public)
    if public_key_pem(load_or_create_signing_key(path).public_key()) != public_key_pem(
        new_key.public_key()
    ):
        raise AuditError(f"{path}: the new key did not land; check the folder")


@audit_app.command("erase")
def audit_erase(
    order: Annotated[str, typer.Option("--order", help="The order whose personal data to erase.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the log).")],
    data_dir: DataDir = None,
) -> None:
    """Erase an order's personal data held beside the log (an erasure request). The entries
    keep only salted digests, which nothing ties to anyone once the salt is gone: the chain
    and every checkpoint still verify."""
    with opened_log(data_dir) as opened:
        try:
            gone = opened.log.erase(order, actor="operator", reason=reason)
        except ExdeskError as error:
            raise fail(str(error)) from error
    out.print(f"erased {gone} personal values of order {safe(order)}; the log still verifies")


@audit_app.command("replay")
def audit_replay(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="What-if: list the decisions that would change under this policy file.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Derive every recorded decision again from the inputs the log recorded (no tool, no
    model) and report those that do not come out the same; with --policy, what would change."""
    with opened_log(data_dir, database_url) as opened:
        try:
            if policy is not None:
                report_what_if(what_if_log(opened, policy), as_json)
                return
            result = replay_log(opened)
        except ExdeskError as error:
            raise fail(str(error)) from error
    if as_json:
        data = result.as_json()
        print_json({k: data[k] for k in ("decisions", "reproduced", "mismatches")} | data)
    else:
        out.print(f"{result.reproduced} of {result.decisions} decisions reproduced")
        for mismatch in result.mismatches[:50]:
            out.print(
                f"[red]differs[/] entry {mismatch.seq} order {safe(mismatch.order_id)}: "
                f"{safe(mismatch.what)}: recorded {safe(mismatch.recorded)}, "
                f"replayed {safe(mismatch.replayed)}"
            )
        for skipped in result.not_replayable[:50]:
            out.print(f"not replayed: entry {skipped['seq']} {safe(skipped['why'])}")
        for note in result.notes:
            out.print(f"note: {safe(note)}")
    if result.mismatches:
        raise typer.Exit(1)


def report_what_if(result: WhatIf, as_json: bool) -> None:
    if as_json:
        print_json(result.as_json())
        return
    totals = ", ".join(f"{k} {v}" for k, v in result.totals().items()) or "nothing"
    out.print(
        f"under {safe(result.policy)}: {result.changed} of {result.decisions} decisions would "
        f"change ({totals})"
    )
    for change in result.changes[:200]:
        out.print(
            f"  entry {change.seq} order {safe(change.order_id)} {safe(change.kind)}: "
            f"{change.field} {safe(change.before)} → {safe(change.after)}"
        )
    if len(result.changes) > 200:
        out.print(f"  … and {len(result.changes) - 200} more (--json lists them all)")


register_witness_commands(audit_app, opened_log)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


__all__ = ["audit_app", "err", "print_json", "report_verify"]
