"""The hard bilingual retrieval eval: the same situation in both languages, in other words
than the query, among many same-language near misses that share its words but not its facts.

    python -m evals.retrieval_hard [--embedders multilingual] [--rerank dense,codes]
                                   [--history 5000] [--out R.json]

``evals/data/retrieval_hard.jsonl`` holds 24 situations written by hand (four of each kind
the agent searches for): each a case template in English and one in Chinese (slots for the
goods, the warehouse and its city, the destination, the quantity, the document, the failure
code, the days late, ... and how it ended), and one query in each language written apart from
the cases, in other words (fresh wordings, numbers spelled out sometimes, no template). The
memory holds, for every situation, its case in each language, and ``--near`` near misses in
each language: the same template, the same words, with one fact changed (another SKU,
warehouse, destination, quantity, document, failure code or delay; every other one also
ended the other way).
``--history`` generated past cases of every kind (``evals.history``) come on top in the full
memory.

Each query searches its kind, as the agent does, for 10 cases; it has two targets, the
situation's case in its own language and the one in the other language. Reported: hit@5 over
every (query, target) pair, cross-lingual hit@5 per direction (en→zh: English queries, the
Chinese case; zh→en), same-language hit@5, either@5 (either case in the top 5), and MRR
(reciprocal rank, 0 past 10). Goals: hit@5 ≥ 0.95, cross-lingual ≥ 0.90 each direction.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.models import Kind, Strategy
from evals.history import NAMES, PLACES, generate
from knowledge.cases import Outcome, PastCase
from knowledge.embedder import DEFAULT_MODEL, make_embedder
from knowledge.situation import ADDRESS_FIELD, COUNTRY, DOCUMENT
from knowledge.store import RERANKS, check_rerank, open_memory

DATA = Path(__file__).parent / "data" / "retrieval_hard.jsonl"
GOALS = {"hit@5": 0.95, "en→zh": 0.90, "zh→en": 0.90}
LANGS = ("en", "zh")

# How the cases say a payment failed: code → (English, Chinese)
FAILURE = {
    "soft_decline": ("a soft decline", "银行软拒付"),
    "hard_decline": ("a hard decline", "硬拒付"),
    "expired_card": ("the card had expired", "卡已过期"),
    "processor_timeout": ("processor timeout", "支付处理超时"),
    "insufficient_funds": ("insufficient funds", "余额不足"),
}
# destinations the agent's tables do not name (embargoed ones): code → (English, Chinese)
MORE_COUNTRIES = {"IR": ("Iran", "伊朗"), "CU": ("Cuba", "古巴"), "SY": ("Syria", "叙利亚")}
COUNTRIES = {**COUNTRY, **MORE_COUNTRIES}
CARRIER_CODES = ("address_undeliverable", "address_incomplete", "recipient_unknown")
# How each case ended: strategy → ((en ok, zh ok), (en failed, zh failed))
ENDED: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "reallocate_warehouse": (
        ("It arrived on time.", "按时送到了。"),
        ("The other site miscounted and it went out late.", "结果那边库存也不准，晚发了。"),
    ),
    "substitute_item": (
        ("The customer was happy with it.", "顾客接受了。"),
        ("The customer refused it and asked for a refund.", "顾客不接受，要求退款。"),
    ),
    "backorder": (
        ("Stock came in and it shipped within the promise.", "补货到了，承诺时间内发出。"),
        ("Restock slipped and the customer cancelled.", "补货一再延期，顾客取消了订单。"),
    ),
    "split_shipment": (
        ("Both parcels were delivered.", "两个包裹都送到了。"),
        ("One parcel went missing.", "其中一个包裹丢了。"),
    ),
    "address_autocorrect": (
        ("Delivered without trouble.", "顺利签收。"),
        ("The fix was wrong and the parcel came back.", "改错了，包裹被退回。"),
    ),
    "address_confirm_with_customer": (
        ("The buyer answered and it shipped.", "买家回复后发出。"),
        ("Nobody answered; the order was cancelled.", "一直没人回复，订单取消。"),
    ),
    "customs_attach_document": (
        ("Customs released it two days later.", "两天后海关放行。"),
        ("Customs still refused it.", "海关仍然不放行。"),
    ),
    "customs_fix_hs_code": (
        ("It cleared the next day.", "第二天清关。"),
        ("It stayed blocked for weeks.", "卡了好几周。"),
    ),
    "cancel_order": (
        ("Refund done, no complaint.", "退款完成，没有投诉。"),
        ("The customer complained about the cancellation.", "顾客投诉了取消。"),
    ),
    "payment_retry": (
        ("The charge went through.", "扣款成功。"),
        ("It was declined again.", "又被拒了。"),
    ),
    "payment_request_new_method": (
        ("They paid with PayPal.", "对方换了支付宝付款。"),
        ("They never paid.", "对方一直没有付款。"),
    ),
    "notify_delay": (
        ("The customer accepted the delay.", "客户接受了延误。"),
        ("The customer asked for a refund anyway.", "客户还是要求退款。"),
    ),
    "upgrade_shipping": (
        ("It made the promised date.", "赶上了承诺日期。"),
        ("It was late even so.", "还是晚到了。"),
    ),
    "hold_duplicate": (
        (
            "The buyer confirmed it was a mistake; one was cancelled.",
            "买家确认是误操作，取消了一单。",
        ),
        ("The buyer wanted both and was annoyed by the hold.", "买家两单都要，对暂停很不满。"),
    ),
}
# which slots a near miss may change, per kind (one of them, or the outcome)
CHANGES: dict[str, tuple[str, ...]] = {
    "stockout": ("item", "wh", "to", "country", "n"),
    "bad_address": ("field", "country", "item", "code"),
    "customs_block": ("doc", "country", "item"),
    "payment_failed": ("failure", "country", "item"),
    "carrier_delay": ("days", "country", "item"),
    "duplicate_order": ("minutes", "country", "item"),
}


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _city(warehouse: str, lang: str) -> str:
    en, zh = PLACES.get(warehouse, (warehouse, warehouse))
    return en if lang == "en" else zh


def render(template: str, slots: Mapping[str, Any], strategy: str, success: bool, lang: str) -> str:
    """A case's text: the template with its slots in ``lang``."""
    i = 0 if lang == "en" else 1
    item = str(slots.get("item") or "")
    to = str(slots.get("to") or "")
    values = {
        "item": f"{NAMES[item][i]} {item}"
        if item in NAMES and i == 0
        else NAMES.get(item, ("",) * 2)[i],
        "wh": slots.get("wh", ""),
        "city": _city(str(slots.get("wh", "")), lang),
        "to": to,
        "to_city": _city(to, lang) if to in PLACES else "",
        "to_item": NAMES[to][i] if to in NAMES else to,
        "country": COUNTRIES[slots["country"]][i],
        "n": slots.get("n", ""),
        "field": ADDRESS_FIELD[slots["field"]][i] if slots.get("field") in ADDRESS_FIELD else "",
        "code": slots.get("code", ""),
        "doc": DOCUMENT[slots["doc"]][i] if slots.get("doc") in DOCUMENT else "",
        "failure": FAILURE[slots["failure"]][i] if slots.get("failure") in FAILURE else "",
        "days": slots.get("days", ""),
        "minutes": slots.get("minutes", ""),
        "outcome": ENDED[strategy][0 if success else 1][i],
    }
    return template.format(**values)


