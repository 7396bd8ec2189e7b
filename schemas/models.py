"""The wire contract of tierstream's topics as pydantic v2 models (SPEC.md §1, §2, §6).

The models document and check the shape of every value on every topic; their JSON
Schema (``python -m tierstream.schemas.export``, committed under ``schemas/json/``) is
what consumers read. Input models accept what a producer may send: unknown extra
fields are ignored, and ``null`` on an optional field counts as absent. Output models
accept exactly the keys SPEC §6 lists.

Checks that depend on the rules file (which currencies are accepted, the lateness
horizon, duplicates) are the engine's, not the schema's.

Money is exact. Pydantic's own JSON parser turns a JSON number with a fraction or an
exponent into a binary float, which is exact only up to about 15 significant digits;
to check a payload exactly, parse it with :func:`load_exact` and validate the result
with ``Model.model_validate``.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

__all__ = [
    "ALL_MODELS",
    "DEAD_LETTER_ERRORS",
    "INPUT_MODELS",
    "OUTPUT_MODELS",
    "BalanceEvent",
    "Channel",
    "ChurnWarning",
    "DeadLetter",
    "DeadLetterError",
    "Direction",
    "NotJsonError",
    "Product",
    "ProfileEvent",
    "SegmentChanged",
    "TierChanged",
    "TransactionEvent",
    "UpgradeOpportunity",
    "load_exact",
]

# --------------------------------------------------------------------------- patterns
#: SPEC §1: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)``, seconds and offset required.
TIMESTAMP_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
#: An output instant as Python's ``datetime.isoformat()`` writes it (never ``Z``).
ISOFORMAT_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?[+-][0-9]{2}:[0-9]{2}$"
)
#: Money on the input wire, as a string (a JSON number is also accepted).
WIRE_MONEY_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?$"
#: Money in output events: exactly two decimals.
MONEY_PATTERN: Final = r"^-?[0-9]+\.[0-9]{2}$"
#: Output event ids: the first 32 hex digits of a SHA-256.
OUTPUT_ID_PATTERN: Final = r"^[0-9a-f]{32}$"
#: The JSON-Schema approximation of "printable" (no C0/C1 control characters); the
#: models also apply Python's ``str.isprintable``.
PRINTABLE_PATTERN: Final = r"^[^\u0000-\u001f\u007f-\u009f]*$"

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))"
)
_WIRE_MONEY = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


# --------------------------------------------------------------------------- validators
def _check_timestamp(text: str) -> str:
    """The pattern has matched; refuse impossible dates, times and offsets."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None:  # pragma: no cover - the pattern constraint runs first
        raise ValueError("not an RFC 3339 timestamp with an offset, like 2026-03-01T09:30:00+08:00")
    year, month, day, hour, minute, second, off_h, off_m = m.groups()
    try:
        date(int(year), int(month), int(day))
    except ValueError as exc:
        raise ValueError(f"not a calendar date: {exc}") from None
    if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        raise ValueError("time of day out of range")
    if off_h is not None and (int(off_h) > 23 or int(off_m) > 59):
        raise ValueError("UTC offset out of range")
    return text


def _check_printable(text: str) -> str:
    if not text.isprintable():
        raise ValueError("must contain only printable characters")
    return text


def _is_whole_fen(amount: Decimal) -> bool:
    """Exact, without a decimal context: no non-zero digit below the second decimal."""
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite: checked by the caller
    below_fen = -exponent - 2
    if below_fen <= 0:
        return True
    return not any(digits[-below_fen:])


def _wire_money(value: Any) -> Decimal:
    """A decimal string or a JSON number, a whole number of fen, to an exact Decimal."""
    if isinstance(value, bool):
        raise ValueError("a bool is not an amount; use a decimal string like '1234.56' or a JSON number")
    if isinstance(value, str):
        if _WIRE_MONEY.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not a decimal amount like '1234.56'")
        amount = Decimal(value)
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float | Decimal):
        # A float comes from pydantic's JSON parser; its shortest repr is the JSON text
        # for every number of up to 15 significant digits.
        amount = Decimal(repr(value)) if isinstance(value, float) else value
        if not amount.is_finite():
            raise ValueError("an amount must be finite")
    else:
        raise ValueError(
            f"an amount is a decimal string like '1234.56' or a JSON number, not {type(value).__name__}"
        )
    if not _is_whole_fen(amount):
        raise ValueError(f"{value!r} is not a whole number of fen (digits below 0.01 must be zero)")
    return amount


