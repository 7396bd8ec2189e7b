"""Validate one input value and turn it into a compact event, or say why not.

The checks run in the SPEC's order: shape and types first (`schema_violation`),
then timestamp offset (`naive_timestamp`), then amounts (`bad_amount`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from .jsonio import NotJson, loads
from .money import AmountError, convert, decimal_to_fen, text_to_fen
from .timeutil import US_PER_SECOND, TimestampError, parse_instant

BALANCES: Final = "bank.balances"
TRANSACTIONS: Final = "bank.transactions"
PROFILES: Final = "bank.profiles"
INPUT_TOPICS: Final = (BALANCES, TRANSACTIONS, PROFILES)

ASSET_PRODUCTS: Final = frozenset({"deposit", "time_deposit", "wealth", "fund", "insurance"})
LIABILITY_PRODUCTS: Final = frozenset({"loan", "credit_card"})
PRODUCTS: Final = ASSET_PRODUCTS | LIABILITY_PRODUCTS
CHANNELS: Final = frozenset({"branch", "atm", "mobile", "online", "pos", "transfer", "system"})
DIRECTIONS: Final = frozenset({"credit", "debit"})

INVALID_JSON: Final = "invalid_json"
SCHEMA_VIOLATION: Final = "schema_violation"
BAD_AMOUNT: Final = "bad_amount"
NAIVE_TIMESTAMP: Final = "naive_timestamp"
TOO_LATE: Final = "too_late"
FUTURE_TIMESTAMP: Final = "future_timestamp"
OVERSIZE: Final = "oversize"
ERROR_CODES: Final = (
    INVALID_JSON,
    SCHEMA_VIOLATION,
    BAD_AMOUNT,
    NAIVE_TIMESTAMP,
    TOO_LATE,
    FUTURE_TIMESTAMP,
    OVERSIZE,
)


class BadRecord(Exception):
    """A record that goes to the dead-letter topic, with its error code."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


#: SPEC §6: a record whose `ts` is further ahead of the wall clock is refused.
FUTURE_TOLERANCE_US: Final = 300 * US_PER_SECOND


