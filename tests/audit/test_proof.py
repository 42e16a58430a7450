"""Per-order proof bundles: every entry about one order, proved against one signed checkpoint,
checked with nothing but the log's key; and the negative cases."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import CheckpointBody, sign_checkpoint
from audit.keys import log_verifier
from audit.log import AuditLog
from audit.merkle import verify_inclusion
from audit.note import ED25519, Signer
from audit.personal import refs_in
from audit.policy import parse_policy
from audit.proof import (
    about_order,
    build_bundle,
    parse_tlog_proof,
    tlog_proof,
    verify_bundle,
)
from audit.verify import Trust
from audit.witness import Witness, render_request


def _order_log(log: AuditLog) -> None:
    """Entries about orders A-1 and B-2, as the agent writes them (a plan with a reservation
    that names no order, found through its plan key)."""
    customer = {"id": "c1", "tier": "vip", "name": "Li Wei", "email": "li@example.com"}
    log.append(
        "agent",
        "order.detected",
        {
            "order_id": "A-1",
            "kinds": ["stockout"],
            "order": {"order_id": "A-1", "customer": customer},
        },
    )
    log.append("agent", "order.detected", {"order_id": "B-2", "kinds": []})
    step = {"tool": "inventory", "op": "reserve", "args": {"sku": "X", "qty": 1}, "key": "pk1:0"}
    log.append("tool:inventory", "tool.requested", step, key="pk1:0:requested")
    log.append("tool:inventory", "tool.called", {**step, "result": {"ok": True}})
    step2 = {"tool": "orders", "op": "place_hold", "args": {"order_id": "B-2"}, "key": "pk2:0"}
    log.append("tool:orders", "tool.requested", step2)
    log.append("agent", "plan.finished", {"order_id": "A-1", "plan_key": "pk1", "ok": True})
    log.append("agent", "plan.finished", {"order_id": "B-2", "plan_key": "pk2", "ok": True})


@pytest.fixture
def bundle(log: AuditLog) -> dict[str, Any]:
    _order_log(log)
    chosen = about_order(log.entries(), "A-1")
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None
    return build_bundle(chosen, log.leaf_hashes(checkpoint.size), checkpoint, "A-1")


@pytest.fixture
def trust(signing_key: Ed25519PrivateKey) -> Trust:
    return Trust(keys=(log_verifier(signing_key.public_key()),))


def test_the_bundle_holds_the_entries_about_the_order(bundle: dict[str, Any], trust: Trust) -> None:
    assert [i["entry"]["seq"] for i in bundle["entries"]] == [1, 3, 4, 6]
    result = verify_bundle(json.dumps(bundle), trust)
    assert result.ok, result.problem
    assert (result.entries, result.size, result.order_id) == (4, 7, "A-1")


def test_each_entry_is_a_c2sp_tlog_proof(bundle: dict[str, Any]) -> None:
    item = bundle["entries"][1]
    proof = [base64.b64decode(p) for p in item["proof"]]
    text = tlog_proof(item["index"], proof, bundle["checkpoint"])
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 2\n")
    index, proof, checkpoint = parse_tlog_proof(text)
    leaf = bytes.fromhex(item["entry"]["hash"])
    verify_inclusion(index, checkpoint.size, leaf, proof, checkpoint.root)


def _flip_proof(b: dict[str, Any]) -> None:
    proof = b["entries"][1]["proof"]
    proof[0] = ("B" if proof[0][0] == "A" else "A") + proof[0][1:]


def _swap_index(b: dict[str, Any]) -> None:
    b["entries"][1]["index"] = 3
    b["entries"][1]["entry"]["seq"] = 4


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("payload", lambda b: b["entries"][0]["entry"]["payload"].update(kinds=[]), "was changed"),
    ("actor", lambda b: b["entries"][0]["entry"].update(actor="person:x"), "was changed"),
    ("corrupted proof", _flip_proof, "does not lead to the root"),
    ("wrong index", lambda b: b["entries"][1].update(index=5), "is not seq - 1"),
    ("index and seq moved", _swap_index, "does not hash"),
    (
        "proof of another entry",
        lambda b: b["entries"][1].update(proof=b["entries"][2]["proof"]),
        "does not lead to the root",
    ),
    ("a proof cut short", lambda b: b["entries"][1]["proof"].pop(), "fewer than"),
    ("no entries", lambda b: b.update(entries=[]), "holds no entries"),
    (
        "checkpoint",
        lambda b: b.update(checkpoint=b["checkpoint"].replace("\n7\n", "\n8\n")),
        "not signed by a key you trust",
    ),
    ("format", lambda b: b.update(format="x"), "not a proof bundle"),
]


@pytest.mark.parametrize(("name", "change", "problem"), CASES, ids=[c[0] for c in CASES])
def test_a_changed_bundle_fails(
    bundle: dict[str, Any],
    trust: Trust,
    name: str,
    change: Callable[[dict[str, Any]], None],
    problem: str,
) -> None:
    change(bundle)
    result = verify_bundle(json.dumps(bundle), trust)
    assert not result.ok
    assert problem in (result.problem or ""), result.problem


def test_an_entry_of_another_order_is_refused(log: AuditLog, trust: Trust) -> None:
    _order_log(log)
    checkpoint = log.latest_checkpoint()
    assert checkpoint is not None
    everything = list(log.entries())
    bundle = build_bundle(everything, log.leaf_hashes(7), checkpoint, "A-1")
    result = verify_bundle(json.dumps(bundle), trust)
    assert not result.ok and "not about order 'A-1'" in (result.problem or "")


def test_a_bundle_signed_by_another_key_is_refused(bundle: dict[str, Any], log: AuditLog) -> None:
    other = Ed25519PrivateKey.generate()
    origin = log.origin()
    note = sign_checkpoint(Signer(origin, ED25519, other), CheckpointBody(origin, 7, b"\0" * 32))
    bundle["checkpoint"] = note.render()
    trust = Trust(keys=(log_verifier(other.public_key()),))
    result = verify_bundle(json.dumps(bundle), trust)
    assert not result.ok and "does not lead to the root" in (result.problem or "")
    assert not verify_bundle(json.dumps(bundle), Trust()).ok


def test_witnessed_bundles_and_personal_values(
    log: AuditLog, signing_key: Ed25519PrivateKey, tmp_path: Any
) -> None:
    _order_log(log)
    witness = Witness.init(tmp_path / "w", "auditor.example/w")
    witness.follow(log_verifier(signing_key.public_key(), log.origin()).vkey())
    checkpoint = log.latest_checkpoint(cosigned=False)
    assert checkpoint is not None
    line = witness.add_checkpoint(render_request(0, [], checkpoint.render()))
    log.add_cosignatures(checkpoint, line, witness.verifier)
    chosen = about_order(log.entries(), "A-1")
    refs = sorted(set().union(*(refs_in(e.payload) for e in chosen)))
    assert len(refs) == 2  # the name and the email
    values, salts = log.clear_values(refs), log.salts(refs)
    personal = {r: {"value": values[r], "salt": salts[r]} for r in refs}
    cosigned = log.latest_checkpoint()
    assert cosigned is not None
    bundle = build_bundle(chosen, log.leaf_hashes(7), cosigned, "A-1", personal)
    policy = parse_policy(f"witness w {witness.verifier.vkey()}\nquorum w\n", "p")
    trust = Trust(keys=(log_verifier(signing_key.public_key()),), witnesses=policy)
    result = verify_bundle(json.dumps(bundle), trust)
    assert result.ok, result.problem
    assert result.cosigners == ["w"] and result.personal_checked == 2
    assert sorted(values.values()) == ["Li Wei", "li@example.com"]
    bundle["personal"][refs[0]]["value"] = "Someone Else"
    assert "not the one the entry refers to" in (
        verify_bundle(json.dumps(bundle), trust).problem or ""
    )
    unwitnessed = build_bundle(chosen, log.leaf_hashes(7), checkpoint, "A-1")
    result = verify_bundle(json.dumps(unwitnessed), trust)
    assert not result.ok and "witness policy" in (result.problem or "")