def _attribute_value(value: Any) -> bool | int | float | Decimal | str:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        if not finite:
            raise ValueError("an attribute number must be finite")
        return value
    kind = "null" if value is None else type(value).__name__
    raise ValueError(f"an attribute is a number, a bool or a string, not {kind}")


def _attribute_json(value: bool | int | float | Decimal | str) -> bool | int | float | str:
    """An exact (Decimal) attribute number is still a JSON number when dumped."""
    if not isinstance(value, Decimal):
        return value
    if value == value.to_integral_value() and value.adjusted() < 19:
        return int(value)
    return float(value)


def _exactly_one(value: Any) -> Any:
    if type(value) is not int or value != 1:
        raise ValueError("schema_version must be the integer 1")
    return value


def _none_is_cny(value: Any) -> Any:
    return "CNY" if value is None else value


# --------------------------------------------------------------------------- field types
Timestamp = Annotated[
    str,
    StringConstraints(strict=True, pattern=TIMESTAMP_PATTERN),
    AfterValidator(_check_timestamp),
    Field(json_schema_extra={"format": "date-time"}),
]
IsoInstant = Annotated[
    str,
    StringConstraints(strict=True, pattern=ISOFORMAT_PATTERN),
    AfterValidator(_check_timestamp),
    Field(json_schema_extra={"format": "date-time"}),
]
WireMoney = Annotated[
    Decimal,
    BeforeValidator(_wire_money),
    # fixed-point text, which the wire grammar accepts ("1E+2" it would not)
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": WIRE_MONEY_PATTERN},
                {"type": "number"},
            ],
        }
    ),
]
Money = Annotated[str, StringConstraints(strict=True, pattern=MONEY_PATTERN)]
EventId = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=128, pattern=PRINTABLE_PATTERN),
    AfterValidator(_check_printable),
]
CustomerId = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, pattern=PRINTABLE_PATTERN),
    AfterValidator(_check_printable),
]
OutputId = Annotated[str, StringConstraints(strict=True, pattern=OUTPUT_ID_PATTERN)]
TierId = Annotated[str, StringConstraints(strict=True, min_length=1)]
AttributeValue = Annotated[
    bool | int | float | Decimal | str,
    PlainValidator(_attribute_value),
    PlainSerializer(_attribute_json, when_used="json"),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}]}),
]
Currency = Annotated[
    str,
    BeforeValidator(_none_is_cny),
    StringConstraints(strict=True, min_length=1),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1}, {"type": "null"}]}),
]
MetricValue = StrictStr | StrictInt | float | bool | None
SchemaVersion = Annotated[Literal[1], BeforeValidator(_exactly_one)]

_MONEY_DOC = (
    "Money: a decimal string matching -?[0-9]+(\\.[0-9]+)? or a JSON number, parsed exactly as "
    "decimal text (never through a binary float); its value must be a whole number of fen "
    "('12.300' and 1e2 are fine; '12.345', '1_000', 'abc' are bad_amount)."
)
_CURRENCY_DOC = (
    "ISO 4217 currency code of the amounts. Omitted or null means CNY. Any currency other "
    "than CNY must be listed with a fixed rate in the rules file (`currencies`), else the "
    "record is a schema_violation."
)
_EVENT_ID_DOC = (
    "Producer's event id: 1-128 printable characters, unique per customer. A redelivery "
    "(same event_id for the customer within the lateness horizon) is counted as a duplicate "
    "and not applied."
)
_CUSTOMER_DOC = "Customer id: non-empty, printable; also the record key."
_TS_DOC = (
    "RFC 3339 with a UTC offset: YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM), seconds required "
    "(2026-03-01T09:30:00+08:00 or ...Z). Without an offset the record is dead-lettered as "
    "naive_timestamp; any other shape is a schema_violation. Its business day is its calendar "
    "date in the rules file's timezone."
)


# --------------------------------------------------------------------------- enums
class Product(StrEnum):
    """Account product. Assets: deposit, time_deposit, wealth, fund, insurance. Liabilities: loan,
    credit_card (their balance is the amount owed, >= 0)."""

    DEPOSIT = "deposit"
    TIME_DEPOSIT = "time_deposit"
    WEALTH = "wealth"
    FUND = "fund"
    INSURANCE = "insurance"
    LOAN = "loan"
    CREDIT_CARD = "credit_card"

    @property
    def is_liability(self) -> bool:
        return self in (Product.LOAN, Product.CREDIT_CARD)


