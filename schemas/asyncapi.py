"""The AsyncAPI 3 document of every topic: the downstream contract in one file.

Payload schemas come from the same pydantic models as ``schemas/json/`` (their
``$defs`` become ``components.schemas``); the producers and consumers of each topic are
SPEC.md's "who consumes what". ``make schemas`` (export.py) writes it to ``schemas/asyncapi.yaml``.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from .models import ALL_MODELS, INPUT_MODELS

ASYNCAPI_VERSION: Final = "3.0.0"
#: The Kafka bindings version these bindings follow.
KAFKA_BINDINGS: Final = "0.5.0"
#: Outputs carry `schema_version: 1`; the document's version follows it.
CONTRACT_VERSION: Final = "1.0.0"


class Topic:
    """Who writes a topic, who reads it, and what its key is."""

    def __init__(self, summary: str, producers: list[str], consumers: list[str], key: str) -> None:
        self.summary = summary
        self.producers = producers
        self.consumers = consumers
        self.key = key


_CUSTOMER_KEY = "customer_id (UTF-8): every record of a customer is on one partition, in order."
TOPICS: Final[dict[str, Topic]] = {
    "bank.balances": Topic(
        "The balance of one account as of ts.",
        ["core banking"],
        ["tierstream workers"],
        _CUSTOMER_KEY,
    ),
    "bank.transactions": Topic(
        "One posted transaction; with balance_after also a balance observation.",
        ["core banking", "payments"],
        ["tierstream workers"],
        _CUSTOMER_KEY,
    ),
    "bank.profiles": Topic(
        "Customer attributes (latest value by ts, then event_id, wins).",
        ["customer master data (CRM)"],
        ["tierstream workers"],
        _CUSTOMER_KEY,
    ),
    "tier.changes": Topic(
        "A customer moved up or down the ladder: why, with the figures.",
        ["tierstream workers"],
        ["marketing", "CRM"],
        _CUSTOMER_KEY,
    ),
    "tier.opportunities": Topic(
        "A customer is close to the next tier's average-AUM threshold.",
        ["tierstream workers"],
        ["notification service"],
        _CUSTOMER_KEY,
    ),
    "customer.churn-warnings": Topic(
        "A customer may be leaving: dormant, balance drop or external outflow.",
        ["tierstream workers"],
        ["relationship managers", "retention team"],
        _CUSTOMER_KEY,
    ),
    "customer.segment-changes": Topic(
        "A customer's lifecycle stage, RFM score or value x activity cell changed (at a day boundary; "
        "only with a segments section in the rules).",
        ["tierstream workers"],
        ["marketing", "CRM", "retention team"],
        _CUSTOMER_KEY,
    ),
    "tierstream.dlq": Topic(
        "An input record that was not applied, with its error and original payload.",
        ["tierstream workers"],
        ["operations (tierstream capture, tierstream dlq replay)"],
        "The source record's key (customer_id), or the value's customer_id; no key when neither is known.",
    ),
}

_DELIVERY = (
    "Delivery is at least once: a record may be delivered again after a worker restart or "
    "rebalance, with the same event_id; de-duplicate by event_id. Records of one customer on "
    "one topic are in order (one partition per customer); there is no order across topics."
)


def _hoisted(model: type[BaseModel], schemas: dict[str, Any]) -> None:
    """Put the model's JSON Schema and its $defs into components.schemas."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        if schemas.setdefault(name, sub) != sub:
            raise ValueError(f"two different schemas are named {name}: rename one model or enum")
    schemas[model.__name__] = schema


def _camel(topic: str) -> str:
    words = topic.replace("-", ".").split(".")
    return "".join(w[:1].upper() + w[1:] for w in words)


def document() -> dict[str, Any]:
    """The AsyncAPI 3 document as a dict."""
    missing = ALL_MODELS.keys() - TOPICS.keys()
    if missing:
        raise ValueError(f"schemas/asyncapi.py TOPICS lacks producers and consumers of {sorted(missing)}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for topic, model in ALL_MODELS.items():
        about = TOPICS[topic]
        name = model.__name__
        _hoisted(model, schemas)
        messages[name] = {
            "name": name,
            "title": f"{topic} value",
            "summary": about.summary,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": about.key},
                    "bindingVersion": KAFKA_BINDINGS,
                }
            },
        }
        channels[topic] = {
            "address": topic,
            "title": topic,
            "summary": about.summary,
            "description": (
                f"{about.summary} Produced by: {', '.join(about.producers)}. "
                f"Consumed by: {', '.join(about.consumers)}. Key: {about.key}"
            ),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "kafka": {
                    "topic": topic,
                    # Not compacted: every record is an event with its own id, not a key's latest state.
                    "topicConfiguration": {"cleanup.policy": ["delete"]},
                    "bindingVersion": KAFKA_BINDINGS,
                }
            },
            "x-producers": about.producers,
            "x-consumers": about.consumers,
        }
        receives = topic in INPUT_MODELS
        operations[f"{'receive' if receives else 'send'}{_camel(topic)}"] = {
            "action": "receive" if receives else "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "summary": (
                f"tierstream's workers consume {topic}."
                if receives
                else f"tierstream's workers publish {topic}."
            ),
            "messages": [{"$ref": f"#/channels/{topic}/messages/{name}"}],
        }
    doc = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "tierstream",
            "version": CONTRACT_VERSION,
            "description": (
                "The topics tierstream reads and writes, as seen by tierstream's workers: they receive "
                "the three bank.* inputs and send the three outputs and the dead-letter topic. Every value "
                "is UTF-8 JSON. Outputs carry schema_version (1): a change that breaks consumers gets a "
                "new version; new optional fields may be added within one. Topic names take the "
                "deployment's TIERSTREAM_TOPIC_PREFIX. " + _DELIVERY + " See docs/consuming.md."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }
    return doc
