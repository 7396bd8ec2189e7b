"""A deliberately slow, literal reference implementation of SPEC.md §1–§6, §10 and `simulate` (§8).

It exists only to cross-check the fast engine. It shares no code with `streams/`: it keeps
the full history of every applied event per customer and recomputes every metric from the
definitions of SPEC §3 at every evaluation instant, and it evaluates day boundaries eagerly
in exactly the order SPEC §4 describes. Speed is not a goal; readability is.

READINGS (where SPEC.md is silent or ambiguous, this is the reading implemented here):

 1. Event-file lines. A blank (whitespace-only) line counts as nothing, but it still has a
    line number (offsets are 0-based line numbers of the file). A line that is not JSON is
    `invalid_json`, with source_topic null, key null and the line itself as payload; a line
    whose object has a non-null `value` but no input `topic` is `schema_violation` with that
    value as payload (its text if a string, else compact JSON; size checked first) and its
    `customer_id` as key; a line with no (or a null) `value` is `schema_violation` with the
    line as payload (source_topic = the topic if it is a string).
    For those line-level failures the size check runs first too, on the line's bytes.
 2. Payload. A string `value` is the raw payload. An object `value` is re-serialised as
    compact JSON (separators=(",", ":"), ensure_ascii=False) with every JSON number written
    exactly as its original text (so `1e2` stays `1e2`), and `NaN`/`Infinity` written as-is.
    Checks run in the order size (payload UTF-8 bytes > max_record_bytes), JSON (NaN,
    Infinity or -Infinity anywhere in the payload make it `invalid_json`), payload is an object,
    schema and values, lateness/future, duplicate. payload_encoding is "utf-8" unless the text
    cannot be encoded (lone surrogates), then "base64" of its surrogatepass bytes.
 3. When one payload has several problems, `schema_violation` wins over `naive_timestamp`,
    which wins over `bad_amount` (structure first, then timestamp shape, then amount values).
 4. Any field present with JSON `null` is ill-typed (`schema_violation`), optional fields
    (`currency`, `counterparty_bank`, `balance_after`, transaction `product`) included.
    `event_id`: a string of 1–128 characters, all `str.isprintable()` (Unicode printable,
    space allowed). `customer_id` and `account_id`: any non-empty string. `counterparty_bank`:
    any string (even empty; "set" means present). An optional transaction `product`, when
    present, must be a known product even without `balance_after`.
 5. Timestamps: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with ASCII digits and upper-case
    `T`/`Z` only; an impossible date/time (month 13, second 60, offset hour > 23 or minute > 59)
    is `schema_violation`; the shape without an offset is `naive_timestamp`. Fractions beyond
    microseconds are truncated to microseconds (Python datetime resolution) everywhere,
    including ordering. `-00:00` means UTC.
 6. Money: the whole-fen and `amount > 0` / liability `≥ 0` checks apply to the wire value in its
    own currency; conversion (fen × rate, floored) happens afterwards, so a tiny positive USD
    amount may become 0 fen. Amounts whose decimal exponent is absurd (|value| ≥ 10^100) are
    `bad_amount` (a guard against unbounded big-integer work; the spec sets no bound).
    The rules' `currencies` rates and `ratio`s are read exactly from their decimal text.
 7. Accounts are identified by `account_id` alone (per customer). Whether an account counts in
    AUM or LOAN on day d follows the `product` of the observation that gives its closing balance
    on day d (its latest observation with business day ≤ d). A transaction's `balance_after`
    without `product` is a `deposit` observation, as SPEC §2 says, even for a card account.
 8. "Days before the customer was first seen count as 0" applies to avg_aum/avg_loan only, and
    "first seen" is the business day of the customer's first *applied* event in file order (so
    a later-applied late event dated earlier still counts as 0 before that day). The balance_drop
    peak uses plain AUM(d) (which is 0 before any observation anyway).
 9. `external_outflow_<N>d` sums every debit (any channel, `system` included) whose
    `counterparty_bank` is present and differs from `home_bank`; if `home_bank` is absent, every
    present counterparty_bank counts. `debit`/`credit`/`txn_count` count customer-initiated
    (channel ≠ system) transactions only; `spend` is debits with channel `pos`.
10. `inactive_days` = D − max business day (≤ D) of customer-initiated transactions, or
    D − first-seen day if there is none. A dormant "spell" is identified by that last-activity
    day: `dormant` is emitted at most once per last-activity day, so a late transaction dated
    before the last one does not re-arm it, and one dated after it does.
11. Profile attributes: the value of the latest (ts, event_id) profile event carrying it.
    Attribute numbers are compared exactly (decimal); in outputs they appear "as they are":
    an int if their JSON text had no fraction/exponent, else a float (what json.loads gives).
12. Conditions: `<metric> <op> <literal>`, whitespace around the op optional. Literals: a
    number `-?[0-9]+(\\.[0-9]+)?`, `true`/`false`, or a string in double or single quotes (no
    escapes). Money metrics compare in fen (literal × 100) and a money literal must be a whole
    number of fen (else the rules are refused); count metrics compare with the literal as a
    number. A kind mismatch (e.g. money metric vs string literal, attribute bool vs number)
    never holds. Booleans only support `==`/`!=` (ordering ops never hold); strings compare
    by code point. Windows N are written without leading zeros, 1–366.
13. Rules: `version` is stringified. Missing sections default to SPEC §5's example values
    (grace_days 30; ratio 0.6; opportunity cooldown 30; dormant 90, drop_ratio 0.5,
    outflow_ratio 0.3, min_amount 50000, churn cooldown 30); no `high_value_from` means no
    warning is ever `high`. `min_amount` is in yuan (50000 = 50,000.00). The base tier must
    have no conditions and every other tier at least one. `high_value_from` must name a tier.
14. Upgrade opportunity: the first condition of the next tier whose metric is avg_aum_<N>d is
    used whatever its operator; threshold = its literal (fen); emitted when
    ratio × threshold ≤ value < threshold and the (customer, target tier) cooldown allows.
15. Severity: `low` for `dormant` at the base tier (checked first), `high` at or above
    `high_value_from`, else `medium`.
16. Duplicates: an `event_id` already *applied* for the same customer (dead-lettered or
    duplicate records do not count as seen). All applied ids are remembered; a redelivery
    older than the lateness horizon is `too_late` before the duplicate check anyway.
    `future_timestamp` is checked right after `too_late` (a record cannot be both).
17. The clock only moves on applied events (and finally to `until`). Before the first applied
    event nothing is too late. Boundaries are evaluated for every customer in first-seen order.
    A customer's metrics at an instant use its applied events with business day ≤ D.
18. Metrics in outputs: `aum`, then the metrics named by conditions in order of first
    appearance (tiers in order, conditions in order), without repeats; churn warnings then
    add `inactive_days` and `external_outflow_7d` unless already present.
19. Day boundary of day d = 00:00 local (zoneinfo, fold=0) of d in the rules timezone.
20. Sweep order: when the clock moves to a later day, customers catch up one at a time in
    first-seen order, each evaluating *all* its pending boundaries (oldest first) before the next
    customer starts ("customer-major"). SPEC fixes the order only per customer, so an engine that
    interleaves day-major emits the same records per customer in a different global order:
    compare per customer if so.
21. The opportunity and the churn warnings of an instant see the tier *after* that instant's tier
    step (upgrade or downgrade). Outputs of one instant are in the order tier change,
    opportunity, dormant, balance_drop, external_outflow.
22. A duplicate JSON key in a payload: the last one wins (as in json.loads), also in the
    re-serialised DLQ payload. DLQ `detail` is free text.
23. `until` earlier than (or equal to) the clock does nothing; with no applied event it does
    nothing either (no customer exists).
24. Segments (§10). `lifecycle` is `churn_risk` when a balance_drop or external_outflow warning
    was emitted while the last-activity day (READING 10) was what it is now: as for the dormant
    spell, a late transaction dated on or before the last activity does not end it.
    `lifecycle: {}` (or null) means new_days 90. Band edges are read like condition literals
    (money in yuan, compared in fen). A grid dimension without `names` is named `low`, `mid`,
    `high` for two bands, else `1` ... `k+1`. Segment steps run only at day boundaries, after
    the churn warnings of that boundary, with its instant.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import yaml

INPUT_TOPICS = ("bank.balances", "bank.transactions", "bank.profiles")
DLQ_TOPIC = "tierstream.dlq"
ASSET_PRODUCTS = ("deposit", "time_deposit", "wealth", "fund", "insurance")
LIABILITY_PRODUCTS = ("loan", "credit_card")
PRODUCTS = ASSET_PRODUCTS + LIABILITY_PRODUCTS
CHANNELS = ("branch", "atm", "mobile", "online", "pos", "transfer", "system")
DIRECTIONS = ("credit", "debit")
SCHEMA_VERSION = 1

# Error priority inside "schema and values" (READING 3): lower index wins.
VALUE_ERRORS = ("schema_violation", "naive_timestamp", "bad_amount")


# ---------------------------------------------------------------------------------------------
# JSON with exact numbers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """A JSON number, kept as its exact original text."""

    text: str


@dataclass(frozen=True)
class Const:
    """`NaN`, `Infinity` or `-Infinity`: accepted by the lenient parser, but not JSON."""

    text: str


def lenient_loads(text: str) -> Any:
    """json.loads that keeps numbers as text and marks NaN/Infinity instead of failing."""
    return json.loads(text, parse_int=Num, parse_float=Num, parse_constant=Const)


def contains_const(value: Any) -> bool:
    if isinstance(value, Const):
        return True
    if isinstance(value, dict):
        return any(contains_const(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_const(v) for v in value)
    return False


def compact_json(value: Any) -> str:
    """json.dumps(value, separators=(",", ":"), ensure_ascii=False), numbers as written."""
    if isinstance(value, (Num, Const)):
        return value.text
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(json.dumps(k, ensure_ascii=False) + ":" + compact_json(v) for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(compact_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def payload_bytes(text: str) -> tuple[bytes, str]:
    try:
        return text.encode("utf-8"), "utf-8"
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass"), "base64"


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


class BadInput(Exception):
    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail


class RulesError(ValueError):
    """The rules file is refused."""


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------

TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_timestamp(value: Any) -> dt.datetime:
    """RFC 3339 with offset -> aware datetime (UTC). Raises BadInput."""
    if not isinstance(value, str):
        raise BadInput("schema_violation", f"timestamp must be a string, got {type(value).__name__}")
    m = TS_RE.fullmatch(value)
    if m is None:
        raise BadInput("schema_violation", f"timestamp {value!r} is not YYYY-MM-DDTHH:MM:SS[.f](Z|±HH:MM)")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    micro = int((frac or "").ljust(6, "0")[:6])
    try:
        naive = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
    except ValueError as exc:
        raise BadInput("schema_violation", f"timestamp {value!r}: {exc}") from None
    if offset is None:
        raise BadInput("naive_timestamp", f"timestamp {value!r} has no offset")
    if offset == "Z":
        delta = dt.timedelta(0)
    else:
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise BadInput("schema_violation", f"timestamp {value!r}: bad offset")
        delta = dt.timedelta(hours=oh, minutes=om) * (-1 if offset[0] == "-" else 1)
    return naive.replace(tzinfo=dt.timezone(delta)).astimezone(dt.UTC)


def business_day(instant: dt.datetime, tz: ZoneInfo) -> dt.date:
    return instant.astimezone(tz).date()


def day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """00:00 local of `day` as an aware instant."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.UTC)


