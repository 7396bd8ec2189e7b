"""The worker's start-up checks as a table: topics and local state in, refusals and warnings out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tierstream.engine.rules import load_rules
from tierstream.preflight import TopicFacts, assigned_line, check_layout, startup_line
from tierstream.settings import Settings

P = "p."
BAL, TXN, PRO = f"{P}bank.balances", f"{P}bank.transactions", f"{P}bank.profiles"
INPUTS = [BAL, TXN, PRO]
OUTPUTS = [
    f"{P}tier.changes",
    f"{P}tier.opportunities",
    f"{P}customer.churn-warnings",
    f"{P}tierstream.dlq",
]
CHANGELOG = "app-customers-changelog"


def settings(partitions: int = 4, create_topics: bool = False) -> Settings:
    return Settings(
        broker_url="kafka://10.0.0.5:9093",
        topic_prefix=P,
        app_id="app",
        partitions=partitions,
        create_topics=create_topics,
    )


def layout(
    inputs: tuple[int | None, int | None, int | None] = (4, 4, 4),
    outputs: int | None = 4,
    policy: str | None = None,
    changelog: int | None = None,
) -> dict[str, TopicFacts]:
    """Existing topics: None leaves a topic out."""
    found = {t: TopicFacts(n) for t, n in zip(INPUTS, inputs, strict=True) if n is not None}
    if outputs is not None:
        found.update({t: TopicFacts(outputs, policy) for t in OUTPUTS})
    if changelog is not None:
        found[CHANGELOG] = TopicFacts(changelog, "compact")
    return found


@dataclass
class Case:
    name: str
    found: dict[str, TopicFacts]
    partitions: int = 4
    create_topics: bool = False
    stored: set[int] = field(default_factory=set)
    refusals: list[list[str]] = field(default_factory=list)  # per refusal: phrases it contains
    warnings: list[list[str]] = field(default_factory=list)
    create: list[str] = field(default_factory=list)


CASES = [
    Case("all as configured", layout()),
    Case("a changelog of the same count", layout(changelog=4), stored={0, 1, 2, 3}),
    Case(
        "inputs of 6, setting 4 (the issue's bank)",
        layout(inputs=(6, 6, 6), outputs=6),
        refusals=[
            [
                f"input topics {BAL}, {TXN}, {PRO} have 6 partitions but TIERSTREAM_PARTITIONS is 4",
                "set TIERSTREAM_PARTITIONS=6, or re-partition with export/bootstrap",
            ]
        ],
        warnings=[["another partition count than TIERSTREAM_PARTITIONS (4)", f"{OUTPUTS[0]} 6"]],
    ),
    Case(
        "inputs of 6 and setting 6: runs",
        layout(inputs=(6, 6, 6), outputs=6),
        partitions=6,
    ),
    Case(
        "inputs that differ from each other",
        layout(inputs=(6, 4, 6)),
        refusals=[
            [f"different partition counts ({BAL} 6, {TXN} 4, {PRO} 6)", "cannot be merged per partition"]
        ],
    ),
    Case(
        "inputs that differ, one of them matching the setting",
        layout(inputs=(4, 4, 8)),
        refusals=[[f"({BAL} 4, {TXN} 4, {PRO} 8)"]],
    ),
    Case(
        "a changelog written for 8 partitions",
        layout(changelog=8),
        refusals=[
            [
                f"changelog topic {CHANGELOG} has 8 partitions",
                "TIERSTREAM_PARTITIONS=8",
                "new TIERSTREAM_APP_ID",
            ]
        ],
    ),
    Case(
        "a changelog written for 2 partitions (more partitions now)",
        layout(inputs=(8, 8, 8), outputs=8, changelog=2),
        partitions=8,
        refusals=[["has 2 partitions but TIERSTREAM_PARTITIONS is 8"]],
    ),
    Case(
        "a local store holding partitions beyond the setting",
        layout(),
        stored={0, 5, 7},
        refusals=[["holds partition 7", "at least 8 partitions"]],
    ),
    Case("a local store within the setting", layout(), stored={0, 3}),
    Case(
        "one input missing",
        layout(inputs=(None, 4, 4)),
        refusals=[
            [
                f"input topic {BAL} does not exist",
                "create it with 4 partitions",
                f"kafka-topics.sh --bootstrap-server 10.0.0.5:9093 --create --topic {BAL} --partitions 4",
                "--create-topics",
            ]
        ],
    ),
    Case(
        "every input missing",
        layout(inputs=(None, None, None), outputs=None),
        refusals=[[f"input topics {BAL}, {TXN}, {PRO} do not exist", "create each with 4 partitions"]],
        create=OUTPUTS,
    ),
    Case(
        "one input missing, the others of 6: create it with 6, and set the partitions to 6",
        layout(inputs=(6, 6, None)),
        refusals=[
            [f"input topic {PRO} does not exist", "create it with 6 partitions"],
            [f"input topics {BAL}, {TXN} have 6 partitions", "TIERSTREAM_PARTITIONS=6"],
        ],
    ),
    Case(
        "missing inputs with --create-topics",
        layout(inputs=(None, None, None), outputs=None),
        create_topics=True,
        create=INPUTS + OUTPUTS,
    ),
    Case(
        "--create-topics beside inputs of another count creates nothing",
        layout(inputs=(6, None, 6)),
        create_topics=True,
        refusals=[[f"input topics {BAL}, {PRO} have 6 partitions", "TIERSTREAM_PARTITIONS=6"]],
        create=[TXN],  # listed, but a refusal stops the run before anything is created
    ),
    Case("missing outputs are created", layout(outputs=None), create=OUTPUTS),
    Case(
        "compacted outputs",
        layout(policy="compact"),
        warnings=[[f"output topics {', '.join(OUTPUTS)} are compacted", "cleanup.policy=delete"]],
    ),
    Case(
        "compact,delete outputs",
        layout(policy="compact,delete"),
        warnings=[["are compacted"]],
    ),
    Case("delete outputs", layout(policy="delete")),
    Case(
        "outputs of another count and compacted: two warnings, no refusal",
        layout(outputs=8, policy="compact"),
        warnings=[[f"{OUTPUTS[3]} 8"], ["compacted"]],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check_layout(case: Case) -> None:
    verdict = check_layout(
        settings(case.partitions, case.create_topics), case.found, case.stored, "/data/tables"
    )
    assert len(verdict.refusals) == len(case.refusals), verdict.refusals
    for message, phrases in zip(verdict.refusals, case.refusals, strict=True):
        assert "\n" not in message
        for phrase in phrases:
            assert phrase in message
    assert len(verdict.warnings) == len(case.warnings), verdict.warnings
    for message, phrases in zip(verdict.warnings, case.warnings, strict=True):
        assert "\n" not in message
        for phrase in phrases:
            assert phrase in message
    assert verdict.create == case.create


def test_a_store_refusal_names_the_directory() -> None:
    verdict = check_layout(settings(), layout(), {4}, "/data/app-data/v1/tables")
    assert "the local table store /data/app-data/v1/tables holds partition 4" in verdict.refusals[0]


def test_startup_line_names_broker_app_rules_topics_and_store() -> None:
    rules = load_rules("cmb")
    line = startup_line(settings(), rules, layout())
    assert "\n" not in line
    for phrase in (
        "broker kafka://10.0.0.5:9093",
        "app id app",
        f"rules {rules.scheme} {rules.version}",
        f"inputs {BAL} (4), {TXN} (4), {PRO} (4)",
        f"outputs {OUTPUTS[0]} (4)",
        f"changelog {CHANGELOG} (new: 4)",
        "store memory://",
    ):
        assert phrase in line
    assert f"changelog {CHANGELOG} (4)" in startup_line(settings(), rules, layout(changelog=4))


@pytest.mark.parametrize(
    ("assigned", "expected"),
    [
        (
            [(BAL, 3), (TXN, 3), (PRO, 3), (BAL, 1), (TXN, 1), (PRO, 1), (CHANGELOG, 0)],
            "partitions assigned: 1, 3 of 4 (2 of each input topic",
        ),
        ([(CHANGELOG, 2)], "partitions assigned: none of 4 (0 of each input topic"),
        ([], "partitions assigned: none of 4"),
    ],
)
def test_assigned_line(assigned: list[tuple[str, int]], expected: str) -> None:
    assert assigned_line(settings(), assigned).startswith(expected)