def _other(slot: str, value: Any, rng: random.Random, slots: Mapping[str, Any]) -> Any:
    """Another value for ``slot`` than ``value``."""
    pools: dict[str, Sequence[Any]] = {
        "item": sorted(NAMES),
        "wh": sorted(PLACES),
        "to": sorted(PLACES) if str(slots.get("to", "")) in PLACES else sorted(NAMES),
        "country": sorted(COUNTRIES),
        "n": range(1, 40),
        "field": sorted(ADDRESS_FIELD),
        "code": CARRIER_CODES,
        "doc": sorted(DOCUMENT),
        "failure": sorted(FAILURE),
        "days": range(1, 15),
        "minutes": range(1, 30),
    }
    choices = [v for v in pools[slot] if v != value and v != slots.get("wh")]
    return rng.choice(choices)


def near_misses(
    situation: Mapping[str, Any], lang: str, count: int, seed: int
) -> Iterator[PastCase]:
    """``count`` cases of the situation's kind in ``lang``, written from its own template,
    each with one fact changed, every other one with the other outcome too."""
    rng = random.Random(f"{seed}:{situation['id']}:{lang}")
    slots = dict(situation["slots"])
    changes = [c for c in CHANGES[situation["kind"]] if slots.get(c) not in (None, "")]
    written = {render(situation[lang], slots, situation["strategy"], situation["success"], lang)}
    for i in range(count):
        change = changes[i % len(changes)]
        success = bool(situation["success"]) != bool(i % 2)  # every other one ended otherwise
        for _ in range(100):  # another value, until the text is one not written yet
            mine = {**slots, change: _other(change, slots[change], rng, slots)}
            text = render(situation[lang], mine, situation["strategy"], success, lang)
            if text not in written:
                break
        written.add(text)
        yield _case(f"{situation['id']}-{lang}-near-{i}", situation, text, success, i)


