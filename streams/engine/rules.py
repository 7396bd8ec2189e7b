"""The rules file: a tier ladder, conditions as data, and every refusal located.

Conditions are parsed with a grammar (`<metric> <op> <literal>`), never evaluated as
code. Every error names the file, the line and the fix.
"""

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

PRESETS = ("cmb", "psbc", "ccb", "spdb")
OPERATORS = (">=", "<=", "==", "!=", ">", "<")
#: what each operator of a condition means (the evaluator and the ladder check share it)
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
MAX_WINDOW_DAYS = 366
#: balance_drop looks at the peak AUM over [D-30, D-1]: the AUM ring needs 31 days.
PEAK_DAYS = 30
OUTFLOW_DAYS = 7
#: the activity axis of the value x activity quadrant: transactions in 30 days
ACTIVITY_DAYS = 30

_WINDOWED = re.compile(r"(avg_aum|avg_loan|txn_count|debit|credit|spend|external_outflow)_(\d+)d\Z")
_ATTR = re.compile(r"attr\.([A-Za-z_][A-Za-z0-9_.-]*)\Z")
_CONDITION = re.compile(r"\s*(\S+?)\s*(>=|<=|==|!=|>|<)\s*(\S.*?)\s*\Z")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")
MONEY_KINDS = frozenset({"aum", "avg_aum", "avg_loan", "debit", "credit", "spend", "external_outflow"})
COUNT_KINDS = frozenset({"txn_count", "inactive_days"})


