"""Fixtures for the case-memory tests: every backend, a counting embedder, past cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.models import Kind, Order, Strategy
from knowledge.cases import PastCase
from knowledge.memory import CaseStore
from tests.knowledge.backends import NAMES, Backend, HostProcess
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


@pytest.fixture(scope="session")
def host_process() -> Iterator[HostProcess]:
    """Another process that hosts shared folders (started once)."""
    host = HostProcess()
    yield host
    host.close()


@pytest.fixture(params=NAMES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every backend of the case-memory port, on a fresh store (``tests.knowledge.backends``)."""
    host = request.getfixturevalue("host_process") if request.param == "shared-client" else None
    found = Backend(request.param, tmp_path, host)
    yield found
    found.close()


@pytest.fixture
def memory(backend: Backend, embedder: CountingEmbedder) -> CaseStore:
    return backend.open(embedder)


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