def _case(case_id: str, situation: Mapping[str, Any], text: str, success: bool, i: int) -> PastCase:
    return PastCase(
        case_id=case_id,
        kind=Kind(situation["kind"]),
        summary=text,
        strategy=Strategy(situation["strategy"]),
        outcome=Outcome(success=success),
        resolved_at=datetime(2026, 6, 1, tzinfo=UTC) + timedelta(hours=i),
    )


def memory_cases(situations: Sequence[Mapping[str, Any]], near: int, seed: int) -> list[PastCase]:
    found: list[PastCase] = []
    for s in situations:
        for lang in LANGS:
            text = render(s[lang], s["slots"], s["strategy"], bool(s["success"]), lang)
            found.append(_case(f"{s['id']}-{lang}", s, text, bool(s["success"]), 0))
            found.extend(near_misses(s, lang, near, seed))
    return found


@dataclass(frozen=True)
class Result:
    embedder: str
    rerank: str
    memory: str
    cases: int
    figures: dict[str, dict[str, float]]
    misses: list[dict[str, Any]]
    search_ms: float

    def as_json(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "rerank": self.rerank,
            "memory": self.memory,
            "cases": self.cases,
            "figures": self.figures,
            "search_ms_per_query": round(self.search_ms, 2),
            "misses": self.misses,
        }


def score(pairs: Sequence[tuple[str, str, int | None]]) -> dict[str, dict[str, float]]:
    """(query language, target language, rank) → hit@5 and MRR per group."""
    groups: dict[str, list[int | None]] = {}
    for q, t, rank in pairs:
        for group in ("all", "cross_lingual" if q != t else "same_language", f"{q}→{t}"):
            groups.setdefault(group, []).append(rank)
    return {
        g: {
            "hit@5": round(sum(1 for r in found if r is not None and r <= 5) / len(found), 3),
            "mrr": round(sum(1 / r for r in found if r is not None) / len(found), 3),
            "n": len(found),
        }
        for g, found in sorted(groups.items())
    }