class Direction(StrEnum):
    """Direction of a transaction's money: credit (in) or debit (out)."""

    CREDIT = "credit"
    DEBIT = "debit"


class Channel(StrEnum):
    """Channel of a transaction. `system` (interest, fees) is not customer activity; every other
    channel is."""

    BRANCH = "branch"
    ATM = "atm"
    MOBILE = "mobile"
    ONLINE = "online"
    POS = "pos"
    TRANSFER = "transfer"
    SYSTEM = "system"


# --------------------------------------------------------------------------- inputs
_INPUT_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False)


class BalanceEvent(BaseModel):
    """`bank.balances`, keyed by customer_id: the balance of one account as of `ts`. Unknown extra
    fields are ignored; null on an optional field counts as absent."""

    model_config = _INPUT_CONFIG

    event_id: EventId = Field(description=_EVENT_ID_DOC)
    customer_id: CustomerId = Field(description=_CUSTOMER_DOC)
    account_id: StrictStr = Field(description="Account id; balances are kept per account.")
    product: Product = Field(description="Account product: an asset or a liability account.")
    balance: WireMoney = Field(
        description=(
            "Balance of the account as of ts. An asset balance may be negative (an overdrawn "
            "account); a liability (loan, credit_card) balance is the amount owed and must be "
            ">= 0, else bad_amount. " + _MONEY_DOC
        )
    )
    currency: Currency = Field(default="CNY", description=_CURRENCY_DOC)
    ts: Timestamp = Field(description="The instant the balance is as of. " + _TS_DOC)

    @model_validator(mode="after")
    def _owed_not_negative(self) -> BalanceEvent:
        if self.product.is_liability and self.balance < 0:
            raise ValueError(f"balance: a {self.product} balance is the amount owed and must be >= 0")
        return self


class TransactionEvent(BaseModel):
    """`bank.transactions`, keyed by customer_id: one posted transaction. With `balance_after` it is
    also a balance observation of its account. Unknown extra fields are ignored; null on an
    optional field counts as absent."""

    model_config = _INPUT_CONFIG

    event_id: EventId = Field(description=_EVENT_ID_DOC)
    customer_id: CustomerId = Field(description=_CUSTOMER_DOC)
    account_id: StrictStr = Field(description="Account the transaction was posted to.")
    ts: Timestamp = Field(description="The instant the transaction was posted. " + _TS_DOC)
    amount: WireMoney = Field(
        description="Amount moved, > 0 (the sign is in direction), else bad_amount. " + _MONEY_DOC
    )
    direction: Direction = Field(description="credit (money in) or debit (money out).")
    channel: Channel = Field(
        description="Where the transaction came from; every channel but system is customer activity."
    )
    currency: Currency = Field(default="CNY", description=_CURRENCY_DOC)
    counterparty_bank: StrictStr | None = Field(
        default=None,
        description=(
            "The other party's bank. A debit whose counterparty_bank is set and differs from the "
            "rules file's home_bank is an external outflow."
        ),
    )
    balance_after: WireMoney | None = Field(
        default=None,
        description=(
            "Balance of the account after the transaction. When present the transaction is also a "
            "balance observation of its account, with the same sign rule as bank.balances (a "
            "liability balance must be >= 0). " + _MONEY_DOC
        ),
    )
    product: Product | None = Field(
        default=None, description="Product of the account for balance_after; absent means deposit."
    )

    @model_validator(mode="after")
    def _signs(self) -> TransactionEvent:
        if self.amount <= 0:
            raise ValueError("amount must be > 0 (direction says credit or debit)")
        owed = self.product is not None and self.product.is_liability
        if owed and self.balance_after is not None and self.balance_after < 0:
            raise ValueError(f"balance_after: a {self.product} balance is the amount owed and must be >= 0")
        return self


class ProfileEvent(BaseModel):
    """`bank.profiles`, keyed by customer_id: customer attributes. Each attribute takes its value from
    the latest event (by ts, then event_id) that carries it. Profile events are not activity.
    Unknown extra fields are ignored."""

    model_config = _INPUT_CONFIG

    event_id: EventId = Field(description=_EVENT_ID_DOC)
    customer_id: CustomerId = Field(description=_CUSTOMER_DOC)
    ts: Timestamp = Field(description="The instant the attributes are as of. " + _TS_DOC)
    attributes: dict[StrictStr, AttributeValue] = Field(
        description=(
            "Attribute name -> value; a value is a JSON number, a bool or a string (any other "
            "value, such as a list or null, is a schema_violation). Rules refer to them as "
            "attr.<name>; a bool is not a number."
        )
    )


