"""What `tierstream run` checks before its worker joins the group: are the topics laid out
as the worker needs them?

A worker merges partition p of its three input topics into one engine and keeps the
customers table with one changelog partition per input partition. On topics of another
layout it crashes (a record on a partition the table does not have) or idles silently,
and on a table written for another layout it misreads state. So those are refused here,
each as one line naming the fix; what merely goes against the docs' advice is a warning.

Pure: the broker's facts are read by `kafkaio.describe_topics` and acted on by `worker.run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine.rules import Rules
    from .settings import Settings

#: The logger of the worker's start-up and assignment lines: shown at every log level.
LIFECYCLE_LOGGER = "tierstream.lifecycle"

_DOCS = "docs/operations.md, 'Topics'"


@dataclass(frozen=True)
class TopicFacts:
    """What the broker says about one existing topic."""

    partitions: int
    #: `cleanup.policy` when the broker reports it; None: not set (the default, delete) or unknown
    cleanup_policy: str | None = None


@dataclass
class Verdict:
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: missing topics the worker creates, with `settings.partitions` partitions
    create: list[str] = field(default_factory=list)


def _names(topics: Sequence[str]) -> str:
    return ", ".join(topics)


def _plural(topics: Sequence[str], one: str, many: str) -> str:
    return one if len(topics) == 1 else many


def check_layout(
    settings: Settings,
    found: Mapping[str, TopicFacts],
    stored_partitions: Iterable[int] = (),
    state_dir: str = "",
) -> Verdict:
    """Refusals, warnings and topics to create, given the existing topics (`found`) and the
    partition numbers of the customers table kept in the local store (`state_dir`)."""
    verdict = Verdict()
    want = settings.partitions
    inputs = settings.input_topics
    missing = [t for t in inputs if t not in found]
    # Missing inputs created here get `want` partitions: the existing ones must agree with it.
    counts = {t: found[t].partitions for t in inputs if t in found}
    if missing and settings.create_topics:
        verdict.create += missing
    elif missing:
        existing = set(counts.values())
        # Created to match the inputs that exist, when they agree (their count is then advised below).
        n = existing.pop() if len(existing) == 1 else want
        host = settings.bootstrap_servers[0] if settings.bootstrap_servers else "HOST:9092"
        verdict.refusals.append(
            f"input {_plural(missing, 'topic', 'topics')} {_names(missing)} "
            f"{_plural(missing, 'does', 'do')} not exist (the broker would auto-create "
            f"{_plural(missing, 'it', 'them')} with its own partition count): create "
            f"{_plural(missing, 'it', 'each')} with {n} partitions, e.g. kafka-topics.sh "
            f"--bootstrap-server {host} --create --topic {missing[0]} --partitions {n}; "
            "on a development broker, `tierstream run --create-topics` creates them"
        )
    if len(set(counts.values())) > 1:
        layout = ", ".join(f"{t} {n}" for t, n in counts.items())
        verdict.refusals.append(
            f"input topics have different partition counts ({layout}) and cannot be merged per "
            "partition: give them one partition count (e.g. mirror the odd ones into new topics) "
            "and set TIERSTREAM_PARTITIONS to it"
        )
    elif counts and (n := next(iter(counts.values()))) != want:
        topics = list(counts)
        verdict.refusals.append(
            f"input {_plural(topics, 'topic', 'topics')} {_names(topics)} "
            f"{_plural(topics, 'has', 'have')} {n} partitions but TIERSTREAM_PARTITIONS is "
            f"{want}: set TIERSTREAM_PARTITIONS={n}, or re-partition with export/bootstrap"
        )
    changelog = found.get(settings.changelog_topic)
    if changelog is not None and changelog.partitions != want:
        verdict.refusals.append(
            f"changelog topic {settings.changelog_topic} has {changelog.partitions} partitions "
            f"but TIERSTREAM_PARTITIONS is {want}: the tables of app id {settings.app_id!r} were "
            f"written for {changelog.partitions} partitions and would be misread; run with "
            f"TIERSTREAM_PARTITIONS={changelog.partitions}, or move the state to a new "
            "TIERSTREAM_APP_ID with export/bootstrap"
        )
    beyond = sorted(p for p in set(stored_partitions) if p >= want)
    if beyond:
        verdict.refusals.append(
            f"the local table store {state_dir or '(tabledir)'} holds partition {beyond[-1]} of "
            f"the customers table but TIERSTREAM_PARTITIONS is {want}: it was written for at "
            f"least {beyond[-1] + 1} partitions and would be misread; run with the count it was "
            "written with, or start from an empty store under a new TIERSTREAM_APP_ID "
            "(export/bootstrap moves the state)"
        )
    outputs = settings.output_topics
    verdict.create += [t for t in outputs if t not in found]
    other_count = [t for t in outputs if t in found and found[t].partitions != want]
    if other_count:
        layout = ", ".join(f"{t} {found[t].partitions}" for t in other_count)
        verdict.warnings.append(
            f"output {_plural(other_count, 'topic has', 'topics have')} another partition count "
            f"than TIERSTREAM_PARTITIONS ({want}): {layout}; the docs advise the inputs' count, "
            f"so consumers scale as the workers do ({_DOCS}); running on"
        )
    compacted = [t for t in outputs if t in found and "compact" in (found[t].cleanup_policy or "")]
    if compacted:
        verdict.warnings.append(
            f"output {_plural(compacted, 'topic', 'topics')} {_names(compacted)} "
            f"{_plural(compacted, 'is', 'are')} compacted: each output is an event consumers "
            "need, and compaction keeps only a customer's last one; set cleanup.policy=delete "
            f"with a retention ({_DOCS}); running on"
        )
    return verdict


def startup_line(settings: Settings, rules: Rules, found: Mapping[str, TopicFacts]) -> str:
    """The worker's first log line: what it runs, against what, as a person checks it."""

    def counted(topics: Iterable[str]) -> str:
        return ", ".join(f"{t} ({found[t].partitions})" if t in found else f"{t} (absent)" for t in topics)

    changelog = settings.changelog_topic
    table = (
        f"{changelog} ({found[changelog].partitions})"
        if changelog in found
        else f"{changelog} (new: {settings.partitions})"
    )
    return (
        f"starting: broker {settings.broker_url}, app id {settings.app_id}, "
        f"rules {rules.scheme} {rules.version} ({rules.source}), "
        f"inputs {counted(settings.input_topics)}, outputs {counted(settings.output_topics)}, "
        f"changelog {table}, store {settings.store}, partitions {settings.partitions}"
    )


def assigned_line(settings: Settings, assigned: Iterable[tuple[str, int]]) -> str:
    """What a (re)assignment gave this worker: input partitions by number (the three input
    topics are co-partitioned; changelog partitions follow them)."""
    inputs = set(settings.input_topics)
    numbers = sorted({p for t, p in assigned if t in inputs})
    taken = ", ".join(str(p) for p in numbers) if numbers else "none"
    return (
        f"partitions assigned: {taken} of {settings.partitions} "
        f"({len(numbers)} of each input topic: {_names(settings.input_topics)})"
    )
