"""What a case is about, in a few words of Chinese or English: the text the case memory embeds.

A ``Situation`` is what makes two exceptions alike: the kind, where the order ships from and
to, what it holds, who ordered it through which channel, when, and the kind's own facts (the
short SKU, the failure code, the days late). ``situation_of`` reads it from an order and a
finding; ``describe`` writes it in the order's language. The agent searches with that text,
a learned case is stored under it (plus what was done and how it ended), and the history
generator writes its cases with it, so that all three speak alike.

Order text is untrusted. Nothing free-form from the order goes into a situation: only
codes (country, customer tier), and identifiers that match a strict pattern (SKU, warehouse,
channel, category); anything else is left out. Notes, names, address lines and descriptions
are read only to tell the order's language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from domain.models import CatalogItem, Finding, Frozen, Kind, Order, World

Lang = Literal["en", "zh"]
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
_ZH_COUNTRIES = frozenset({"CN", "TW", "HK", "MO"})

COUNTRY = {
    "CN": ("China", "中国"),
    "US": ("the United States", "美国"),
    "DE": ("Germany", "德国"),
    "FR": ("France", "法国"),
    "GB": ("the United Kingdom", "英国"),
    "NL": ("the Netherlands", "荷兰"),
    "JP": ("Japan", "日本"),
    "KR": ("South Korea", "韩国"),
    "AU": ("Australia", "澳大利亚"),
    "CA": ("Canada", "加拿大"),
    "SG": ("Singapore", "新加坡"),
    "HK": ("Hong Kong", "香港"),
    "BR": ("Brazil", "巴西"),
    "IN": ("India", "印度"),
    "MX": ("Mexico", "墨西哥"),
    "IT": ("Italy", "意大利"),
    "ES": ("Spain", "西班牙"),
}
CATEGORY = {
    "electronics": ("electronics", "电子产品"),
    "apparel": ("apparel", "服装"),
    "home": ("homeware", "家居用品"),
    "beauty": ("beauty products", "美妆"),
    "toys": ("toys", "玩具"),
    "food": ("food", "食品"),
    "sports": ("sports gear", "运动用品"),
    "books": ("books", "图书"),
}
TIER = {"vip": ("VIP", "VIP"), "regular": ("regular", "普通"), "new": ("new", "新")}
DOCUMENT = {
    "commercial_invoice": ("commercial invoice", "商业发票"),
    "packing_list": ("packing list", "装箱单"),
    "certificate_of_origin": ("certificate of origin", "原产地证书"),
    "battery_declaration": ("battery declaration", "电池声明"),
}
ADDRESS_FIELD = {
    "postal_code": ("postal code", "邮编"),
    "country_area": ("province or state", "省/州"),
    "city": ("city", "城市"),
    "city_area": ("district", "区县"),
    "street_address": ("street address", "街道地址"),
    "sorting_code": ("sorting code", "分拣码"),
}
# Peak weeks, by (month, first day, last day): Singles' Day, Black Friday to Cyber Monday, 618.
PEAKS = ((11, 1, 12), (11, 20, 30), (6, 1, 18), (12, 1, 2))


def ident(value: object) -> str | None:
    """``value`` if it is a plain identifier (SKU, warehouse, channel), else None."""
    text = str(value or "").strip()
    return text if _IDENT.fullmatch(text) else None


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def text_language(text: str) -> Lang:
    """``zh`` when Chinese characters make up a fair share of the letters, else ``en``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if _is_cjk(c))
    return "zh" if cjk * 4 >= len(letters) else "en"


def order_language(order: Order) -> Lang:
    """The language to write about an order in: Chinese for Chinese-speaking destinations or
    orders written in Chinese (address, line descriptions), English otherwise."""
    if order.ship_to.country_code in _ZH_COUNTRIES:
        return "zh"
    fields = order.ship_to.fields()
    texts = [str(v) for v in fields.values() if v] + [line.description for line in order.lines]
    return text_language(" ".join(texts))


