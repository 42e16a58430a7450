"""Eval cases (contract §6): an order, its world, and what scorers expect."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.models import Kind, Order, Strategy, Tier, World


class Expect(BaseModel):
    """What scorers check: kinds raised, acceptable top strategies with their tiers, and
    fields the order must have after the run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kinds: list[Kind] | None = None
    top: dict[Kind, dict[Strategy, Tier]] = Field(default_factory=dict)
    order_after: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class EvalCase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    order: Order
    world: World
    expect: Expect | None = None
