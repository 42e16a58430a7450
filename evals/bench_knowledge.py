"""Benchmark: the case memory in embedded Qdrant, with the hash embedder and with MiniLM.

Run ``python -m evals.bench_knowledge [--count N] [--queries Q] [--repeat R] [--embedders
hash,minilm] [--url URL]``. For each embedder it imports ``N`` synthetic past cases (English
and Chinese summaries, every kind) into a fresh memory ``R`` times and reports the median
import time; then it times ``Q`` searches one by one (median and 95th percentile) and how
often the case a query was written from comes back in the top 5. It also times a search on an
empty memory, which must not load the model. Embedded Qdrant under a temporary folder unless
``--url`` names a server. Prints medians, and the MiniLM/hash ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from domain.models import Finding, Kind, Order, Strategy
from knowledge.cases import Outcome, PastCase
from knowledge.embedder import Embedder, HashEmbedder, SentenceTransformerEmbedder
from knowledge.store import QdrantCaseMemory, open_memory

_WAREHOUSES = ("WH-SHA", "WH-SZX", "WH-LAX", "WH-EWR", "WH-FRA")
_SKUS = ("TEE-COT-NVY", "TEE-COT-BLK", "MUG-CER-01", "PWR-BANK-10K", "CASE-PHN-12")
_CARRIERS = ("DHL", "UPS", "SF Express", "FedEx", "YunExpress")
_CODES = ("soft_decline", "processor_timeout", "insufficient_funds", "card_expired")

# kind → (strategies, English templates, Chinese templates); {w} warehouse, {s} SKU, {n} qty,
# {c} carrier, {p} payment code, {d} days.
_KINDS: dict[Kind, tuple[tuple[Strategy, ...], tuple[str, ...], tuple[str, ...]]] = {
    Kind.STOCKOUT: (
        (Strategy.REALLOCATE_WAREHOUSE, Strategy.SPLIT_SHIPMENT, Strategy.BACKORDER),
        (
            "{w} cannot ship every line: {s} short by {n}",
            "{s} out of stock at {w}, {n} units missing for the order",
        ),
        ("{w}仓库{s}缺货{n}件，无法整单发货", "{s}在{w}库存不足，差{n}件"),
    ),
    Kind.BAD_ADDRESS: (
        (Strategy.ADDRESS_AUTOCORRECT, Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER),
        (
            "postal code invalid for the destination, carrier returned the parcel after {d} days",
            "city and province swapped in the address, {c} could not deliver",
        ),
        ("收货地址邮编错误，{c}退回包裹", "省市填反，地址无法校验，等待客户确认{d}天"),
    ),
    Kind.CUSTOMS_BLOCK: (
        (Strategy.CUSTOMS_ATTACH_DOCUMENT, Strategy.CUSTOMS_FIX_HS_CODE),
        (
            "customs hold at the border: commercial invoice missing for {s}",
            "HS code for {s} rejected by customs, shipment held {d} days",
        ),
        ("海关扣货：{s}缺少商业发票", "{s}的HS编码无效，清关延误{d}天"),
    ),
    Kind.PAYMENT_FAILED: (
        (Strategy.PAYMENT_RETRY, Strategy.PAYMENT_REQUEST_NEW_METHOD),
        ("payment failed ({p}), retried after {d} hours", "card declined with {p}"),
        ("支付失败（{p}），{d}小时后重试", "银行卡被拒（{p}），请客户更换支付方式"),
    ),
    Kind.CARRIER_DELAY: (
        (Strategy.NOTIFY_DELAY, Strategy.UPGRADE_SHIPPING),
        ("{c} reported a delay of {d} days past the promised date", "{c} parcel stuck in hub"),
        ("{c}延误{d}天，超过承诺送达时间", "{c}包裹滞留转运中心"),
    ),
    Kind.DUPLICATE_ORDER: (
        (Strategy.HOLD_DUPLICATE, Strategy.MANUAL_REVIEW),
        ("same customer ordered {s} twice within {d} minutes", "duplicate order for {s}"),
        ("同一客户{d}分钟内重复下单{s}", "重复订单：{s}"),
    ),
}


def _order() -> Order:
    """An order to pass to ``search`` (which does not read it)."""
    return Order.model_validate(
        {
            "order_id": "BENCH-1",
            "channel": "bench",
            "created_at": "2026-11-20T07:00:00+08:00",
            "customer": {"id": "C-1", "tier": "regular"},
            "ship_to": {"country_code": "NL", "city": "Amsterdam", "postal_code": "1012 JS"},
            "lines": [{"line_id": "L1", "sku": "MUG-CER-01", "qty": 1, "unit_price": 10}],
            "currency": "EUR",
            "payment": {"status": "captured", "method": "card", "amount": 10},
            "fulfillment": {
                "warehouse_id": "WH-FRA",
                "service": "standard",
                "promised_by": "2026-12-02T09:00:00+08:00",
            },
        }
    )


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        w=rng.choice(_WAREHOUSES),
        s=rng.choice(_SKUS),
        n=rng.randint(1, 40),
        c=rng.choice(_CARRIERS),
        p=rng.choice(_CODES),
        d=rng.randint(1, 14),
    )


def synthetic_cases(count: int, seed: int = 11) -> list[PastCase]:
    """``count`` past cases across every kind, about a third with Chinese summaries."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cases: list[PastCase] = []
    for i in range(count):
        kind = rng.choice(tuple(_KINDS))
        strategies, english, chinese = _KINDS[kind]
        templates = chinese if rng.random() < 0.35 else english
        cases.append(
            PastCase(
                case_id=f"SYN-{i:06d}",
                kind=kind,
                summary=f"{_fill(rng.choice(templates), rng)} (ref {rng.randint(1000, 9999)})",
                strategy=rng.choice(strategies),
                outcome=Outcome(
                    success=rng.random() < 0.8,
                    resolution_hours=round(rng.uniform(0.1, 72), 1),
                    cost_usd=Decimal(rng.randint(0, 5000)) / 100,
                ),
                resolved_at=start + timedelta(hours=i),
            )
        )
    return cases


