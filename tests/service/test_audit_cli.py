"""`exdesk audit` as an operator and an auditor run it: fail-closed verification, keys kept
apart, trusted checkpoints, proofs for one order, rotation, erasure, witnesses (files and the
tlog-witness HTTP API on the loopback interface)."""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.keys import public_key_path
from audit.witness import Witness
from service.cli import app
from service.cli_witness import make_server
from service.settings import Settings
from tests.factories import EXAMPLES

runner = CliRunner()


def exdesk(*args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False, input=input)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("desk") / "d"
    code, output = exdesk(
        "eval", str(EXAMPLES), "--out", str(data / "r.json"), "--data-dir", str(data)
    )
    assert code == 0, output
    return data


@pytest.fixture
def data(evaluated: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the evaluated data dir, with the installation's key (tests may change both)."""
    import shutil

    copy = tmp_path / "d"
    shutil.copytree(evaluated, copy)
    key = Settings(data_dir=evaluated).signing_key_path()
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    shutil.copy2(key, keys / key.name)
    shutil.copy2(public_key_path(key), keys / public_key_path(key).name)
    mp = pytest.MonkeyPatch()
    mp.setenv("EXDESK_SIGNING_KEY", str(keys / key.name))
    yield copy
    mp.undo()


def _vkey(data: Path) -> str:
    code, vkey = exdesk("audit", "pubkey", "--data-dir", str(data))
    assert code == 0, vkey
    return vkey.strip()


def test_verify_fails_closed_on_a_missing_data_dir_and_creates_nothing(tmp_path: Path) -> None:
    code, output = exdesk("audit", "verify", "--data-dir", str(tmp_path / "typo"))
    assert code == 2 and "no such data dir" in output
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    code, output = exdesk("audit", "verify", "--data-dir", str(tmp_path / "empty"))
    assert code == 2 and "no exdesk database" in output


def test_verify_needs_a_key_and_a_checkpoint(data: Path) -> None:
    vkey = _vkey(data)
    key = Path(Settings(data_dir=data).signing_key_path())
    public_key_path(key).unlink()  # the public key deleted: nothing to check with
    code, output = exdesk("audit", "verify", "--data-dir", str(data))
    assert code == 2 and "no public key" in output
    code, output = exdesk("audit", "verify", "--data-dir", str(data), "--public-key", vkey)
    assert code == 0 and "signature checked" in output
    with sqlite3.connect(data / "exdesk.db") as conn:
        conn.execute("DROP TRIGGER audit_checkpoints_no_delete")
        conn.execute("DELETE FROM audit_checkpoints")
    code, output = exdesk("audit", "verify", "--data-dir", str(data), "--public-key", vkey)
    assert code == 1 and "FAILED at entry 1: no signed checkpoint at all" in output


def test_a_kept_checkpoint_shows_a_cut_back_log(data: Path, tmp_path: Path) -> None:
    vkey = _vkey(data)
    code, kept = exdesk("audit", "checkpoint", "--data-dir", str(data), "--json")
    assert code == 0
    trusted = tmp_path / "kept.json"
    trusted.write_text(kept)
    size = json.loads(kept)["size"]
    args = ["audit", "verify", "--data-dir", str(data), "--public-key", vkey]
    code, output = exdesk(*args, "--trusted", str(trusted))
    assert code == 0 and f"consistent with the checkpoint you trust (size {size})" in output
    with sqlite3.connect(data / "exdesk.db") as conn:  # cut back to a genuine earlier checkpoint
        for trigger in ("audit_log_no_delete", "audit_checkpoints_no_delete"):
            conn.execute(f"DROP TRIGGER {trigger}")
        keep = size - 5
        frontier = conn.execute("SELECT note FROM audit_checkpoints WHERE size = ?", (keep,))
        assert frontier.fetchone() is not None
        conn.execute("DELETE FROM audit_log WHERE seq > ?", (keep,))
        conn.execute("DELETE FROM audit_checkpoints WHERE size > ?", (keep,))
        last = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (keep,)).fetchone()[0]
        conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (keep, last))
    code, output = exdesk(*args, "--trusted", str(trusted))
    assert code == 1 and f"FAILED at entry {keep + 1}" in output
    assert f"records {size} entries" in output


def test_prove_and_verify_proof_for_one_order(data: Path, tmp_path: Path) -> None:
    vkey = _vkey(data)
    bundle = tmp_path / "EX-0011.json"  # EX-multi-011: a reallocation that ran
    code, output = exdesk(
        "audit",
        "prove",
        "EX-0011",
        "--data-dir",
        str(data),
        "--out",
        str(bundle),
        "--with-personal",
    )
    assert code == 0, output
    content = json.loads(bundle.read_text())
    events = [i["entry"]["event"] for i in content["entries"]]
    assert "order.detected" in events and "tool.called" in events and "plan.finished" in events
    assert content["personal"], "the order's personal values travel when asked for"
    code, output = exdesk("audit", "verify-proof", str(bundle), "--public-key", vkey)
    assert code == 0 and "entries about" in output and "personal values match" in output, output
    content["entries"][0]["entry"]["payload"]["kinds"] = []
    bundle.write_text(json.dumps(content))
    code, output = exdesk("audit", "verify-proof", str(bundle), "--public-key", vkey)
    assert code == 1 and "was changed" in output
    code, output = exdesk(
        "audit", "prove", "NO-SUCH", "--data-dir", str(data), "--out", str(bundle)
    )
    assert code == 2 and "no entry of the log is about order 'NO-SUCH'" in output


