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

import json
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
    "Product",
    "ProfileEvent",
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
        raise ValueError(f"{value!r} is not a whole number of fen (at most 2 significant decimals)")
    return amount


def _attribute_value(value: Any) -> bool | int | float | Decimal | str:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            raise ValueError("an attribute number must be finite")
        if isinstance(value, Decimal) and not value.is_finite():
            raise ValueError("an attribute number must be finite")
        return value
    kind = "null" if value is None else type(value).__name__
    raise ValueError(f"an attribute is a number, a bool or a string, not {kind}")


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
    Field(
        description=(
            "RFC 3339 instant with a UTC offset: YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM), "
            "seconds required (2026-03-01T09:30:00+08:00). Without an offset the record is "
            "dead-lettered as naive_timestamp; any other shape is a schema_violation."
        ),
        json_schema_extra={"format": "date-time"},
    ),
]
IsoInstant = Annotated[
    str,
    StringConstraints(strict=True, pattern=ISOFORMAT_PATTERN),
    AfterValidator(_check_timestamp),
    Field(json_schema_extra={"format": "date-time"}),
]
WireMoney = Annotated[
    Decimal,
    PlainValidator(_wire_money),
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
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}]}),
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