def read_payload(payload: bytes, max_bytes: int) -> Any:
    """The value of a record as the broker carries it: size, then UTF-8, then JSON (the
    first checks of SPEC §6, in order); BadRecord otherwise. The worker, `simulate` and
    `dlq replay` all check a record through here."""
    if len(payload) > max_bytes:
        raise BadRecord(OVERSIZE, f"record of {len(payload)} bytes exceeds max_record_bytes {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(INVALID_JSON, f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return loads(text)
    except NotJson as exc:
        raise BadRecord(INVALID_JSON, f"not JSON: {exc}") from None


def refuse_future(ts: int, now: int | None) -> None:
    """BadRecord when `ts` is more than FUTURE_TOLERANCE_US ahead of `now` (None: no wall clock)."""
    if now is not None and ts > now + FUTURE_TOLERANCE_US:
        raise BadRecord(FUTURE_TIMESTAMP, "ts is more than 5 minutes ahead of the wall clock")


# The events keep the dataclass's eq and repr, with their own __init__: compiled, the
# generated one is interpreted Python (slot_tp_init), ~2% of `simulate` (decisions 130).
@dataclass(slots=True, init=False)
class Balance:
    event_id: str
    customer_id: str
    ts: int
    account_id: str
    fen: int
    liability: bool
    product: str

    def __init__(
        self,
        event_id: str,
        customer_id: str,
        ts: int,
        account_id: str,
        fen: int,
        liability: bool,
        product: str,
    ) -> None:
        self.event_id = event_id
        self.customer_id = customer_id
        self.ts = ts
        self.account_id = account_id
        self.fen = fen
        self.liability = liability
        self.product = product


@dataclass(slots=True, init=False)
class Transaction:
    event_id: str
    customer_id: str
    ts: int
    account_id: str
    fen: int
    debit: bool
    channel: str
    counterparty_bank: str | None
    #: balance_after in fen when present, with its product's side.
    balance_after: int | None
    liability: bool
    product: str | None

    def __init__(
        self,
        event_id: str,
        customer_id: str,
        ts: int,
        account_id: str,
        fen: int,
        debit: bool,
        channel: str,
        counterparty_bank: str | None,
        balance_after: int | None,
        liability: bool,
        product: str | None,
    ) -> None:
        self.event_id = event_id
        self.customer_id = customer_id
        self.ts = ts
        self.account_id = account_id
        self.fen = fen
        self.debit = debit
        self.channel = channel
        self.counterparty_bank = counterparty_bank
        self.balance_after = balance_after
        self.liability = liability
        self.product = product


@dataclass(slots=True, init=False)
class Profile:
    event_id: str
    customer_id: str
    ts: int
    attributes: dict[str, Any]

    def __init__(self, event_id: str, customer_id: str, ts: int, attributes: dict[str, Any]) -> None:
        self.event_id = event_id
        self.customer_id = customer_id
        self.ts = ts
        self.attributes = attributes


Event = Balance | Transaction | Profile


def _violation(detail: str) -> BadRecord:
    return BadRecord(SCHEMA_VIOLATION, detail)


def _string(value: dict[str, Any], name: str) -> str:
    v = value.get(name)
    if type(v) is str:  # the valid path first: this runs ~6 times per record
        return v
    if v is None:
        raise _violation(f"missing field {name!r}")
    if not isinstance(v, str):
        raise _violation(f"field {name!r} must be a string, got {type(v).__name__}")
    return v


def _optional_string(value: dict[str, Any], name: str) -> str | None:
    if name not in value:
        return None
    v = value[name]
    if not isinstance(v, str):
        raise _violation(f"field {name!r} must be a string, got {type(v).__name__}")
    return v


def _check_ids(value: dict[str, Any]) -> tuple[str, str]:
    event_id = _string(value, "event_id")
    if not 1 <= len(event_id) <= 128 or not event_id.isprintable():
        raise _violation("event_id must be 1-128 printable characters")
    customer_id = _string(value, "customer_id")
    if not customer_id or not customer_id.isprintable():
        raise _violation("customer_id must be a non-empty printable string")
    return event_id, customer_id


def _money_shape(value: dict[str, Any], name: str, required: bool) -> Any:
    if name not in value:
        if required:
            raise _violation(f"missing field {name!r}")
        return None
    v = value[name]
    if isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
        raise _violation(f"field {name!r} must be a decimal string or a JSON number, got {type(v).__name__}")
    return v


def _ts_text(value: dict[str, Any]) -> str:
    return _string(value, "ts")


class Decoder:
    """Decodes values against one rules file's currencies."""

    def __init__(self, currencies: dict[str, tuple[int, int]]) -> None:
        self.currencies = currencies

    def _rate(self, value: dict[str, Any]) -> tuple[int, int] | None:
        if "currency" not in value:
            return None
        cur = value["currency"]
        if cur == "CNY":
            return None
        if not isinstance(cur, str):
            raise _violation(f"field 'currency' must be a string, got {type(cur).__name__}")
        rate = self.currencies.get(cur)
        if rate is None:
            known = ", ".join(["CNY", *sorted(self.currencies)])
            raise _violation(f"currency {cur!r} is not accepted (rules list: {known})")
        return rate

    @staticmethod
    def _instant(text: str) -> int:
        try:
            return parse_instant(text)
        except TimestampError as exc:
            if exc.naive:
                raise BadRecord(NAIVE_TIMESTAMP, str(exc)) from None
            raise _violation(str(exc)) from None

    @staticmethod
    def _wire_fen(raw: Any, name: str) -> int:
        """The amount as written, in fen of its own currency."""
        try:
            return (
                text_to_fen(raw)
                if isinstance(raw, str)
                else (raw * 100 if isinstance(raw, int) else decimal_to_fen(raw))
            )
        except AmountError as exc:
            raise BadRecord(BAD_AMOUNT, f"{name}: {exc}") from None

    def decode(self, topic: str, value: Any) -> Event:
        if not isinstance(value, dict):
            raise _violation(f"the value must be a JSON object, got {type(value).__name__}")
        if topic == BALANCES:
            return self._balance(value)
        if topic == TRANSACTIONS:
            return self._transaction(value)
        if topic == PROFILES:
            return self._profile(value)
        raise _violation(f"{topic!r} is not an input topic ({', '.join(INPUT_TOPICS)})")

    # The fast paths below accept only a record every check passes, and build exactly
    # what the checked path builds; anything else (an error, a currency, a JSON number)
    # goes through the checked path, which alone decides the error and its order.
    def _balance(self, value: dict[str, Any]) -> Balance:
        # value.get each time, not a bound `get` held in a local: compiled, the one is a
        # native dict lookup, the other a generic call
        event_id, customer_id, account_id = (
            value.get("event_id"),
            value.get("customer_id"),
            value.get("account_id"),
        )
        product, raw, ts_text = value.get("product"), value.get("balance"), value.get("ts")
        if (
            type(event_id) is str
            and type(customer_id) is str
            and type(account_id) is str
            and type(ts_text) is str
            and type(raw) is str
            and type(product) is str
            and product in PRODUCTS
            and 1 <= len(event_id) <= 128
            and event_id.isprintable()
            and customer_id
            and customer_id.isprintable()
            and value.get("currency", "CNY") == "CNY"
        ):
            try:
                ts, fen = parse_instant(ts_text), text_to_fen(raw)
            except (TimestampError, AmountError):
                pass
            else:
                liability = product in LIABILITY_PRODUCTS
                if not (liability and fen < 0):
                    return Balance(event_id, customer_id, ts, account_id, fen, liability, product)
        return self._balance_checked(value)

    def _balance_checked(self, value: dict[str, Any]) -> Balance:
        event_id, customer_id = _check_ids(value)
        account_id = _string(value, "account_id")
        product = _string(value, "product")
        if product not in PRODUCTS:
            raise _violation(f"product {product!r} is not one of {', '.join(sorted(PRODUCTS))}")
        raw = _money_shape(value, "balance", True)
        rate = self._rate(value)
        ts_text = _ts_text(value)
        ts = self._instant(ts_text)
        fen = self._wire_fen(raw, "balance")
        liability = product in LIABILITY_PRODUCTS
        if liability and fen < 0:
            raise BadRecord(BAD_AMOUNT, f"balance: a {product} balance is the amount owed and must be >= 0")
        return Balance(
            event_id, customer_id, ts, account_id, convert(fen, *rate) if rate else fen, liability, product
        )

    def _transaction(self, value: dict[str, Any]) -> Transaction:
        event_id, customer_id, account_id = (
            value.get("event_id"),
            value.get("customer_id"),
            value.get("account_id"),
        )
        raw, direction, channel = value.get("amount"), value.get("direction"), value.get("channel")
        ts_text, counterparty = value.get("ts"), value.get("counterparty_bank")
        raw_after, product = value.get("balance_after"), value.get("product")
        if (
            type(event_id) is str
            and type(customer_id) is str
            and type(account_id) is str
            and type(ts_text) is str
            and type(raw) is str
            and type(direction) is str
            and type(channel) is str
            and direction in DIRECTIONS
            and channel in CHANNELS
            and 1 <= len(event_id) <= 128
            and event_id.isprintable()
            and customer_id
            and customer_id.isprintable()
            and (type(counterparty) is str or "counterparty_bank" not in value)
            and (type(raw_after) is str or "balance_after" not in value)
            and ((type(product) is str and product in PRODUCTS) or "product" not in value)
            and value.get("currency", "CNY") == "CNY"
        ):
            try:
                ts, fen = parse_instant(ts_text), text_to_fen(raw)
                after = None if raw_after is None else text_to_fen(raw_after)
            except (TimestampError, AmountError):
                pass
            else:
                liability = product in LIABILITY_PRODUCTS
                if fen > 0 and not (liability and after is not None and after < 0):
                    return Transaction(
                        event_id,
                        customer_id,
                        ts,
                        account_id,
                        fen,
                        direction == "debit",
                        channel,
                        counterparty,
                        after,
                        liability,
                        product,
                    )
        return self._transaction_checked(value)

    def _transaction_checked(self, value: dict[str, Any]) -> Transaction:
        event_id, customer_id = _check_ids(value)
        account_id = _string(value, "account_id")
        raw_amount = _money_shape(value, "amount", True)
        direction = _string(value, "direction")
        if direction not in DIRECTIONS:
            raise _violation(f"direction {direction!r} is not credit or debit")
        channel = _string(value, "channel")
        if channel not in CHANNELS:
            raise _violation(f"channel {channel!r} is not one of {', '.join(sorted(CHANNELS))}")
        counterparty = _optional_string(value, "counterparty_bank")
        raw_after = _money_shape(value, "balance_after", False)
        product = _optional_string(value, "product")
        if product is not None and product not in PRODUCTS:
            raise _violation(f"product {product!r} is not one of {', '.join(sorted(PRODUCTS))}")
        rate = self._rate(value)
        ts = self._instant(_ts_text(value))
        fen = self._wire_fen(raw_amount, "amount")
        if fen <= 0:
            raise BadRecord(BAD_AMOUNT, "amount must be > 0 (direction says credit or debit)")
        liability = product in LIABILITY_PRODUCTS if product else False
        after = None
        if raw_after is not None:
            after = self._wire_fen(raw_after, "balance_after")
            if liability and after < 0:
                raise BadRecord(
                    BAD_AMOUNT, f"balance_after: a {product} balance is the amount owed and must be >= 0"
                )
            if rate:
                after = convert(after, *rate)
        if rate:
            fen = convert(fen, *rate)
        return Transaction(
            event_id,
            customer_id,
            ts,
            account_id,
            fen,
            direction == "debit",
            channel,
            counterparty,
            after,
            liability,
            product,
        )

    def _profile(self, value: dict[str, Any]) -> Profile:
        event_id, customer_id = _check_ids(value)
        attrs = value.get("attributes")
        if not isinstance(attrs, dict):
            raise _violation("field 'attributes' must be an object of name: number | bool | string")
        for name, v in attrs.items():
            if not isinstance(v, (str, bool, int, Decimal)):
                raise _violation(
                    f"attribute {name!r} must be a number, bool or string, got "
                    f"{'null' if v is None else type(v).__name__}"
                )
            if isinstance(v, Decimal) and not v.is_finite():
                raise _violation(f"attribute {name!r} must be a finite number")
        ts = self._instant(_ts_text(value))
        return Profile(event_id, customer_id, ts, dict(attrs))


_KEY_FIELD: Final = re.compile(r'"customer_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def guess_customer(value: Any) -> str | None:
    """The customer id of a (possibly bad) value, for the dead-letter record's key."""
    if isinstance(value, dict):
        cid = value.get("customer_id")
        return cid if isinstance(cid, str) else None
    return None


def guess_key(payload: str) -> str | None:
    """The customer id in a raw payload, even one that is not valid JSON: the key a
    producer would have used, so operators can tell whose record was refused."""
    m = _KEY_FIELD.search(payload)
    if m is None:
        return None
    try:
        cid = json.loads(f'"{m.group(1)}"')
    except ValueError:
        return None
    return cid if isinstance(cid, str) else None
