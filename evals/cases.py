"""Eval cases (contract §6): an order, its world, and what scorers expect."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.models import Order, World


class EvalCase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    order: Order
    world: World
    expect: dict[str, Any] | None = None
