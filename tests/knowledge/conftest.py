"""Fixtures for the case-memory tests: both engines, a counting embedder, past cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from domain.models import Kind, Order, Strategy
from knowledge.cases import PastCase
from knowledge.engines import EdgeEngine, ServerEngine
from knowledge.store import QdrantCaseMemory
from tests.knowledge.support import ORDER, CountingEmbedder, case


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "model: loads a real embedding model (a few seconds, offline)"
    )


@pytest.fixture
def order() -> Order:
    return Order.model_validate(ORDER)


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture(params=["edge", "server-api"])
def memory(
    request: pytest.FixtureRequest, embedder: CountingEmbedder, tmp_path: Path
) -> Iterator[QdrantCaseMemory]:
    """The memory on Qdrant's embedded engine, and on qdrant-client (local mode stands in for
    a server: the same client calls, no network)."""
    if request.param == "edge":
        memory = QdrantCaseMemory(EdgeEngine(tmp_path / "shard"), embedder)
    else:
        memory = QdrantCaseMemory(
            ServerEngine(QdrantClient(location=":memory:"), "exdesk_cases"), embedder
        )
    yield memory
    memory.close()


@pytest.fixture
def cases() -> list[PastCase]:
    return [
        case(
            "C-1",
            Kind.STOCKOUT,
            "WH-SHA cannot ship every line: TEE-COT-NVY short by 3",
            Strategy.REALLOCATE_WAREHOUSE,
        ),
        case(
            "C-2",
            Kind.STOCKOUT,
            "backorder placed, replenishment arrived late",
            Strategy.BACKORDER,
            success=False,
        ),
        case(
            "C-3",
            Kind.STOCKOUT,
            "上海仓库存不足，从深圳仓调货发出",
            Strategy.REALLOCATE_WAREHOUSE,
        ),
        case(
            "C-4",
            Kind.BAD_ADDRESS,
            "WH-SHA cannot ship every line: TEE-COT-NVY short by 3",
            Strategy.ADDRESS_AUTOCORRECT,
        ),
        case(
            "C-5",
            Kind.PAYMENT_FAILED,
            "payment failed (soft_decline), retried after an hour and captured",
            Strategy.PAYMENT_RETRY,
        ),
        case(
            "C-6",
            Kind.BAD_ADDRESS,
            "收货地址邮编错误，已联系客户确认新地址",
            Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER,
        ),
    ]
