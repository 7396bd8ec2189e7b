"""The worker's HTTP pages: /metrics, /health, /ready and the bearer-guarded customers API.

Faust makes a handler the `get` of a View class; ours are bound methods, so they
receive only the request and answer through the app's web driver.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from ..serving import customer_fields
from ..tools.explain import explain
from . import merge

if TYPE_CHECKING:
    from .wiring import Worker

log = logging.getLogger("tierstream.worker")


def bearer_refusal(authorization: str, token: bytes) -> tuple[str, int] | None:
    """Why a request is refused (message, status), or None: a constant-time check of
    `Authorization: Bearer <token>`; no token configured refuses everything."""
    if not token:
        return "set TIERSTREAM_API_TOKEN to enable /customers", 403
    if not authorization.startswith("Bearer ") or not hmac.compare_digest(
        authorization[7:].encode("utf-8"), token
    ):
        return "a valid bearer token is required", 401
    return None


def guarded(token: bytes, handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Bearer-token check on every hop, before routing to the owner. The customer id is
    logged; a customer's figures never are."""

    async def view(view: Any, request: Any, **kwargs: Any) -> Any:
        refused = bearer_refusal(request.headers.get("Authorization", ""), token)
        if refused is not None:
            message, status = refused
            return view.json({"error": message}, status=status)
        log.info("customer request for %s", kwargs.get("customer_id"))
        return await handler(view, request, **kwargs)

    return view


def lag(high: int, acked: int) -> int:
    """Records not yet done below the high watermark (`acked`: the highest done offset, -1: none)."""
    return max(0, high - (acked + 1))


def tables_recovered(app: Any, rebalancing: bool) -> bool:
    """The tables of the current assignment are recovered. Faust sets
    `recovery.completed` after the first recovery and never clears it, so after a later
    rebalance it says nothing about partitions still being read from the changelog;
    `rebalancing` is the worker's own flag, set at each revocation (and at start) and
    cleared by Faust's `on_rebalance_complete` (sent once recovery is done, before the
    streams resume). Reading a partition's marker mid-recovery gave it a stale clock
    and offsets (docs/decisions.md 68)."""
    return bool(app.tables.recovery.completed.is_set() and not rebalancing)


class Pages:
    """The pages of one worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app

    def install(self) -> None:
        signals: Any = self.app  # Faust's stubs want unbound view functions
        signals.page("/metrics")(self.metrics_page)
        signals.page("/health")(self.health_page)
        signals.page("/ready")(self.ready_page)
        token = self.worker.settings.api_token.get_secret_value().encode("utf-8")
        route = signals.table_route(table=self.worker.table, match_info="customer_id")
        signals.page("/customers/{customer_id}")(guarded(token, route(self.customer_view)))
        signals.page("/customers/{customer_id}/explain")(guarded(token, route(self.explain_view)))

    async def metrics_page(self, request: Any) -> Any:
        self.update_lag()
        body, content_type = self.worker.metrics.render()
        return self.app.web.bytes(body, content_type=content_type.split(";")[0])

    async def health_page(self, request: Any) -> Any:
        return self.app.web.json({"status": "ok"})

    def assignment(self) -> set[TP]:
        """The partitions assigned, or none while the consumer is still starting (a scrape
        or a readiness probe may come first; Faust raises then)."""
        try:
            assigned: set[TP] = self.app.consumer.assignment()
        except ConsumerNotStarted:
            return set()
        return assigned

    def recovered(self) -> bool:
        return tables_recovered(self.app, self.worker.rebalancing)

    async def ready_page(self, request: Any) -> Any:
        web = self.app.web
        assigned = self.assignment()
        recovered = self.recovered()
        ok = bool(self.worker.ready and assigned and recovered)
        return web.json(
            {"ready": ok, "assigned": len(assigned), "recovered": recovered, "merge": self.merge_state()},
            status=200 if ok else 503,
        )

    def merge_state(self) -> dict[str, Any]:
        """Per partition held: what the merge buffers and what it waits for."""
        worker = self.worker
        return {
            str(number): merge.describe(part, worker.highwater_of(number))
            for number, part in sorted(worker.partitions.items())
        }

    async def customer_view(self, view: Any, request: Any, customer_id: str) -> Any:
        """GET /customers/{id}: tier, segments and metrics, from this worker's table."""
        found = self.worker.owned(customer_id)
        if found is None:
            return view.json({"error": f"no customer {customer_id}"}, status=404)
        part, c = found
        rules = self.worker.rules
        ev = part.engine.evaluator
        fields = customer_fields(part.engine, c, rules)
        return view.json(
            {
                "customer_id": customer_id,
                "tier": fields["tier"],
                "since": fields["since"],
                **ev.serving_segments(c),  # lifecycle, rfm, grid as Redis serves them
                "rules_version": rules.version,
                "as_of": part.engine.calendar.isoformat(c.last_instant),
                "metrics": ev.render_metrics(c, ev.churn_metrics),
            }
        )

    async def explain_view(self, view: Any, request: Any, customer_id: str) -> Any:
        """GET /customers/{id}/explain: the `tierstream explain` document (outputs are in
        the output topics, not the tables, so the list is empty here)."""
        found = self.worker.owned(customer_id)
        if found is None:
            return view.json({"error": f"no customer {customer_id}"}, status=404)
        part, _ = found
        return view.json(explain(part.engine, customer_id, []))

    def update_lag(self) -> None:
        worker = self.worker
        consumer = self.app.consumer
        recovered = self.recovered()
        for tp in self.assignment():
            if tp.topic not in worker.topic_index:
                continue
            try:
                high = consumer.highwater(tp)
            except Exception:
                continue
            if high is None:
                continue
            part = worker.partitions.get(tp.partition)
            if part is None and recovered:
                part = worker.partition(tp.partition)  # its marker knows what was applied
            done = -1
            if part is not None:
                done = part.acked.get(tp.topic, -1)
            worker.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag(high, done))
