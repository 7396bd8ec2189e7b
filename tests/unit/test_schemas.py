"""The wire-contract models (tierstream.schemas) and their committed JSON Schema files."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tierstream.schemas import export
from tierstream.schemas.models import (
    ALL_MODELS,
    DEAD_LETTER_ERRORS,
    INPUT_MODELS,
    OUTPUT_MODELS,
    BalanceEvent,
    ChurnWarning,
    DeadLetter,
    NotJsonError,
    ProfileEvent,
    SegmentChanged,
    TierChanged,
    TransactionEvent,
    UpgradeOpportunity,
    load_exact,
)

#: The project's copy of shared/examples (SPEC's worked examples).
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "examples"
EMITTED_AT = "2026-04-30T09:15:02.123456+08:00"

TOPICS = {
    "bank.balances": BalanceEvent,
    "bank.transactions": TransactionEvent,
    "bank.profiles": ProfileEvent,
    "tier.changes": TierChanged,
    "tier.opportunities": UpgradeOpportunity,
    "customer.churn-warnings": ChurnWarning,
    "customer.segment-changes": SegmentChanged,
    "tierstream.dlq": DeadLetter,
}
# SPEC §6: every output carries these, plus the keys of its topic, and no others.
COMMON_OUTPUT_KEYS = {
    "type",
    "schema_version",
    "event_id",
    "customer_id",
    "effective_at",
    "rules_version",
    "emitted_at",
}
OUTPUT_KEYS = {
    "tier.changes": COMMON_OUTPUT_KEYS | {"from_tier", "to_tier", "direction", "matched", "metrics"},
    "tier.opportunities": COMMON_OUTPUT_KEYS
    | {"current_tier", "target_tier", "metric", "value", "threshold", "gap"},
    "customer.churn-warnings": COMMON_OUTPUT_KEYS | {"tier", "reason", "severity", "metrics"},
    "customer.segment-changes": COMMON_OUTPUT_KEYS | {"segment", "from", "to", "metrics"},
    "tierstream.dlq": {
        "source_topic",
        "partition",
        "offset",
        "key",
        "payload",
        "payload_encoding",
        "error",
        "detail",
        "at",
    },
}


def _records(name: str) -> list[dict[str, Any]]:
    path = EXAMPLES / name
    return [load_exact(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _reject(model: type[BaseModel], value: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(value)
    return info.value


# ------------------------------------------------------------------ committed files
def test_committed_json_schemas_are_current() -> None:
    rendered = export.render()
    stale = export.stale_files(export.JSON_DIR, rendered)
    assert not stale, f"schemas/json is stale ({', '.join(stale)}): run make schemas"
    for name, text in rendered.items():
        assert (export.JSON_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run make schemas"
        )


def test_render_covers_every_topic_with_the_contract_keys() -> None:
    assert ALL_MODELS == TOPICS
    assert set(INPUT_MODELS) | set(OUTPUT_MODELS) == set(TOPICS)
    rendered = export.render()
    assert set(rendered) == {f"{topic}.schema.json" for topic in TOPICS}
    for topic in TOPICS:
        text = rendered[f"{topic}.schema.json"]
        assert text.endswith("}\n")
        schema = json.loads(text)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["type"] == "object"
        assert schema["description"], f"{topic}: no description"
        for field, prop in schema["properties"].items():
            assert prop.get("description"), f"{topic}.{field}: no description"
            assert "\n" not in prop["description"]
        if topic in OUTPUT_KEYS:
            # exactly the listed keys: all required, nothing else allowed
            assert schema["additionalProperties"] is False
            assert set(schema["properties"]) == OUTPUT_KEYS[topic]
            assert set(schema["required"]) == OUTPUT_KEYS[topic]
        else:
            # producers may add fields
            assert schema.get("additionalProperties", True) is not False
    balances = json.loads(rendered["bank.balances.schema.json"])
    assert set(balances["required"]) == {"event_id", "customer_id", "account_id", "product", "balance", "ts"}
    assert balances["properties"]["currency"]["default"] == "CNY"
    assert balances["$defs"]["Product"]["enum"] == [
        "deposit",
        "time_deposit",
        "wealth",
        "fund",
        "insurance",
        "loan",
        "credit_card",
    ]
    transactions = json.loads(rendered["bank.transactions.schema.json"])
    assert set(transactions["required"]) == {
        "event_id",
        "customer_id",
        "account_id",
        "ts",
        "amount",
        "direction",
        "channel",
    }
    assert transactions["$defs"]["Channel"]["enum"] == [
        "branch",
        "atm",
        "mobile",
        "online",
        "pos",
        "transfer",
        "system",
    ]
    assert transactions["$defs"]["Direction"]["enum"] == ["credit", "debit"]
    dlq = json.loads(rendered["tierstream.dlq.schema.json"])
    assert dlq["properties"]["error"]["enum"] == list(DEAD_LETTER_ERRORS)


def test_published_patterns_agree_with_the_spec_examples() -> None:
    schema = json.loads(export.render()["bank.balances.schema.json"])
    ts = re.compile(schema["properties"]["ts"]["pattern"])
    for good in ("2026-03-01T09:30:00+08:00", "2026-03-01T01:30:00Z", "2026-03-01T01:30:00.123456789-05:00"):
        assert ts.search(good), good
    for bad in (
        "2026-03-01T09:30:00",
        "2026-03-01T09:30+08:00",
        "2026-03-01 09:30:00+08:00",
        "x2026-03-01T09:30:00Z",
    ):
        assert not ts.search(bad), bad
    money_text = next(
        alt["pattern"] for alt in schema["properties"]["balance"]["anyOf"] if alt["type"] == "string"
    )
    assert {"type": "number"} in schema["properties"]["balance"]["anyOf"]
    for good in ("12.300", "-5", "60000.00"):
        assert re.search(money_text, good), good
    for bad in ("1_000", "abc", "1e2", "12.", ".5", "+1"):
        assert not re.search(money_text, bad), bad


def test_export_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncapi = tmp_path.parent / f"{tmp_path.name}-asyncapi.yaml"

    def main(*args: str) -> int:
        return export.main([*args, "--asyncapi", str(asyncapi)])

    assert main("--dir", str(tmp_path), "--check") == 1
    assert "run `make schemas`" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # --check writes nothing
    assert not asyncapi.exists()

    assert main("--dir", str(tmp_path)) == 0
    assert {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()} == export.render()
    assert asyncapi.read_text(encoding="utf-8") == export.render_asyncapi()
    assert main("--dir", str(tmp_path), "--check") == 0

    target = tmp_path / "tier.changes.schema.json"
    target.write_text(target.read_text(encoding="utf-8").replace("upgrade", "promotion"), encoding="utf-8")
    (tmp_path / "old.topic.schema.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert main("--dir", str(tmp_path), "--check") == 1
    err = capsys.readouterr().err
    assert "old.topic.schema.json" in err and "tier.changes.schema.json" in err
    assert "bank.balances.schema.json" not in err

    assert main("--dir", str(tmp_path)) == 0
    assert not (tmp_path / "old.topic.schema.json").exists()
    assert main("--dir", str(tmp_path), "--check") == 0


# ------------------------------------------------------------------ worked examples
def test_lifecycle_inputs_validate() -> None:
    records = _records("lifecycle.events.jsonl")
    assert len(records) >= 3
    for record in records:
        model = INPUT_MODELS[record["topic"]]
        event = model.model_validate(record["value"])
        assert event.model_dump(mode="json")["event_id"] == record["value"]["event_id"]
    first = BalanceEvent.model_validate(records[0]["value"])
    assert first.balance == Decimal("60000.00")
    assert first.product == "deposit"
    txn = TransactionEvent.model_validate(records[1]["value"])
    assert (txn.amount, txn.balance_after, txn.direction, txn.channel) == (
        Decimal("100.00"),
        Decimal("59900.00"),
        "debit",
        "pos",
    )
    assert txn.product is None and txn.counterparty_bank is None


def test_lifecycle_outputs_validate_and_round_trip() -> None:
    records = _records("lifecycle.expected.jsonl")
    assert {r["topic"] for r in records} == {"tier.opportunities", "tier.changes", "customer.churn-warnings"}
    for record in records:
        value = {**record["value"], "emitted_at": EMITTED_AT}
        model = OUTPUT_MODELS[record["topic"]]
        event = model.model_validate(value)
        assert event.model_dump(mode="json") == value
        # the same through pydantic's own JSON parser
        assert model.model_validate_json(json.dumps(value)).model_dump(mode="json") == value
        assert set(value) == OUTPUT_KEYS[record["topic"]]


def test_lifecycle_outputs_need_emitted_at() -> None:
    record = _records("lifecycle.expected.jsonl")[0]
    err = _reject(OUTPUT_MODELS[record["topic"]], record["value"])
    assert [e["loc"] for e in err.errors()] == [("emitted_at",)]


def test_bad_input_example_accepts_exactly_the_applied_records() -> None:
    accepted: list[str] = []
    rejected: list[str] = []
    not_json = 0
    for line in (EXAMPLES / "bad-input.events.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = load_exact(line)
        except NotJsonError:
            not_json += 1
            continue
        value = record["value"]
        try:
            INPUT_MODELS[record["topic"]].model_validate(value)
        except ValidationError:
            rejected.append(value["event_id"])
        else:
            accepted.append(value["event_id"])
    stats = json.loads((EXAMPLES / "bad-input.expected-stats.json").read_text(encoding="utf-8"))
    assert accepted == ["a1", "a2", "a9", "a10"]
    assert rejected == ["a4", "a5", "a6", "a7", "a8"]
    assert len(accepted) == stats["outcomes"]["applied"]
    assert not_json == stats["dead_letters"]["invalid_json"]
    assert len(rejected) + not_json == stats["outcomes"]["dead_letter"]


# ------------------------------------------------------------------ inputs
BALANCE: dict[str, Any] = {
    "event_id": "e1",
    "customer_id": "A",
    "account_id": "A1",
    "product": "deposit",
    "balance": "60000.00",
    "currency": "CNY",
    "ts": "2026-01-01T10:00:00+08:00",
}
TRANSACTION: dict[str, Any] = {
    "event_id": "e2",
    "customer_id": "A",
    "account_id": "A1",
    "amount": "100.00",
    "direction": "debit",
    "channel": "pos",
    "ts": "2026-01-20T10:00:00+08:00",
}
PROFILE: dict[str, Any] = {
    "event_id": "p1",
    "customer_id": "A",
    "ts": "2026-01-20T10:00:00Z",
    "attributes": {"high_end_card": True, "household_income": 200000, "segment": "retail", "score": 0.5},
}


@pytest.mark.parametrize(
    ("model", "base"), [(BalanceEvent, BALANCE), (TransactionEvent, TRANSACTION), (ProfileEvent, PROFILE)]
)
def test_inputs_ignore_extra_fields_and_need_customer_id(
    model: type[BaseModel], base: dict[str, Any]
) -> None:
    event = model.model_validate({**base, "producer_note": "x", "schema": 7})
    dumped = event.model_dump()
    assert "producer_note" not in dumped and "schema" not in dumped
    assert dumped["customer_id"] == "A"
    missing = {k: v for k, v in base.items() if k != "customer_id"}
    err = _reject(model, missing)
    assert [(e["loc"], e["type"]) for e in err.errors()] == [(("customer_id",), "missing")]
    for bad in ("", 42, None, "A\x00"):
        _reject(model, {**base, "customer_id": bad})


def test_currency_defaults_to_cny() -> None:
    no_currency = {k: v for k, v in BALANCE.items() if k != "currency"}
    assert BalanceEvent.model_validate(no_currency).currency == "CNY"
    assert BalanceEvent.model_validate({**BALANCE, "currency": None}).currency == "CNY"
    assert BalanceEvent.model_validate({**BALANCE, "currency": "USD"}).currency == "USD"
    _reject(BalanceEvent, {**BALANCE, "currency": 156})
    _reject(BalanceEvent, {**BALANCE, "currency": ""})


@pytest.mark.parametrize(
    ("model", "base", "field", "value"),
    [
        (BalanceEvent, BALANCE, "product", "savings"),
        (BalanceEvent, BALANCE, "product", "Deposit"),
        (TransactionEvent, TRANSACTION, "direction", "out"),
        (TransactionEvent, TRANSACTION, "channel", "fax"),
        (TransactionEvent, TRANSACTION, "product", "mortgage"),
    ],
)
def test_bad_enum_is_rejected(model: type[BaseModel], base: dict[str, Any], field: str, value: str) -> None:
    err = _reject(model, {**base, field: value})
    assert [(e["loc"], e["type"]) for e in err.errors()] == [((field,), "enum")]


@pytest.mark.parametrize(
    "ts",
    [
        "2026-01-01T10:00:00",  # naive
        "2026-01-01T10:00:00.5",  # naive with a fraction
        "2026-01-01T10:00+08:00",  # no seconds
        "2026-01-01 10:00:00+08:00",
        "2026-01-01t10:00:00z",
        "2026-01-01T10:00:00+0800",
        "2026-02-30T10:00:00+08:00",  # no such day
        "2026-01-01T24:00:00+08:00",
        "2026-01-01T10:00:60Z",
        "2026-01-01T10:00:00+24:00",
        "2026-01-01T10:00:00Z\n",
        "٢٠٢٦-01-01T10:00:00Z",  # non-ASCII digits
        1767232800,
    ],
)
def test_bad_timestamp_is_rejected(ts: Any) -> None:
    err = _reject(BalanceEvent, {**BALANCE, "ts": ts})
    assert [e["loc"] for e in err.errors()] == [("ts",)]


def test_good_timestamps() -> None:
    for ts in ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00.123456789-05:30", "2024-02-29T23:59:59+14:00"):
        assert BalanceEvent.model_validate({**BALANCE, "ts": ts}).ts == ts


@pytest.mark.parametrize(
    ("raw", "fen_exact"),
    [
        ("12.300", Decimal("12.30")),
        ("-5", Decimal(-5)),  # an overdrawn asset account
        (100, Decimal(100)),
        (Decimal("1E+2"), Decimal(100)),
        (Decimal("0.10"), Decimal("0.1")),
        (0.1, Decimal("0.1")),
        (Decimal("12345678901234567890.010"), Decimal("12345678901234567890.01")),
    ],
)
def test_good_asset_balances(raw: Any, fen_exact: Decimal) -> None:
    assert BalanceEvent.model_validate({**BALANCE, "balance": raw}).balance == fen_exact


@pytest.mark.parametrize(
    "raw",
    [
        "12.345",
        "1_000",
        "abc",
        "1e2",
        "12.",
        ".5",
        "+1",
        " 1",
        "1.00\n",
        "١٢",
        True,
        None,
        [1],
        {"v": 1},
        Decimal("12345678901234567890.011"),
        Decimal("NaN"),
        float("inf"),
        12.345,
    ],
)
def test_bad_amounts_are_rejected(raw: Any) -> None:
    err = _reject(BalanceEvent, {**BALANCE, "balance": raw})
    assert [e["loc"] for e in err.errors()] == [("balance",)]
    err = _reject(TransactionEvent, {**TRANSACTION, "amount": raw})
    assert [e["loc"] for e in err.errors()] == [("amount",)]


def test_money_is_exact_through_load_exact() -> None:
    text = json.dumps({**BALANCE, "balance": "X"}).replace('"X"', "12345678901234567890.011")
    # pydantic's JSON parser goes through a float and cannot see the sub-fen digit...
    assert BalanceEvent.model_validate_json(text).balance != Decimal("12345678901234567890.011")
    # ...load_exact can
    _reject(BalanceEvent, load_exact(text))
    good = text.replace(".011", ".010")
    assert BalanceEvent.model_validate(load_exact(good)).balance == Decimal("12345678901234567890.01")
    with pytest.raises(NotJsonError):
        load_exact('{"balance": NaN}')
    with pytest.raises(NotJsonError):
        load_exact('{"balance": 1')


def test_sign_rules() -> None:
    for product in ("loan", "credit_card"):
        assert BalanceEvent.model_validate({**BALANCE, "product": product, "balance": "0"}).balance == 0
        _reject(BalanceEvent, {**BALANCE, "product": product, "balance": "-5.00"})
    for amount in ("0", "0.00", "-1.00", 0):
        _reject(TransactionEvent, {**TRANSACTION, "amount": amount})
    # balance_after follows the balance rule of its product (deposit when absent)
    assert TransactionEvent.model_validate(
        {**TRANSACTION, "balance_after": "-3.00"}
    ).balance_after == Decimal(-3)
    _reject(TransactionEvent, {**TRANSACTION, "balance_after": "-3.00", "product": "credit_card"})
    owed = TransactionEvent.model_validate({**TRANSACTION, "balance_after": "3.00", "product": "credit_card"})
    assert owed.balance_after == Decimal(3)


def test_optional_transaction_fields_accept_null() -> None:
    event = TransactionEvent.model_validate(
        {**TRANSACTION, "counterparty_bank": None, "balance_after": None, "product": None}
    )
    assert (event.counterparty_bank, event.balance_after, event.product) == (None, None, None)
    event = TransactionEvent.model_validate({**TRANSACTION, "counterparty_bank": "ICBC"})
    assert event.counterparty_bank == "ICBC"
    _reject(TransactionEvent, {**TRANSACTION, "counterparty_bank": 7})


def test_event_id_rules() -> None:
    assert BalanceEvent.model_validate({**BALANCE, "event_id": "x" * 128}).event_id == "x" * 128
    assert BalanceEvent.model_validate({**BALANCE, "event_id": "事件 1"}).event_id == "事件 1"
    for bad in ("", "x" * 129, "a\tb", "a\x85b", "a\u200bb", 12):
        err = _reject(BalanceEvent, {**BALANCE, "event_id": bad})
        assert [e["loc"] for e in err.errors()] == [("event_id",)], bad


def test_profile_attributes() -> None:
    event = ProfileEvent.model_validate(PROFILE)
    assert event.attributes == PROFILE["attributes"]
    assert event.attributes["high_end_card"] is True
    assert ProfileEvent.model_validate({**PROFILE, "attributes": {}}).attributes == {}
    exact = ProfileEvent.model_validate(load_exact(json.dumps(PROFILE)))
    assert exact.attributes["score"] == Decimal("0.5")
    for bad in (None, [1], {"a": 1}, float("nan"), Decimal("Infinity")):
        err = _reject(ProfileEvent, {**PROFILE, "attributes": {"x": bad}})
        assert [e["loc"] for e in err.errors()] == [("attributes", "x")], bad
    _reject(ProfileEvent, {**PROFILE, "attributes": [["x", 1]]})
    _reject(ProfileEvent, {k: v for k, v in PROFILE.items() if k != "attributes"})


# ------------------------------------------------------------------ outputs
TIER_CHANGED: dict[str, Any] = {
    "type": "tier_changed",
    "schema_version": 1,
    "event_id": "b1029fc60b3d97724777fbe8803930d8",
    "customer_id": "A",
    "effective_at": "2026-01-26T00:00:00+08:00",
    "rules_version": "example-1",
    "from_tier": "standard",
    "to_tier": "gold",
    "direction": "upgrade",
    "matched": "avg_aum_30d >= 50000",
    "metrics": {
        "aum": "59900.00",
        "avg_aum_30d": "51976.66",
        "txn_count_30d": 3,
        "attr.vip": None,
        "attr.high_end_card": True,
        "attr.income": 1.5,
    },
    "emitted_at": EMITTED_AT,
}
OPPORTUNITY: dict[str, Any] = {
    "type": "upgrade_opportunity",
    "schema_version": 1,
    "event_id": "d927d78d30f2570c07f41c1cb7328d8f",
    "customer_id": "A",
    "effective_at": "2026-01-15T00:00:00.000001+08:00",
    "rules_version": "example-1",
    "current_tier": "standard",
    "target_tier": "gold",
    "metric": "avg_aum_30d",
    "value": "30000.00",
    "threshold": "50000.00",
    "gap": "20000.00",
    "emitted_at": "2026-01-15T00:00:01Z",
}
DEAD: dict[str, Any] = {
    "source_topic": "bank.balances",
    "partition": 0,
    "offset": 2,
    "key": "B",
    "payload": '{"event_id":"a3","balance":NaN}',
    "payload_encoding": "utf-8",
    "error": "invalid_json",
    "detail": "not JSON: NaN is not JSON",
    "at": EMITTED_AT,
}


def test_valid_outputs_round_trip() -> None:
    for model, value in ((TierChanged, TIER_CHANGED), (UpgradeOpportunity, OPPORTUNITY), (DeadLetter, DEAD)):
        assert model.model_validate(value).model_dump(mode="json") == value
    assert (
        TierChanged.model_validate({**TIER_CHANGED, "direction": "downgrade", "matched": None}).matched
        is None
    )
    unreadable = {**DEAD, "source_topic": None, "key": None, "payload": "/w==", "payload_encoding": "base64"}
    assert DeadLetter.model_validate(unreadable).source_topic is None
    for code in DEAD_LETTER_ERRORS:
        assert DeadLetter.model_validate({**DEAD, "error": code}).error == code


def test_dead_letter_codes_are_the_spec_list() -> None:
    assert DEAD_LETTER_ERRORS == (
        "invalid_json",
        "schema_violation",
        "bad_amount",
        "naive_timestamp",
        "too_late",
        "future_timestamp",
        "oversize",
    )


@pytest.mark.parametrize(
    ("model", "value"), [(TierChanged, TIER_CHANGED), (UpgradeOpportunity, OPPORTUNITY), (DeadLetter, DEAD)]
)
def test_outputs_have_exactly_the_listed_keys(model: type[BaseModel], value: dict[str, Any]) -> None:
    err = _reject(model, {**value, "note": "x"})
    assert [(e["loc"], e["type"]) for e in err.errors()] == [(("note",), "extra_forbidden")]
    for key in value:
        err = _reject(model, {k: v for k, v in value.items() if k != key})
        assert [(e["loc"], e["type"]) for e in err.errors()] == [((key,), "missing")], key


@pytest.mark.parametrize(
    ("model", "base", "field", "value"),
    [
        (TierChanged, TIER_CHANGED, "type", "tier_change"),
        (TierChanged, TIER_CHANGED, "schema_version", 2),
        (TierChanged, TIER_CHANGED, "schema_version", True),
        (TierChanged, TIER_CHANGED, "schema_version", 1.0),
        (TierChanged, TIER_CHANGED, "schema_version", "1"),
        (TierChanged, TIER_CHANGED, "direction", "up"),
        (TierChanged, TIER_CHANGED, "event_id", "B1029FC60B3D97724777FBE8803930D8"),
        (TierChanged, TIER_CHANGED, "event_id", "b1029fc60b3d97724777fbe8803930d"),
        (TierChanged, TIER_CHANGED, "effective_at", "2026-01-26T00:00:00Z"),  # isoformat never writes Z
        (TierChanged, TIER_CHANGED, "effective_at", "2026-01-26T00:00:00"),
        (TierChanged, TIER_CHANGED, "effective_at", "2026-01-26T00:00:00.5+08:00"),
        (TierChanged, TIER_CHANGED, "emitted_at", "2026-01-26T00:00:00"),
        (TierChanged, TIER_CHANGED, "metrics", {"aum": ["1.00"]}),
        (TierChanged, TIER_CHANGED, "matched", 5),
        (UpgradeOpportunity, OPPORTUNITY, "value", "30000.0"),
        (UpgradeOpportunity, OPPORTUNITY, "value", 30000),
        (UpgradeOpportunity, OPPORTUNITY, "threshold", "50000"),
        (UpgradeOpportunity, OPPORTUNITY, "gap", "20000.001"),
        (UpgradeOpportunity, OPPORTUNITY, "metric", "aum"),
        (DeadLetter, DEAD, "error", "bad_json"),
        (DeadLetter, DEAD, "payload_encoding", "latin-1"),
        (DeadLetter, DEAD, "partition", -1),
        (DeadLetter, DEAD, "offset", "2"),
        (DeadLetter, DEAD, "at", "yesterday"),
    ],
)
def test_bad_output_values_are_rejected(
    model: type[BaseModel], base: dict[str, Any], field: str, value: Any
) -> None:
    err = _reject(model, {**base, field: value})
    assert {e["loc"][0] for e in err.errors()} == {field}


def test_churn_warning_enums() -> None:
    record = _records("lifecycle.expected.jsonl")[2]
    value = {**record["value"], "emitted_at": EMITTED_AT}
    assert ChurnWarning.model_validate(value).reason == "balance_drop"
    for field, bad in (("reason", "sad"), ("severity", "critical"), ("type", "tier_changed")):
        err = _reject(ChurnWarning, {**value, field: bad})
        assert {e["loc"][0] for e in err.errors()} == {field}


def test_opportunity_gap_is_threshold_minus_value() -> None:
    err = _reject(UpgradeOpportunity, {**OPPORTUNITY, "gap": "19999.99"})
    assert "gap 19999.99 is not threshold - value" in str(err)


def test_input_json_dumps_stay_on_the_wire_grammar() -> None:
    balance = BalanceEvent.model_validate(load_exact(json.dumps(BALANCE).replace('"60000.00"', "6e4")))
    assert balance.balance == Decimal(60000)
    dumped = json.loads(balance.model_dump_json())
    assert dumped["balance"] == "60000"  # fixed-point text, not "6E+4"
    assert BalanceEvent.model_validate(dumped) == balance
    profile = ProfileEvent.model_validate(load_exact(json.dumps(PROFILE)))
    # exact (Decimal) attribute numbers are still JSON numbers when dumped
    assert json.loads(profile.model_dump_json())["attributes"] == PROFILE["attributes"]


def test_engine_segment_changes_validate_against_the_committed_schema() -> None:
    """Every segment change `simulate` writes under a preset passes the committed JSON Schema
    (a third-party validator) and the model, and the model writes it back unchanged."""
    import io

    import jsonschema

    from tierstream.engine.rules import load_rules
    from tierstream.tools.generate import generate_events, write_events
    from tierstream.tools.simulate import simulate

    schema = json.loads((export.JSON_DIR / f"customer.segment-changes{export.SUFFIX}").read_text("utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    sink = io.StringIO()
    write_events(generate_events(20, 40, 5, None, noise=False, late=False, usd=False), sink)
    lines = [(i, ln.encode()) for i, ln in enumerate(sink.getvalue().splitlines())]
    got: list[Any] = []
    simulate(load_rules("cmb"), lines, got.append, wall=lambda: 0)
    changes = [value for topic, _, value in got if topic == "customer.segment-changes"]
    assert {v["segment"] for v in changes} == {"lifecycle", "rfm", "grid"}
    for value in changes:
        assert list(validator.iter_errors(value)) == [], value
        assert SegmentChanged.model_validate(value).model_dump(mode="json") == value
    assert list(validator.iter_errors({**changes[0], "from": ""}))  # an empty from is not null
    assert list(validator.iter_errors({**changes[0], "extra": 1}))
