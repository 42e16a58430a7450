"""A realistic history of past cases (contract §5), for demos, evals and benchmarks.

    python -m evals.history --n 5000 --seed 3 --out history.jsonl
    python -m evals.history --pairs 400 --out knowledge/data/calibration_pairs.jsonl

Cases of every kind, in Chinese and English, written the way the case memory writes the cases
it learns (``knowledge.situation``), plus what was done and how it ended, in varied words.
Outcomes depend on the context as real ones do (``success_rate``): backorders of electronics
for VIP customers mostly fail; reallocations out of WH-SHA fail in peak weeks; soft declines
retried succeed, hard declines do not; autocorrected addresses mostly deliver; and so on.
The same seed gives the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.models import Kind, Strategy
from knowledge.cases import Outcome, PastCase
from knowledge.situation import ADDRESS_FIELD, DOCUMENT, Lang, Situation, describe

WAREHOUSES = {  # warehouse → country
    "WH-SHA": "CN",
    "WH-SZX": "CN",
    "WH-PEK": "CN",
    "WH-CTU": "CN",
    "WH-HKG": "HK",
    "WH-LAX": "US",
    "WH-EWR": "US",
    "WH-FRA": "DE",
    "WH-AMS": "NL",
}
PLACES = {  # warehouse → (English, Chinese) city
    "WH-SHA": ("Shanghai", "上海"),
    "WH-SZX": ("Shenzhen", "深圳"),
    "WH-PEK": ("Beijing", "北京"),
    "WH-CTU": ("Chengdu", "成都"),
    "WH-HKG": ("Hong Kong", "香港"),
    "WH-LAX": ("Los Angeles", "洛杉矶"),
    "WH-EWR": ("Newark", "纽瓦克"),
    "WH-FRA": ("Frankfurt", "法兰克福"),
    "WH-AMS": ("Amsterdam", "阿姆斯特丹"),
}
NAMES = {  # SKU → (English, Chinese) catalog description
    "PWR-BANK-10K": ("Power bank 10000mAh", "充电宝"),
    "HDP-BT-200": ("Bluetooth headphones", "蓝牙耳机"),
    "CAM-4K-01": ("4K action camera", "4K运动相机"),
    "PHN-X12": ("Smartphone X12", "智能手机"),
    "WATCH-S3": ("Smart watch", "智能手表"),
    "TEE-COT-NVY": ("Cotton T-shirt, navy", "藏青色棉T恤"),
    "TEE-COT-BLK": ("Cotton T-shirt, black", "黑色棉T恤"),
    "JKT-DWN-M": ("Down jacket", "羽绒服"),
    "SNK-RUN-42": ("Running shoes", "跑鞋"),
    "MUG-CER-01": ("Ceramic mug", "陶瓷杯"),
    "LAMP-DSK-02": ("Desk lamp", "台灯"),
    "PAN-IRN-28": ("Iron pan", "铁锅"),
    "LIP-RED-05": ("Lipstick, red", "红色口红"),
    "SERUM-VC-30": ("Vitamin C serum", "维C精华"),
    "BLK-SET-500": ("Building blocks set", "积木套装"),
    "PLUSH-BEAR-L": ("Plush bear", "毛绒熊"),
    "TEA-GIFT-01": ("Tea gift box", "茶叶礼盒"),
    "FORMULA-S2": ("Infant formula", "婴儿奶粉"),
    "HELMET-M": ("Bicycle helmet", "自行车头盔"),
    "YOGA-MAT-6": ("Yoga mat", "瑜伽垫"),
}
DESTINATIONS = ("CN", "CN", "CN", "US", "US", "DE", "FR", "GB", "NL", "JP", "KR", "AU", "HK")
CHANNELS = {"CN": ("tmall", "jd", "douyin"), "other": ("shopify", "amazon", "store", "b2b")}
SKUS = {
    "electronics": ("PWR-BANK-10K", "HDP-BT-200", "CAM-4K-01", "PHN-X12", "WATCH-S3"),
    "apparel": ("TEE-COT-NVY", "TEE-COT-BLK", "JKT-DWN-M", "SNK-RUN-42"),
    "home": ("MUG-CER-01", "LAMP-DSK-02", "PAN-IRN-28"),
    "beauty": ("LIP-RED-05", "SERUM-VC-30"),
    "toys": ("BLK-SET-500", "PLUSH-BEAR-L"),
    "food": ("TEA-GIFT-01", "FORMULA-S2"),
    "sports": ("HELMET-M", "YOGA-MAT-6"),
}
STRATEGIES: dict[Kind, tuple[Strategy, ...]] = {
    Kind.STOCKOUT: (
        Strategy.REALLOCATE_WAREHOUSE,
        Strategy.SPLIT_SHIPMENT,
        Strategy.BACKORDER,
        Strategy.SUBSTITUTE_ITEM,
        Strategy.CANCEL_ORDER,
    ),
    Kind.BAD_ADDRESS: (Strategy.ADDRESS_AUTOCORRECT, Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER),
    Kind.CUSTOMS_BLOCK: (
        Strategy.CUSTOMS_ATTACH_DOCUMENT,
        Strategy.CUSTOMS_FIX_HS_CODE,
        Strategy.MANUAL_REVIEW,
        Strategy.CANCEL_ORDER,
    ),
    Kind.PAYMENT_FAILED: (Strategy.PAYMENT_RETRY, Strategy.PAYMENT_REQUEST_NEW_METHOD),
    Kind.CARRIER_DELAY: (Strategy.NOTIFY_DELAY, Strategy.UPGRADE_SHIPPING),
    Kind.DUPLICATE_ORDER: (Strategy.HOLD_DUPLICATE, Strategy.MANUAL_REVIEW),
}
KIND_WEIGHTS = {
    Kind.STOCKOUT: 35,
    Kind.BAD_ADDRESS: 20,
    Kind.CUSTOMS_BLOCK: 14,
    Kind.PAYMENT_FAILED: 14,
    Kind.CARRIER_DELAY: 11,
    Kind.DUPLICATE_ORDER: 6,
}

# What was done, and how it ended: strategy → (successes, failures), each (en, zh) phrasings.
Phrases = tuple[tuple[str, str], ...]
DONE: dict[Strategy, tuple[Phrases, Phrases]] = {
    Strategy.REALLOCATE_WAREHOUSE: (
        (
            (
                "Reallocated to {other}; shipped and delivered on time.",
                "改由{other}仓发货，按时送达。",
            ),
            (
                "Moved the order to {other}, which shipped it the same day.",
                "订单转到{other}仓，当天发出。",
            ),
            (
                "Reallocation to {other} worked, customer got it as promised.",
                "调拨到{other}仓成功，客户按承诺收到。",
            ),
        ),
        (
            (
                "Reallocated to {other}, but {other} could not pick it in time; delivered late.",
                "改由{other}仓发货，但{other}仓来不及拣货，延误送达。",
            ),
            (
                "Reallocation to {other} failed: its stock count was wrong, the order sat "
                "for days.",
                "调拨到{other}仓失败：库存数不准，订单压了好几天。",
            ),
            (
                "Moved to {other}, which was overloaded; missed the promised date.",
                "转到{other}仓，该仓爆仓，错过承诺日期。",
            ),
        ),
    ),
    Strategy.SPLIT_SHIPMENT: (
        (
            (
                "Split between {wh} and {other}; both parcels arrived on time.",
                "拆单由{wh}和{other}两仓发货，两个包裹都准时到达。",
            ),
            (
                "Shipped in two parts from {wh} and {other}, customer fine with it.",
                "分两个包裹从{wh}和{other}发出，客户没有意见。",
            ),
        ),
        (
            (
                "Split between {wh} and {other}; the second parcel was lost and had to be resent.",
                "拆单由{wh}和{other}发货，第二个包裹丢失只能重发。",
            ),
            (
                "Split shipment confused the customer, who refused the first parcel.",
                "拆单发货让客户困惑，客户拒收了第一个包裹。",
            ),
        ),
    ),
    Strategy.BACKORDER: (
        (
            (
                "Backordered until replenishment; shipped within the promise.",
                "做了预售等补货，在承诺时间内发出。",
            ),
            (
                "Waited for the incoming stock, it arrived early and the order shipped.",
                "等补货到仓，提前到货后发出。",
            ),
        ),
        (
            (
                "Backordered, replenishment slipped twice and the customer cancelled.",
                "做了预售，补货两次延期，客户取消了订单。",
            ),
            (
                "Backorder ran weeks late; the customer complained and asked for a refund.",
                "预售晚了几周，客户投诉并要求退款。",
            ),
        ),
    ),
    Strategy.SUBSTITUTE_ITEM: (
        (
            (
                "Customer accepted a substitute and it shipped the same day.",
                "客户同意换成替代商品，当天发出。",
            ),
            ("Offered the newer model instead; customer agreed.", "推荐了新款替代，客户同意。"),
        ),
        (
            (
                "Offered a substitute, the customer refused and wanted a refund.",
                "推荐替代商品，客户拒绝并要求退款。",
            ),
            ("Substitute shipped but came back as a return.", "替代商品发出后被退货。"),
        ),
    ),
    Strategy.CANCEL_ORDER: (
        (
            (
                "Cancelled and refunded in full; the customer was informed.",
                "取消订单并全额退款，已通知客户。",
            ),
        ),
        (
            (
                "Cancelled, but the refund failed and the customer complained.",
                "取消了订单，但退款失败，客户投诉。",
            ),
        ),
    ),
    Strategy.ADDRESS_AUTOCORRECT: (
        (
            (
                "Autocorrected the address; it validated and was delivered.",
                "自动修正地址后校验通过，顺利送达。",
            ),
            (
                "Fixed the address automatically, parcel went through.",
                "地址自动修正，包裹正常派送。",
            ),
        ),
        (("Autocorrect guessed wrong; the parcel bounced back.", "自动修正改错了，包裹被退回。"),),
    ),
    Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER: (
        (
            (
                "Asked the customer, who confirmed the address within a day.",
                "联系客户确认地址，客户一天内回复。",
            ),
            ("Customer supplied the missing details; delivered.", "客户补充了地址信息，已送达。"),
        ),
        (
            (
                "Asked the customer to confirm; no reply, the order was cancelled.",
                "请客户确认地址，客户没有回复，订单取消。",
            ),
        ),
    ),
    Strategy.CUSTOMS_ATTACH_DOCUMENT: (
        (
            (
                "Generated and attached the documents; cleared the same day.",
                "生成并附上单据，当天清关。",
            ),
        ),
        (
            (
                "Attached the documents, but customs still held the parcel for a week.",
                "附上了单据，海关仍扣留一周。",
            ),
        ),
    ),
    Strategy.CUSTOMS_FIX_HS_CODE: (
        (("Replaced the HS code with the catalog's; released.", "用目录中的HS编码替换后放行。"),),
        (
            (
                "Fixed the HS code, customs asked for more paperwork anyway.",
                "修正了HS编码，海关仍要求补充材料。",
            ),
        ),
    ),
    Strategy.MANUAL_REVIEW: (
        (
            (
                "Sent to a person, who sorted it out with the broker.",
                "转人工处理，与报关行沟通后解决。",
            ),
        ),
        (
            (
                "Manual review took a week and the customer gave up.",
                "人工审核拖了一周，客户放弃了。",
            ),
        ),
    ),
    Strategy.PAYMENT_RETRY: (
        (
            ("Retried the payment an hour later; captured.", "一小时后重试扣款成功。"),
            ("A single retry went through.", "重试一次就成功了。"),
        ),
        (("Retried three times, declined each time.", "重试三次都被拒绝。"),),
    ),
    Strategy.PAYMENT_REQUEST_NEW_METHOD: (
        (
            (
                "Asked for another payment method; the customer paid by another card.",
                "请客户更换支付方式，客户换卡付款。",
            ),
        ),
        (
            (
                "Asked for a new payment method, the customer never answered.",
                "请客户更换支付方式，客户一直没有回复。",
            ),
        ),
    ),
    Strategy.NOTIFY_DELAY: (
        (
            (
                "Told the customer with a voucher; no complaint.",
                "通知客户并发放优惠券，客户没有投诉。",
            ),
        ),
        (
            (
                "Notified with a voucher, the customer still cancelled.",
                "通知并发了优惠券，客户仍然取消了订单。",
            ),
        ),
    ),
    Strategy.UPGRADE_SHIPPING: (
        (("Upgraded to express; arrived before the promise.", "升级为特快，承诺日期前送达。"),),
        (("Upgraded to express, it was late anyway.", "升级了特快，还是晚到了。"),),
    ),
    Strategy.HOLD_DUPLICATE: (
        (
            (
                "Held the later order; the customer confirmed it was a mistake.",
                "暂停后一单，客户确认是误操作。",
            ),
        ),
        (
            (
                "Held the later order, but the customer wanted both and was annoyed.",
                "暂停了后一单，但客户两单都要，很不满意。",
            ),
        ),
    ),
}


def success_rate(strategy: Strategy, s: Situation) -> float:
    """How often ``strategy`` worked in this situation: where outcomes depend on context."""
    f = s.facts
    if strategy is Strategy.BACKORDER and s.category == "electronics" and s.customer_tier == "vip":
        return 0.15  # VIPs do not wait for electronics
    if strategy is Strategy.REALLOCATE_WAREHOUSE and s.peak and f.get("other") == "WH-SZX":
        return 0.2  # Shenzhen is overloaded in peak weeks
    if strategy is Strategy.REALLOCATE_WAREHOUSE and s.peak and s.warehouse == "WH-SHA":
        return 0.25
    if strategy is Strategy.SPLIT_SHIPMENT and s.customer_tier == "new":
        return 0.55  # new customers are confused by two parcels
    if strategy is Strategy.SUBSTITUTE_ITEM and s.category in ("beauty", "food"):
        return 0.4
    if strategy is Strategy.PAYMENT_RETRY:
        return 0.85 if f.get("failure_code") in ("soft_decline", "processor_timeout") else 0.1
    if strategy is Strategy.ADDRESS_CONFIRM_WITH_CUSTOMER and s.customer_tier == "new":
        return 0.5
    if strategy is Strategy.NOTIFY_DELAY and f.get("late_days", 0) >= 5:
        return 0.45
    if strategy is Strategy.UPGRADE_SHIPPING and s.peak:
        return 0.35
    return 0.85


def _facts(kind: Kind, rng: random.Random, skus: Sequence[str], warehouse: str) -> dict[str, Any]:
    if kind is Kind.STOCKOUT:
        short = {sku: rng.randint(1, 30) for sku in rng.sample(list(skus), k=1)}
        others = [w for w in WAREHOUSES if w != warehouse]
        same = [w for w in others if WAREHOUSES[w] == WAREHOUSES[warehouse]]
        other = rng.choice(same if same and rng.random() < 0.7 else others)
        return {"short": short, "other": other}
    if kind is Kind.BAD_ADDRESS:
        fields = sorted(rng.sample(sorted(ADDRESS_FIELD), k=rng.choice((1, 1, 2))))
        codes = rng.choice(((), (), ("address_undeliverable",), ("address_incomplete",)))
        return {"fields": fields, "carrier_codes": list(codes), "repairable": rng.random() < 0.6}
    if kind is Kind.CUSTOMS_BLOCK:
        roll = rng.random()
        return {
            "embargoed": roll < 0.05,
            "prohibited": 0.05 <= roll < 0.1,
            "documents": sorted(rng.sample(sorted(DOCUMENT), k=rng.choice((0, 1, 1, 2)))),
            "hs_code": rng.random() < 0.4,
        }
    if kind is Kind.PAYMENT_FAILED:
        failures = ("soft_decline", "processor_timeout", "hard_decline", "expired_card")
        return {"failure_code": rng.choice(failures)}
    if kind is Kind.CARRIER_DELAY:
        return {"late_days": rng.choice((1, 1, 2, 2, 3, 4, 5, 7, 10))}
    return {"minutes_apart": rng.randint(1, 29)}


def random_situation(rng: random.Random, kind: Kind, lang: Lang) -> Situation:
    warehouse = rng.choice(list(WAREHOUSES))
    home = WAREHOUSES[warehouse]
    country = home if rng.random() < 0.6 else rng.choice(DESTINATIONS)
    category = rng.choice(list(SKUS))
    skus = rng.sample(SKUS[category], k=rng.choice((1, 1, 2)))
    channels = CHANNELS["CN" if country == "CN" else "other"]
    return Situation(
        kind=kind,
        lang=lang,
        warehouse=warehouse,
        country=country,
        category=category,
        channel=rng.choice(channels),
        customer_tier=rng.choices(("vip", "regular", "new"), weights=(2, 6, 2))[0],
        skus=tuple(skus),
        names={sku: NAMES[sku][0 if lang == "en" else 1] for sku in skus},
        place=PLACES[warehouse][0 if lang == "en" else 1],
        peak=rng.random() < 0.2,
        facts=_facts(kind, rng, skus, warehouse),
    )


def outcome_text(strategy: Strategy, success: bool, s: Situation, lang: Lang, pick: int) -> str:
    phrases = DONE[strategy][0 if success else 1]
    en, zh = phrases[pick % len(phrases)]
    other = str(s.facts.get("other") or "another warehouse")
    text = en if lang == "en" else zh
    return text.format(wh=s.warehouse or "", other=other)


def write_case(s: Situation, strategy: Strategy, success: bool, lang: Lang, pick: int) -> str:
    """A summary as people write them: the situation and what happened, in some order."""
    situation = describe(s, lang)
    done = outcome_text(strategy, success, s, lang, pick)
    if pick % 3 == 2:
        return f"{done} {situation}" if lang == "en" else f"{done}{situation}"
    return f"{situation} {done}" if lang == "en" else f"{situation}{done}"


def _variant(strategy: Strategy, s: Situation) -> dict[str, str]:
    """The plan's own parameters, as exdesk records them (``agent.variants``): where a
    reallocation shipped from."""
    other = s.facts.get("other")
    if strategy is Strategy.REALLOCATE_WAREHOUSE and other:
        return {"warehouse": str(other)}
    return {}


def generate(n: int, seed: int = 3, *, zh_share: float = 0.45) -> Iterator[PastCase]:
    """``n`` past cases; about ``zh_share`` of them in Chinese."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    kinds = list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    for i in range(n):
        kind = rng.choices(kinds, weights=weights)[0]
        lang: Lang = "zh" if rng.random() < zh_share else "en"
        s = random_situation(rng, kind, lang)
        strategy = rng.choice(STRATEGIES[kind])
        success = rng.random() < success_rate(strategy, s)
        resolved = start + timedelta(hours=i * 7 + rng.randint(0, 6))
        yield PastCase(
            case_id=f"H-{seed}-{i:06d}",
            kind=kind,
            summary=write_case(s, strategy, success, lang, rng.randrange(6)),
            strategy=strategy,
            outcome=Outcome(
                success=success,
                resolution_hours=round(rng.uniform(0.2, 96 if not success else 30), 1),
            ),
            resolved_at=resolved,
            situation=s,
            variant=_variant(strategy, s),
        )