def is_peak(when: datetime) -> bool:
    return any(when.month == m and first <= when.day <= last for m, first, last in PEAKS)


class Situation(Frozen):
    """What makes two exceptions alike. Every field is a code or a checked identifier."""

    kind: Kind
    lang: Lang = "en"
    warehouse: str | None = None
    country: str | None = None
    category: str | None = None
    channel: str | None = None
    customer_tier: str | None = None
    skus: tuple[str, ...] = ()
    names: dict[str, str] = Field(default_factory=dict)  # SKU → the catalog's description
    place: str | None = None  # where the warehouse is (the world's city or area)
    peak: bool = False
    facts: dict[str, Any] = Field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The fields the case memory indexes and filters on."""
        return {
            "warehouse": self.warehouse,
            "country": self.country,
            "category": self.category,
            "channel": self.channel,
            "customer_tier": self.customer_tier,
            "lang": self.lang,
            "peak": self.peak,
        }


def clean(text: object, limit: int = 40) -> str | None:
    """A short label from the world's own data (a catalog description, a city): letters,
    digits, spaces and light punctuation only, one line, at most ``limit`` characters."""
    kept = "".join(
        c if c.isalnum() or c in " ,.-/%()" else " "
        for c in unicodedata.normalize("NFKC", str(text or ""))
    )
    words = " ".join(kept.split())[:limit].strip()
    return words or None


def _category_of(order: Order, catalog: Mapping[str, CatalogItem]) -> str | None:
    for line in order.lines:
        item = catalog.get(line.sku)
        found = ident(item.category) if item else None
        if found:
            return found.lower()
    return None


def _place_of(world: World | None, warehouse_id: str) -> str | None:
    for warehouse in world.warehouses if world else ():
        if warehouse.id == warehouse_id:
            return clean(warehouse.city or warehouse.country_area, 30)
    return None


def _facts(finding: Finding) -> dict[str, Any]:
    """The finding's facts that describe the situation, as plain codes and numbers."""
    facts = finding.facts
    if finding.kind is Kind.STOCKOUT:
        short = facts.get("short") or {}
        return {
            "short": {
                sku: max(0, int(v.get("need", 0)) - max(0, int(v.get("available", 0))))
                for sku, v in sorted(short.items())
                if ident(sku)
            }
        }
    if finding.kind is Kind.BAD_ADDRESS:
        fields = sorted(f for f in (facts.get("errors") or {}) if f in ADDRESS_FIELD)
        codes = sorted(str(c) for c in facts.get("carrier_codes") or () if ident(c))
        return {"fields": fields, "carrier_codes": codes, "repairable": bool(facts.get("repair"))}
    if finding.kind is Kind.CUSTOMS_BLOCK:
        problems = facts.get("problems") or ()
        docs = sorted({str(p.get("document")) for p in problems if p.get("document") in DOCUMENT})
        hs = any(p.get("type") in ("hs_code", "hs_hold") for p in problems)
        return {
            "embargoed": bool(facts.get("embargoed")),
            "prohibited": bool(facts.get("prohibited")),
            "documents": docs,
            "hs_code": hs,
        }
    if finding.kind is Kind.PAYMENT_FAILED:
        return {"failure_code": ident(facts.get("failure_code"))}
    if finding.kind is Kind.CARRIER_DELAY:
        hours = float(facts.get("late_hours") or 0)
        return {"late_days": max(1, round(hours / 24))}
    if finding.kind is Kind.DUPLICATE_ORDER:
        return {"minutes_apart": round(float(facts.get("minutes_apart") or 0))}
    if finding.kind is Kind.CUSTOMER_REQUEST:  # the intent only, never the customer's words
        return {"intent": ident(facts.get("intent"))}
    return {}