class RulesError(ValueError):
    """A refused rules file: `str()` is the one line a person sees."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {reason}")
        self.source, self.line, self.reason = source, line, reason


@dataclass(frozen=True)
class Metric:
    """A metric name split into its parts: kind, window and attribute."""

    name: str
    kind: str  # aum | avg_aum | avg_loan | txn_count | debit | credit | spend |
    #            external_outflow | inactive_days | attr
    window: int = 0
    attr: str = ""

    @property
    def is_money(self) -> bool:
        return self.kind in MONEY_KINDS


def parse_metric(name: str) -> Metric:
    """Raise ValueError with a fix for an unknown metric or a bad window."""
    if name in ("aum", "inactive_days"):
        return Metric(name, name)
    m = _ATTR.match(name)
    if m:
        return Metric(name, "attr", attr=m.group(1))
    m = _WINDOWED.match(name)
    if m:
        kind, digits = m.groups()
        days = int(digits)
        if digits.startswith("0") or not 1 <= days <= MAX_WINDOW_DAYS:
            raise ValueError(
                f"bad window in {name!r}: the window is 1-{MAX_WINDOW_DAYS} days, "
                f"written without leading zeros (e.g. {kind}_30d)"
            )
        return Metric(name, kind, window=days)
    raise ValueError(
        f"unknown metric {name!r}: use aum, inactive_days, attr.<name>, or "
        "avg_aum_/avg_loan_/txn_count_/debit_/credit_/spend_/external_outflow_<N>d"
    )


@dataclass(frozen=True)
class Condition:
    text: str
    metric: Metric
    op: str
    #: int fen for money metrics, int/Decimal for numbers, bool, or str.
    literal: Any
    line: int


def _parse_literal(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _NUMBER.match(text):
        value = Decimal(text)
        return int(value) if value == value.to_integral_value() else value
    raise ValueError(f"bad literal {text!r}: write a number (50000), true/false, or a quoted string")


def parse_condition(text: str, line: int = 0) -> Condition:
    """Raise ValueError with a fix for a malformed condition."""
    m = _CONDITION.match(text)
    if m is None or m.group(2) not in OPERATORS:
        raise ValueError(
            f"malformed condition {text!r}: write '<metric> <op> <literal>' "
            "with op one of >= > <= < == != (e.g. 'avg_aum_30d >= 50000')"
        )
    name, op, lit_text = m.groups()
    if re.match(r"[<>=!]", lit_text):
        raise ValueError(f"malformed condition {text!r}: op must be one of >= > <= < == !=")
    metric = parse_metric(name)
    literal = _parse_literal(lit_text)
    if metric.kind != "attr":
        if isinstance(literal, (bool, str)):
            raise ValueError(f"condition {text!r} compares the number {name} with {lit_text}: use a number")
        if metric.is_money:
            fen = Decimal(literal) * 100
            if fen != fen.to_integral_value():
                raise ValueError(f"condition {text!r}: money literals are whole fen (at most 2 decimals)")
            literal = int(fen)
    elif isinstance(literal, bool) and op not in ("==", "!="):
        raise ValueError(f"condition {text!r}: booleans take only == or !=")
    return Condition(text=text.strip(), metric=metric, op=op, literal=literal, line=line)


@dataclass(frozen=True)
class Tier:
    id: str
    label: str
    any_of: tuple[Condition, ...]
    line: int


#: the segments of SPEC §10, in the order they are evaluated and published
SEGMENT_NAMES = ("lifecycle", "rfm", "grid")
LIFECYCLE_STAGES = ("new", "active", "dormant", "churn_risk")
NEW_CUSTOMER_DAYS = 90


@dataclass(frozen=True)
class Dimension:
    """One scored axis of a segment: a metric cut by ascending band edges (SPEC §10)."""

    role: str  # recency | frequency | monetary | value | activity
    metric: Metric
    #: the edges as the metric compares: int fen for money, int or Decimal for counts
    bands: tuple[Any, ...]
    #: the name of each score 1 ... k+1 (the grid's names; rfm uses the score itself)
    names: tuple[str, ...]
    line: int = 0

    @property
    def less_is_better(self) -> bool:
        return self.metric.kind == "inactive_days"

    def score(self, value: Any) -> int:
        """1 + the bands the value passes: b > value for inactive_days, b <= value otherwise."""
        passed = bisect.bisect_right(self.bands, value)
        return 1 + (len(self.bands) - passed if self.less_is_better else passed)

    def band_edges(self, score: int) -> tuple[Any, Any]:
        """The (low, high) edges around a score, None where open (for `explain`)."""
        bands = self.bands
        index = len(bands) + 1 - score if self.less_is_better else score - 1
        return (bands[index - 1] if index > 0 else None, bands[index] if index < len(bands) else None)


@dataclass(frozen=True)
class Segments:
    """The `segments` section: each part optional (None: not kept, not published)."""

    new_days: int | None = None  # lifecycle
    rfm: tuple[Dimension, Dimension, Dimension] | None = None
    grid: tuple[Dimension, Dimension] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The configured segments, in publication order."""
        have = (self.new_days is not None, self.rfm is not None, self.grid is not None)
        return tuple(n for n, on in zip(SEGMENT_NAMES, have, strict=True) if on)

    def dimensions(self) -> tuple[Dimension, ...]:
        return (*(self.rfm or ()), *(self.grid or ()))

    def possible(self, segment: str, value: str) -> bool:
        """Whether these rules can give `segment` this value (a stored one may predate them)."""
        if segment == "lifecycle":
            return self.new_days is not None and value in LIFECYCLE_STAGES
        if segment == "rfm" and self.rfm is not None:
            m = re.fullmatch(r"R([0-9]+)F([0-9]+)M([0-9]+)", value)
            return m is not None and all(
                1 <= int(g) <= len(d.bands) + 1 for g, d in zip(m.groups(), self.rfm, strict=True)
            )
        if segment == "grid" and self.grid is not None:
            value_name, slash, activity_name = value.partition("/")
            return bool(slash) and value_name in self.grid[0].names and activity_name in self.grid[1].names
        return False


