"""The `exdesk` command as a user runs it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from tests.factories import EXAMPLES, example

runner = CliRunner()


def exdesk(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_eval_writes_the_contract_report_and_scores(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code, output = exdesk(
        "eval", str(EXAMPLES), "--out", str(report), "--data-dir", str(tmp_path / "d")
    )
    assert code == 0, output
    data = json.loads(report.read_text())
    assert data["summary"]["cases"] == 12
    assert data["summary"]["unsafe_executions"] == []
    scores = data["summary"]["scores"]
    assert (
        scores["detection_exact_match"],
        scores["top_strategy"],
        scores["tier"],
        scores["order_after"],
    ) == (1.0, 1.0, 1.0, 1.0)
    clean = next(c for c in data["cases"] if c["id"] == "EX-clean-001")
    assert clean["kinds"] == [] and clean["exceptions"] == []
    fix = next(c for c in data["cases"] if c["id"] == "EX-customs-bad_hs-005")
    (entry,) = fix["exceptions"]
    assert set(entry["plans"][0]) >= {"strategy", "tier", "score", "rationale", "similar_cases"}
    assert entry["decision"]["status"] == "awaiting_approval"
    assert entry["decision"]["proposal_id"].startswith("P-")
    assert "L2/L3 executed without approvals: 0" in output

    code, output = exdesk("audit", "verify", "--data-dir", str(tmp_path / "d"))
    assert code == 0
    assert output.startswith("ok: ")


def test_run_reports_bad_lines_and_handles_the_rest(tmp_path: Path) -> None:
    case = example("EX-multi-011")
    world = tmp_path / "world.json"
    world.write_text(json.dumps(case["world"]))
    bad = dict(case["order"], order_id="BAD-1", lines=[dict(case["order"]["lines"][0], qty=0)])
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n".join([json.dumps(bad), "{oops", json.dumps(case["order"])]) + "\n")
    results = tmp_path / "out.jsonl"
    code, output = exdesk(
        "run",
        str(orders),
        "--world",
        str(world),
        "--data-dir",
        str(tmp_path / "d"),
        "--out",
        str(results),
    )
    assert code == 1
    assert "line 1: lines.0.qty: Input should be greater than 0" in output
    assert "line 2: not valid JSON" in output
    (result,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert result["order_after"]["fulfillment"]["warehouse_id"] == "WH-SZX"
    assert "1 orders handled, 2 lines skipped" in output


def test_review_approve_runs_the_plan(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    exdesk("eval", str(EXAMPLES), "--out", str(tmp_path / "r.json"), "--data-dir", data)
    report = json.loads((tmp_path / "r.json").read_text())
    fix = next(c for c in report["cases"] if c["id"] == "EX-customs-bad_hs-005")
    pid = fix["exceptions"][0]["decision"]["proposal_id"]
    code, output = exdesk("review", "show", pid, "--data-dir", data)
    assert code == 0 and "orders.set_lines" in output and "still needed" in output
    code, output = exdesk("review", "approve", pid, "--by", "alice", "--data-dir", data)
    assert code == 0 and "still needs 1 more" in output
    code, output = exdesk("review", "approve", pid, "--by", "alice", "--data-dir", data)
    assert code == 2 and "already voted" in output
    code, output = exdesk(
        "review", "approve", pid, "--by", "bob", "--role", "supervisor", "--data-dir", data
    )
    assert code == 0, output
    assert f"{pid}: executed" in output and "is now open" in output
    code, output = exdesk("review", "list", "--status", "executed", "--data-dir", data)
    assert pid in output


def test_audit_verify_names_the_first_tampered_entry(tmp_path: Path) -> None:
    data = tmp_path / "d"
    exdesk("eval", str(EXAMPLES), "--out", str(tmp_path / "r.json"), "--data-dir", str(data))
    with sqlite3.connect(data / "exdesk.db") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")  # an attacker with database access
        conn.execute(
            "UPDATE audit_log SET payload = replace(payload, 'EX-0003', 'EX-9999') WHERE seq = "
            "(SELECT min(seq) FROM audit_log WHERE payload LIKE '%EX-0003%')"
        )
        seq = conn.execute(
            "SELECT min(seq) FROM audit_log WHERE payload LIKE '%EX-9999%'"
        ).fetchone()[0]
    code, output = exdesk("audit", "verify", "--data-dir", str(data))
    assert code == 1
    assert f"entry {seq}" in output


def test_a_bad_policy_file_is_named_with_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    text = (Path(__file__).resolve().parents[2] / "domain" / "policy.toml").read_text()
    policy.write_text(text.replace("l1_usd = 50", "l1_usd = -5"))
    code, output = exdesk(
        "eval",
        str(EXAMPLES),
        "--out",
        str(tmp_path / "r.json"),
        "--data-dir",
        str(tmp_path / "d"),
        "--policy",
        str(policy),
    )
    assert code == 2
    assert "policy.toml line" in output and "limits.l1_usd" in output
    assert not (tmp_path / "r.json").exists()


def test_an_export_verifies_with_only_the_public_key(tmp_path: Path) -> None:
    data = tmp_path / "d"
    exdesk("eval", str(EXAMPLES), "--out", str(tmp_path / "r.json"), "--data-dir", str(data))
    code, output = exdesk("audit", "verify", "--data-dir", str(data))
    assert code == 0 and "(signature checked)" in output
    export = tmp_path / "audit.jsonl"
    assert exdesk("audit", "export", "--out", str(export), "--data-dir", str(data))[0] == 0
    code, vkey = exdesk("audit", "pubkey", "--data-dir", str(data))
    assert code == 0 and vkey.startswith("exdesk.local/audit/")  # a C2SP vkey naming the log
    code, pem = exdesk("audit", "pubkey", "--pem", "--data-dir", str(data))
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    for form, text in (("vkey", vkey), ("pem", pem)):
        key = tmp_path / f"exdesk.{form}"
        key.write_text(text)
        code, output = exdesk("audit", "verify-export", str(export), "--public-key", str(key))
        assert code == 0 and output.startswith("ok: "), output
    code, output = exdesk("audit", "verify-export", str(export))
    assert code == 2 and "no public key" in output
    lines = export.read_text().splitlines()
    sixth = next(n for n, line in enumerate(lines) if line.endswith(',"seq":6}'))
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:sixth] + lines[sixth + 1 :]) + "\n")
    code, output = exdesk(
        "audit", "verify-export", str(tmp_path / "cut.jsonl"), "--public-key", vkey.strip()
    )
    assert code == 1 and "FAILED at entry 6" in output


PAST_CASES = EXAMPLES.with_name("past_cases.jsonl")


def test_eval_with_past_cases_reorders_on_strong_evidence(tmp_path: Path) -> None:
    # the default, multilingual embedder: the sample's cases are in Chinese and English
    report = tmp_path / "r.json"
    code, output = exdesk(
        "eval",
        str(EXAMPLES),
        "--knowledge",
        str(PAST_CASES),
        "--out",
        str(report),
        "--data-dir",
        str(tmp_path / "d"),
    )
    assert code == 0, output  # EX-inject-stock-012 expects the spine's plan: a miss, not an error
    assert "10 past cases imported" in output
    case = next(
        c for c in json.loads(report.read_text())["cases"] if c["id"] == "EX-inject-stock-012"
    )
    top, second = case["exceptions"][0]["plans"][:2]
    assert (top["strategy"], top["tier"]) == ("substitute_item", "L2")
    assert set(top["similar_cases"]) == {"PC-005", "PC-006", "PC-007"}
    assert "past cases: 3 similar cases used substitute_item, 3 succeeded (100%)" in top["evidence"]
    assert (second["strategy"], second["tier"]) == ("reallocate_warehouse", "L1")  # tier kept
    assert (
        {"PC-001", "PC-004"} <= set(second["similar_cases"]) <= {f"PC-00{i}" for i in range(1, 5)}
    )
    assert case["exceptions"][0]["decision"]["status"] == "awaiting_approval"

    # without --knowledge the same data dir starts from an empty memory again
    code, output = exdesk(
        "eval", str(EXAMPLES), "--out", str(report), "--data-dir", str(tmp_path / "d")
    )
    assert code == 0, output
    case = next(
        c for c in json.loads(report.read_text())["cases"] if c["id"] == "EX-inject-stock-012"
    )
    assert case["exceptions"][0]["plans"][0]["strategy"] == "reallocate_warehouse"
    assert case["exceptions"][0]["plans"][0]["similar_cases"] == []


def test_knowledge_import_feeds_later_runs(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(PAST_CASES.read_text() + '{"case_id": "X", "kind": "stockout"}\n')
    code, output = exdesk("knowledge", "import", str(bad), "--data-dir", data)
    assert code == 1
    assert "10 past cases imported" in output and "line 11" in output
    case = example("EX-inject-stock-012")
    world = tmp_path / "world.json"
    world.write_text(json.dumps(case["world"]))
    orders = tmp_path / "orders.jsonl"
    orders.write_text(json.dumps(case["order"]) + "\n")
    out = tmp_path / "out.jsonl"
    code, output = exdesk(
        "run", str(orders), "--world", str(world), "--data-dir", data, "--out", str(out)
    )
    assert code == 0, output
    (result,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert result["exceptions"][0]["plans"][0]["strategy"] == "substitute_item"


def test_an_order_its_world_cannot_serve_is_reported_and_the_rest_handled(tmp_path: Path) -> None:
    good = example("EX-multi-011")
    lost = example("EX-dup-010")
    lost["order"]["fulfillment"]["warehouse_id"] = "WH-NOWHERE"
    no_rate = example("EX-delay-009")
    no_rate["order"]["currency"] = "KRW"
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(c) for c in (lost, no_rate, good)) + "\n")
    report = tmp_path / "r.json"
    code, output = exdesk(
        "eval", str(cases), "--out", str(report), "--data-dir", str(tmp_path / "d")
    )
    assert code == 1
    assert "fulfillment.warehouse_id 'WH-NOWHERE' is not a warehouse of the world" in output
    assert "currency KRW has no rate in the world's fx_to_usd; add one" in output
    data = json.loads(report.read_text())
    assert [c.get("error") is None for c in data["cases"]] == [False, False, True]
    assert data["summary"]["scores"]["detection_exact_match"] == round(1 / 3, 4)
    with sqlite3.connect(tmp_path / "d" / "exdesk.db") as conn:  # a skipped line wrote nothing
        stored = {o for (o,) in conn.execute("SELECT order_id FROM orders")}
    assert stored == {good["order"]["order_id"]}


def test_a_file_with_odd_bytes_and_twice_the_same_order(tmp_path: Path) -> None:
    case = example("EX-multi-011")
    world = tmp_path / "world.json"
    world.write_bytes(b"\xef\xbb\xbf" + json.dumps(case["world"]).encode())  # a BOM
    twin = dict(case["order"], notes="the same id again")
    orders = tmp_path / "orders.jsonl"
    orders.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(case["order"]).encode()
        + b"\r\n"
        + b'{"order_id": "caf\xe9"}\r\n'
        + b"\r\n"
        + json.dumps(twin).encode()
        + b"\n"
    )
    code, output = exdesk(
        "run", str(orders), "--world", str(world), "--data-dir", str(tmp_path / "d")
    )
    assert code == 1
    assert "1 orders handled, 2 lines skipped" in output
    assert "line 2: not UTF-8" in output
    assert "line 3: empty line" in output
    assert "line 4: order_id 'EX-0011' is already on line 1" in output
    assert "Traceback" not in output


def test_eval_refuses_repeated_ids_and_malformed_expectations(tmp_path: Path) -> None:
    first = example("EX-clean-001")
    again = example("EX-payment-008")
    again["id"] = "EX-clean-001"
    wrong = example("EX-dup-010")
    wrong["expect"]["kinds"] = ["duplicate"]
    zero = example("EX-multi-011")
    zero["order"]["lines"][0]["qty"] = 0
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(c) for c in (first, again, wrong, zero)) + "\n")
    code, output = exdesk(
        "eval", str(cases), "--out", str(tmp_path / "r.json"), "--data-dir", str(tmp_path / "d")
    )
    assert code == 1
    assert "line 2: id 'EX-clean-001' is already on line 1; give each case its own id" in output
    assert "line 3: expect.kinds.0: Input should be 'bad_address'" in output
    assert "line 4: order.lines.0.qty: Input should be greater than 0" in output
    assert "Tuple should have at least 1 item" not in output
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["cases"] == 1


def _tool_keys(data: Path) -> set[str]:
    with sqlite3.connect(data / "exdesk.db") as conn:
        return {k for (k,) in conn.execute("SELECT key FROM tool_calls")}


def _run_examples(tmp_path: Path, data: Path) -> list[str]:
    """`exdesk run` of every contract example with its own --world, as a user would."""
    outputs = []
    for line in EXAMPLES.read_text().splitlines():
        case = json.loads(line)
        world = tmp_path / f"{case['id']}.world.json"
        world.write_text(json.dumps(case["world"], ensure_ascii=False))
        orders = tmp_path / f"{case['id']}.jsonl"
        orders.write_text(json.dumps(case["order"], ensure_ascii=False) + "\n")
        code, output = exdesk(
            "run",
            str(orders),
            "--world",
            str(world),
            "--world-id",
            case["id"],
            "--data-dir",
            str(data),
        )
        assert code == 0, output
        outputs.append(output)
    return outputs


def test_running_the_examples_again_repeats_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    _run_examples(tmp_path, data)
    keys = _tool_keys(data)
    code, listed = exdesk("review", "list", "--data-dir", str(data))
    pids = [line.split()[0] for line in listed.splitlines() if line.startswith("P-")]
    assert len(pids) == 4
    code, output = exdesk("review", "approve", pids[0], "--by", "alice", "--data-dir", str(data))
    assert code == 0, output
    _run_examples(tmp_path, data)
    assert _tool_keys(data) == keys  # no tool call made again
    code, again = exdesk("review", "list", "--data-dir", str(data))
    assert [line.split()[0] for line in again.splitlines() if line.startswith("P-")] == pids
    code, shown = exdesk("review", "show", pids[0], "--data-dir", str(data))
    assert "approve by alice" in shown
    with sqlite3.connect(data / "exdesk.db") as conn:
        held = dict(
            conn.execute(
                "SELECT warehouse_id || '/' || sku, held FROM stock "
                "WHERE world_id = 'EX-multi-011' AND held > 0"
            ).fetchall()
        )
        versions = {v for (v,) in conn.execute("SELECT version FROM orders")}
    assert held == {"WH-SZX/CASE-PH-15B": 3}  # the reservation did not double
    assert versions == {1}
    code, output = exdesk("audit", "verify", "--data-dir", str(data))
    assert code == 0 and "signature checked" in output, output


HOSTILE = "[bold green]EXECUTED[/bold green] [/x] \x1b[31mred\x1b[0m :warning:"


def test_untrusted_text_is_shown_as_text(tmp_path: Path) -> None:
    case = example("EX-customs-bad_hs-005")
    case["order"]["order_id"] = HOSTILE
    for n, line in enumerate(case["order"]["lines"]):
        line["line_id"] = f"L{n}"
    world = tmp_path / "world.json"
    world.write_text(json.dumps(case["world"]))
    orders = tmp_path / "orders.jsonl"
    orders.write_text(json.dumps(case["order"]) + "\n")
    data = str(tmp_path / "d")
    code, output = exdesk("run", str(orders), "--world", str(world), "--data-dir", data)
    assert code == 0, output
    assert "\x1b" not in output and "[bold green]EXECUTED[/bold green]" in output
    code, listed = exdesk("review", "list", "--data-dir", data)
    assert code == 0 and "[/x]" in listed and "\x1b" not in listed
    pid = listed.split()[0]
    voter = "Mallory [/] \x1b]0;pwned\x07"
    code, output = exdesk("review", "approve", pid, "--by", voter, "--data-dir", data)
    assert code == 0, output
    code, shown = exdesk("review", "show", pid, "--data-dir", data)
    assert code == 0 and "\x1b" not in shown and "\x07" not in shown
    assert "Mallory [/]" in shown and "[bold green]EXECUTED[/bold green]" in shown
    assert ":warning:" in shown


def _search(*args: str) -> list[dict[str, object]]:
    code, output = exdesk("knowledge", "search", *args, "--json")
    assert code == 0, output
    found: list[dict[str, object]] = json.loads(output)
    return found


def test_knowledge_search_in_either_language(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert exdesk("knowledge", "import", str(PAST_CASES), "--data-dir", data)[0] == 0
    found = _search(
        "上海仓耳机缺货，深圳仓调货失败", "--kind", "stockout", "-k", "3", "--data-dir", data
    )
    assert len(found) == 3 and {c["kind"] for c in found} == {"stockout"}
    assert set(found[0]) == {"case_id", "score", "kind", "strategy", "success", "summary"}
    english = {"PC-001", "PC-003", "PC-004", "PC-005", "PC-007"}
    assert english & {str(c["case_id"]) for c in found}  # a Chinese query finds English cases
    assert _search("card declined at checkout", "--data-dir", data)[0]["case_id"] == "PC-010"
    # the same case_id again updates, never duplicates
    changed = tmp_path / "changed.jsonl"
    first = json.loads(PAST_CASES.read_text().splitlines()[9])
    first["outcome"] = {"success": False}
    changed.write_text(json.dumps(first) + "\n")
    assert exdesk("knowledge", "import", str(changed), "--data-dir", data)[0] == 0
    again = _search("card declined at checkout", "-k", "20", "--data-dir", data)
    assert len(again) == 10 and again[0]["success"] is False

    queries = tmp_path / "q.jsonl"
    queries.write_text(
        json.dumps({"text": "邮编错误", "kind": "bad_address"})
        + "\n"
        + "{oops\n"
        + json.dumps({"text": "soft decline retried", "kind": "payment_failed", "label": 1})
        + "\n"
    )
    code, output = exdesk(
        "knowledge", "search", "--queries", str(queries), "-k", "1", "--json", "--data-dir", data
    )
    assert code == 1 and "line 2" in output
    answers = [json.loads(line) for line in output.splitlines() if line[:1] in "[n"]
    assert answers[1] is None and len(answers) == 3
    assert answers[0][0]["kind"] == "bad_address" and answers[2][0]["case_id"] == "PC-010"
    code, output = exdesk("knowledge", "search", "x", "--queries", str(queries), "--data-dir", data)
    assert code == 2 and "either TEXT or --queries" in output


def test_past_cases_that_say_nothing_or_hide_characters_are_refused(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    good = json.loads(PAST_CASES.read_text().splitlines()[0])
    lines = [
        {**good, "case_id": "BLANK", "summary": "  -  "},
        {**good, "case_id": "RTL\u202e"},
        {**good, "case_id": "ODD", "kind": "bad_address", "strategy": "reallocate_warehouse"},
    ]
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, output = exdesk("knowledge", "import", str(cases), "--data-dir", data)
    assert code == 1 and "1 past cases imported" in output
    assert "line 1: summary: says nothing" in output
    assert "line 2: case_id: contains control characters" in output
    assert "'ODD' used reallocate_warehouse, which the policy never drafts for bad_address" in (
        " ".join(output.split())
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, output = exdesk("knowledge", "import", str(empty), "--data-dir", data)
    assert code == 0 and "holds no past case" in output
    code, output = exdesk("knowledge", "search", "   ", "--data-dir", data)
    assert code == 2 and "TEXT is empty" in output
    code, output = exdesk("knowledge", "search", "x", "--data-dir", str(tmp_path / "new"))
    assert code == 0 and "the case memory is empty" in output


def test_an_approver_sees_the_past_cases_a_plan_cites(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert exdesk("knowledge", "import", str(PAST_CASES), "--data-dir", data)[0] == 0
    case = example("EX-inject-stock-012")
    world = tmp_path / "world.json"
    world.write_text(json.dumps(case["world"]))
    orders = tmp_path / "orders.jsonl"
    orders.write_text(json.dumps(case["order"]) + "\n")
    out = tmp_path / "out.jsonl"
    code, output = exdesk(
        "run", str(orders), "--world", str(world), "--out", str(out), "--data-dir", data
    )
    assert code == 0, output
    (stockout,) = json.loads(out.read_text())["exceptions"]
    pid = stockout["decision"]["proposal_id"]
    cited = stockout["plans"][0]["similar_cases"]
    assert stockout["plans"][0]["strategy"] == "substitute_item" and cited
    code, shown = exdesk("review", "show", pid, "--data-dir", data)
    assert code == 0, shown
    flat = " ".join(shown.split())
    assert "past cases" in flat and f"{cited[0]} · substitute_item · succeeded" in flat


def test_outcomes_are_learned_and_can_be_updated(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    case = example("EX-payment-008")
    world = tmp_path / "world.json"
    world.write_text(json.dumps(case["world"]))
    orders = tmp_path / "orders.jsonl"
    orders.write_text(json.dumps(case["order"]) + "\n")
    code, output = exdesk("run", str(orders), "--world", str(world), "--data-dir", data)
    assert code == 0, output
    found = _search("payment failed", "--kind", "payment_failed", "--data-dir", data)
    order_id = case["order"]["order_id"]
    (learned,) = [c for c in found if order_id in str(c["case_id"])]
    assert learned["case_id"] == f"default:{order_id}:v1:payment_failed"
    assert learned["strategy"] == "payment_request_new_method" and learned["success"] is True
    # in the order's language (a CN order), with what was done and how it ended
    assert str(learned["summary"]).startswith("支付失败（")
    assert str(learned["summary"]).endswith("请客户更换支付方式：成功。")
    # running the same order again learns nothing twice
    assert exdesk("run", str(orders), "--world", str(world), "--data-dir", data)[0] == 0
    assert len(_search("payment failed", "--data-dir", data)) == 1
    # the customer never answered: a later outcome
    code, output = exdesk(
        "knowledge",
        "outcome",
        str(learned["case_id"]),
        "--failed",
        "--note",
        "no answer",
        "--data-dir",
        data,
    )
    assert code == 0, output
    (now,) = _search("payment failed", "--data-dir", data)
    assert now["success"] is False and now["note"] == "no answer"
    code, output = exdesk("knowledge", "outcome", str(learned["case_id"]), "--data-dir", data)
    assert code == 2 and "--succeeded or --failed" in output
    code, output = exdesk("knowledge", "outcome", "NOPE", "--failed", "--data-dir", data)
    assert code == 2 and "no past case" in output
    code, _ = exdesk("audit", "export", "--out", str(tmp_path / "a.jsonl"), "--data-dir", data)
    assert code == 0
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    events = [json.loads(line).get("event") for line in lines]
    assert events.count("cases.learned") == 1
    assert exdesk("knowledge", "reset", "--data-dir", data)[0] == 2
    assert exdesk("knowledge", "reset", "--yes", "--data-dir", data)[0] == 0
    assert _search("payment failed", "--data-dir", data) == []


def test_an_eval_learns_nothing(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    data = str(tmp_path / "d")
    code, output = exdesk("eval", str(EXAMPLES), "--out", str(report), "--data-dir", data)
    assert code == 0, output
    assert _search("payment failed", "--data-dir", data) == []
