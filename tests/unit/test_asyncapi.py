"""The AsyncAPI 3 document (schemas/asyncapi.yaml): current, valid, and the same payloads as schemas/json.

Validity is checked against the AsyncAPI 3.0.0 JSON Schema from the `@asyncapi/specs`
npm package 6.11.1 (schemas/3.0.0-without-$id.json, Apache-2.0, vendored in
tests/fixtures/asyncapi/).
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tierstream.schemas import asyncapi, export
from tierstream.schemas.models import ALL_MODELS, INPUT_MODELS, OUTPUT_MODELS, load_exact

ROOT = Path(__file__).resolve().parents[2]
SPEC_SCHEMA = ROOT / "tests" / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json"
EXAMPLES = ROOT / "tests" / "fixtures" / "examples"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(export.ASYNCAPI_PATH.read_text("utf-8"))
    return doc


def _spec_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SPEC_SCHEMA.read_text("utf-8")))
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]


def test_committed_asyncapi_is_current() -> None:
    assert export.ASYNCAPI_PATH.read_text("utf-8") == export.render_asyncapi(), (
        "schemas/asyncapi.yaml is stale: run make schemas"
    )


def test_asyncapi_is_valid_asyncapi_3() -> None:
    doc = _doc()
    assert doc["asyncapi"] == "3.0.0"
    assert _spec_errors(doc) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["channels"]["tier.changes"].update(adress="tier.changes"),
        lambda d: d["operations"]["sendTierChanges"].update(action="publish"),
        lambda d: d["channels"]["tier.changes"]["bindings"]["kafka"].update(partitions="eight"),
    ],
)
def test_the_validity_check_can_fail(breakage: Any) -> None:
    doc = copy.deepcopy(_doc())
    breakage(doc)
    assert _spec_errors(doc)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_ref_resolves() -> None:
    doc = _doc()
    refs = re.findall(r"\$ref: '?(#/[^'\s]+)'?", export.ASYNCAPI_PATH.read_text("utf-8"))
    assert refs
    for ref in refs:
        assert _resolve(doc, ref) is not None, ref


def test_every_topic_is_a_channel_with_its_key_producers_and_consumers() -> None:
    doc = _doc()
    assert set(doc["channels"]) == set(ALL_MODELS)
    for topic, model in ALL_MODELS.items():
        channel = doc["channels"][topic]
        assert channel["address"] == channel["bindings"]["kafka"]["topic"] == topic
        assert channel["x-producers"] and channel["x-consumers"]
        (message_ref,) = channel["messages"].values()
        message = _resolve(doc, message_ref["$ref"])
        assert message["payload"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert "customer_id" in message["bindings"]["kafka"]["key"]["description"]


def test_operations_receive_the_inputs_and_send_the_outputs() -> None:
    ops = _doc()["operations"].values()
    received = {op["channel"]["$ref"].removeprefix("#/channels/") for op in ops if op["action"] == "receive"}
    sent = {op["channel"]["$ref"].removeprefix("#/channels/") for op in ops if op["action"] == "send"}
    assert received == set(INPUT_MODELS)
    assert sent == set(OUTPUT_MODELS)


def test_payloads_are_the_json_schema_files() -> None:
    """The same models as schemas/json: only the place of the shared definitions differs."""
    doc = _doc()
    for topic, model in ALL_MODELS.items():
        text = (export.JSON_DIR / f"{topic}{export.SUFFIX}").read_text("utf-8")
        standalone = json.loads(text.replace('"#/$defs/', '"#/components/schemas/'))
        defs = standalone.pop("$defs", {})
        standalone.pop("$schema")
        assert doc["components"]["schemas"][model.__name__] == standalone, topic
        for name, sub in defs.items():
            assert doc["components"]["schemas"][name] == sub


def _payload_validator(doc: dict[str, Any], model_name: str) -> jsonschema.Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{model_name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(root)


def test_spec_examples_validate_against_the_payloads() -> None:
    doc = _doc()
    checked = 0
    for path in (EXAMPLES / "lifecycle.events.jsonl", EXAMPLES / "lifecycle.expected.jsonl"):
        for line in path.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            value = record["value"]
            if record["topic"] in OUTPUT_MODELS and "emitted_at" not in value:
                value = {**value, "emitted_at": "2026-04-30T09:15:02+08:00"}
            validator = _payload_validator(doc, ALL_MODELS[record["topic"]].__name__)
            assert list(validator.iter_errors(value)) == [], line
            assert ALL_MODELS[record["topic"]].model_validate(load_exact(json.dumps(value)))
            checked += 1
    assert checked == 10  # 3 inputs, 7 outputs
    bad = {"type": "tier_changed", "schema_version": 2}
    assert list(_payload_validator(doc, "TierChanged").iter_errors(bad))


def test_every_model_has_producers_and_consumers_named() -> None:
    assert set(asyncapi.TOPICS) == set(ALL_MODELS)


def test_consuming_doc_examples_are_python() -> None:
    text = (ROOT / "docs" / "consuming.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        ast.parse(block)
    assert "schemas/asyncapi.yaml" in text