def parallel_pairs(n: int, seed: int = 101) -> Iterator[tuple[str, str]]:
    """``n`` (English, Chinese) pairs: the same case written in both languages."""
    rng = random.Random(seed)
    kinds = list(KIND_WEIGHTS)
    for _ in range(n):
        kind = rng.choice(kinds)
        s = random_situation(rng, kind, "en")
        strategy = rng.choice(STRATEGIES[kind])
        success = rng.random() < 0.7
        pick = rng.randrange(6)
        zh = translated(s, "zh")
        yield (
            write_case(s, strategy, success, "en", pick),
            write_case(zh, strategy, success, "zh", pick),
        )


def translated(s: Situation, lang: Lang) -> Situation:
    """The same situation with its goods and place named in ``lang``."""
    which = 0 if lang == "en" else 1
    names = {sku: NAMES[sku][which] for sku in s.skus if sku in NAMES}
    place = PLACES[s.warehouse][which] if s.warehouse in PLACES else s.place
    return s.model_copy(update={"lang": lang, "names": names, "place": place})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--zh-share", type=float, default=0.45)
    parser.add_argument("--out", type=Path, default=None, help="default: standard output")
    parser.add_argument(
        "--pairs", type=int, default=0, help="write N calibration pairs {en, zh} instead"
    )
    args = parser.parse_args(argv)
    handle = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    if args.pairs:
        for en, zh in parallel_pairs(args.pairs):
            handle.write(json.dumps({"en": en, "zh": zh}, ensure_ascii=False) + "\n")
        if args.out:
            handle.close()
        return
    counts: Counter[str] = Counter()
    try:
        for case in generate(args.n, args.seed, zh_share=args.zh_share):
            counts[f"{case.kind.value}/{'ok' if case.outcome.success else 'failed'}"] += 1
            handle.write(
                json.dumps(case.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
                + "\n"
            )
    finally:
        if args.out:
            handle.close()
    if args.out:
        print(f"{args.n} past cases → {args.out}: {dict(sorted(counts.items()))}", file=sys.stderr)


if __name__ == "__main__":
    main()