# --------------------------------------------------------------------------- outputs
_OUTPUT_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

_METRICS_DOC = (
    "aum plus every metric named by any condition of any tier of the rules file, in order of "
    "first appearance. Money as decimal strings with exactly 2 decimals, counts and days as "
    "integers, attributes (attr.<name>) as they are, null when missing."
)


class _OutputEvent(BaseModel):
    model_config = _OUTPUT_CONFIG

    type: str
    schema_version: SchemaVersion = Field(description="Version of this schema: 1.")
    event_id: OutputId = Field(
        description=(
            "The first 32 hex digits of SHA-256 over type|customer_id|<id fields>|effective_at|"
            "rules_version (UTF-8, | between): a redelivered output has the same id, so consumers "
            "can de-duplicate."
        )
    )
    customer_id: CustomerId = Field(description="The customer; also the record key.")
    effective_at: IsoInstant = Field(
        description=(
            "The evaluation instant, RFC 3339 in the rules timezone as Python's datetime.isoformat() "
            "writes it (2026-03-01T00:00:00+08:00; six fraction digits only when microseconds "
            "are non-zero)."
        )
    )
    rules_version: StrictStr = Field(description="The rules file's `version`.")
    emitted_at: Timestamp = Field(description="Wall-clock instant the output was produced (RFC 3339).")


class TierChanged(_OutputEvent):
    """`tier.changes`, keyed by customer_id: a customer moved up or down the ladder. Id fields:
    from_tier|to_tier."""

    type: Literal["tier_changed"] = Field(description="Always tier_changed.")
    from_tier: TierId = Field(description="Tier id before the change.")
    to_tier: TierId = Field(description="Tier id after the change.")
    direction: Literal["upgrade", "downgrade"] = Field(description="upgrade or downgrade.")
    matched: StrictStr | None = Field(
        description=(
            "The first condition of to_tier that held, as written in the rules file; null when "
            "to_tier is the base tier."
        )
    )
    metrics: dict[StrictStr, MetricValue] = Field(description=_METRICS_DOC)


class UpgradeOpportunity(_OutputEvent):
    """`tier.opportunities`, keyed by customer_id: the customer is close to the next tier's average-AUM
    threshold (ratio x threshold <= value < threshold). Id fields: current_tier|target_tier."""

    type: Literal["upgrade_opportunity"] = Field(description="Always upgrade_opportunity.")
    current_tier: TierId = Field(description="The customer's tier now.")
    target_tier: TierId = Field(description="The next tier above current_tier.")
    metric: Annotated[str, StringConstraints(strict=True, pattern=r"^avg_aum_[0-9]+d$")] = Field(
        description="The target tier's first avg_aum_<N>d condition's metric."
    )
    value: Money = Field(description="The metric's value (decimal string, exactly 2 decimals).")
    threshold: Money = Field(description="The condition's threshold (decimal string, exactly 2 decimals).")
    gap: Money = Field(description="threshold - value (decimal string, exactly 2 decimals).")

    @model_validator(mode="after")
    def _gap_is_difference(self) -> UpgradeOpportunity:
        if Decimal(self.threshold) - Decimal(self.value) != Decimal(self.gap):
            raise ValueError(f"gap {self.gap} is not threshold - value ({self.threshold} - {self.value})")
        return self


class ChurnWarning(_OutputEvent):
    """`customer.churn-warnings`, keyed by customer_id: a customer may be leaving. Id fields: reason."""

    type: Literal["churn_warning"] = Field(description="Always churn_warning.")
    tier: TierId = Field(description="The customer's tier now.")
    reason: Literal["dormant", "balance_drop", "external_outflow"] = Field(
        description=(
            "dormant: inactive_days >= dormant_after_days (once per dormant spell); balance_drop: aum "
            "fell to (1 - drop_ratio) x the peak AUM of the previous 30 days; external_outflow: "
            "external_outflow_7d is large against aum."
        )
    )
    severity: Literal["low", "medium", "high"] = Field(
        description=(
            "low for dormant at the base tier, high at or above the rules' high_value_from tier, else medium."
        )
    )
    metrics: dict[StrictStr, MetricValue] = Field(
        description=_METRICS_DOC + " Always includes inactive_days and external_outflow_7d."
    )


