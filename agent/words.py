"""Words for people, marked as the model's (contract §8 "words for people"): the message to a
customer whose order waits on them, a plan explained to an approver, and a summary with a
suggested next step for a ``manual_review`` proposal.

They decide nothing. With no model (or when its words fail the checks below, or it fails) a
template writes them, marked ``template``. Each is written once per subject, plan digest,
purpose and language (``store.words``), so a page view never asks a model twice; every call is
recorded like a reading (``model.wrote``, prompt and answer beside the log).

What a model's words must pass: plain text, not empty, not too long, no control characters,
no markup, no link or e-mail address, and (for a customer) no number of four or more digits
that the facts it was given do not contain — so it cannot hand a customer an account, a phone
number or a site of its own making.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from agent.prompts import PROMPT_VERSION, prompt_text, words_request
from audit.log import AuditLog
from domain.models import Order, Plan
from store.words import Words, WordsCache, words_key
from tools.model import GuardedModel

WROTE_EVENT = "model.wrote"
# notify templates that ask the customer for something: their message is written for them
WAITING_TEMPLATES = frozenset(
    {"confirm_address", "confirm_new_address", "request_payment_method", "confirm_duplicate"}
)
LANGUAGES = ("en", "zh")
MAX_WORDS = {"customer_message": 800, "explanation": 1500, "summary": 800}
_BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069<>]|https?:|www\.|@\w")
_LONG_NUMBER = re.compile(r"\d{4,}")

_INSTRUCTIONS = {
    "customer_message": (
        "Write a short, polite message to a customer whose order is on hold until they answer. "
        "Use only the facts in the context; ask exactly what the context's request asks; do "
        "not promise anything, do not mention refunds, prices or links. Plain text, at most "
        "80 words, in the language named by the context's 'language' ({language})."
    ),
    "explanation": (
        "Explain to an approver, in plain words, what this plan does, why exdesk drafted it "
        "and what it costs, from the facts in the context only. Say what each action does. "
        "Do not recommend approving or rejecting: people decide. Plain text, at most 120 "
        "words, in {language}."
    ),
    "summary": (
        "An order went to a person for manual review. Summarize, from the facts in the "
        "context only, what the problem is, and suggest one next step a person could take. "
        "Plain text, two short paragraphs, at most 100 words, in {language}."
    ),
}
_LANGUAGE_NAMES = {"en": "English", "zh": "Simplified Chinese"}


def language_of(order: Order) -> str:
    """The customer's language: their notes' when they wrote some, else the order's."""
    from knowledge.situation import order_language, text_language

    notes = (order.notes or "").strip()
    if notes and any(ch.isalpha() for ch in notes):
        return text_language(notes)
    return order_language(order)


def checked(text: str, purpose: str, facts: str) -> str | None:
    """The model's words if they pass (see the module), else None."""
    text = text.strip()
    if not text or len(text) > MAX_WORDS[purpose] or _BAD.search(text):
        return None
    if text.startswith("{") or text.startswith("["):  # JSON is not words for people
        return None
    if purpose == "customer_message":
        known = set(_LONG_NUMBER.findall(facts))
        if any(n not in known for n in _LONG_NUMBER.findall(text)):
            return None
    return text


# --- templates -------------------------------------------------------------------------------


def _address_lines(address: Mapping[str, Any]) -> str:
    order = ("name", "street_address", "city_area", "city", "country_area", "postal_code")
    parts = [str(address[k]) for k in order if address.get(k)]
    return ", ".join([*parts, str(address.get("country_code", ""))]).strip(", ")