def situation_of(order: Order, finding: Finding, world: World | None = None) -> Situation:
    """The situation of ``finding`` on ``order``, in ``world`` (its catalog and warehouses
    name the goods and places; without it, only codes)."""
    skus = tuple(s for s in dict.fromkeys(line.sku for line in order.lines) if ident(s))[:5]
    catalog = {item.sku: item for item in world.catalog} if world else {}
    names = {sku: clean(catalog[sku].description) for sku in skus if sku in catalog}
    return Situation(
        kind=finding.kind,
        lang=order_language(order),
        warehouse=ident(order.fulfillment.warehouse_id),
        country=order.ship_to.country_code,
        category=_category_of(order, catalog),
        channel=(ident(order.channel) or "").lower() or None,
        customer_tier=order.customer.tier,
        skus=skus,
        names={sku: name for sku, name in names.items() if name},
        place=_place_of(world, order.fulfillment.warehouse_id),
        peak=is_peak(order.created_at),
        facts=_facts(finding),
    )


# --- writing it down ---------------------------------------------------------------------


def _pick(table: Mapping[str, tuple[str, str]], key: str | None, lang: Lang) -> str | None:
    if key is None:
        return None
    pair = table.get(key)
    return (pair[0] if lang == "en" else pair[1]) if pair else key


def _who(s: Situation, lang: Lang) -> str:
    tier = _pick(TIER, s.customer_tier, lang)
    category = _pick(CATEGORY, s.category, lang)
    country = _pick(COUNTRY, s.country, lang)
    goods = [_item(s, sku, lang == "en") for sku in s.skus]
    items = ", ".join(goods) if lang == "en" else "、".join(goods)
    if lang == "en":
        parts = [f"{tier} customer" if tier else "customer"]
        parts.append(f"{s.channel} order" if s.channel else "order")
        if category:
            parts.append(f"of {category}")
        if items:
            parts.append(f"({items})")
        if country:
            parts.append(f"to {country}")
        if s.warehouse:
            parts.append(f"from {s.warehouse}")
        text = " ".join(parts)
        return text + (", in a peak sales week" if s.peak else "")
    text = ""
    if s.peak:
        text += "大促高峰期间，"
    text += f"{s.channel}渠道" if s.channel else ""
    text += f"{tier}客户的" if tier else "客户的"
    text += f"{category}订单" if category else "订单"
    if items:
        text += f"（{items}）"
    if s.warehouse:
        text += f"，从{s.warehouse}仓发货"
    if country:
        text += f"，寄往{country}"
    return text


def _item(s: Situation, sku: str, en: bool) -> str:
    name = s.names.get(sku)
    if not name:
        return sku
    return f"{name} {sku}" if en else f"{name}{sku}"


_REQUESTS = {
    "change_address": (
        "the customer asked to deliver to another address",
        "客户要求改寄到其他地址",
    ),
    "hold_until": (
        "the customer asked to hold the order until a date",
        "客户要求推迟到指定日期发货",
    ),
    "cancel": ("the customer asked to cancel the order", "客户要求取消订单"),
    "other": (
        "the customer's note asks something a person must read",
        "客户备注有需要人工处理的请求",
    ),
}