def test_a_rotated_key_is_followed_from_the_old_one(data: Path, tmp_path: Path) -> None:
    old = _vkey(data)
    code, output = exdesk("audit", "rotate-key", "--data-dir", str(data), "--reason", "drill")
    assert code == 0 and "announces the new key" in output, output
    new = _vkey(data)
    assert new != old and output.strip().endswith(new)
    orders = tmp_path / "o.jsonl"
    case = json.loads(EXAMPLES.read_text().splitlines()[0])
    orders.write_text(json.dumps({**case["order"], "order_id": "AFTER-ROTATION"}) + "\n")
    world = tmp_path / "w.json"
    world.write_text(json.dumps(case["world"]))
    code, output = exdesk("run", str(orders), "--world", str(world), "--data-dir", str(data))
    assert code == 0, output  # appends under the new key
    code, output = exdesk("audit", "verify", "--data-dir", str(data), "--public-key", old)
    assert code == 0 and "the signing key was rotated" in output, output
    export = tmp_path / "e.jsonl"
    assert exdesk("audit", "export", "--out", str(export), "--data-dir", str(data))[0] == 0
    assert exdesk("audit", "verify-export", str(export), "--public-key", old)[0] == 0
    assert exdesk("audit", "verify-export", str(export), "--public-key", new)[0] == 0
    code, output = exdesk(
        "audit", "verify-export", str(export), "--public-key", new, "--all-signatures"
    )
    assert code == 1 and "not signed by a key you trust" in output  # the old one signed the start


def test_erasure_keeps_the_log_verifying(data: Path) -> None:
    report = json.loads((data / "r.json").read_text())
    order_id = report["cases"][0]["order_after"]["order_id"]
    code, output = exdesk(
        "audit", "erase", "--order", order_id, "--reason", "request 7", "--data-dir", str(data)
    )
    assert code == 0 and "erased" in output
    code, output = exdesk("audit", "verify", "--data-dir", str(data))
    assert code == 0, output
    code, output = exdesk("audit", "replay", "--data-dir", str(data), "--json")
    result = json.loads(output)
    assert code == 0 and result["mismatches"] == []
    assert [s["order_id"] for s in result["not_replayable"]] == [order_id]


def test_a_witness_on_another_machine(data: Path, tmp_path: Path) -> None:
    vkey = _vkey(data)
    state = tmp_path / "witness"
    code, wkey = exdesk(
        "audit", "witness", "init", "--state", str(state), "--name", "auditor.example/w1"
    )
    assert code == 0 and wkey.startswith("auditor.example/w1+")
    wkey = wkey.strip()
    assert exdesk("audit", "witness", "follow", "--state", str(state), vkey)[0] == 0
    request, answer = tmp_path / "req.txt", tmp_path / "ans.txt"
    code, output = exdesk(
        "audit",
        "witness-request",
        "--witness-key",
        wkey,
        "--data-dir",
        str(data),
        "--out",
        str(request),
    )
    assert code == 0, output
    assert request.read_text().startswith("old 0\n\n")
    code, output = exdesk(
        "audit", "witness", "cosign", "--state", str(state), str(request), "--out", str(answer)
    )
    assert code == 0, output
    code, output = exdesk(
        "audit",
        "add-cosignature",
        str(answer),
        "--request",
        str(request),
        "--witness-key",
        wkey,
        "--data-dir",
        str(data),
    )
    assert code == 0 and "1 cosignature(s) stored" in output
    code, output = exdesk("audit", "witness", "cosign", "--state", str(state), str(request))
    assert code == 1 and "refused (409)" in output  # the same request again: stale
    policy = tmp_path / "policy.txt"
    policy.write_text(f"log {vkey}\nwitness w1 {wkey}\nquorum w1\n")
    code, output = exdesk(
        "audit", "verify", "--data-dir", str(data), "--witness-policy", str(policy)
    )
    assert code == 0 and "witnessed: entries 1-" in output, output
    code, kept = exdesk("audit", "witness", "show", "--state", str(state), vkey.split("+")[0])
    trusted = tmp_path / "kept.txt"
    trusted.write_text(kept)
    code, output = exdesk(
        "audit", "verify", "--data-dir", str(data), "--trusted", str(trusted), "--public-key", vkey
    )
    assert code == 0, output


def test_the_witness_http_api(data: Path, tmp_path: Path) -> None:
    vkey = _vkey(data)
    witness = Witness.init(tmp_path / "w", "auditor.example/http")
    witness.follow(vkey)
    server = make_server(witness, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    wkey = witness.verifier.vkey()
    try:
        code, output = exdesk(
            "audit", "witness-submit", "--url", url, "--witness-key", wkey, "--data-dir", str(data)
        )
        assert code == 0 and "cosigned the checkpoint of size" in output, output
        # the witness forgot nothing: a log that asks from 0 again is told (409) and retries
        code, output = exdesk(
            "audit", "witness-submit", "--url", url, "--witness-key", wkey, "--data-dir", str(data)
        )
        assert code == 0, output
        origin = vkey.split("+")[0]
        path = f"{url}/{sha256(origin.encode()).hexdigest()}/checkpoint"
        with urllib.request.urlopen(path, timeout=10) as response:
            assert response.read().decode().startswith(origin + "\n")
    finally:
        server.shutdown()
        server.server_close()
