"""Language-neutral codes in a case's text, and the reranking that uses them.

Two texts about one situation in two languages share its facts: the SKU and warehouse ids,
the destination, the document customs asked for, the failure code, the numbers. A near miss
in the query's own language shares the query's words but not those facts. So a search can
rank its candidates twice, by the embedding (the text) and by the codes they share with the
query (the situation), and fuse the two rankings by reciprocal rank (RRF, ``fuse``).

``codes_of`` reads the codes from plain text in English or Chinese: identifiers as written
(``HDP-BT-200``, ``WH-SHA``, ``soft_decline``), numbers, and the names of countries, cities,
goods categories, documents, address fields, payment failures, customs causes and peak
sales weeks in either language (the tables below and those of ``knowledge.situation``). It
reads only; a text's codes change nothing but the order of results.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from knowledge.situation import ADDRESS_FIELD, CATEGORY, COUNTRY, DOCUMENT, text_language

# code → weight in the overlap: identifiers say the most, then the facts named in words
WEIGHTS = {"id": 3.0, "country": 2.0, "city": 2.0, "cause": 2.0, "n": 1.0, "cat": 1.0}
RRF_K = 10  # reciprocal-rank fusion: weight/(k + rank) summed (docs/case-memory.md)
CODE_WEIGHT = 0.25  # the codes' ranking counts a quarter of the embedding's (measured)
CONFLICT = 1.0  # a field named otherwise takes off as much as agreeing on it adds
POOL = 50  # candidates the embedding fetches for a reranked search of up to 10

# Cities of the world's usual warehouses and hubs: (English, Chinese).
CITIES = {
    "shanghai": ("Shanghai", "上海"),
    "shenzhen": ("Shenzhen", "深圳"),
    "beijing": ("Beijing", "北京"),
    "guangzhou": ("Guangzhou", "广州"),
    "chengdu": ("Chengdu", "成都"),
    "hangzhou": ("Hangzhou", "杭州"),
    "hongkong": ("Hong Kong", "香港"),
    "losangeles": ("Los Angeles", "洛杉矶"),
    "newark": ("Newark", "纽瓦克"),
    "newyork": ("New York", "纽约"),
    "frankfurt": ("Frankfurt", "法兰克福"),
    "amsterdam": ("Amsterdam", "阿姆斯特丹"),
    "rotterdam": ("Rotterdam", "鹿特丹"),
    "london": ("London", "伦敦"),
    "paris": ("Paris", "巴黎"),
    "tokyo": ("Tokyo", "东京"),
    "seoul": ("Seoul", "首尔"),
    "singapore": ("Singapore", "新加坡"),
    "sydney": ("Sydney", "悉尼"),
}
# Other names of countries: code → (English, Chinese) alternatives.
COUNTRY_ALIASES = {
    "US": (("USA", "U.S.", "US", "America"), ("美國",)),
    "GB": (("UK", "U.K.", "Britain", "England"), ("英國",)),
    "KR": (("Korea",), ("南韩",)),
    "AU": ((), ("澳洲",)),
    "NL": (("Holland",), ()),
    "IR": (("Iran",), ("伊朗",)),
    "KP": (("North Korea",), ("朝鲜",)),
    "SY": (("Syria",), ("叙利亚",)),
    "CU": (("Cuba",), ("古巴",)),
}
# Causes in words: code → (English words, Chinese words).
CAUSES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "soft_decline": (("soft decline", "soft-decline", "soft declined"), ("软拒",)),
    "hard_decline": (("hard decline", "hard-decline", "hard declined"), ("硬拒",)),
    "expired_card": (("expired",), ("过期",)),
    "insufficient_funds": (("insufficient funds",), ("余额不足",)),
    "processor_timeout": (("timeout", "timed out", "time out"), ("超时",)),
    "embargo": (("embargo", "sanction"), ("禁运", "制裁")),
    "prohibited": (("prohibited",), ("违禁",)),
    "hs_code": (("hs code", "tariff code"), ("hs编码", "税号")),
    "doc:commercial_invoice": (("invoice",), ("发票",)),
    "doc:packing_list": (("packing list",), ("装箱单",)),
    "doc:certificate_of_origin": (("certificate of origin",), ("原产地",)),
    "doc:battery_declaration": (("battery declaration", "battery"), ("电池",)),
    "field:postal_code": (("postal code", "postcode", "zip code"), ("邮编", "邮政编码")),
    "field:street_address": (("street",), ("街道",)),
    "field:country_area": (("province", "state"), ("省份", "省/州")),
    "field:city_area": (("district",), ("区县",)),
    "field:sorting_code": (("sorting code",), ("分拣码",)),
    "peak:singles_day": (("singles' day", "singles day", "double 11"), ("双十一", "双11")),
    "peak:black_friday": (("black friday", "cyber monday"), ("黑五", "黑色星期五")),
    "peak:618": (("618",), ("618",)),
}
_IDENT = re.compile(
    r"(?<![A-Za-z0-9_-])(?:[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+|[a-z]+(?:_[a-z]+)+)(?![A-Za-z0-9_-])"
)
_NUMBER = re.compile(r"(?<![\d.,:A-Za-z-])\d{1,4}(?!\d|[.,:]\d|[A-Za-z-])")
# small numbers in words: English ones standing alone, Chinese ones before a measure word
_EN_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EN_NUMBERS = {w: i for i, w in enumerate((*_EN_WORDS, "ten", "eleven", "twelve"))}
_EN_NUMBER = re.compile(r"\b(" + "|".join(_EN_NUMBERS) + r")\b", re.IGNORECASE)
_ZH_DIGITS = {
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_ZH_NUMBER = re.compile(
    r"([一二两三四五六七八九]?十[一二三四五六七八九]?|[一二两三四五六七八九])(?=[天件个双台分小周箱单次])"
)


def _zh_number(words: str) -> int:
    if "十" not in words:
        return _ZH_DIGITS[words]
    tens, _, ones = words.partition("十")
    return (_ZH_DIGITS[tens] if tens else 1) * 10 + (_ZH_DIGITS[ones] if ones else 0)


def _table() -> list[tuple[str, str, bool]]:
    """(words, code, is Latin) for every name in either language, longest first."""
    rows: list[tuple[str, str]] = []
    for code, (en, zh) in COUNTRY.items():
        rows += [(en.removeprefix("the "), f"country:{code}"), (zh, f"country:{code}")]
    for code, (en_names, zh_names) in COUNTRY_ALIASES.items():
        rows += [(w, f"country:{code}") for w in (*en_names, *zh_names)]
    for code, (en, zh) in CITIES.items():
        rows += [(en, f"city:{code}"), (zh, f"city:{code}")]
    for code, (en, zh) in CATEGORY.items():
        rows += [(en, f"cat:{code}"), (zh, f"cat:{code}")]
    for code, (en, zh) in DOCUMENT.items():
        rows += [(en, f"cause:doc:{code}"), (zh, f"cause:doc:{code}")]
    for code, (en, zh) in ADDRESS_FIELD.items():
        rows += [(en, f"cause:field:{code}"), (zh, f"cause:field:{code}")]
    for code, (en_words, zh_words) in CAUSES.items():
        rows += [(w, f"cause:{code}") for w in (*en_words, *zh_words)]
    found = {(w.lower(), c, w.isascii()) for w, c in rows if w}
    return sorted(found, key=lambda r: (-len(r[0]), r))


_TABLE = _table()
_CODES_OF: dict[str, list[str]] = {}  # a name may give two codes: 香港 the city and the country
for _words, _code, _ in _TABLE:
    _CODES_OF.setdefault(_words, []).append(_code)
# one pass over the text for every name: Latin names standing alone ("state" is not in
# "statement"), Chinese ones anywhere; the longest name first where two overlap
_LATIN = re.compile(
    r"(?<![a-z0-9])(?:"
    + "|".join(re.escape(w) for w in _CODES_OF if w.isascii())
    + r")(?![a-z0-9])"
)
_CJK = re.compile("|".join(re.escape(w) for w in _CODES_OF if not w.isascii()))


def codes_of(text: str) -> dict[str, float]:
    """The codes in ``text``, each with its weight (module doc)."""
    found: dict[str, float] = {}
    for match in _IDENT.finditer(text):
        found[f"id:{match.group(0).lower()}"] = WEIGHTS["id"]
    lowered = text.lower()
    for pattern in (_LATIN, _CJK):
        for match in pattern.finditer(lowered):
            for code in _CODES_OF[match.group(0)]:
                found[code] = WEIGHTS[code.split(":", 1)[0]]
    numbers = [int(m.group(0)) for m in _NUMBER.finditer(text)]
    numbers += [_EN_NUMBERS[m.group(1).lower()] for m in _EN_NUMBER.finditer(text)]
    numbers += [_zh_number(m.group(1)) for m in _ZH_NUMBER.finditer(text)]
    for number in numbers:
        found.setdefault(f"n:{number}", WEIGHTS["n"])
    return found


def overlap(query: Mapping[str, float], codes: Mapping[str, float]) -> float:
    return sum(weight for code, weight in query.items() if code in codes)


def field_of(code: str) -> str:
    """The field a code fills: ``country``, ``city``, ``n``, ``cat``, ``cause`` (and its
    ``cause:doc``, ``cause:field``, ``cause:peak``), and for identifiers their shape: a
    warehouse (``WH-SHA``), a code in snake case (``soft_decline``) or another (a SKU)."""
    if code.startswith("id:"):
        value = code[3:]
        return "id:wh" if value.startswith("wh-") else "id:code" if "_" in value else "id:sku"
    return code.rsplit(":", 1)[0]


def agreement(
    query: Mapping[str, float], codes: Mapping[str, float], *, conflict: float = 1.0
) -> float:
    """How far a candidate's codes agree with the query's, field by field: each code they
    share adds its weight; a field both name but in which they share nothing (the query's
    destination is Japan, the candidate's the Netherlands) takes the query's weight for it
    off, times ``conflict``; a field the candidate does not name (goods named in words, no
    SKU) counts neither way, since saying nothing is not saying otherwise."""
    asked: dict[str, dict[str, float]] = {}
    for code, weight in query.items():
        asked.setdefault(field_of(code), {})[code] = weight
    named = {field_of(code) for code in codes}
    score = 0.0
    for field, wanted in asked.items():
        if field not in named:
            continue
        shared = sum(weight for code, weight in wanted.items() if code in codes)
        score += shared if shared else -conflict * sum(wanted.values())
    return score


def fuse(
    query_text: str,
    candidates: Sequence[dict[str, Any]],
    limit: int,
    *,
    k: int = RRF_K,
    by_language: bool = True,
    code_weight: float = CODE_WEIGHT,
    conflict: float = CONFLICT,
) -> list[dict[str, Any]]:
    """The ``limit`` best of ``candidates`` (most similar first, each with its ``summary``) by
    reciprocal-rank fusion, weight/(k + rank) summed, of two rankings:

    - the embedding's, counted within each language (``by_language``): the best English and
      the best Chinese candidate both rank first. An embedding scores texts in the query's
      own language higher than the same situation written in another, so same-language near
      misses crowd the other-language case out of a single list; without ``by_language``,
      the embedding's rank over all;
    - the codes they share with the query's (``codes_of``, weighted), ties sharing a rank:
      among candidates that share as much, the codes say nothing about which comes first.
      Its weight is ``code_weight`` (the embedding's 1): with as much weight as the
      embedding's, the codes pushed the dev set's same-language twins out of the top 5 (0.983
      → 0.894 hit@5); at a quarter they break the embedding's near ties. Left out when the
      query names no code."""
    if not candidates:
        return []
    query = codes_of(query_text)
    ranks: list[tuple[float, list[int]]] = []
    if by_language:
        seen: dict[str, int] = {}
        own = []
        for c in candidates:
            lang = text_language(str(c.get("summary", "")))
            seen[lang] = seen.get(lang, 0) + 1
            own.append(seen[lang])
        ranks.append((1.0, own))
    else:
        ranks.append((1.0, list(range(1, len(candidates) + 1))))
    if query:
        shared = [
            agreement(query, codes_of(str(c.get("summary", ""))), conflict=conflict)
            for c in candidates
        ]
        by_codes = [1 + sum(1 for other in shared if other > mine) for mine in shared]
        ranks.append((code_weight, by_codes))
    fused = sorted(
        range(len(candidates)), key=lambda i: (-sum(w / (k + r[i]) for w, r in ranks), i)
    )
    return [candidates[i] for i in fused[:limit]]
