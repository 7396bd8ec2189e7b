"""Metrics and the evaluation of one customer at one instant (SPEC §3, §4)."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

from .ledger import Customer, Ledger, SeriesSpec
from .money import format_fen
from .rules import (
    ACTIVITY_DAYS,
    COMPARE,
    NEW_CUSTOMER_DAYS,
    OUTFLOW_DAYS,
    PEAK_DAYS,
    SEGMENT_NAMES,
    Condition,
    Dimension,
    Metric,
    Rules,
)
from .timeutil import Calendar

TIER_CHANGES: Final = "tier.changes"
OPPORTUNITIES: Final = "tier.opportunities"
CHURN_WARNINGS: Final = "customer.churn-warnings"
SEGMENT_CHANGES: Final = "customer.segment-changes"
DLQ: Final = "tierstream.dlq"
#: the output topics every deployment has; SEGMENT_CHANGES only with a `segments` section
OUTPUT_TOPICS: Final = (TIER_CHANGES, OPPORTUNITIES, CHURN_WARNINGS, DLQ)
#: a stored segment value meaning "set at the next boundary without an output" (SPEC §9:
#: a snapshot that does not give the segment)
UNSET_QUIETLY: Final = ""


def output_topics(rules: Rules) -> tuple[str, ...]:
    """The output topics these rules write to."""
    return (*OUTPUT_TOPICS, SEGMENT_CHANGES) if rules.published_segments() else OUTPUT_TOPICS


Getter = Callable[[Customer], Any]
Output = tuple[str, str, dict[str, Any]]  # (topic, key, value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, Decimal)):
        return "number"
    return "string"


def series_specs(rules: Rules) -> tuple[SeriesSpec, ...]:
    """The day series the rules need, each ring as long as its longest window."""
    windows: dict[str, set[int]] = {
        "aum": set(),
        "external_outflow": {OUTFLOW_DAYS},
        "txn_count": {ACTIVITY_DAYS},  # the activity axis of the value x activity quadrant
    }
    for m in [*rules.condition_metrics(), *rules.segment_metrics()]:
        if m.kind in ("avg_aum", "avg_loan"):
            windows.setdefault(m.kind[4:], set()).add(m.window)
        elif m.window:
            windows.setdefault(m.kind, set()).add(m.window)
    specs = []
    for name in ("aum", "loan", "txn_count", "debit", "credit", "spend", "external_outflow"):
        if name not in windows:
            continue
        ws = tuple(sorted(windows[name]))
        size = max(ws, default=1)
        if name == "aum":
            size = max(size, PEAK_DAYS + 1, rules.max_lateness_days + 1)
        elif name == "loan":
            size = max(size, rules.max_lateness_days + 1)
        specs.append(SeriesSpec(name, name in ("aum", "loan"), ws, size))
    return tuple(specs)


class Evaluator:
    """Compiled rules: metric getters, conditions, and the evaluation at an instant."""

    def __init__(self, rules: Rules, ledger: Ledger, calendar: Calendar) -> None:
        self.rules = rules
        self.ledger = ledger
        #: the wall clock as output text; the engine sets it (injected in tests)
        self.emitted_at: Callable[[], str] = lambda: ""
        self.calendar = calendar
        self.tier_ids = rules.tier_ids
        # The numbers `evaluate` reads at every call, held here: `rules` is a frozen Python
        # dataclass, each read of it a dictionary lookup from compiled code.
        self.grace_days = rules.grace_days
        self.opportunity_cooldown_days = rules.opportunity_cooldown_days
        self.dormant_after_days = rules.dormant_after_days
        self.churn_cooldown_days = rules.churn_cooldown_days
        self.churn_min_amount = rules.churn_min_amount
        self.high_value_from = rules.high_value_from
        self.version = rules.version
        self.getters: dict[str, Getter] = {}
        self.money: dict[str, bool] = {}
        grid = rules.serving_grid()
        for m in [
            *rules.output_metrics(),
            *rules.churn_metrics(),
            *rules.segment_metrics(),
            *(d.metric for d in grid),
        ]:
            self.getters[m.name] = self._getter(m)
            self.money[m.name] = m.is_money
        self.output_metrics = [m.name for m in rules.output_metrics()]
        self.churn_metrics = [m.name for m in rules.churn_metrics()]
        self.tier_tests = [[(c, self._test(c)) for c in t.any_of] for t in rules.tiers]
        #: tiers above the base, top first, with their conditions as native checks
        self.ladder = [
            (t, [(cond, _check(cond, test, self.ledger)) for cond, test in self.tier_tests[t]])
            for t in range(len(rules.tiers) - 1, 0, -1)
        ]
        # Opportunity: the next tier's first avg_aum condition, with the band's floor.
        self.opportunity: list[tuple[Condition, int] | None] = []
        ratio = Fraction(rules.opportunity_ratio)
        for t in rules.tiers:
            cond = next((c for c in t.any_of if c.metric.kind == "avg_aum"), None)
            if cond is None:
                self.opportunity.append(None)
            else:
                low = ratio * cond.literal
                self.opportunity.append((cond, -((-low.numerator) // low.denominator)))
        keep = Fraction(1) - Fraction(rules.drop_ratio)
        self.drop_num, self.drop_den = keep.numerator, keep.denominator
        outflow = Fraction(rules.outflow_ratio)
        self.outflow_num, self.outflow_den = outflow.numerator, outflow.denominator
        self.outflow_getter = self.getters[f"external_outflow_{OUTFLOW_DAYS}d"]
        # -- segments (SPEC §10): what each published one computes and reports
        self.serving_grid = self._grid(grid)
        self.segment_steps: list[tuple[int, str, Callable[[Customer], str], list[str]]] = []
        segments = rules.segments
        if segments is not None:
            if segments.new_days is not None:
                self.segment_steps.append(
                    (0, "lifecycle", self._lifecycle(segments.new_days), ["aum", "inactive_days"])
                )
            if segments.rfm is not None:
                self.segment_steps.append((1, "rfm", self._rfm(segments.rfm), _read_by(segments.rfm)))
            if segments.grid is not None:
                self.segment_steps.append((2, "grid", self._grid(segments.grid), _read_by(segments.grid)))
        self.default_lifecycle = self._lifecycle(NEW_CUSTOMER_DAYS)
        #: every segment change, quiet ones included, as (segment, old or None, new): the
        #: worker drains it into its per-value counts (the customers-by-segment gauge)
        self.segment_moves: Counter[tuple[str, str | None, str]] = Counter()

    def _test(self, cond: Condition) -> Callable[[Customer], bool]:
        """A predicate for one condition; only attributes need the same-kind check.

        The usual ladder condition (`avg_aum_<N>d >= X`) gets one flat closure: it is
        checked for every tier at every evaluation, the engine's hottest call."""
        get, op, literal = self.getters[cond.metric.name], COMPARE[cond.op], cond.literal
        metric = cond.metric
        if metric.kind in ("avg_aum", "avg_loan") and cond.op in (">=", ">"):
            pos = self.ledger.sum_position(self.ledger.index[metric.kind[4:]], metric.window)
            n = metric.window
            if cond.op == ">=":
                return lambda c: c.sums[pos] // n >= literal
            return lambda c: c.sums[pos] // n > literal
        if metric.kind != "attr":
            return lambda c: op(get(c), literal)
        kind = _kind(literal)

        def attr_test(c: Customer) -> bool:
            value = get(c)
            return value is not None and _kind(value) == kind and op(value, literal)

        return attr_test

    # ------------------------------------------------------------------ segments
    @staticmethod
    def _lifecycle(new_days: int) -> Callable[[Customer], str]:
        def stage(c: Customer) -> str:
            if c.dormant_fired:
                return "dormant"
            if c.churn_risk:
                return "churn_risk"
            return "new" if c.day - c.first_day < new_days else "active"

        return stage

    def _rfm(self, dims: tuple[Dimension, Dimension, Dimension]) -> Callable[[Customer], str]:
        (r, rget), (f, fget), (m, mget) = ((_scorer(d), self.getters[d.metric.name]) for d in dims)
        texts: dict[tuple[int, int, int], str] = {}  # one shared string per score triple

        def rfm(c: Customer) -> str:
            key = (r(rget(c)), f(fget(c)), m(mget(c)))
            text = texts.get(key)
            if text is None:
                text = texts[key] = "R{}F{}M{}".format(*key)
            return text

        return rfm

    def _grid(self, dims: tuple[Dimension, Dimension]) -> Callable[[Customer], str]:
        value, activity = dims
        vget, aget = self.getters[value.metric.name], self.getters[activity.metric.name]
        vscore, ascore = _scorer(value), _scorer(activity)
        cells = [[f"{v}/{a}" for a in activity.names] for v in value.names]

        def grid(c: Customer) -> str:
            return cells[vscore(vget(c)) - 1][ascore(aget(c)) - 1]

        return grid

    def segment_changes(self, customer_id: str, c: Customer, instant: int, out: list[Output]) -> None:
        """The day-boundary segment step (after tier, opportunity and churn): each published
        segment that changed, in the order lifecycle, rfm, grid."""
        values = c.segments
        if values is None:
            values = c.segments = [None, None, None]
        for index, name, compute, metric_names in self.segment_steps:
            new = compute(c)
            old = values[index]
            if new == old:
                continue
            values[index] = new
            self.segment_moves[(name, old or None, new)] += 1
            if old == UNSET_QUIETLY:
                continue
            value = self._envelope("segment_changed", customer_id, [name, old or "", new], instant)
            value.update(
                {"segment": name, "from": old, "to": new, "metrics": self.render_metrics(c, metric_names)}
            )
            out.append((SEGMENT_CHANGES, customer_id, value))

    def serving_segments(self, c: Customer) -> dict[str, str]:
        """What Redis, the customer page and `--stats` show: each published segment as last
        published (none before the customer's first boundary); without a published
        lifecycle or grid, the lifecycle with 90 new days and the default 2 x 2 grid, live."""
        held = c.segments or (None, None, None)
        published = {name: index for index, name, _, _ in self.segment_steps}
        out: dict[str, str] = {}
        for index, name in enumerate(SEGMENT_NAMES):
            if name in published:
                value = held[index]
                if value:
                    out[name] = value
            elif name == "lifecycle":
                out[name] = self.default_lifecycle(c)
            elif name == "grid":
                out[name] = self.serving_grid(c)
        return out

    def segment_breakdown(self, c: Customer) -> dict[str, Any]:
        """Why each served segment has its value (`explain`): the value as last published (or
        served live), what the next boundary would give from today's figures, and for each
        dimension its metric, value, score and the band edges around that value."""
        served = self.serving_segments(c)
        published = {name for _, name, _, _ in self.segment_steps}
        segments = self.rules.segments
        out: dict[str, Any] = {}
        for name in SEGMENT_NAMES:
            if name not in served and name not in published:
                continue
            entry: dict[str, Any] = {"value": served.get(name), "published": name in published}
            if name == "lifecycle":
                new_days = segments.new_days if segments and segments.new_days else NEW_CUSTOMER_DAYS
                entry["now"] = self._lifecycle(new_days)(c)
                entry["reads"] = {
                    "dormant_warned_this_spell": c.dormant_fired,
                    "churn_risk": c.churn_risk,
                    "days_since_first_seen": c.day - c.first_day,
                    "new_days": new_days,
                    "inactive_days": self.getters["inactive_days"](c),
                }
            else:
                dims = (segments.rfm if name == "rfm" else segments.grid) if segments else None
                if dims is None:
                    dims = self.rules.serving_grid()
                compute = self._rfm(dims) if name == "rfm" else self._grid(dims)  # type: ignore[arg-type]
                entry["now"] = compute(c)
                entry["dimensions"] = [self._dimension_detail(d, c) for d in dims]
            out[name] = entry
        return out

    def _dimension_detail(self, d: Dimension, c: Customer) -> dict[str, Any]:
        value = self.getters[d.metric.name](c)
        score = d.score(value)
        low, high = d.band_edges(score)

        def shown(x: Any) -> Any:
            if x is None:
                return None
            if d.metric.is_money:
                return format_fen(x)
            if isinstance(x, Decimal):  # a decimal band edge of a count
                return int(x) if x == x.to_integral_value() else str(x)
            return x

        return {
            "role": d.role,
            "metric": d.metric.name,
            "value": shown(value),
            "score": score,
            "name": d.names[score - 1],
            "band": {"from": shown(low), "below": shown(high)},
            "order": "less is better" if d.less_is_better else "more is better",
        }

    def _getter(self, m: Metric) -> Getter:
        ledger = self.ledger
        kind = m.kind
        if kind == "aum":
            aum = ledger.aum
            return lambda c: ledger.current(c, aum)
        if kind == "inactive_days":
            return lambda c: c.day - (c.last_txn_day if c.last_txn_day is not None else c.first_day)
        if kind == "attr":
            name = m.attr

            return lambda c: c.attr(name)
        series = kind[4:] if kind in ("avg_aum", "avg_loan") else kind
        pos = ledger.sum_position(ledger.index[series], m.window)
        if kind in ("avg_aum", "avg_loan"):
            n = m.window
            return lambda c: c.sums[pos] // n
        return lambda c: c.sums[pos]

    # ------------------------------------------------------------------ helpers
    def holds(self, c: Customer, tier: int) -> Condition | None:
        """The first condition of a tier that holds, if any."""
        for cond, test in self.tier_tests[tier]:
            if test(c):
                return cond
        return None

    def qualified(self, c: Customer) -> int:
        """The highest tier with a condition that holds (the base tier always does)."""
        for t, checks in self.ladder:
            for _, check in checks:
                if check.holds(c):
                    return t
        return 0

    def render_metrics(self, c: Customer, names: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            value = self.getters[name](c)
            if value is not None and self.money[name]:
                value = format_fen(value)
            elif isinstance(value, Decimal):  # a decimal attribute, written as a JSON number
                value = int(value) if value == value.to_integral_value() else float(value)
            out[name] = value
        return out

    def _envelope(self, kind: str, customer_id: str, ids: list[str], instant: int) -> dict[str, Any]:
        effective_at = self.calendar.isoformat(instant)
        version = self.version
        digest = hashlib.sha256(
            "|".join([kind, customer_id, *ids, effective_at, version]).encode("utf-8")
        ).hexdigest()[:32]
        return {
            "type": kind,
            "schema_version": 1,
            "event_id": digest,
            "customer_id": customer_id,
            "effective_at": effective_at,
            "rules_version": version,
            "emitted_at": self.emitted_at(),
        }

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, customer_id: str, c: Customer, instant: int, out: list[Output]) -> None:
        """Tier, then upgrade opportunity, then churn warnings, as of day `c.day`."""
        day = c.day
        tiers = self.tier_ids
        # -- tier: the highest tier with a condition that holds (inlined: hot)
        qualified, matched = 0, None
        for t, checks in self.ladder:
            for cond, check in checks:
                if check.holds(c):
                    qualified, matched = t, cond
                    break
            if matched is not None:
                break
        current = c.tier
        changed = False
        if qualified > current:
            changed = True
        elif qualified < current:
            if c.below_since is None:
                c.below_since = day
            if day - c.below_since >= self.grace_days:
                changed = True
        if changed:
            value = self._envelope("tier_changed", customer_id, [tiers[current], tiers[qualified]], instant)
            value.update(
                from_tier=tiers[current],
                to_tier=tiers[qualified],
                direction="upgrade" if qualified > current else "downgrade",
                matched=matched.text if matched is not None else None,
                metrics=self.render_metrics(c, self.output_metrics),
            )
            out.append((TIER_CHANGES, customer_id, value))
            c.tier = current = qualified
            c.tier_since = instant
        if qualified >= current:
            c.below_since = None
        # -- upgrade opportunity
        target = current + 1
        if target < len(tiers):
            opp = self.opportunity[target]
            if opp is not None:
                cond, floor = opp
                held = c.opportunities
                last = held.get(target) if held is not None else None
                if last is None or day >= last + self.opportunity_cooldown_days:
                    value_fen = self.getters[cond.metric.name](c)
                    if floor <= value_fen < cond.literal:
                        c.note_opportunity(target, day)
                        value = self._envelope(
                            "upgrade_opportunity", customer_id, [tiers[current], tiers[target]], instant
                        )
                        value.update(
                            current_tier=tiers[current],
                            target_tier=tiers[target],
                            metric=cond.metric.name,
                            value=format_fen(value_fen),
                            threshold=format_fen(cond.literal),
                            gap=format_fen(cond.literal - value_fen),
                        )
                        out.append((OPPORTUNITIES, customer_id, value))
        # -- churn warnings
        inactive = day - (c.last_txn_day if c.last_txn_day is not None else c.first_day)
        if not c.dormant_fired and inactive >= self.dormant_after_days:
            c.dormant_fired = True
            self._churn(customer_id, c, "dormant", instant, out)
        cooldown = self.churn_cooldown_days
        warned = c.warnings
        last = warned.get("balance_drop") if warned is not None else None
        if last is None or day >= last + cooldown:
            peak = self.ledger.peak(c, PEAK_DAYS)
            if peak >= self.churn_min_amount:
                aum = self.ledger.current(c, self.ledger.aum)
                if aum * self.drop_den <= peak * self.drop_num:
                    c.note_warning("balance_drop", day)
                    c.churn_risk = True
                    self._churn(customer_id, c, "balance_drop", instant, out)
        warned = c.warnings
        last = warned.get("external_outflow") if warned is not None else None
        if last is None or day >= last + cooldown:
            outflow = self.outflow_getter(c)
            if outflow >= self.churn_min_amount:
                aum = self.ledger.current(c, self.ledger.aum)
                if outflow * self.outflow_den >= self.outflow_num * (aum + outflow):
                    c.note_warning("external_outflow", day)
                    c.churn_risk = True
                    self._churn(customer_id, c, "external_outflow", instant, out)

    def _churn(self, customer_id: str, c: Customer, reason: str, instant: int, out: list[Output]) -> None:
        if reason == "dormant" and c.tier == 0:
            severity = "low"
        elif c.tier >= self.high_value_from:
            severity = "high"
        else:
            severity = "medium"
        value = self._envelope("churn_warning", customer_id, [reason], instant)
        value.update(
            tier=self.tier_ids[c.tier],
            reason=reason,
            severity=severity,
            metrics=self.render_metrics(c, self.churn_metrics),
        )
        out.append((CHURN_WARNINGS, customer_id, value))