class SegmentChanged(_OutputEvent):
    """`customer.segment-changes`, keyed by customer_id: a segment (SPEC §10) took a new value at a
    day boundary (only with a `segments` section in the rules file). At one boundary the segments
    come in the order lifecycle, rfm, grid. Id fields: segment|from|to (an empty string for a
    null from)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, serialize_by_alias=True)

    type: Literal["segment_changed"] = Field(description="Always segment_changed.")
    segment: Literal["lifecycle", "rfm", "grid"] = Field(
        description=(
            "lifecycle: dormant, churn_risk, new or active; rfm: R<r>F<f>M<m>, each score 1 ... k+1 "
            "from the dimension's k bands; grid: <value name>/<activity name>."
        )
    )
    from_: Annotated[str, StringConstraints(strict=True, min_length=1)] | None = Field(
        alias="from",
        description="The value before; null the first time (the first boundary after first sight).",
    )
    to: Annotated[str, StringConstraints(strict=True, min_length=1)] = Field(description="The new value.")
    metrics: dict[StrictStr, MetricValue] = Field(
        description=(
            "aum plus the metrics the segment reads (inactive_days for lifecycle; recency, frequency, "
            "monetary for rfm; value, activity for grid), each once. Money as decimal strings with "
            "exactly 2 decimals, counts and days as integers."
        )
    )


DeadLetterError = Literal[
    "invalid_json",
    "schema_violation",
    "bad_amount",
    "naive_timestamp",
    "too_late",
    "future_timestamp",
    "oversize",
]
DEAD_LETTER_ERRORS: Final[tuple[str, ...]] = get_args(DeadLetterError)


class DeadLetter(BaseModel):
    """`tierstream.dlq`: an input record that was not applied, with why. Every consumed record ends
    as exactly one of applied, duplicate or dead-lettered."""

    model_config = _OUTPUT_CONFIG

    source_topic: StrictStr | None = Field(
        description="Topic the record came from; null when it named none (an unreadable event-file line)."
    )
    partition: StrictInt = Field(ge=0, description="Partition of the source record.")
    offset: StrictInt = Field(
        ge=0, description="Offset of the source record (in an event file, the 0-based line number)."
    )
    key: StrictStr | None = Field(
        description="The record's key (customer_id), or the value's customer_id if it had none; null if unknown."
    )
    payload: StrictStr = Field(
        description="The raw payload bytes: as text when they are UTF-8, else base64 (see payload_encoding)."
    )
    payload_encoding: Literal["utf-8", "base64"] = Field(description="How payload encodes the raw bytes.")
    error: DeadLetterError = Field(
        description=(
            "invalid_json: not JSON (or not UTF-8); schema_violation: a missing, ill-typed or unknown-valued "
            "field; bad_amount: money that is not a whole number of fen or has the wrong sign; "
            "naive_timestamp: ts without a UTC offset; too_late: more than max_lateness_days before the "
            "clock's day; future_timestamp: more than 5 minutes ahead of the wall clock; oversize: over "
            "max_record_bytes."
        )
    )
    detail: StrictStr = Field(description="Human-readable reason.")
    at: Timestamp = Field(description="Wall-clock instant the record was dead-lettered (RFC 3339).")


# --------------------------------------------------------------------------- registry
INPUT_MODELS: Final[dict[str, type[BaseModel]]] = {
    "bank.balances": BalanceEvent,
    "bank.transactions": TransactionEvent,
    "bank.profiles": ProfileEvent,
}
OUTPUT_MODELS: Final[dict[str, type[BaseModel]]] = {
    "tier.changes": TierChanged,
    "tier.opportunities": UpgradeOpportunity,
    "customer.churn-warnings": ChurnWarning,
    "customer.segment-changes": SegmentChanged,
    "tierstream.dlq": DeadLetter,
}
#: Topic name (the schema file's stem) -> the model of its values.
ALL_MODELS: Final[dict[str, type[BaseModel]]] = {**INPUT_MODELS, **OUTPUT_MODELS}


# --------------------------------------------------------------------------- exact JSON
class NotJsonError(ValueError):
    """Text that is not JSON (``NaN`` and ``Infinity`` included)."""


def load_exact(text: str | bytes) -> Any:
    """Parse JSON keeping numbers exact: integers as int, others as Decimal.

    Validate the result with ``Model.model_validate`` to check money exactly.
    Raises NotJsonError for text that is not JSON. The parser is the engine's own
    (`tierstream.engine.jsonio.loads`): one reading of what is JSON.
    """
    from ..engine.jsonio import NotJson, loads

    try:
        return loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError as exc:
        raise NotJsonError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except NotJson as exc:
        raise NotJsonError(str(exc)) from None
