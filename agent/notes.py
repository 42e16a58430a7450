"""Reading text with the model (contract §8): one call per order with notes, inside the graph,
recorded so that replay never calls a model.

The answer is judged by ``domain.reading`` (schema, intent, quote); a rejected answer is
dropped, and no answer (a timeout, an outage, the budget spent) is a failure: either way the
order is handled as without a model, and the entry says why. The entry holds the whole prompt
and answer under ``model_prompt`` / ``model_answer``, which the audit log keeps beside the
chain as personal data (a salted digest in the entry, the text in ``audit_personal``), so an
erasure takes them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agent.context import Context
from agent.prompts import (
    NOTE_INSTRUCTIONS,
    NOTE_INTENTS,
    PROMPT_VERSION,
    prompt_text,
    reading_request,
)
from audit.log import AuditLog
from audit.personal import is_ref, refs_in, restore
from domain.models import Order
from domain.reading import Intent, Reading, ReadingRejected, read_answer
from tools.model import Attempt, GuardedModel, ModelRequest

READ_EVENT = "model.read"
READING_TOOL = "reading"  # the one tool a model may call (``agent.prompts``)
NOTE_ALLOWED = frozenset(Intent(i) for i in NOTE_INTENTS)
Status = Literal["read", "dropped", "failed"]


@dataclass(frozen=True)
class Judged:
    status: Status
    reading: Reading | None
    why: str = ""


def needs_reading(order: Order) -> bool:
    """An order whose notes a model reads (when one is configured): notes that say something,
    on an order that has not shipped or been cancelled."""
    return bool((order.notes or "").strip()) and order.status not in ("cancelled", "fulfilled")


def must_read(model: GuardedModel | None, order: Order) -> bool:
    """The seam with screening: an order a model must read (an endpoint is set and the notes
    say something) needs the graph, where the call is made and recorded for replay."""
    return model is not None and needs_reading(order)


def judge(
    failure: str | None,
    answer: str,
    text: str,
    allowed: frozenset[Intent],
    *,
    tool: str | None = None,
) -> Judged:
    """What an answer (or its absence) comes to: the same function at run time and in replay.
    ``tool``: the tool the model called, when it answered with a tool call (only one exists)."""
    if failure is not None:
        return Judged("failed", None, failure)
    if tool is not None and tool != READING_TOOL:
        return Judged("dropped", None, f"the model called {tool[:60]!r}, not {READING_TOOL}")
    try:
        return Judged("read", read_answer(answer, text, allowed=allowed))
    except ReadingRejected as exc:
        return Judged("dropped", None, str(exc))


def ask_and_record(
    model: GuardedModel,
    audit: AuditLog,
    request: ModelRequest,
    text: str,
    allowed: frozenset[Intent],
    *,
    key: str,
    about: Mapping[str, Any],
) -> Judged:
    """Ask the model to read ``text``, judge the answer and record both, once per ``key``: a
    step run again (a crash, a resume) reads the recorded answer instead of asking again."""
    earlier = audit.by_key(key)
    if earlier is not None:
        refs = sorted(refs_in(earlier.payload))
        payload = restore(earlier.payload, audit.clear_values(refs) if refs else {})
        return judged_entry(payload, text, allowed)
    attempt = model.ask(request)
    answer = attempt.answer.text if attempt.answer is not None else ""
    called = attempt.answer.tool if attempt.answer is not None else None
    judged = judge(_failure(attempt), answer, text, allowed, tool=called)
    model.stats.outcome(judged.status)
    audit.append("agent", READ_EVENT, read_entry(model, request, attempt, judged, about), key=key)
    return judged


def _failure(attempt: Attempt) -> str | None:
    if attempt.answer is not None:
        return None
    return f"{attempt.failure}: {attempt.detail}" if attempt.detail else str(attempt.failure)


def read_entry(
    model: GuardedModel,
    request: ModelRequest,
    attempt: Attempt,
    judged: Judged,
    about: Mapping[str, Any],
) -> dict[str, Any]:
    answer = attempt.answer
    return {
        **about,
        "purpose": request.purpose,
        "model": answer.model if answer else model.name,
        "prompt_version": PROMPT_VERSION,
        "status": judged.status,
        "why": judged.why,
        "intent": judged.reading.intent.value if judged.reading else None,
        "via": answer.via if answer else None,
        "tool": answer.tool if answer else None,
        "tries": attempt.tries,
        "seconds": round(attempt.seconds, 3),
        "prompt_tokens": answer.prompt_tokens if answer else 0,
        "completion_tokens": answer.completion_tokens if answer else 0,
        # beside the chain, as personal data (audit.personal): the digest here, the text there
        "model_prompt": prompt_text(request),
        "model_answer": answer.text if answer else "",
    }


def judged_entry(payload: Mapping[str, Any], text: str, allowed: frozenset[Intent]) -> Judged:
    """The recorded answer of a ``model.read`` entry (its personal values restored), judged
    again: no model is called."""
    if payload.get("status") == "failed":
        return Judged("failed", None, str(payload.get("why", "")))
    answer = str(payload.get("model_answer") or "")
    if is_ref(answer):
        return Judged("failed", None, "the recorded answer was erased")
    tool = payload.get("tool")
    return judge(None, answer, text, allowed, tool=str(tool) if tool is not None else None)


def read_notes(model: GuardedModel, audit: AuditLog, ctx: Context, thread_id: str) -> Judged:
    """The reading of the order's notes (one model call per order version and policy)."""
    order = ctx.order
    notes = order.notes or ""
    context = {
        "today": ctx.world.now.date().isoformat(),
        "promised_by": order.fulfillment.promised_by.date().isoformat(),
        "ship_to_country": order.ship_to.country_code,
    }
    request = reading_request("notes", NOTE_INSTRUCTIONS, context, notes)
    about = {"order_id": order.order_id, "thread_id": thread_id}
    return ask_and_record(
        model, audit, request, notes, NOTE_ALLOWED, key=f"{thread_id}:notes", about=about
    )