def run(
    embedder_name: str,
    reranks: Sequence[str],
    situations: Sequence[Mapping[str, Any]],
    *,
    near: int = 8,
    seed: int = 1,
    history: Sequence[PastCase] = (),
) -> list[Result]:
    """The figures of each way of ordering results, on one memory imported once."""
    embedder = make_embedder(embedder_name)
    memory = open_memory(url=None, embedder=embedder, learns=False)
    cases = memory_cases(situations, near, seed)
    queries = [(s, lang) for s in situations for lang in LANGS]
    asked = [(s[f"q_{lang}"], Kind(s["kind"])) for s, lang in queries]
    results = []
    try:
        memory.import_cases([*history, *cases])
        for rerank in reranks:
            memory.rerank = check_rerank(rerank)
            started = time.perf_counter()
            found = memory.search_many(asked, limit=10)
            search_ms = (time.perf_counter() - started) * 1000 / max(1, len(queries))
            figures, misses = _figures(queries, found)
            results.append(
                Result(
                    embedder=embedder.name,
                    rerank=rerank,
                    memory="full" if history else "empty",
                    cases=len(cases) + len(history),
                    figures=figures,
                    misses=misses,
                    search_ms=search_ms,
                )
            )
    finally:
        memory.close()
    return results


def _figures(
    queries: Sequence[tuple[Mapping[str, Any], str]], found: Sequence[Sequence[Mapping[str, Any]]]
) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    pairs: list[tuple[str, str, int | None]] = []
    either: list[bool] = []
    misses: list[dict[str, Any]] = []
    for (s, lang), hits in zip(queries, found, strict=True):
        ids = [h["case_id"] for h in hits]
        ranks = {}
        for target in LANGS:
            want = f"{s['id']}-{target}"
            ranks[target] = ids.index(want) + 1 if want in ids else None
            pairs.append((lang, target, ranks[target]))
        either.append(any(r is not None and r <= 5 for r in ranks.values()))
        if any(r is None or r > 5 for r in ranks.values()):
            misses.append({"situation": s["id"], "query": lang, "ranks": ranks, "top": ids[:5]})
    figures = score(pairs)
    figures["either"] = {"hit@5": round(sum(either) / len(either), 3), "n": len(either)}
    return figures, misses


def standing(result: Result) -> tuple[bool, str]:
    got = {"hit@5": result.figures["all"]["hit@5"]}
    got["en→zh"] = result.figures["en→zh"]["hit@5"]
    got["zh→en"] = result.figures["zh→en"]["hit@5"]
    met = all(got[k] >= GOALS[k] for k in GOALS)
    return met, ", ".join(
        f"{k} {v:.3f} ({'goal met' if v >= GOALS[k] else 'below goal'})" for k, v in got.items()
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--embedders", default=DEFAULT_MODEL, help="comma-separated settings")
    parser.add_argument(
        "--rerank", default=",".join(RERANKS), help="comma-separated: " + ", ".join(RERANKS)
    )
    parser.add_argument(
        "--near", type=int, default=8, help="near misses per situation and language"
    )
    parser.add_argument(
        "--history", type=int, default=5000, help="generated cases in the full memory"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    situations = load()
    history = list(generate(args.history, 3)) if args.history else []
    results: list[Result] = []
    ok = True
    for name in args.embedders.split(","):
        for extra in ([], history) if history else ([],):
            reranks = [r.strip() for r in args.rerank.split(",")]
            for r in run(
                name.strip(), reranks, situations, near=args.near, seed=args.seed, history=extra
            ):
                results.append(r)
                met, line = standing(r)
                ok = ok and met
                print(f"{r.embedder} · rerank {r.rerank} · {r.memory} memory ({r.cases} cases)")
                print(f"    {line}")
                for group, fig in r.figures.items():
                    mrr = f"  MRR {fig['mrr']:.3f}" if "mrr" in fig else ""
                    print(f"    {group:14} hit@5 {fig['hit@5']:.3f}{mrr}  (n={fig['n']})")
                print(f"    {r.search_ms:.1f} ms a query (embedding included, one batch)")
    if args.out:
        args.out.write_text(
            json.dumps([r.as_json() for r in results], indent=2, ensure_ascii=False) + "\n"
        )
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
