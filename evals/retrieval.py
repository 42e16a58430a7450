"""The retrieval eval: does the case memory find the past case a query is about, in either
language?

    python -m evals.retrieval [--embedders multilingual,use-m3,...] [--rerank dense,lang+codes]
                              [--history 5000] [--out R.json]

``evals/data/retrieval_cases.jsonl`` holds 100 past cases written by hand (every kind, half in
Chinese, half in English, with near twins of the same kind); ``retrieval_queries.jsonl`` 236
labelled queries: a paraphrase in the case's language, a query in the other language (zh→en,
en→zh) for each case, and near misses (a query whose twin case is in the memory too). Each
query searches the cases of its kind, as the agent does. Reported: hit@5 and MRR overall,
same-language, cross-lingual, zh→en, en→zh and near misses, from an empty memory (the 100
cases alone) and from a full one (plus a generated history of ``--history`` cases of every
kind, ``evals.history``). Goals: hit@5 ≥ 0.95 and cross-lingual ≥ 0.90; bars 0.90 / 0.80
(exit 1 below a bar).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from domain.models import Frozen, Kind
from evals.history import generate
from knowledge.cases import PastCase
from knowledge.embedder import DEFAULT_MODEL, make_embedder
from knowledge.store import DEFAULT_RERANK, open_memory

DATA = Path(__file__).parent / "data"
CASES = DATA / "retrieval_cases.jsonl"
QUERIES = DATA / "retrieval_queries.jsonl"
GOALS = {"hit@5": 0.95, "cross_lingual": 0.90}
BARS = {"hit@5": 0.90, "cross_lingual": 0.80}


class LabelledQuery(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    kind: Kind
    expect: str
    type: str  # paraphrase, cross_lingual, near_miss
    lang: str
    case_lang: str
    decoy: str | None = None

    @property
    def groups(self) -> list[str]:
        found = ["all", "cross_lingual" if self.lang != self.case_lang else "same_language"]
        found.append(f"{self.lang}→{self.case_lang}")
        if self.type == "near_miss":
            found.append("near_miss")
        return found


def load(path: Path, model: type[Any]) -> list[Any]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [model.model_validate_json(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class Scores:
    embedder: str
    rerank: str
    memory: str  # "empty" or "full"
    cases: int
    figures: dict[str, dict[str, float]]  # group → {hit@5, mrr, n}
    import_s: float
    search_ms: float

    def as_json(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "rerank": self.rerank,
            "memory": self.memory,
            "cases": self.cases,
            "figures": self.figures,
            "import_s": round(self.import_s, 2),
            "search_ms_per_query": round(self.search_ms, 2),
        }


def score(ranks: Sequence[tuple[LabelledQuery, int | None]]) -> dict[str, dict[str, float]]:
    """hit@5 and MRR (reciprocal rank, 0 when not found in the top 10) per group."""
    groups: dict[str, list[int | None]] = {}
    for query, rank in ranks:
        for group in query.groups:
            groups.setdefault(group, []).append(rank)
    return {
        group: {
            "hit@5": round(sum(1 for r in found if r is not None and r <= 5) / len(found), 3),
            "mrr": round(sum(1 / r for r in found if r is not None) / len(found), 3),
            "n": len(found),
        }
        for group, found in sorted(groups.items())
    }


def run(
    embedder_name: str,
    cases: Sequence[PastCase],
    queries: Sequence[LabelledQuery],
    history: Sequence[PastCase] = (),
    *,
    rerank: str = DEFAULT_RERANK,
) -> Scores:
    embedder = make_embedder(embedder_name)
    memory = open_memory(url=None, embedder=embedder, learns=False, rerank=rerank)
    try:
        started = time.perf_counter()
        memory.import_cases([*history, *cases])
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        found = memory.search_many([(q.text, q.kind) for q in queries], limit=10)
        search_ms = (time.perf_counter() - started) * 1000 / max(1, len(queries))
    finally:
        memory.close()
    ranks: list[tuple[LabelledQuery, int | None]] = []
    for query, hits in zip(queries, found, strict=True):
        ids = [h["case_id"] for h in hits]
        ranks.append((query, ids.index(query.expect) + 1 if query.expect in ids else None))
    return Scores(
        embedder=embedder.name,
        rerank=rerank,
        memory="full" if history else "empty",
        cases=len(cases) + len(history),
        figures=score(ranks),
        import_s=import_s,
        search_ms=search_ms,
    )


def verdict(scores: Scores) -> tuple[bool, str]:
    """Whether the bars hold, and a line saying where the figures stand against the goals."""
    figures = {"hit@5": scores.figures["all"]["hit@5"]}
    figures["cross_lingual"] = scores.figures["cross_lingual"]["hit@5"]
    ok = all(figures[k] >= BARS[k] for k in BARS)

    def standing(k: str, v: float) -> str:
        return "goal met" if v >= GOALS[k] else "above bar" if v >= BARS[k] else "BELOW BAR"

    parts = [f"{k} {v:.3f} ({standing(k, v)})" for k, v in figures.items()]
    return ok, ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--embedders", default=DEFAULT_MODEL, help="comma-separated settings")
    parser.add_argument("--rerank", default=DEFAULT_RERANK, help="comma-separated: dense, ...")
    parser.add_argument("--history", type=int, default=5000, help="cases of the full memory")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cases = load(CASES, PastCase)
    queries = load(QUERIES, LabelledQuery)
    history = list(generate(args.history, args.seed)) if args.history else []
    results: list[Scores] = []
    ok = True
    for name in args.embedders.split(","):
        for rerank in args.rerank.split(","):
            for extra in ([], history) if history else ([],):
                result = run(name.strip(), cases, queries, extra, rerank=rerank.strip())
                results.append(result)
                passed, line = verdict(result)
                ok = ok and passed
                print(
                    f"{result.embedder} · rerank {result.rerank} · {result.memory} memory "
                    f"({result.cases} cases): {line}"
                )
                for group, fig in result.figures.items():
                    hit, mrr, n = fig["hit@5"], fig["mrr"], fig["n"]
                    print(f"    {group:14} hit@5 {hit:.3f}  MRR {mrr:.3f}  (n={n})")
                print(
                    f"    import {result.import_s:.1f} s, {result.search_ms:.1f} ms a query "
                    "(embedding included, all queries in one batch)"
                )
    if args.out:
        args.out.write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