def _query_for(case: PastCase, rng: random.Random) -> Finding:
    """A finding written from ``case``: its summary with one word or character dropped."""
    words = case.summary.split()
    if len(words) > 3:
        words.pop(rng.randrange(len(words)))
        summary = " ".join(words)
    else:
        cut = rng.randrange(len(case.summary))
        summary = case.summary[:cut] + case.summary[cut + 1 :]
    return Finding(kind=case.kind, order_id="BENCH-1", summary=summary)


@dataclass(frozen=True)
class Result:
    name: str
    load_s: float
    import_s: float
    search_ms: float
    search_p95_ms: float
    hit_at_5: float


def _open(url: str | None, folder: Path, embedder: Embedder) -> QdrantCaseMemory:
    collection = f"bench_{uuid.uuid4().hex[:8]}"
    if url:
        return open_memory(path=None, url=url, embedder=embedder, collection=collection)
    return open_memory(path=folder, url=None, embedder=embedder, collection=collection)


def bench(
    name: str,
    embedder: Embedder,
    cases: Sequence[PastCase],
    queries: Sequence[tuple[str, Finding]],
    order: Order,
    *,
    repeat: int,
    url: str | None,
) -> Result:
    started = time.perf_counter()
    embedder.embed(["warm up"])
    load_s = time.perf_counter() - started
    imports: list[float] = []
    memory: QdrantCaseMemory | None = None
    with tempfile.TemporaryDirectory(prefix="exdesk-bench-") as tmp:
        for run in range(repeat):
            if memory is not None:
                memory.reset()
                memory.close()
            memory = _open(url, Path(tmp) / f"run{run}", embedder)
            started = time.perf_counter()
            memory.import_cases(cases)
            imports.append(time.perf_counter() - started)
        assert memory is not None and memory.count() == len(cases)
        latencies: list[float] = []
        hits = 0
        for case_id, finding in queries:
            started = time.perf_counter()
            found = memory.search(finding, order, limit=5)
            latencies.append(time.perf_counter() - started)
            hits += any(c["case_id"] == case_id for c in found)
        memory.reset()
        memory.close()
    latencies.sort()
    return Result(
        name=name,
        load_s=load_s,
        import_s=statistics.median(imports),
        search_ms=statistics.median(latencies) * 1000,
        search_p95_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] * 1000,
        hit_at_5=hits / len(queries),
    )


def empty_search_us(order: Order, url: str | None, loops: int = 1000) -> tuple[float, bool]:
    """Median microseconds of a search on an empty memory, and whether the model loaded."""
    embedder = SentenceTransformerEmbedder()
    finding = Finding(kind=Kind.STOCKOUT, order_id="BENCH-1", summary="WH-SHA cannot ship")
    with tempfile.TemporaryDirectory(prefix="exdesk-bench-") as tmp:
        memory = _open(url, Path(tmp) / "empty", embedder)
        times: list[float] = []
        for _ in range(loops):
            started = time.perf_counter()
            memory.search(finding, order)
            times.append(time.perf_counter() - started)
        memory.close()
    return statistics.median(times) * 1e6, embedder.loaded


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="past cases to import")
    parser.add_argument("--queries", type=int, default=200, help="searches to time")
    parser.add_argument("--repeat", type=int, default=3, help="imports to time per embedder")
    parser.add_argument("--embedders", default="hash,minilm", help="comma-separated")
    parser.add_argument("--url", default=None, help="a Qdrant server instead of embedded")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    cases = synthetic_cases(args.count, args.seed)
    rng = random.Random(args.seed + 1)
    queries = [(c.case_id, _query_for(c, rng)) for c in rng.sample(cases, k=args.queries)]
    order = _order()
    where = args.url or "embedded Qdrant"
    print(f"{args.count} cases, {args.queries} searches, {args.repeat} imports each; {where}")

    empty_us, loaded = empty_search_us(order, args.url)
    print(f"empty memory: search median {empty_us:.1f} µs, model loaded: {loaded}")

    makers = {"hash": HashEmbedder, "minilm": SentenceTransformerEmbedder}
    results: list[Result] = []
    for name in args.embedders.split(","):
        result = bench(
            name,
            makers[name.strip()](),
            cases,
            queries,
            order,
            repeat=args.repeat,
            url=args.url,
        )
        results.append(result)
        print(
            f"{result.name:>7}: load {result.load_s:6.2f} s | import {result.import_s:6.2f} s "
            f"({args.count / result.import_s:7.0f} cases/s) | search median "
            f"{result.search_ms:6.2f} ms, p95 {result.search_p95_ms:6.2f} ms | "
            f"hit@5 {result.hit_at_5:.0%}"
        )
    by_name = {r.name: r for r in results}
    if "hash" in by_name and "minilm" in by_name:
        hash_, mini = by_name["hash"], by_name["minilm"]
        print(
            f"minilm/hash: import ×{mini.import_s / hash_.import_s:.1f}, "
            f"search ×{mini.search_ms / hash_.search_ms:.1f}"
        )


if __name__ == "__main__":
    main()
