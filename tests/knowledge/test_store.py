"""The Qdrant case memory: import, search by kind, learn, and the empty fast path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from filelock import FileLock
from qdrant_client import QdrantClient

from domain.models import Finding, Kind, Order, Strategy
from knowledge.cases import PastCase
from knowledge.embedder import HashEmbedder
from knowledge.errors import CaseMemoryUnavailable
from knowledge.memory import CaseMemory
from knowledge.store import QdrantCaseMemory, SharedFolderMemory, open_memory, point_id
from tests.knowledge.support import CountingEmbedder, case


def _finding(kind: Kind, summary: str, *evidence: str) -> Finding:
    return Finding(kind=kind, order_id="O-1", summary=summary, evidence=evidence)


def test_it_is_a_case_memory(memory: QdrantCaseMemory) -> None:
    as_protocol: CaseMemory = memory
    assert as_protocol is memory


def test_empty_memory_returns_nothing_without_embedding(
    memory: QdrantCaseMemory, embedder: CountingEmbedder, order: Order
) -> None:
    assert memory.search(_finding(Kind.STOCKOUT, "WH-SHA cannot ship"), order) == []
    assert memory.count() == 0
    assert embedder.calls == 0 and embedder.dim_reads == 0


def test_no_case_of_the_kind_returns_nothing_without_embedding(
    memory: QdrantCaseMemory, embedder: CountingEmbedder, order: Order, cases: list[PastCase]
) -> None:
    memory.import_cases(cases)
    calls = embedder.calls
    assert memory.search(_finding(Kind.DUPLICATE_ORDER, "same as order O-0"), order) == []
    assert embedder.calls == calls


def test_import_is_idempotent_by_case_id(memory: QdrantCaseMemory, cases: list[PastCase]) -> None:
    assert memory.import_cases(cases) == 6
    assert memory.import_cases(cases) == 6
    assert memory.count() == 6
    changed = case("C-2", Kind.STOCKOUT, "backorder arrived on time", Strategy.BACKORDER)
    assert memory.import_cases([changed, changed]) == 1
    assert memory.count() == 6
    assert memory.import_cases([]) == 0
    moved = case("C-4", Kind.STOCKOUT, "now filed as a stockout", Strategy.BACKORDER)
    memory.import_cases([moved])
    assert memory.count() == 6
    assert point_id("C-2") == point_id("C-2") != point_id("C-3")


def test_each_kind_has_its_own_collection(memory: QdrantCaseMemory, cases: list[PastCase]) -> None:
    memory.import_cases(cases)
    names = {c.name for c in memory.client.get_collections().collections}
    assert names == {
        "exdesk_cases_stockout",
        "exdesk_cases_bad_address",
        "exdesk_cases_payment_failed",
    }
    memory.reset()
    assert memory.count() == 0 and memory.client.get_collections().collections == []


def test_search_filters_by_kind_and_ranks_the_near_identical_summary_first(
    memory: QdrantCaseMemory, order: Order, cases: list[PastCase]
) -> None:
    memory.import_cases(cases)
    found = memory.search(
        _finding(Kind.STOCKOUT, "WH-SHA cannot ship every line", "TEE-COT-NVY short by 3"), order
    )
    assert found[0]["case_id"] == "C-1"
    assert {c["kind"] for c in found} == {"stockout"}  # C-4 has the same text, another kind
    assert {c["case_id"] for c in found} == {"C-1", "C-2", "C-3"}
    assert [c["score"] for c in found] == sorted((c["score"] for c in found), reverse=True)
    first = found[0]
    assert first == {
        "case_id": "C-1",
        "kind": "stockout",
        "strategy": "reallocate_warehouse",
        "success": True,
        "score": first["score"],
        "summary": "WH-SHA cannot ship every line: TEE-COT-NVY short by 3",
        "resolution_hours": 2.5,
        "cost_usd": 12.4,
    }
    json.dumps(found)  # graph state holds JSON only
    assert len(memory.search(_finding(Kind.STOCKOUT, "x"), order, limit=2)) == 2
    assert memory.search(_finding(Kind.STOCKOUT, "x"), order, limit=0) == []


def test_chinese_and_english_summaries_are_both_retrievable(
    memory: QdrantCaseMemory, order: Order, cases: list[PastCase]
) -> None:
    memory.import_cases(cases)
    zh = memory.search(_finding(Kind.STOCKOUT, "上海仓库存不足，需要调货"), order)
    assert zh[0]["case_id"] == "C-3"
    assert zh[0]["summary"] == "上海仓库存不足，从深圳仓调货发出"
    zh_address = memory.search(_finding(Kind.BAD_ADDRESS, "邮编错误"), order)
    assert zh_address[0]["case_id"] == "C-6"
    en = memory.search(_finding(Kind.PAYMENT_FAILED, "payment failed (soft_decline)"), order)
    assert en[0]["case_id"] == "C-5"


def test_order_text_is_never_embedded_or_returned(
    memory: QdrantCaseMemory, embedder: CountingEmbedder, order: Order
) -> None:
    assert order.notes
    memory.import_cases(
        [case("C-9", Kind.STOCKOUT, "short on mugs", Strategy.BACKORDER, order=order)]
    )
    found = memory.search(_finding(Kind.STOCKOUT, "short on mugs", "needs 3 more"), order)
    assert embedder.texts == ["stockout: short on mugs", "stockout: short on mugs\nneeds 3 more"]
    assert order.notes not in json.dumps(found, ensure_ascii=False)


def test_learn_adds_one_outcome(
    memory: QdrantCaseMemory, order: Order, cases: list[PastCase]
) -> None:
    memory.import_cases(cases)
    memory.learn(case("C-10", Kind.CARRIER_DELAY, "DHL delay, voucher sent", Strategy.NOTIFY_DELAY))
    assert memory.count() == 7
    found = memory.search(_finding(Kind.CARRIER_DELAY, "DHL delay"), order)
    assert [c["case_id"] for c in found] == ["C-10"]


def test_long_summaries_are_cut_in_results(memory: QdrantCaseMemory, order: Order) -> None:
    memory.import_cases([case("C-1", Kind.STOCKOUT, "short " * 200, Strategy.BACKORDER)])
    [found] = memory.search(_finding(Kind.STOCKOUT, "short"), order)
    assert len(found["summary"]) == 500 and found["summary"].endswith("…")


def test_embedded_memory_persists_and_locks_its_folder(
    tmp_path: Path, order: Order, cases: list[PastCase]
) -> None:
    memory = open_memory(path=tmp_path / "qdrant", url=None, embedder=HashEmbedder())
    memory.import_cases(cases)
    with pytest.raises(CaseMemoryUnavailable, match="EXDESK_QDRANT_URL"):
        open_memory(path=tmp_path / "qdrant", url=None, embedder=HashEmbedder())
    memory.close()

    again = open_memory(path=tmp_path / "qdrant", url=None, embedder=HashEmbedder())
    try:
        assert again.count() == 6
        assert again.search(_finding(Kind.STOCKOUT, "上海仓库存不足"), order)[0]["case_id"] == "C-3"
    finally:
        again.close()


def test_another_model_on_the_same_collection_is_refused(
    order: Order, cases: list[PastCase]
) -> None:
    client = QdrantClient(location=":memory:")
    QdrantCaseMemory(client, HashEmbedder(256)).import_cases(cases)
    other = QdrantCaseMemory(client, HashEmbedder(64))
    with pytest.raises(CaseMemoryUnavailable, match="EXDESK_EMBEDDING_MODEL"):
        other.search(_finding(Kind.STOCKOUT, "short"), order)
    with pytest.raises(CaseMemoryUnavailable, match="256-dimensional"):
        other.import_cases(cases)
    other.reset()
    assert other.import_cases(cases) == 6 and other.count() == 6


def test_an_unreachable_server_says_what_to_check(order: Order) -> None:
    client = QdrantClient(url="http://127.0.0.1:9", check_compatibility=False)
    memory = QdrantCaseMemory(client, HashEmbedder())
    with pytest.raises(CaseMemoryUnavailable, match="EXDESK_QDRANT_URL"):
        memory.search(_finding(Kind.STOCKOUT, "short"), order)


def test_a_shared_folder_serves_one_process_after_another(
    tmp_path: Path, order: Order, cases: list[PastCase]
) -> None:
    folder = tmp_path / "qdrant"
    first, second = (SharedFolderMemory(folder, HashEmbedder(), timeout=5) for _ in range(2))
    finding = _finding(cases[0].kind, cases[0].summary)
    assert second.search(finding, order) == []  # nothing stored: the folder is not opened
    assert not folder.exists()
    assert first.import_cases(cases) == len(cases)
    # two memories on one folder (as two processes would have): both search, neither locked out
    assert second.search(finding, order)[0]["case_id"] == cases[0].case_id
    assert first.search(finding, order)[0]["case_id"] == cases[0].case_id
    assert second.count() == len(cases)


def test_a_busy_shared_folder_waits_a_bounded_time(
    tmp_path: Path, order: Order, cases: list[PastCase]
) -> None:
    folder = tmp_path / "qdrant"
    SharedFolderMemory(folder, HashEmbedder()).import_cases(cases)
    patient = SharedFolderMemory(folder, HashEmbedder(), timeout=0.3)
    holder = FileLock(str(folder.with_name("qdrant.lock")))
    with holder:  # another process is searching
        started = time.perf_counter()
        with pytest.raises(CaseMemoryUnavailable, match="busy for 0 s"):
            patient.search(_finding(cases[0].kind, cases[0].summary), order)
        assert time.perf_counter() - started < 5
    assert patient.search(_finding(cases[0].kind, cases[0].summary), order)