def _problem(s: Situation, lang: Lang) -> str:
    f = s.facts
    en = lang == "en"
    if s.kind is Kind.STOCKOUT:
        short = f.get("short") or {}
        where = s.warehouse or ("the warehouse" if en else "仓库")
        if s.place:
            where += f" ({s.place})" if en else f"（{s.place}）"
        if not short:
            return f"stockout at {where}" if en else f"{where}缺货"
        if en:
            items = "; ".join(f"{_item(s, sku, en)} short by {n}" for sku, n in short.items())
            return f"stockout at {where}: {items}"
        items = "，".join(f"{_item(s, sku, en)}缺{n}件" for sku, n in short.items())
        return f"{where}库存不足：{items}"
    if s.kind is Kind.BAD_ADDRESS:
        fields = [_pick(ADDRESS_FIELD, x, lang) or x for x in f.get("fields") or ()]
        codes = f.get("carrier_codes") or ()
        if en:
            text = "the address does not validate"
            if fields:
                text += f" ({', '.join(fields)} wrong)"
            if codes:
                text += f"; the carrier could not deliver ({', '.join(codes)})"
            return text
        text = "收货地址校验不通过"
        if fields:
            text += f"（{'、'.join(fields)}有误）"
        if codes:
            text += f"；承运商无法投递（{'、'.join(codes)}）"
        return text
    if s.kind is Kind.CUSTOMS_BLOCK:
        parts: list[str] = []
        if f.get("embargoed"):
            parts.append("destination under embargo" if en else "目的地属于禁运国家")
        if f.get("prohibited"):
            parts.append("customs found prohibited goods" if en else "海关认定为违禁物品")
        for doc in f.get("documents") or ():
            name = _pick(DOCUMENT, doc, lang)
            parts.append(f"{name} missing" if en else f"缺少{name}")
        if f.get("hs_code"):
            parts.append("HS code invalid" if en else "HS编码无效")
        if not parts:
            parts.append("held by customs" if en else "被海关扣留")
        return ("customs block: " + "; ".join(parts)) if en else ("清关受阻：" + "；".join(parts))
    if s.kind is Kind.PAYMENT_FAILED:
        code = f.get("failure_code") or ("no failure code" if en else "无失败代码")
        return f"payment failed ({code})" if en else f"支付失败（{code}）"
    if s.kind is Kind.CARRIER_DELAY:
        days = f.get("late_days", 1)
        if en:
            return f"the carrier will deliver {days} day{'s' if days != 1 else ''} late"
        return f"承运商将比承诺时间晚{days}天送达"
    if s.kind is Kind.CUSTOMER_REQUEST:
        intent = str(f.get("intent") or "other")
        asks = _REQUESTS.get(intent, _REQUESTS["other"])
        return asks[0] if en else asks[1]
    minutes = f.get("minutes_apart", 0)
    if en:
        return f"duplicate order: the same order was placed {minutes} minutes earlier"
    return f"重复订单：{minutes}分钟前下过同样的订单"


def describe(situation: Situation, lang: Lang | None = None) -> str:
    """The situation in one sentence, in ``lang`` (default: the situation's own language)."""
    lang = lang or situation.lang
    problem, who = _problem(situation, lang), _who(situation, lang)
    return f"{problem}. {who[0].upper()}{who[1:]}." if lang == "en" else f"{problem}。{who}。"


# What a plan did, for the cases exdesk learns: strategy → (English, Chinese).
DONE = {
    "address_autocorrect": ("Corrected the address automatically", "自动修正了收货地址"),
    "address_confirm_with_customer": (
        "Asked the customer to confirm the address",
        "请客户确认地址",
    ),
    "customs_attach_document": ("Attached the missing documents", "补附了缺少的单据"),
    "customs_fix_hs_code": ("Replaced the HS code with the catalog's", "用目录中的HS编码替换"),
    "reallocate_warehouse": ("Reallocated to another warehouse", "改由其他仓库发货"),
    "split_shipment": ("Split the shipment between warehouses", "拆单由多个仓库发货"),
    "backorder": ("Backordered until replenishment", "做了预售，等待补货"),
    "substitute_item": ("Shipped a substitute item", "换成替代商品发货"),
    "payment_retry": ("Retried the payment", "重试扣款"),
    "payment_request_new_method": ("Asked for another payment method", "请客户更换支付方式"),
    "notify_delay": ("Told the customer of the delay, with a voucher", "通知客户延误并发放优惠券"),
    "upgrade_shipping": ("Upgraded the shipping service", "升级了配送服务"),
    "hold_duplicate": ("Held the later order and asked the customer", "暂停后一单并询问客户"),
    "manual_review": ("Sent to a person for review", "转人工审核"),
    "cancel_order": ("Cancelled the order and refunded", "取消订单并退款"),
}


def describe_outcome(strategy: str, success: bool, lang: Lang) -> str:
    """What was done and whether it worked, in one sentence."""
    en, zh = DONE.get(strategy, (strategy, strategy))
    if lang == "en":
        return f"{en}: {'it worked' if success else 'it failed'}."
    return f"{zh}：{'成功' if success else '失败'}。"
