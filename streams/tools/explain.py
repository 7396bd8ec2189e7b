"""`tierstream explain`: why a customer is in a tier, from the same figures production uses.

The explanation is read from the engine's own state after replaying the history up
to an instant (the same code as `simulate` and the worker), never recomputed on the
side, so it cannot disagree with the output events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..engine.evaluate import DLQ, Output
from ..engine.ledger import Customer
from ..engine.money import format_fen
from ..engine.partition import PartitionEngine
from ..engine.rules import Rules
from .simulate import feed_line, happens_after

_BARS = "▁▂▃▄▅▆▇█"


def replay_until(
    rules: Rules, lines: Iterable[tuple[int, bytes]], at: int | None, customer_id: str | None = None
) -> tuple[PartitionEngine, list[Output]]:
    """The engine after every line up to `at` (lines after it are left out), and the
    outputs so far (only `customer_id`'s when given)."""
    engine = PartitionEngine(rules)
    kept: list[Output] = []
    for number, line in lines:
        outputs = feed_line_before(engine, number, line, at)
        kept += [o for o in outputs if customer_id is None or (o[0] != DLQ and o[1] == customer_id)]
    if at is not None:
        kept += [o for o in engine.advance_clock(at) if customer_id is None or o[1] == customer_id]
    return engine, kept


def feed_line_before(engine: PartitionEngine, number: int, line: bytes, at: int | None) -> list[Output]:
    """Feed a line unless its event happens after `at`."""
    if happens_after(line, at):
        return []
    return feed_line(engine, number, line)


def sparkline(values: list[int]) -> str:
    low, high = min(values), max(values)
    if high == low:
        return _BARS[0] * len(values)
    return "".join(_BARS[(v - low) * (len(_BARS) - 1) // (high - low)] for v in values)


def explain(
    engine: PartitionEngine, customer_id: str, outputs: list[Output], at: int | None = None
) -> dict[str, Any]:
    """The explanation document (what `--json` prints); `as_of` is `at` when given (the
    state was replayed up to it), else the customer's last event."""
    c: Customer | None = engine.customers.get(customer_id)
    if c is None:
        raise KeyError(customer_id)
    rules, ev, cal, ledger = engine.rules, engine.evaluator, engine.calendar, engine.ledger
    tiers = rules.tier_ids
    day = c.day

    def show(name: str) -> Any:
        value = ev.getters[name](c)
        if value is not None and ev.money.get(name):
            return format_fen(value)
        return value

    accounts = []
    for account_id, obs in sorted(c.accounts.items()):
        latest = obs[-1]
        accounts.append(
            {
                "account_id": account_id,
                "side": "liability" if latest[4] else "asset",
                "closing_balance": format_fen(latest[3]),
                "as_of": cal.isoformat(latest[1]),
            }
        )
    series = {}
    for spec, ser in zip(ledger.specs, c.series, strict=True):
        if spec.carry:
            days = list(range(day - spec.size + 1, day + 1))
            values = [ser.ring[d % spec.size] if d >= c.first_day else 0 for d in days]
            series[spec.name] = {
                "from": cal.day_text(days[0]),
                "to": cal.day_text(days[-1]),
                "daily": [format_fen(v) for v in values],
                "sparkline": sparkline(values),
            }
    conditions = []
    for index, tier in enumerate(rules.tiers):
        for cond, test in ev.tier_tests[index]:
            literal = cond.literal
            conditions.append(
                {
                    "tier": tier.id,
                    "condition": cond.text,
                    "value": show(cond.metric.name),
                    "threshold": format_fen(literal) if cond.metric.is_money else literal,
                    "holds": test(c),
                }
            )
    pending = None
    if c.below_since is not None:
        pending = {
            "below_since": cal.day_text(c.below_since),
            "downgrade_on": cal.day_text(c.below_since + rules.grace_days),
        }
    next_tier = None
    if c.tier + 1 < len(tiers) and ev.opportunity[c.tier + 1] is not None:
        cond, _ = ev.opportunity[c.tier + 1]  # type: ignore[misc]
        value = ev.getters[cond.metric.name](c)
        gap = max(0, cond.literal - value)
        next_tier = {
            "tier": tiers[c.tier + 1],
            "metric": cond.metric.name,
            "value": format_fen(value),
            "threshold": format_fen(cond.literal),
            "gap": format_fen(gap),
            # Holding `gap` more every day for a whole window lifts the average by `gap`.
            "advice": f"keep {format_fen(gap)} more for {cond.metric.window} days"
            if gap
            else "qualifies now",
        }
    cooldowns = {
        "opportunity": {
            tiers[t]: {
                "last": cal.day_text(d),
                "next_allowed": cal.day_text(d + rules.opportunity_cooldown_days),
            }
            for t, d in sorted(c.opp_last.items())
        },
        "churn": {
            reason: {"last": cal.day_text(d), "next_allowed": cal.day_text(d + rules.churn_cooldown_days)}
            for reason, d in sorted(c.churn_last.items())
        },
        "dormant_warned_this_spell": c.dormant_fired,
    }
    return {
        "customer_id": customer_id,
        "rules": f"{rules.scheme} {rules.version}",
        "as_of": cal.isoformat(at if at is not None else c.last_instant),
        "business_day": cal.day_text(day),
        "first_seen": cal.day_text(c.first_day),
        "tier": tiers[c.tier],
        "tier_label": rules.tiers[c.tier].label,
        "since": cal.isoformat(c.tier_since),
        "pending_downgrade": pending,
        "next_tier": next_tier,
        "metrics": {name: show(name) for name in ev.churn_metrics},
        "conditions": conditions,
        "accounts": accounts,
        "series": series,
        "cooldowns": cooldowns,
        "segments": ev.segment_breakdown(c),
        "outputs": [
            {"topic": t, **{k: v for k, v in value.items() if k != "emitted_at"}}
            for t, _, value in outputs
            if t != DLQ
        ],
    }