def iso_local(instant: dt.datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).isoformat()


def days_between(later: dt.date, earlier: dt.date) -> int:
    return (later - earlier).days


# ---------------------------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------------------------

MONEY_STRING_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def wire_money_to_minor(value: Any, what: str) -> int:
    """A wire amount (decimal string or JSON number) -> integer minor units. Raises BadInput."""
    if isinstance(value, Num):
        text = value.text
    elif isinstance(value, str):
        if MONEY_STRING_RE.fullmatch(value) is None:
            raise BadInput("bad_amount", f"{what} {value!r} is not a decimal amount")
        text = value
    else:
        raise BadInput("schema_violation", f"{what} must be a decimal string or a number")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise BadInput("bad_amount", f"{what} {text!r} is not a number") from None
    if amount.is_zero():
        return 0
    if amount.adjusted() >= 100:
        raise BadInput("bad_amount", f"{what} {text!r} is absurdly large")
    if amount.adjusted() < -2:
        raise BadInput("bad_amount", f"{what} {text!r} is not a whole number of fen")
    minor = Fraction(amount) * 100
    if minor.denominator != 1:
        raise BadInput("bad_amount", f"{what} {text!r} is not a whole number of fen")
    return int(minor)


def money_str(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def exact(value: Any, what: str) -> Fraction:
    """A number from the rules file (YAML int/float/str), read exactly from its decimal text."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RulesError(f"{what}: expected a number, got {value!r}")
    try:
        return Fraction(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise RulesError(f"{what}: {value!r} is not a number") from None


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------

WINDOW_KINDS = ("avg_aum", "avg_loan", "txn_count", "debit", "credit", "spend", "external_outflow")
MONEY_WINDOW_KINDS = ("avg_aum", "avg_loan", "debit", "credit", "spend", "external_outflow")
WINDOW_METRIC_RE = re.compile(r"(avg_aum|avg_loan|txn_count|debit|credit|spend|external_outflow)_([0-9]+)d")
CONDITION_RE = re.compile(r"\s*([^\s<>=!]+)\s*(>=|<=|==|!=|>|<)\s*(.*?)\s*")
NUMBER_LITERAL_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "money", "count" or "attr"
    base: str  # "aum", "inactive_days", "attr" or a WINDOW_KINDS entry
    window: int = 0  # N for windowed metrics
    attr: str = ""  # the attribute name for attr.<name>


def parse_metric(name: str) -> Metric:
    if name == "aum":
        return Metric(name, "money", "aum")
    if name == "inactive_days":
        return Metric(name, "count", "inactive_days")
    if name.startswith("attr."):
        attr = name[len("attr.") :]
        if not attr:
            raise RulesError(f"metric {name!r}: empty attribute name")
        return Metric(name, "attr", "attr", attr=attr)
    m = WINDOW_METRIC_RE.fullmatch(name)
    if m is None:
        raise RulesError(f"unknown metric {name!r}")
    base, n_text = m.groups()
    if n_text.startswith("0") or not 1 <= int(n_text) <= 366:
        raise RulesError(f"metric {name!r}: bad window (N must be 1-366)")
    kind = "money" if base in MONEY_WINDOW_KINDS else "count"
    return Metric(name, kind, base, window=int(n_text))


@dataclass(frozen=True)
class Condition:
    text: str  # as written in the rules file
    metric: Metric
    op: str
    literal_kind: str  # "number", "bool" or "string"
    literal: Any  # Fraction (money: in fen), bool or str


def parse_condition(text: Any) -> Condition:
    if not isinstance(text, str):
        raise RulesError(f"condition {text!r} is not a string")
    m = CONDITION_RE.fullmatch(text)
    if m is None or not m.group(3):
        raise RulesError(f"malformed condition {text!r} (expected '<metric> <op> <literal>')")
    metric = parse_metric(m.group(1))
    op, lit = m.group(2), m.group(3)
    kind: str
    value: Any
    if NUMBER_LITERAL_RE.fullmatch(lit):
        kind, value = "number", Fraction(Decimal(lit))
        if metric.kind == "money":
            value = value * 100
            if value.denominator != 1:
                raise RulesError(f"condition {text!r}: money literal is not a whole number of fen")
    elif lit in ("true", "false"):
        kind, value = "bool", lit == "true"
    elif len(lit) >= 2 and lit[0] == lit[-1] and lit[0] in "\"'" and lit[0] not in lit[1:-1]:
        kind, value = "string", lit[1:-1]
    else:
        raise RulesError(f"malformed condition {text!r}: bad literal {lit!r}")
    return Condition(text, metric, op, kind, value)


@dataclass(frozen=True)
class Band:
    """A segment dimension of §10: a metric, its band edges (Fractions, fen for money), names."""

    metric: Metric
    edges: list[Fraction]
    names: list[str]

    def score(self, value: int) -> int:
        if self.metric.base == "inactive_days":  # less is better
            return 1 + sum(1 for b in self.edges if value < b)
        return 1 + sum(1 for b in self.edges if value >= b)


def parse_band(raw: Any, what: str, with_names: bool) -> Band:
    if not isinstance(raw, dict) or "metric" not in raw or "bands" not in raw:
        raise RulesError(f"{what}: expected {{metric, bands}}")
    metric = parse_metric(str(raw["metric"]))
    if metric.kind == "attr":
        raise RulesError(f"{what}: metric {metric.name} is not numeric")
    edges_raw = raw["bands"]
    if not isinstance(edges_raw, list) or not edges_raw:
        raise RulesError(f"{what}.bands: expected a non-empty list")
    edges = []
    for e in edges_raw:
        if isinstance(e, bool) or not NUMBER_LITERAL_RE.fullmatch(str(e)):
            raise RulesError(f"{what}.bands: {e!r} is not a number")
        value = Fraction(Decimal(str(e))) * (100 if metric.kind == "money" else 1)
        if metric.kind == "money" and value.denominator != 1:
            raise RulesError(f"{what}.bands: {e!r} is not whole fen")
        edges.append(value)
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise RulesError(f"{what}.bands: not strictly ascending")
    k = len(edges)
    names = ["low", "mid", "high"] if k == 2 else [str(i) for i in range(1, k + 2)]
    if with_names and raw.get("names") is not None:
        names = [str(n) for n in raw["names"]]
        if len(names) != k + 1:
            raise RulesError(f"{what}.names: expected {k + 1} names")
    return Band(metric, edges, names)


@dataclass
class Tier:
    id: str
    conditions: list[Condition]


@dataclass
class Rules:
    version: str
    tz: ZoneInfo
    home_bank: str | None
    tiers: list[Tier]
    grace_days: int
    opp_ratio: Fraction
    opp_cooldown: int
    dormant_after: int
    drop_ratio: Fraction
    outflow_ratio: Fraction
    churn_min_fen: Fraction
    churn_cooldown: int
    high_value_from: int | None  # tier index
    max_lateness_days: int
    currencies: dict[str, Fraction]
    max_record_bytes: int
    output_metrics: list[Metric]  # aum + every condition metric, first appearance order
    # §10: lifecycle new_days (None: not configured), rfm and grid dimensions (None: not configured)
    new_days: int | None = None
    rfm: list[Band] | None = None
    grid: list[Band] | None = None

    def tier_index(self, tier_id: str) -> int:
        return [t.id for t in self.tiers].index(tier_id)


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    sec = doc.get(key) or {}
    if not isinstance(sec, dict):
        raise RulesError(f"{key}: expected a mapping")
    return sec


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RulesError(f"{what}: expected an integer >= {minimum}, got {value!r}")
    return value


def parse_rules(text: str) -> Rules:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise RulesError("rules file is not a mapping")
    if "version" not in doc:
        raise RulesError("version: missing")
    try:
        tz = ZoneInfo(str(doc.get("timezone", "Asia/Shanghai")))
    except Exception as exc:
        raise RulesError(f"timezone: {exc}") from None
    home_bank = doc.get("home_bank")
    if home_bank is not None and not isinstance(home_bank, str):
        raise RulesError("home_bank: expected a string")

    raw_tiers = doc.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise RulesError("tiers: expected a non-empty list")
    tiers: list[Tier] = []
    for i, raw in enumerate(raw_tiers):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise RulesError(f"tiers[{i}]: expected a mapping with an id")
        if raw["id"] in [t.id for t in tiers]:
            raise RulesError(f"tiers[{i}]: duplicate tier {raw['id']!r}")
        any_of = raw.get("any_of") or []
        if not isinstance(any_of, list):
            raise RulesError(f"tiers[{i}].any_of: expected a list")
        if i == 0 and any_of:
            raise RulesError("the base tier (first) must have no conditions")
        if i > 0 and not any_of:
            raise RulesError(f"tier {raw['id']!r} has no conditions")
        tiers.append(Tier(raw["id"], [parse_condition(c) for c in any_of]))

    output_metrics: list[Metric] = [parse_metric("aum")]
    for tier in tiers:
        for cond in tier.conditions:
            if cond.metric.name not in [m.name for m in output_metrics]:
                output_metrics.append(cond.metric)

    down = _section(doc, "downgrade")
    opp = _section(doc, "opportunity")
    churn = _section(doc, "churn")
    hvf = churn.get("high_value_from")
    if hvf is not None and hvf not in [t.id for t in tiers]:
        raise RulesError(f"churn.high_value_from: unknown tier {hvf!r}")
    raw_currencies = doc.get("currencies") or {}
    if not isinstance(raw_currencies, dict):
        raise RulesError("currencies: expected a mapping")
    currencies = {"CNY": Fraction(1)}
    for code, rate in raw_currencies.items():
        currencies[str(code)] = exact(rate, f"currencies.{code}")
        if currencies[str(code)] <= 0:
            raise RulesError(f"currencies.{code}: rate must be positive")

    seg = _section(doc, "segments")
    new_days: int | None = None
    if "lifecycle" in seg:
        life = seg["lifecycle"] or {}
        new_days = _int(life.get("new_days", 90), "segments.lifecycle.new_days", 1)
    rfm = grid = None
    if "rfm" in seg:
        raw = seg["rfm"] or {}
        rfm = [
            parse_band(raw.get(k), f"segments.rfm.{k}", False) for k in ("recency", "frequency", "monetary")
        ]
    if "grid" in seg:
        raw = seg["grid"] or {}
        grid = [parse_band(raw.get(k), f"segments.grid.{k}", True) for k in ("value", "activity")]

    return Rules(
        new_days=new_days,
        rfm=rfm,
        grid=grid,
        version=str(doc["version"]),
        tz=tz,
        home_bank=home_bank,
        tiers=tiers,
        grace_days=_int(down.get("grace_days", 30), "downgrade.grace_days"),
        opp_ratio=exact(opp.get("ratio", "0.6"), "opportunity.ratio"),
        opp_cooldown=_int(opp.get("cooldown_days", 30), "opportunity.cooldown_days"),
        dormant_after=_int(churn.get("dormant_after_days", 90), "churn.dormant_after_days"),
        drop_ratio=exact(churn.get("drop_ratio", "0.5"), "churn.drop_ratio"),
        outflow_ratio=exact(churn.get("outflow_ratio", "0.3"), "churn.outflow_ratio"),
        churn_min_fen=exact(churn.get("min_amount", 50000), "churn.min_amount") * 100,
        churn_cooldown=_int(churn.get("cooldown_days", 30), "churn.cooldown_days"),
        high_value_from=None if hvf is None else [t.id for t in tiers].index(hvf),
        max_lateness_days=_int(doc.get("max_lateness_days", 7), "max_lateness_days"),
        currencies=currencies,
        max_record_bytes=_int(doc.get("max_record_bytes", 65536), "max_record_bytes", 1),
        output_metrics=output_metrics,
    )


# ---------------------------------------------------------------------------------------------
# Input events: validation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """A balance observation of one account (from bank.balances or a balance_after)."""

    ts: dt.datetime
    event_id: str
    day: dt.date
    account_id: str
    product: str
    fen: int


@dataclass(frozen=True)
class Transaction:
    ts: dt.datetime
    event_id: str
    day: dt.date
    direction: str
    channel: str
    fen: int
    counterparty_bank: str | None

    @property
    def customer_initiated(self) -> bool:
        return self.channel != "system"


@dataclass(frozen=True)
class AttrValue:
    kind: str  # "number", "bool" or "string"
    value: Any  # Decimal, bool or str
    output: Any  # as it appears in outputs


@dataclass(frozen=True)
class ProfileUpdate:
    ts: dt.datetime
    event_id: str
    day: dt.date
    attributes: dict[str, AttrValue]


@dataclass(frozen=True)
class Event:
    topic: str
    event_id: str
    customer_id: str
    ts: dt.datetime
    day: dt.date
    observation: Observation | None = None
    transaction: Transaction | None = None
    profile: ProfileUpdate | None = None


class Checker:
    """Collects every problem of one payload; the worst one (READING 3) is raised at the end."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.problems: list[BadInput] = []

    def fail(self, error: str, detail: str) -> None:
        self.problems.append(BadInput(error, detail))

    def present(self, key: str, required: bool = True) -> bool:
        if key not in self.payload:
            if required:
                self.fail("schema_violation", f"missing field {key!r}")
            return False
        return True

    def string(self, key: str, required: bool = True, nonempty: bool = True) -> str | None:
        if not self.present(key, required):
            return None
        value = self.payload[key]
        if not isinstance(value, str) or (nonempty and not value):
            self.fail("schema_violation", f"{key} must be a{' non-empty' if nonempty else ''} string")
            return None
        return value

    def choice(self, key: str, options: Iterable[str], required: bool = True) -> str | None:
        value = self.string(key, required)
        if value is not None and value not in options:
            self.fail("schema_violation", f"{key} {value!r} is not one of {sorted(options)}")
            return None
        return value

    def event_id(self) -> str | None:
        value = self.string("event_id")
        if value is not None and not (len(value) <= 128 and value.isprintable()):
            self.fail("schema_violation", "event_id must be 1-128 printable characters")
            return None
        return value

    def timestamp(self, key: str) -> dt.datetime | None:
        if not self.present(key):
            return None
        try:
            return parse_timestamp(self.payload[key])
        except BadInput as exc:
            self.problems.append(exc)
            return None

    def money(self, key: str, required: bool = True) -> int | None:
        if not self.present(key, required):
            return None
        try:
            return wire_money_to_minor(self.payload[key], key)
        except BadInput as exc:
            self.problems.append(exc)
            return None

    def raise_worst(self) -> None:
        if self.problems:
            worst = min(self.problems, key=lambda p: VALUE_ERRORS.index(p.error))
            raise worst


def to_fen(minor: int, rate: Fraction) -> int:
    """Wire minor units in the event's currency -> fen, rounded toward negative infinity."""
    return (Fraction(minor) * rate).__floor__()


def attr_value(name: str, value: Any) -> AttrValue:
    if isinstance(value, bool):
        return AttrValue("bool", value, value)
    if isinstance(value, str):
        return AttrValue("string", value, value)
    if isinstance(value, Num):
        text = value.text
        as_json = int(text) if not any(c in text for c in ".eE") else float(text)
        return AttrValue("number", Decimal(text), as_json)
    raise BadInput("schema_violation", f"attribute {name!r} must be a number, bool or string")


def validate(topic: str, payload: dict[str, Any], rules: Rules) -> Event:
    """SPEC §1–§2: a payload object -> a typed Event. Raises BadInput."""
    c = Checker(payload)
    event_id = c.event_id()
    customer_id = c.string("customer_id")
    ts = c.timestamp("ts")
    currency = c.string("currency", required=False, nonempty=False) if topic != "bank.profiles" else None
    if currency is not None and currency not in rules.currencies:
        c.fail("schema_violation", f"currency {currency!r} is not configured")
        currency = None

    observation = transaction = profile = None
    if topic == "bank.balances":
        account_id = c.string("account_id")
        product = c.choice("product", PRODUCTS)
        balance = c.money("balance")
        if balance is not None and product in LIABILITY_PRODUCTS and balance < 0:
            c.fail("bad_amount", f"{product} balance must be >= 0")
    elif topic == "bank.transactions":
        account_id = c.string("account_id")
        amount = c.money("amount")
        if amount is not None and amount <= 0:
            c.fail("bad_amount", "amount must be > 0")
        direction = c.choice("direction", DIRECTIONS)
        channel = c.choice("channel", CHANNELS)
        counterparty = c.string("counterparty_bank", required=False, nonempty=False)
        balance_after = c.money("balance_after", required=False)
        product = c.choice("product", PRODUCTS, required=False) or "deposit"
        if balance_after is not None and product in LIABILITY_PRODUCTS and balance_after < 0:
            c.fail("bad_amount", f"{product} balance_after must be >= 0")
    else:
        attributes: dict[str, AttrValue] = {}
        if c.present("attributes"):
            raw = payload["attributes"]
            if not isinstance(raw, dict):
                c.fail("schema_violation", "attributes must be an object")
            else:
                for name, value in raw.items():
                    try:
                        attributes[name] = attr_value(name, value)
                    except BadInput as exc:
                        c.problems.append(exc)

    c.raise_worst()
    assert event_id is not None and customer_id is not None and ts is not None
    day = business_day(ts, rules.tz)
    rate = rules.currencies[currency or "CNY"]
    if topic == "bank.balances":
        assert balance is not None and product is not None and account_id is not None
        observation = Observation(ts, event_id, day, account_id, product, to_fen(balance, rate))
    elif topic == "bank.transactions":
        assert amount is not None and direction is not None and channel is not None and account_id is not None
        assert product is not None
        transaction = Transaction(ts, event_id, day, direction, channel, to_fen(amount, rate), counterparty)
        if balance_after is not None:
            observation = Observation(ts, event_id, day, account_id, product, to_fen(balance_after, rate))
    else:
        profile = ProfileUpdate(ts, event_id, day, attributes)
    return Event(topic, event_id, customer_id, ts, day, observation, transaction, profile)


# ---------------------------------------------------------------------------------------------
# Customer: full history + evaluation state
# ---------------------------------------------------------------------------------------------


@dataclass
class Customer:
    customer_id: str
    first_day: dt.date
    # Full history of applied events (never bounded).
    observations: list[Observation] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    profiles: list[ProfileUpdate] = field(default_factory=list)
    applied_ids: set[str] = field(default_factory=set)
    # Evaluation state.
    tier: int = 0
    below_since: dt.date | None = None
    last_instant: dt.datetime | None = None
    boundaries_through: dt.date | None = None  # last day whose boundary was evaluated
    opportunity_last: dict[str, dt.date] = field(default_factory=dict)  # target tier -> day
    churn_last: dict[str, dt.date] = field(default_factory=dict)  # reason -> day
    dormant_warned_for: dt.date | None = None  # last-activity day of the warned spell
    risk_warned_for: dt.date | None = None  # last-activity day at the last drop/outflow warning
    segments: dict[str, str] = field(default_factory=dict)  # §10: value as last published

    def __post_init__(self) -> None:
        if self.boundaries_through is None:
            self.boundaries_through = self.first_day


class MetricsAt:
    """Every SPEC §3 metric of one customer as of business day D, from the full history."""

    def __init__(self, customer: Customer, day: dt.date, rules: Rules) -> None:
        self.c = customer
        self.D = day
        self.rules = rules
        # Observations of business day <= D, per account, sorted by (ts, event_id).
        by_account: dict[str, list[Observation]] = {}
        for obs in customer.observations:
            if obs.day <= day:
                by_account.setdefault(obs.account_id, []).append(obs)
        self.accounts = {a: sorted(lst, key=lambda o: (o.ts, o.event_id)) for a, lst in by_account.items()}
        self.account_days = {a: [o.day for o in lst] for a, lst in self.accounts.items()}
        self.txns = [t for t in customer.transactions if t.day <= day]
        self._sides: dict[dt.date, tuple[int, int]] = {}

    # --- balances ---------------------------------------------------------------------------
    def closing(self, account: str, d: dt.date) -> Observation | None:
        """The account's latest observation (greatest (ts, event_id)) with business day <= d."""
        # Sorted by (ts, event_id), so business days are non-decreasing along the list and the
        # greatest observation with day <= d is the one just before the first with day > d.
        position = bisect.bisect_right(self.account_days[account], d)
        return self.accounts[account][position - 1] if position else None

    def sides(self, d: dt.date) -> tuple[int, int]:
        """(AUM(d), LOAN(d))."""
        if d not in self._sides:
            aum = loan = 0
            for account in self.accounts:
                obs = self.closing(account, d)
                if obs is None:
                    continue
                if obs.product in ASSET_PRODUCTS:
                    aum += obs.fen
                else:
                    loan += obs.fen
            self._sides[d] = (aum, loan)
        return self._sides[d]

    def window(self, n: int) -> list[dt.date]:
        return [self.D - dt.timedelta(days=k) for k in range(n - 1, -1, -1)]

    def average(self, n: int, side: int) -> int:
        total = 0
        for d in self.window(n):
            if d >= self.c.first_day:  # days before first seen count as 0
                total += self.sides(d)[side]
        return total // n  # floor to the fen

    def peak_previous_30(self) -> int:
        return max(self.sides(self.D - dt.timedelta(days=k))[0] for k in range(1, 31))

    # --- transactions -----------------------------------------------------------------------
    def in_window(self, n: int) -> list[Transaction]:
        start = self.D - dt.timedelta(days=n - 1)
        return [t for t in self.txns if start <= t.day <= self.D]

    def last_activity_day(self) -> dt.date:
        days = [t.day for t in self.txns if t.customer_initiated]
        return max(days) if days else self.c.first_day

    def windowed(self, base: str, n: int) -> int:
        txns = self.in_window(n)
        if base == "avg_aum":
            return self.average(n, 0)
        if base == "avg_loan":
            return self.average(n, 1)
        if base == "txn_count":
            return sum(1 for t in txns if t.customer_initiated)
        if base == "debit":
            return sum(t.fen for t in txns if t.customer_initiated and t.direction == "debit")
        if base == "credit":
            return sum(t.fen for t in txns if t.customer_initiated and t.direction == "credit")
        if base == "spend":
            return sum(t.fen for t in txns if t.direction == "debit" and t.channel == "pos")
        if base == "external_outflow":
            return sum(
                t.fen
                for t in txns
                if t.direction == "debit"
                and t.counterparty_bank is not None
                and t.counterparty_bank != self.rules.home_bank
            )
        raise AssertionError(base)

    # --- profile ----------------------------------------------------------------------------
    def attribute(self, name: str) -> AttrValue | None:
        carrying = [p for p in self.c.profiles if p.day <= self.D and name in p.attributes]
        if not carrying:
            return None
        latest = max(carrying, key=lambda p: (p.ts, p.event_id))
        return latest.attributes[name]

    # --- by metric --------------------------------------------------------------------------
    def value(self, metric: Metric) -> Any:
        """int fen (money), int (count), AttrValue or None (attr)."""
        if metric.base == "aum":
            return self.sides(self.D)[0]
        if metric.base == "inactive_days":
            return days_between(self.D, self.last_activity_day())
        if metric.base == "attr":
            return self.attribute(metric.attr)
        return self.windowed(metric.base, metric.window)

    def output(self, metric: Metric) -> Any:
        value = self.value(metric)
        if metric.kind == "money":
            return money_str(value)
        if metric.kind == "count":
            return value
        return None if value is None else value.output


OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def holds(cond: Condition, m: MetricsAt) -> bool:
    value = m.value(cond.metric)
    if cond.metric.kind in ("money", "count"):
        if cond.literal_kind != "number":
            return False
        return OPS[cond.op](Fraction(value), cond.literal)
    if value is None or value.kind != cond.literal_kind:  # missing attribute: never holds
        return False
    if value.kind == "bool" and cond.op not in ("==", "!="):
        return False
    if value.kind == "number":
        return OPS[cond.op](Fraction(value.value), cond.literal)
    return OPS[cond.op](value.value, cond.literal)


def output_event_id(
    kind: str, customer_id: str, id_fields: list[str], effective_at: str, version: str
) -> str:
    text = "|".join([kind, customer_id, *id_fields, effective_at, version])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# The simulation (one partition, eager evaluation)
# ---------------------------------------------------------------------------------------------


class Simulation:
    def __init__(self, rules: Rules, now: dt.datetime | None) -> None:
        self.rules = rules
        self.now = now
        self.clock: dt.datetime | None = None
        self.customers: dict[str, Customer] = {}  # insertion order = first-seen order
        self.outputs: list[dict[str, Any]] = []
        self.outcomes = {"applied": 0, "duplicate": 0, "dead_letter": 0}
        self.dead_letters: dict[str, int] = {}

    # --- outputs ----------------------------------------------------------------------------
    def emit(self, topic: str, value: dict[str, Any]) -> None:
        self.outputs.append({"topic": topic, "value": value})

    def header(self, kind: str, c: Customer, id_fields: list[str], instant: dt.datetime) -> dict[str, Any]:
        effective_at = iso_local(instant, self.rules.tz)
        return {
            "type": kind,
            "schema_version": SCHEMA_VERSION,
            "event_id": output_event_id(kind, c.customer_id, id_fields, effective_at, self.rules.version),
            "customer_id": c.customer_id,
            "effective_at": effective_at,
            "rules_version": self.rules.version,
        }

    def dead_letter(self, lineno: int, topic: Any, key: Any, payload: str, error: str, detail: str) -> None:
        raw, encoding = payload_bytes(payload)
        if error == "oversize" and len(raw) > 4096:
            # docs/decisions.md: an oversize record's dead letter keeps its first 4,096 bytes,
            # fewer when that would cut a UTF-8 character in two.
            cut = raw[:4096]
            for size in (4096, 4095, 4094, 4093):
                try:
                    payload, encoding, raw = cut[:size].decode("utf-8"), "utf-8", cut[:size]
                    break
                except UnicodeDecodeError:
                    continue
            else:
                payload, encoding, raw = "", "base64", cut
            detail = f"{detail} (payload: its first {len(raw):,} bytes)"
        self.emit(
            DLQ_TOPIC,
            {
                "source_topic": topic if isinstance(topic, str) else None,
                "partition": 0,
                "offset": lineno,
                "key": key if isinstance(key, str) else None,
                "payload": payload if encoding == "utf-8" else base64.b64encode(raw).decode("ascii"),
                "payload_encoding": encoding,
                "error": error,
                "detail": detail,
            },
        )
        self.outcomes["dead_letter"] += 1
        self.dead_letters[error] = self.dead_letters.get(error, 0) + 1

    # --- evaluation at one instant (SPEC §4) --------------------------------------------------
    def evaluate(self, c: Customer, instant: dt.datetime) -> None:
        rules = self.rules
        D = business_day(instant, rules.tz)
        if c.last_instant is None or instant > c.last_instant:
            c.last_instant = instant
        m = MetricsAt(c, D, rules)

        # Tier.
        qualified, matched = 0, None
        for index in range(len(rules.tiers) - 1, 0, -1):
            held = [cond for cond in rules.tiers[index].conditions if holds(cond, m)]
            if held:
                qualified, matched = index, held[0].text
                break
        current = c.tier
        if qualified > current:
            self.tier_change(c, instant, m, current, qualified, matched, "upgrade")
        elif qualified < current:
            if c.below_since is None:
                c.below_since = D
            if days_between(D, c.below_since) >= rules.grace_days:
                self.tier_change(c, instant, m, current, qualified, matched, "downgrade")
        if qualified >= c.tier:
            c.below_since = None

        # Upgrade opportunity.
        if c.tier + 1 < len(rules.tiers):
            target = rules.tiers[c.tier + 1]
            cond = next((k for k in target.conditions if k.metric.base == "avg_aum"), None)
            if cond is not None:
                value = m.value(cond.metric)
                threshold = int(cond.literal)
                last = c.opportunity_last.get(target.id)
                cooled = last is None or last + dt.timedelta(days=rules.opp_cooldown) <= D
                if rules.opp_ratio * threshold <= value < threshold and cooled:
                    c.opportunity_last[target.id] = D
                    tier_id = rules.tiers[c.tier].id
                    self.emit(
                        "tier.opportunities",
                        {
                            **self.header("upgrade_opportunity", c, [tier_id, target.id], instant),
                            "current_tier": tier_id,
                            "target_tier": target.id,
                            "metric": cond.metric.name,
                            "value": money_str(value),
                            "threshold": money_str(threshold),
                            "gap": money_str(threshold - value),
                        },
                    )

        # Churn warnings: dormant, balance_drop, external_outflow.
        inactive = m.value(parse_metric("inactive_days"))
        last_activity = m.last_activity_day()
        if inactive >= rules.dormant_after and c.dormant_warned_for != last_activity:
            c.dormant_warned_for = last_activity
            self.churn(c, instant, m, "dormant")
        aum = m.value(parse_metric("aum"))
        peak = m.peak_previous_30()
        if (
            peak >= rules.churn_min_fen
            and aum <= peak * (1 - rules.drop_ratio)
            and self.cooled(c, "balance_drop", D)
        ):
            self.churn(c, instant, m, "balance_drop")
        outflow = m.value(parse_metric("external_outflow_7d"))
        if (
            outflow >= rules.churn_min_fen
            and outflow >= rules.outflow_ratio * (aum + outflow)
            and self.cooled(c, "external_outflow", D)
        ):
            self.churn(c, instant, m, "external_outflow")

    def cooled(self, c: Customer, reason: str, D: dt.date) -> bool:
        last = c.churn_last.get(reason)
        return last is None or last + dt.timedelta(days=self.rules.churn_cooldown) <= D

    def metrics_block(self, m: MetricsAt, extra: list[str]) -> dict[str, Any]:
        metrics = list(self.rules.output_metrics)
        for name in extra:
            if name not in [x.name for x in metrics]:
                metrics.append(parse_metric(name))
        return {metric.name: m.output(metric) for metric in metrics}

    def tier_change(
        self,
        c: Customer,
        instant: dt.datetime,
        m: MetricsAt,
        old: int,
        new: int,
        matched: str | None,
        direction: str,
    ) -> None:
        from_id, to_id = self.rules.tiers[old].id, self.rules.tiers[new].id
        c.tier = new
        c.below_since = None
        self.emit(
            "tier.changes",
            {
                **self.header("tier_changed", c, [from_id, to_id], instant),
                "from_tier": from_id,
                "to_tier": to_id,
                "direction": direction,
                "matched": matched,
                "metrics": self.metrics_block(m, []),
            },
        )

    def churn(self, c: Customer, instant: dt.datetime, m: MetricsAt, reason: str) -> None:
        D = m.D
        if reason != "dormant":
            c.churn_last[reason] = D
            c.risk_warned_for = m.last_activity_day()
        hvf = self.rules.high_value_from
        if reason == "dormant" and c.tier == 0:
            severity = "low"
        elif hvf is not None and c.tier >= hvf:
            severity = "high"
        else:
            severity = "medium"
        self.emit(
            "customer.churn-warnings",
            {
                **self.header("churn_warning", c, [reason], instant),
                "tier": self.rules.tiers[c.tier].id,
                "reason": reason,
                "severity": severity,
                "metrics": self.metrics_block(m, ["inactive_days", "external_outflow_7d"]),
            },
        )

    def boundaries(self, c: Customer, up_to: dt.date) -> None:
        """Evaluate c at 00:00 of every day after its last evaluated boundary, up to `up_to`."""
        assert c.boundaries_through is not None
        d = c.boundaries_through + dt.timedelta(days=1)
        while d <= up_to:
            self.evaluate(c, day_start(d, self.rules.tz))
            self.segments(c, day_start(d, self.rules.tz))
            c.boundaries_through = d
            d += dt.timedelta(days=1)

    def segments(self, c: Customer, instant: dt.datetime) -> None:
        """§10 at a day boundary: lifecycle, rfm, grid; an output for each that changed."""
        rules = self.rules
        m = MetricsAt(c, business_day(instant, rules.tz), rules)
        values: list[tuple[str, str, list[Metric]]] = []
        if rules.new_days is not None:
            last_activity = m.last_activity_day()
            if c.dormant_warned_for == last_activity:
                stage = "dormant"
            elif c.risk_warned_for == last_activity:
                stage = "churn_risk"
            elif days_between(m.D, c.first_day) < rules.new_days:
                stage = "new"
            else:
                stage = "active"
            values.append(("lifecycle", stage, [parse_metric("inactive_days")]))
        if rules.rfm is not None:
            r, f, mo = (band.score(m.value(band.metric)) for band in rules.rfm)
            values.append(("rfm", f"R{r}F{f}M{mo}", [band.metric for band in rules.rfm]))
        if rules.grid is not None:
            value_band, activity_band = rules.grid
            cell = (
                value_band.names[value_band.score(m.value(value_band.metric)) - 1]
                + "/"
                + activity_band.names[activity_band.score(m.value(activity_band.metric)) - 1]
            )
            values.append(("grid", cell, [band.metric for band in rules.grid]))
        for segment, new, read in values:
            old = c.segments.get(segment)
            if new == old:
                continue
            c.segments[segment] = new
            names = ["aum"] + [x.name for x in read]
            metrics = {}
            for name in names:
                if name not in metrics:
                    metrics[name] = m.output(parse_metric(name))
            self.emit(
                "customer.segment-changes",
                {
                    **self.header("segment_changed", c, [segment, old or "", new], instant),
                    "segment": segment,
                    "from": old,
                    "to": new,
                    "metrics": metrics,
                },
            )

    def advance_clock(self, instant: dt.datetime) -> None:
        """Move the clock forward; on a new business day, every known customer catches up."""
        old_day = None if self.clock is None else business_day(self.clock, self.rules.tz)
        if self.clock is None or instant > self.clock:
            self.clock = instant
        new_day = business_day(self.clock, self.rules.tz)
        if old_day is not None and new_day > old_day:
            for c in list(self.customers.values()):
                self.boundaries(c, new_day)

    # --- one input record -------------------------------------------------------------------
    def consume(self, lineno: int, line: str) -> None:
        rules = self.rules
        line_text = line.rstrip("\r\n")
        try:
            wrapper = lenient_loads(line_text)
        except ValueError:
            return self.line_failure(lineno, None, line_text, "invalid_json", "the line is not JSON")
        topic = wrapper.get("topic") if isinstance(wrapper, dict) else None
        value = wrapper.get("value") if isinstance(wrapper, dict) else None
        if topic not in INPUT_TOPICS and value is not None:
            if contains_const(wrapper):  # NaN anywhere: the line is not JSON
                return self.line_failure(lineno, None, line_text, "invalid_json", "the line is not JSON")
            # READING 1: the value is what a producer would have sent; it is the payload
            payload = value if isinstance(value, str) else compact_json(value)
            key = value.get("customer_id") if isinstance(value, dict) else None
            raw, _ = payload_bytes(payload)
            if len(raw) > rules.max_record_bytes:
                return self.dead_letter(
                    lineno, topic, key, payload, "oversize", f"{len(raw)} bytes > {rules.max_record_bytes}"
                )
            return self.dead_letter(lineno, topic, key, payload, "schema_violation", "not an input topic")
        if topic not in INPUT_TOPICS or value is None:
            return self.line_failure(
                lineno, topic, line_text, "schema_violation", "the line names no input topic or has no value"
            )

        # Size, then JSON.
        if isinstance(value, str):
            payload = value
            try:
                parsed: Any = lenient_loads(payload)
            except ValueError:
                parsed = None
                not_json = True
            else:
                not_json = contains_const(parsed)
        else:
            parsed = value
            payload = compact_json(value)
            not_json = contains_const(value)
        key = parsed.get("customer_id") if isinstance(parsed, dict) else None
        raw, _ = payload_bytes(payload)
        if len(raw) > rules.max_record_bytes:
            return self.dead_letter(
                lineno, topic, key, payload, "oversize", f"{len(raw)} bytes > {rules.max_record_bytes}"
            )
        if not_json:
            return self.dead_letter(lineno, topic, key, payload, "invalid_json", "the payload is not JSON")
        if not isinstance(parsed, dict):
            return self.dead_letter(
                lineno, topic, key, payload, "schema_violation", "the payload is not an object"
            )

        # Schema and values.
        try:
            event = validate(topic, parsed, rules)
        except BadInput as exc:
            return self.dead_letter(lineno, topic, key, payload, exc.error, exc.detail)

        # Lateness (and future), then duplicate.
        if self.clock is not None:
            late_by = days_between(business_day(self.clock, rules.tz), event.day)
            if late_by > rules.max_lateness_days:
                return self.dead_letter(
                    lineno,
                    topic,
                    key,
                    payload,
                    "too_late",
                    f"{late_by} days late > {rules.max_lateness_days}",
                )
        if self.now is not None and event.ts > self.now + dt.timedelta(minutes=5):
            return self.dead_letter(
                lineno, topic, key, payload, "future_timestamp", "more than 5 minutes ahead of --now"
            )
        known = self.customers.get(event.customer_id)
        if known is not None and event.event_id in known.applied_ids:
            self.outcomes["duplicate"] += 1
            return None

        self.apply(event)
        return None

    def line_failure(self, lineno: int, topic: Any, line_text: str, error: str, detail: str) -> None:
        raw, _ = payload_bytes(line_text)
        if len(raw) > self.rules.max_record_bytes:
            error, detail = "oversize", f"{len(raw)} bytes > {self.rules.max_record_bytes}"
        self.dead_letter(lineno, topic, None, line_text, error, detail)

    def apply(self, event: Event) -> None:
        self.outcomes["applied"] += 1
        # 1. The clock moves; on a new day every known customer's boundaries come first.
        self.advance_clock(event.ts)
        clock_day = business_day(self.clock, self.rules.tz)  # type: ignore[arg-type]
        # 2. Apply the event to its customer's history.
        c = self.customers.get(event.customer_id)
        first_sight = c is None
        if c is None:
            c = Customer(event.customer_id, first_day=event.day)
            self.customers[event.customer_id] = c
        c.applied_ids.add(event.event_id)
        if event.observation is not None:
            c.observations.append(event.observation)
        if event.transaction is not None:
            c.transactions.append(event.transaction)
        if event.profile is not None:
            c.profiles.append(event.profile)
        # 3. Evaluate it at t = max(event ts, last instant), as of t's business day.
        t = event.ts if c.last_instant is None else max(event.ts, c.last_instant)
        self.evaluate(c, t)
        # 4. A customer first seen through a late event catches up to the clock's day.
        if first_sight and c.first_day < clock_day:
            self.boundaries(c, clock_day)

    def finish(self, until: dt.datetime | None) -> None:
        if until is not None and (self.clock is None or until > self.clock):
            if self.clock is None:
                self.clock = until
            else:
                self.advance_clock(until)


def reference_simulate(
    rules_yaml_text: str, event_lines: list[str], until: str | None = None, now: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (outputs, stats). outputs: list of {"topic": ..., "value": {...}} in emission
    order, WITHOUT emitted_at (and for tierstream.dlq records without `at`);
    stats as SPEC §8 --stats: {"outcomes": {"applied","duplicate","dead_letter"}, "dead_letters": {error: n}}."""
    rules = parse_rules(rules_yaml_text)
    sim = Simulation(rules, parse_timestamp(now) if now is not None else None)
    for lineno, line in enumerate(event_lines):
        if not line.strip():
            continue  # blank lines count as nothing
        sim.consume(lineno, line)
    sim.finish(parse_timestamp(until) if until is not None else None)
    return sim.outputs, {"outcomes": dict(sim.outcomes), "dead_letters": dict(sim.dead_letters)}