class Check:
    """A tier condition's test, as the evaluation's ladder calls it: compiled, a call to
    `holds` is a direct native call where calling a closure is a generic one (~50 ns, several
    times an evaluation). The usual condition, an average balance `>=` or `>` an integer
    amount, is computed here; any other calls the condition's closure (`Evaluator._test`)."""

    def __init__(
        self, test: Callable[[Customer], bool], pos: int, days: int, literal: int, strict: bool
    ) -> None:
        self.test = test
        self.pos = pos  # the window sum's position in `Customer.sums`; -1: call `test`
        self.days = days
        self.literal = literal
        self.strict = strict

    def holds(self, c: Customer) -> bool:
        if self.pos < 0:
            return self.test(c)
        average = c.sums[self.pos] // self.days
        return average > self.literal if self.strict else average >= self.literal


def _check(cond: Condition, test: Callable[[Customer], bool], ledger: Ledger) -> Check:
    """The ladder's check of a condition: what `test` decides (the closure `_test` made)."""
    metric = cond.metric
    if metric.kind in ("avg_aum", "avg_loan") and cond.op in (">=", ">") and type(cond.literal) is int:
        pos = ledger.sum_position(ledger.index[metric.kind[4:]], metric.window)
        return Check(test, pos, metric.window, cond.literal, cond.op == ">")
    return Check(test, -1, 1, 0, False)


def _scorer(d: Dimension) -> Callable[[Any], int]:
    """`d.score`, compiled with the engine (rules.py is not): it runs for every customer's
    rfm and grid at every day boundary."""
    bands = d.bands
    if d.less_is_better:
        top = 1 + len(bands)
        return lambda value: top - bisect_right(bands, value)
    return lambda value: 1 + bisect_right(bands, value)


def _read_by(dims: tuple[Dimension, ...]) -> list[str]:
    """`aum` then each dimension's metric, each once: a segment change's `metrics`."""
    names = ["aum"]
    for d in dims:
        if d.metric.name not in names:
            names.append(d.metric.name)
    return names