@dataclass(frozen=True)
class Rules:
    scheme: str
    version: str
    timezone: str
    home_bank: str | None
    tiers: tuple[Tier, ...]
    grace_days: int = 30
    opportunity_ratio: Decimal = Decimal("0.6")
    opportunity_cooldown_days: int = 30
    dormant_after_days: int = 90
    drop_ratio: Decimal = Decimal("0.5")
    outflow_ratio: Decimal = Decimal("0.3")
    churn_min_amount: int = 5_000_000  # fen
    churn_cooldown_days: int = 30
    high_value_from: int = 0  # tier index
    max_lateness_days: int = 7
    max_record_bytes: int = 65_536
    clock_lag_seconds: int = 300
    #: currency -> exact rate as (numerator, denominator)
    currencies: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: value x activity quadrant: high value from this main-metric figure (fen), active
    #: from this many customer-initiated transactions in 30 days
    segment_value_fen: int = 5_000_000
    segment_active_txn: int = 4
    #: SPEC §10; None when the file has no `segments` section (no segment outputs)
    segments: Segments | None = None
    source: str = "<rules>"
    warnings: tuple[str, ...] = ()

    @cached_property
    def tier_ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.tiers)

    def conditions(self) -> list[Condition]:
        return [c for t in self.tiers for c in t.any_of]

    def condition_metrics(self) -> list[Metric]:
        """Metrics named by any condition, in order of first appearance."""
        seen: dict[str, Metric] = {}
        for cond in self.conditions():
            seen.setdefault(cond.metric.name, cond.metric)
        return list(seen.values())

    def output_metrics(self) -> list[Metric]:
        """`aum` plus every condition metric: the `metrics` of a tier change."""
        names = [Metric("aum", "aum")] + [m for m in self.condition_metrics() if m.name != "aum"]
        return names

    def churn_metrics(self) -> list[Metric]:
        """Tier-change metrics plus `inactive_days` and `external_outflow_7d`."""
        out = self.output_metrics()
        have = {m.name for m in out}
        for extra in (
            Metric("inactive_days", "inactive_days"),
            Metric(f"external_outflow_{OUTFLOW_DAYS}d", "external_outflow", OUTFLOW_DAYS),
        ):
            if extra.name not in have:
                out.append(extra)
        return out

    def published_segments(self) -> tuple[str, ...]:
        """The segments kept in state and published on change (SPEC §10)."""
        return self.segments.names if self.segments is not None else ()

    def segment_metrics(self) -> list[Metric]:
        """Metrics the published segments read (their day series must be kept)."""
        dims = self.segments.dimensions() if self.segments is not None else ()
        return [d.metric for d in dims]

    def serving_grid(self) -> tuple[Dimension, Dimension]:
        """The grid Redis, `explain` and `--stats` show: the published one, else a default
        2 x 2 (the main average metric by 30-day activity) that reproduces the former
        value x activity quadrant."""
        if self.segments is not None and self.segments.grid is not None:
            return self.segments.grid
        main = next((m for m in self.condition_metrics() if m.kind == "avg_aum"), Metric("aum", "aum"))
        return (
            Dimension("value", main, (self.segment_value_fen,), ("low_value", "high_value")),
            Dimension(
                "activity",
                Metric(f"txn_count_{ACTIVITY_DAYS}d", "txn_count", ACTIVITY_DAYS),
                (self.segment_active_txn,),
                ("inactive", "active"),
            ),
        )

    def main_metric(self) -> str:
        """The first avg_aum metric of the ladder (what Redis serves beside `aum`)."""
        return self._main_metric

    @cached_property
    def _main_metric(self) -> str:
        # once: Redis serves it for every customer a commit changed, and finding it walked
        # every condition of the ladder (~3% of a live worker's time)
        for m in self.condition_metrics():
            if m.kind == "avg_aum":
                return m.name
        return "avg_aum_30d"


# --------------------------------------------------------------------------- loading