def customer_template(template: str, data: Mapping[str, Any], lang: str) -> str:
    zh = lang == "zh"
    proposed = data.get("proposed_address")
    if template == "confirm_new_address" and isinstance(proposed, Mapping):
        where = _address_lines(proposed)
        problems = "; ".join(str(p) for p in data.get("problems") or ())
        if zh:
            text = f"您好！您希望将订单改寄到：{where}。请回复确认这个地址，确认后我们再发货。"
            return text + (f"（该地址有误：{problems}，请一并更正。）" if problems else "")
        text = (
            f"Hello! You asked us to deliver your order to: {where}. Please reply to confirm "
            "this address; we will ship once you do."
        )
        return text + (
            f" (Something looks wrong: {problems}; please correct it.)" if problems else ""
        )
    if template == "confirm_address":
        return (
            "您好！我们无法确认您的收货地址，订单暂缓发货。请回复正确的完整地址。"
            if zh
            else "Hello! We could not confirm your delivery address, so your order is on hold. "
            "Please reply with your full, correct address."
        )
    if template == "request_payment_method":
        return (
            "您好！您的付款未能完成，订单暂缓发货。请更换一种付款方式。"
            if zh
            else "Hello! Your payment did not go through, so your order is on hold. Please "
            "choose another payment method."
        )
    return (
        "您好！我们收到了两笔相同的订单，暂缓发出后一笔。请回复是否需要两笔都发货。"
        if zh
        else "Hello! We received the same order twice and are holding the later one. Please "
        "reply whether you want both shipped."
    )


def plan_template(plan: Plan, lang: str, *, summary: bool = False) -> str:
    steps = "; ".join(f"{a.tool}.{a.op}" for a in plan.actions)
    if lang == "zh":
        head = (
            f"方案 {plan.strategy.value}（{plan.tier.value}，影响金额 {plan.cost_usd} 美元）："
            f"{plan.rationale}"
        )
        tail = (
            "建议：人工阅读订单及备注后决定，解除暂扣或联系客户。"
            if summary
            else f"步骤：{steps}。"
        )
        return f"{head}\n{tail}"
    head = (
        f"Plan {plan.strategy.value} ({plan.tier.value}, money at stake {plan.cost_usd} USD): "
        f"{plan.rationale}"
    )
    tail = (
        "Next step: a person reads the order and its notes, then lifts the hold or contacts "
        "the customer."
        if summary
        else f"Steps: {steps}."
    )
    return f"{head}\n{tail}"


# --- writing ---------------------------------------------------------------------------------


def message_facts(order: Order, template: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a customer's message may say: the request and its structured facts, never the
    customer's own free text."""
    facts: dict[str, Any] = {"order_id": order.order_id, "request": template}
    for name in ("proposed_address", "problems", "duplicate_of"):
        if name in data:
            facts[name] = data[name]
    return facts


def write(
    model: GuardedModel | None,
    cache: WordsCache,
    audit: AuditLog,
    *,
    purpose: str,
    subject: str,
    plan_digest: str,
    lang: str,
    context: dict[str, Any],
    template: str,
) -> Words:
    """The words for ``purpose``: cached, else the model's (checked), else the template."""
    lang = lang if lang in LANGUAGES else "en"
    key = words_key(purpose, subject, plan_digest, lang)
    kept = cache.get(key)
    if kept is not None:
        return kept
    words = Words(text=template, by="template", language=lang)
    entry: dict[str, Any] | None = None  # the model's call, recorded with the words it wrote
    if model is not None:
        instructions = _INSTRUCTIONS[purpose].format(language=_LANGUAGE_NAMES[lang])
        request = words_request(purpose, instructions, {**context, "language": lang})
        attempt = model.ask(request)
        answer = attempt.answer.text if attempt.answer is not None else ""
        facts = json.dumps(context, ensure_ascii=False)
        text = checked(answer, purpose, facts) if attempt.answer is not None else None
        status = "written" if text else ("dropped" if attempt.answer is not None else "failed")
        if text:
            words = Words(text=text, by=f"model:{attempt.answer.model}", language=lang)  # type: ignore[union-attr]
        entry = {
            "order_id": context.get("order_id"),
            "purpose": purpose,
            "subject": subject,
            "plan_digest": plan_digest,
            "language": lang,
            "status": status,
            "why": attempt.failure or ("" if text else "the words failed the checks"),
            "prompt_version": PROMPT_VERSION,
            "model": model.name,
            "model_prompt": prompt_text(request),
            "model_answer": answer,
        }

    def record(conn: Connection) -> None:
        if entry is not None:
            audit.append("agent", WROTE_EVENT, entry, key=f"words:{key}", conn=conn)

    return cache.put(key, purpose, subject, words, then=record)