_TOP_KEYS = {
    "scheme",
    "version",
    "timezone",
    "home_bank",
    "tiers",
    "downgrade",
    "opportunity",
    "churn",
    "max_lateness_days",
    "max_record_bytes",
    "clock_lag_seconds",
    "currencies",
    "segments",
}


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []

    def fail(self, node: yaml.Node | None, reason: str) -> RulesError:
        line = node.start_mark.line + 1 if node is not None else None
        return RulesError(self.source, line, reason)

    def warn(self, node: yaml.Node, reason: str) -> None:
        self.warnings.append(f"{self.source}:{node.start_mark.line + 1}: warning: {reason}")

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value)")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{what}: keys must be plain names")
            if key.value in out:
                raise self.fail(key, f"{what}: key {key.value!r} appears twice; keep one")
            out[key.value] = (key, value)
        return out

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return str(node.value)

    def integer(self, node: yaml.Node, what: str, low: int = 0, high: int = 10**9) -> int:
        text = self.scalar(node, what)
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            raise self.fail(node, f"{what} must be a whole number from {low} to {high}, not {text!r}")
        return int(text)

    def decimal(self, node: yaml.Node, what: str, low: Decimal, high: Decimal | None) -> Decimal:
        text = self.scalar(node, what)
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise self.fail(node, f"{what} must be a decimal number {bound}, not {text!r}")
        return value

    def money(self, node: yaml.Node, what: str) -> int:
        value = self.decimal(node, what, Decimal(0), None) * 100
        if value != value.to_integral_value():
            raise self.fail(node, f"{what} must be a whole number of fen (2 decimals at most)")
        return int(value)

    def section(
        self, top: dict[str, tuple[yaml.Node, yaml.Node]], name: str, known: set[str]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if name not in top:
            return {}
        sec = self.mapping(top[name][1], name)
        for key, (knode, _) in sec.items():
            if key not in known:
                self.warn(
                    knode, f"{name}: unknown key {key!r} ignored; expected one of {', '.join(sorted(known))}"
                )
        return sec

    def load(self, text: str) -> Rules:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else None
            raise RulesError(self.source, line, f"not valid YAML: {exc.problem}; {_yaml_fix(exc)}") from None
        except yaml.YAMLError as exc:
            raise RulesError(self.source, None, f"not valid YAML: {exc}") from None
        if root is None:
            raise RulesError(
                self.source, 1, "the file is empty; start from a preset (tierstream rules check cmb)"
            )
        top = self.mapping(root, "the rules file")
        for key, (knode, _) in top.items():
            if key not in _TOP_KEYS:
                self.warn(
                    knode, f"unknown key {key!r} ignored; expected one of {', '.join(sorted(_TOP_KEYS))}"
                )
        for required in ("scheme", "version", "tiers"):
            if required not in top:
                raise self.fail(root, f"missing {required!r}; add it (see the cmb preset)")
        kw: dict[str, Any] = {}
        kw["scheme"] = self.scalar(top["scheme"][1], "scheme")
        kw["version"] = self.scalar(top["version"][1], "version")
        if not kw["version"]:
            raise self.fail(top["version"][1], "version must not be empty")
        tz = "Asia/Shanghai"
        if "timezone" in top:
            tz = self.scalar(top["timezone"][1], "timezone")
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise self.fail(
                    top["timezone"][1], f"unknown timezone {tz!r}; use an IANA name such as Asia/Shanghai"
                ) from None
        kw["timezone"] = tz
        kw["home_bank"] = self.scalar(top["home_bank"][1], "home_bank") if "home_bank" in top else None
        tiers = self.tiers(top["tiers"][1])
        _refuse_unreachable(self.source, tiers)
        kw["tiers"] = tiers
        ids = [t.id for t in tiers]

        down = self.section(top, "downgrade", {"grace_days"})
        if "grace_days" in down:
            kw["grace_days"] = self.integer(down["grace_days"][1], "downgrade.grace_days", 0, 3660)
        opp = self.section(top, "opportunity", {"ratio", "cooldown_days"})
        if "ratio" in opp:
            kw["opportunity_ratio"] = self.decimal(
                opp["ratio"][1], "opportunity.ratio", Decimal(0), Decimal(1)
            )
        if "cooldown_days" in opp:
            kw["opportunity_cooldown_days"] = self.integer(
                opp["cooldown_days"][1], "opportunity.cooldown_days", 0, 3660
            )
        churn = self.section(
            top,
            "churn",
            {
                "dormant_after_days",
                "drop_ratio",
                "outflow_ratio",
                "min_amount",
                "cooldown_days",
                "high_value_from",
            },
        )
        if "dormant_after_days" in churn:
            kw["dormant_after_days"] = self.integer(
                churn["dormant_after_days"][1], "churn.dormant_after_days", 1, 3660
            )
        if "drop_ratio" in churn:
            kw["drop_ratio"] = self.decimal(
                churn["drop_ratio"][1], "churn.drop_ratio", Decimal(0), Decimal(1)
            )
        if "outflow_ratio" in churn:
            kw["outflow_ratio"] = self.decimal(
                churn["outflow_ratio"][1], "churn.outflow_ratio", Decimal(0), Decimal(1)
            )
        if "min_amount" in churn:
            kw["churn_min_amount"] = self.money(churn["min_amount"][1], "churn.min_amount")
        if "cooldown_days" in churn:
            kw["churn_cooldown_days"] = self.integer(
                churn["cooldown_days"][1], "churn.cooldown_days", 0, 3660
            )
        kw["high_value_from"] = len(ids)  # not set: no tier is high value
        if "high_value_from" in churn:
            node = churn["high_value_from"][1]
            high = self.scalar(node, "churn.high_value_from")
            if high not in ids:
                raise self.fail(
                    node, f"churn.high_value_from {high!r} is not a tier; use one of {', '.join(ids)}"
                )
            kw["high_value_from"] = ids.index(high)
        if "max_lateness_days" in top:
            kw["max_lateness_days"] = self.integer(top["max_lateness_days"][1], "max_lateness_days", 0, 366)
        if "max_record_bytes" in top:
            kw["max_record_bytes"] = self.integer(
                top["max_record_bytes"][1], "max_record_bytes", 64, 64 * 1024 * 1024
            )
        if "clock_lag_seconds" in top:
            kw["clock_lag_seconds"] = self.integer(
                top["clock_lag_seconds"][1], "clock_lag_seconds", 0, 86_400
            )
        # value x activity segments: high value defaults to the first tier's average threshold
        first_avg = next((c for t in tiers[1:] for c in t.any_of if c.metric.kind == "avg_aum"), None)
        if first_avg is not None:
            kw["segment_value_fen"] = first_avg.literal
        seg = self.section(top, "segments", {"high_value_from", "active_txn_30d", *SEGMENT_NAMES})
        if "high_value_from" in seg:
            kw["segment_value_fen"] = self.money(seg["high_value_from"][1], "segments.high_value_from")
        if "active_txn_30d" in seg:
            kw["segment_active_txn"] = self.integer(
                seg["active_txn_30d"][1], "segments.active_txn_30d", 1, 10_000
            )
        if "grid" in seg:
            for legacy in ("high_value_from", "active_txn_30d"):
                if legacy in seg:
                    self.warn(seg[legacy][0], f"segments.{legacy} ignored: segments.grid sets the grid")
        if "segments" in top:
            kw["segments"] = self.segments(seg)
        if "currencies" in top:
            rates: dict[str, tuple[int, int]] = {}
            for code, (knode, vnode) in self.mapping(top["currencies"][1], "currencies").items():
                if not re.fullmatch(r"[A-Z]{3}", code):
                    raise self.fail(knode, f"currency {code!r} is not a 3-letter ISO code such as USD")
                rate = self.decimal(vnode, f"currencies.{code}", Decimal(0), None)
                if rate <= 0:
                    raise self.fail(vnode, f"currencies.{code} must be a positive rate")
                rates[code] = rate.as_integer_ratio()
            kw["currencies"] = rates
        return Rules(source=self.source, warnings=tuple(self.warnings), **kw)

    # ------------------------------------------------------------------ segments (SPEC §10)
    def segments(self, seg: dict[str, tuple[yaml.Node, yaml.Node]]) -> Segments:
        new_days = None
        if "lifecycle" in seg:
            node = seg["lifecycle"][1]
            part = {} if _is_null(node) else self.mapping(node, "segments.lifecycle")
            for key, (knode, _) in part.items():
                if key != "new_days":
                    self.warn(knode, f"segments.lifecycle: unknown key {key!r} ignored; expected new_days")
            new_days = NEW_CUSTOMER_DAYS
            if "new_days" in part:
                new_days = self.integer(part["new_days"][1], "segments.lifecycle.new_days", 1, 3660)
        rfm = grid = None
        if "rfm" in seg:
            r, f, m = self.dimensions(seg["rfm"][1], "rfm", ("recency", "frequency", "monetary"), named=False)
            rfm = (r, f, m)
        if "grid" in seg:
            value, activity = self.dimensions(seg["grid"][1], "grid", ("value", "activity"), named=True)
            grid = (value, activity)
        return Segments(new_days, rfm, grid)

    def dimensions(
        self, node: yaml.Node, segment: str, roles: tuple[str, ...], *, named: bool
    ) -> list[Dimension]:
        part = self.mapping(node, f"segments.{segment}")
        for key, (knode, _) in part.items():
            if key not in roles:
                self.warn(
                    knode, f"segments.{segment}: unknown key {key!r} ignored; expected {', '.join(roles)}"
                )
        dims = []
        for role in roles:
            if role not in part:
                raise self.fail(
                    node,
                    f"segments.{segment} needs {', '.join(roles)}; add {role}: "
                    "{metric: <metric>, bands: [<edge>, ...]}",
                )
            dims.append(self.dimension(part[role][1], f"segments.{segment}.{role}", role, named=named))
        return dims

    def dimension(self, node: yaml.Node, what: str, role: str, *, named: bool) -> Dimension:
        known = {"metric", "bands", "names"} if named else {"metric", "bands"}
        part = self.mapping(node, what)
        for key, (knode, _) in part.items():
            if key not in known:
                self.warn(knode, f"{what}: unknown key {key!r} ignored; expected {', '.join(sorted(known))}")
        for required in ("metric", "bands"):
            if required not in part:
                raise self.fail(
                    node, f"{what} needs {required} (e.g. {{metric: avg_aum_30d, bands: [50000, 500000]}})"
                )
        mnode = part["metric"][1]
        try:
            metric = parse_metric(self.scalar(mnode, f"{what}.metric"))
        except ValueError as exc:
            raise self.fail(mnode, f"{what}.metric: {exc}") from None
        if metric.kind == "attr":
            raise self.fail(
                mnode,
                f"{what}.metric {metric.name!r} is not numeric: bands need a number metric "
                "(aum, inactive_days, avg_aum_<N>d, txn_count_<N>d, ...), not a profile attribute",
            )
        bnode = part["bands"][1]
        if not isinstance(bnode, yaml.SequenceNode) or not bnode.value:
            raise self.fail(bnode, f"{what}.bands must be a list of at least one edge, e.g. [50000, 500000]")
        bands: list[Any] = []
        for enode in bnode.value:
            text = self.scalar(enode, f"{what}.bands")
            if not _NUMBER.match(text):
                raise self.fail(
                    enode, f"{what}.bands: {text!r} is not a number; write edges such as 50000 or 2.5"
                )
            edge = Decimal(text)
            if metric.is_money:
                edge *= 100
                if edge != edge.to_integral_value():
                    raise self.fail(enode, f"{what}.bands: {text} is not whole fen (2 decimals at most)")
            edge_value: Any = int(edge) if edge == edge.to_integral_value() else edge
            if bands and edge_value <= bands[-1]:
                raise self.fail(
                    enode,
                    f"{what}.bands must be strictly ascending: {text} comes after "
                    f"{bnode.value[len(bands) - 1].value}; sort the edges and drop repeats",
                )
            bands.append(edge_value)
        k = len(bands)
        names: tuple[str, ...] = ("low", "mid", "high") if k == 2 else tuple(str(i) for i in range(1, k + 2))
        if named and "names" in part:
            nnode = part["names"][1]
            if not isinstance(nnode, yaml.SequenceNode) or len(nnode.value) != k + 1:
                got = len(nnode.value) if isinstance(nnode, yaml.SequenceNode) else "no list"
                raise self.fail(
                    nnode, f"{what}.names needs {k + 1} names ({k} bands give {k + 1} scores), got {got}"
                )
            names = tuple(self.scalar(n, f"{what}.names") for n in nnode.value)
            for n, text in zip(nnode.value, names, strict=True):
                if not text or "/" in text:
                    raise self.fail(n, f"{what}.names: {text!r}: a name is non-empty text without '/'")
            if len(set(names)) != len(names):
                raise self.fail(nnode, f"{what}.names: every name must differ, got {list(names)}")
        return Dimension(role, metric, tuple(bands), names, node.start_mark.line + 1)

    def tiers(self, node: yaml.Node) -> tuple[Tier, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, "tiers must be a non-empty list, base tier first")
        tiers: list[Tier] = []
        seen: set[str] = set()
        for index, tnode in enumerate(node.value):
            fields = self.mapping(tnode, "a tier")
            for key, (knode, _) in fields.items():
                if key not in ("id", "label", "any_of"):
                    self.warn(knode, f"tier: unknown key {key!r} ignored; expected id, label, any_of")
            if "id" not in fields:
                raise self.fail(tnode, "a tier needs an id (e.g. {id: gold, label: 金卡, any_of: [...]})")
            tid = self.scalar(fields["id"][1], "tier id")
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", tid):
                raise self.fail(fields["id"][1], f"tier id {tid!r}: use letters, digits, _ . -")
            if tid in seen:
                raise self.fail(fields["id"][1], f"duplicate tier {tid!r}; every tier id must be unique")
            seen.add(tid)
            label = self.scalar(fields["label"][1], "tier label") if "label" in fields else tid
            conds: list[Condition] = []
            if "any_of" in fields:
                lnode = fields["any_of"][1]
                if not isinstance(lnode, yaml.SequenceNode):
                    raise self.fail(lnode, f"tier {tid}: any_of must be a list of conditions")
                for cnode in lnode.value:
                    text = self.scalar(cnode, "a condition")
                    try:
                        conds.append(parse_condition(text, cnode.start_mark.line + 1))
                    except ValueError as exc:
                        raise self.fail(cnode, f"tier {tid}: {exc}") from None
            if index == 0 and conds:
                raise self.fail(fields["any_of"][1], f"base tier {tid!r} always qualifies: remove its any_of")
            if index > 0 and not conds:
                raise self.fail(
                    tnode, f"tier {tid!r} has no conditions: add any_of (only the base tier has none)"
                )
            tiers.append(Tier(tid, label, tuple(conds), tnode.start_mark.line + 1))
        return tuple(tiers)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _yaml_fix(exc: yaml.MarkedYAMLError) -> str:
    """The likely fix for a YAML syntax error (most are indentation)."""
    problem = f"{exc.problem or ''} {exc.context or ''}"
    mark = exc.problem_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "this line"
    if "\\t" in problem or "tab" in problem:
        return f"replace the tab at {where} with spaces"
    if "quot" in problem or "scanning a quoted scalar" in problem:
        return f"close the quote that opens before {where}"
    return (
        f"check the indentation at {where} against the lines above: keys of one mapping "
        "start in the same column, list items ('- ') line up, and a nested block is indented "
        "further than its key (spaces, not tabs)"
    )


def _implies(c: Condition, d: Condition) -> bool:
    """Whenever `c` holds, `d` holds too (same metric; sufficient, not complete)."""
    if c.metric.name != d.metric.name or isinstance(c.literal, (bool, str)) != isinstance(
        d.literal, (bool, str)
    ):
        return False
    x, y = c.literal, d.literal
    if c.op == "==":
        return bool(COMPARE[d.op](x, y))
    if isinstance(x, (bool, str)):
        return False
    up = {">=", ">"}
    down = {"<=", "<"}
    if c.op in up and d.op in up:
        return x > y or (x == y and (d.op == ">=" or c.op == ">"))
    if c.op in down and d.op in down:
        return x < y or (x == y and (d.op == "<=" or c.op == "<"))
    return False


def _refuse_unreachable(source: str, tiers: tuple[Tier, ...]) -> None:
    """A tier whose every condition implies a condition of a higher tier can never be
    reached (the ladder takes the highest tier that holds): refuse it, naming both."""
    for index in range(1, len(tiers)):
        tier = tiers[index]
        covers: list[tuple[Condition, Tier, Condition]] = []
        for cond in tier.any_of:
            hit = next(
                (
                    (higher, other)
                    for higher in tiers[index + 1 :]
                    for other in higher.any_of
                    if _implies(cond, other)
                ),
                None,
            )
            if hit is None:
                break
            covers.append((cond, *hit))
        else:
            cond, higher, other = covers[0]
            raise RulesError(
                source,
                tier.line,
                f"tier {tier.id} can never be reached: whenever '{cond.text}' holds, the higher tier "
                f"{higher.id} ('{other.text}') holds too; order the ladder by rising thresholds "
                f"(raise {higher.id}'s or lower {tier.id}'s)",
            )


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    return _Loader(source).load(text)


def load_rules(spec: str) -> Rules:
    """A preset name (cmb, psbc, ccb, spdb) or a path to a rules file."""
    if spec in PRESETS:
        text = resources.files("tierstream.presets").joinpath(f"{spec}.yaml").read_text("utf-8")
        return parse_rules(text, f"preset {spec}")
    path = Path(spec)
    if path.is_dir():
        raise RulesError(spec, None, "is a folder, not a rules file; give the path of a .yaml file in it")
    if not path.is_file():
        raise RulesError(
            spec, None, f"no such rules file; give a path or a preset name ({', '.join(PRESETS)})"
        )
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(spec, None, f"cannot read the rules file: {exc}") from None
    return parse_rules(text, spec)
