"""cycleml's HTTP service (BentoML): the registry's champion, scored through cycleml.

    make serve                    # 127.0.0.1:3000, or `make serve PORT=3100`
    curl -s localhost:3000/predict -H 'content-type: application/json' \\
         -d '{"records": [{"tenure_months": 3, "contract": "Month-to-month", ...}]}'

The request schema is generated from the served model's own schema, so a missing, extra
or mistyped field is a 400 naming it. The edge (cycleml.serve.edge) answers first: wrong
Host, unknown path, oversized or non-JSON bodies; cycleml.serve.connections bounds
connections and how long a request may take to arrive. Every answer is logged (off the
request path) with its request id for `POST /feedback`. The alias is re-checked every
`serving.reload_seconds` (or on `POST /admin/reload` with the admin token) and a newly
promoted version is swapped in atomically; a version that fails to load leaves the old
one serving.
"""

from __future__ import annotations

import gc
import hmac
import logging
import os
import random
import sys
import time
from http import HTTPStatus
from typing import Any

import anyio
import bentoml
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from cycleml.config import load_params
from cycleml.model.registry import NotApproved
from cycleml.model.tracking import StoreError, configure, redact, tracking_uri
from cycleml.paths import project_paths
from cycleml.serve import served as serving
from cycleml.serve import tasks
from cycleml.serve.connections import install
from cycleml.serve.edge import Edge, Routes
from cycleml.serve.follower import AliasFollower, load_approved
from cycleml.serve.labels import BadLabels, check_labels
from cycleml.serve.predlog import LabelConflict, LogUnavailable, PredictionLog, UnknownRequest

log = logging.getLogger("cycleml.service")
PARAMS = load_params(os.environ.get("CYCLEML_PARAMS", "params.yaml"))
PATHS = project_paths()
tasks.install(PATHS)  # /predict_async's store: in the project, 0600, without headers
MODEL_NAME = PARAMS.register_.model_name
REF = "@" + PARAMS.serving.alias
CHALLENGER = PARAMS.serving.challenger
# a registry that does not answer fails fast at start-up (the alias check retries later)
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _startup_version() -> serving.Served:
    """The version to serve, or a one-paragraph error and exit status 1 (also when the
    alias names a version the registry has not approved)."""
    try:
        return load_approved(configure(PARAMS.tracking, PATHS), MODEL_NAME, REF)
    except NotApproved as err:
        sys.stderr.write(f"cycleml service: will not serve {MODEL_NAME}: {err}\n")
        raise SystemExit(1) from None
    except Exception as err:  # noqa: BLE001 - any failure here means "cannot start"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        # every URI shown has its secrets masked; a StoreError names its store itself
        store = tracking_uri(PARAMS.tracking, PATHS)
        where = "" if isinstance(err, StoreError) else f" from the MLflow store {redact(store)}"
        sys.stderr.write(
            f"cycleml service: cannot load {MODEL_NAME} {REF}{where}: {redact(first)}\n"
            "  check MLFLOW_TRACKING_URI (or tracking.tracking_uri) and that the store is up; "
            "a fresh project needs `dvc repro` (or `make run`) to register a champion first\n"
        )
        raise SystemExit(1) from None


# the request schema comes from the version served at start-up
STARTUP = _startup_version()
Record = serving.record_model(STARTUP.schema)
Records = serving.records_type(Record, PARAMS.serving.max_records)


class Answer(BaseModel):
    """A /predict answer. A model class, not a dict: BentoML then knows the response is
    JSON without rebuilding its JSON schema on every response."""

    model_name: str
    model_version: str
    predictions: list[dict[str, Any]]


class Feedback(BaseModel):
    """One true label for an earlier answer; the label is checked against the served
    model's classes (or finite numbers) by the endpoint, which can name the position."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=64)
    label: str | int | float | bool


FEEDBACK_THREADS = anyio.CapacityLimiter(2)
"""/feedback's database work runs on these threads, never on the event loop or the
thread /predict_one's batches use, so a slow or waiting feedback holds up no prediction."""


PREDICTIONS = bentoml.metrics.Counter(
    name="cycleml_predictions_total",
    documentation="predictions served, by model version and predicted class",
    labelnames=["model_version", "prediction"],
)
LATENCY = bentoml.metrics.Histogram(
    name="cycleml_predict_seconds",
    documentation="time to score one /predict request",
    labelnames=["model_version"],
)
REGISTRY_UP = bentoml.metrics.Gauge(
    name="cycleml_registry_reachable",
    documentation="1 when the last alias check reached the MLflow registry, else 0",
)
LOG_FAILURES = bentoml.metrics.Counter(
    name="cycleml_prediction_log_failures_total",
    documentation="batches the prediction log could not write yet (retried)",
)

app = FastAPI(title="cycleml")
INLINE_RECORDS = 64
"""/predict scores this many records on the event loop; larger requests on a thread, so
they never hold up other connections."""


WARM_REQUESTS = 500
"""After this many requests the heap is frozen again: BentoML and its libraries import
and cache lazily on the first requests, and the collector would walk all that too."""


def _freeze_heap() -> None:
    """Keep the garbage collector off the loaded model and libraries: without this, every
    full collection walks millions of long-lived objects and stalls a request for 100+ ms
    (the p99). What requests allocate is still collected."""
    gc.collect()
    gc.freeze()


@bentoml.service(
    http={"host": PARAMS.serving.host, "port": PARAMS.serving.port},
    workers=PARAMS.serving.workers,
    # per-request extras cost more than scoring a record; both can be turned back on
    logging={"access": {"enabled": PARAMS.serving.access_log}},
    tracing={} if PARAMS.serving.tracing else {"excluded_urls": "/"},
)
@bentoml.asgi_app(app)
class CycleML:
    def __init__(self) -> None:
        self.models = AliasFollower(
            configure(PARAMS.tracking, PATHS),
            MODEL_NAME,
            PARAMS.serving.alias,
            challenger=CHALLENGER.alias if CHALLENGER.mode != "off" else None,
            shadow=CHALLENGER.mode == "shadow",
            on_status=lambda reachable: REGISTRY_UP.set(1 if reachable else 0),
            on_swap=_freeze_heap,
            served=STARTUP,  # loaded once per process, for the request schema and to serve
        )
        self.log = PredictionLog(
            PATHS.database_url(PARAMS.serving.prediction_log),
            max_backlog=PARAMS.serving.max_log_backlog,
        )
        self._random = random.Random()
        self._answered = 0
        self._reported_failures = 0
        if PARAMS.serving.reload_seconds:
            self.models.follow(PARAMS.serving.reload_seconds)
        _freeze_heap()

    # --- scoring ------------------------------------------------------------------------

    @bentoml.api(route="/predict")
    async def predict(self, records: Records) -> Answer:  # type: ignore[valid-type]
        """Score records: prediction, probabilities, decision, model version, request id."""
        if len(records) <= INLINE_RECORDS:  # well under a millisecond: no thread hop
            return Answer(**self._predict(records))
        return Answer(**await anyio.to_thread.run_sync(self._predict, records))

    @bentoml.api(
        route="/predict_one",
        batchable=True,
        max_batch_size=PARAMS.serving.max_batch_size,
        max_latency_ms=PARAMS.serving.max_latency_ms,
    )
    def predict_one(self, records: Records) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        """Single-record traffic, adaptively batched: concurrent requests are scored together
        (a list of records in, one answer per record out)."""
        answers: list[dict[str, Any]] = self._predict(records)["predictions"]
        return answers

    @bentoml.task(route="/predict_async")
    def predict_async(self, records: Records) -> dict[str, Any]:  # type: ignore[valid-type]
        """The same scoring for large payloads: submit, poll status, fetch the result
        (`/predict_async/submit`, `/status?task_id=`, `/get?task_id=`)."""
        return self._predict(records)

    def _predict(self, records: list[Any]) -> dict[str, Any]:
        if not records:  # more than serving.max_records: refused by the Records type
            raise bentoml.exceptions.InvalidArgument("records: send at least one record")
        # one version per request, even during a swap
        served, shadow = serving.route(
            self.models.served,
            self.models.challenger,
            CHALLENGER.mode,
            CHALLENGER.canary_share,
            self._random.random(),
        )
        rows = [r.model_dump() for r in records]
        self._answered += 1
        if self._answered == WARM_REQUESTS:  # what the first requests imported and cached
            _freeze_heap()
        started = time.perf_counter()
        answers = serving.score(served, rows)
        LATENCY.labels(model_version=served.version).observe(time.perf_counter() - started)
        for answer in answers:
            PREDICTIONS.labels(
                model_version=served.version,
                prediction=serving.prediction_label(served.schema, answer["prediction"]),
            ).inc()
        self.log.add(served.name, rows, answers)
        if shadow is not None:
            self._shadow(shadow, rows, answers)
        self._report_log_failures()
        return {"model_name": served.name, "model_version": served.version, "predictions": answers}

    def _shadow(
        self, shadow: serving.Served, rows: list[dict[str, Any]], answers: list[dict[str, Any]]
    ) -> None:
        """Score with the challenger and log it beside the served answers, never returned."""
        try:
            shadowed = serving.score(shadow, rows)
        except Exception as err:  # noqa: BLE001 - a broken challenger never hurts a client
            log.warning("shadow v%s failed: %s", shadow.version, err)
            return
        for mine, served in zip(shadowed, answers, strict=True):
            mine["request_id"] = f"{served['request_id']}:shadow"
        self.log.add(shadow.name, rows, shadowed, role="shadow")

    @bentoml.api(route="/feedback")
    async def feedback(self, items: list[Feedback]) -> dict[str, Any]:
        """Ground-truth labels for earlier request ids (they arrive late in real life).

        All or nothing: a 400 (too many items, a label the served model cannot take), 404
        (an unknown request id) or 409 records none of the items. A label is final: the
        same label again is accepted, so a retried request is harmless; another label for
        an id that has one is a 409. Errors name positions, never the values sent.
        """
        limit = PARAMS.serving.max_feedback_items
        if len(items) > limit:
            raise bentoml.exceptions.InvalidArgument(
                f"items: {len(items)} items, more than serving.max_feedback_items={limit}; "
                "split the request"
            )
        try:
            labels = check_labels(self.models.served.schema, [item.label for item in items])
        except BadLabels as err:
            raise bentoml.exceptions.InvalidArgument(str(err)) from None
        pairs = [(item.request_id, label) for item, label in zip(items, labels, strict=True)]
        try:
            await anyio.to_thread.run_sync(self.log.record_labels, pairs, limiter=FEEDBACK_THREADS)
        except UnknownRequest as err:
            raise bentoml.exceptions.NotFound(
                f"items[].request_id: {len(err.positions)} of {len(items)} id(s) unknown to "
                f"the prediction log (items {err.positions[:5]}); nothing was recorded: use "
                "the request_id of a /predict answer (one a moment old: retry shortly)"
            ) from None
        except LabelConflict as err:
            raise bentoml.exceptions.BentoMLException(
                f"items[{err.positions[0]}].label: {len(err.positions)} item(s) (items "
                f"{err.positions[:5]}) give a request id another label than it has (or had "
                "earlier in this request); a label is final, nothing was recorded",
                error_code=HTTPStatus.CONFLICT,
            ) from None
        except LogUnavailable as err:
            log.warning("/feedback: %s", err)
            raise bentoml.exceptions.ServiceUnavailable("the prediction log") from None
        return {"recorded": len(items)}

    # --- metadata and administration ---------------------------------------------------

    @app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
        """The served version (name, alias, run, data hashes, commit, inputs), the prediction
        log's counters, and whether the registry answered the last alias check."""
        return {
            **self.models.served.metadata(),
            "prediction_log": self.log.stats.__dict__,
            "registry": self.models.registry,
        }

    @app.post("/admin/reload")
    def admin_reload(self, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        """Re-read the alias now and swap to its version (needs the admin token)."""
        expected = os.environ.get(PARAMS.serving.admin_token_env, "")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not expected:
            raise HTTPException(403, f"admin actions are off: set {PARAMS.serving.admin_token_env}")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(401, "a valid admin token is required (Authorization: Bearer …)")
        before = self.models.served.version
        self.models.reload()
        return {"before": before, "now": self.models.served.version}

    def _report_log_failures(self) -> None:
        failures = self.log.stats.failed_writes
        if failures > self._reported_failures:
            LOG_FAILURES.inc(failures - self._reported_failures)
            self._reported_failures = failures

    @bentoml.on_shutdown
    def close(self) -> None:
        self.models.stop()
        self.log.close()


HOSTS = {"127.0.0.1", "localhost", "::1", PARAMS.serving.host, *PARAMS.serving.allowed_hosts}
TOO_MANY = (
    f"at most serving.max_records={PARAMS.serving.max_records} records per request: split it "
    "or use `cycleml predict` for files"
)


def _edge(app: Any, inner: Any) -> Edge:
    """The edge in front of BentoML's application (``inner``, whose routes it answers):
    Host, route, size and type checks before anything else runs; documented errors."""
    return Edge(
        app,
        routes=Routes(inner.routes),
        hosts=HOSTS,
        max_bytes=PARAMS.serving.max_body_bytes,
        advice={"too_long": TOO_MANY},
    )


# connection limits and deadlines, and the edge outside BentoML's middlewares
install(_edge, PARAMS.serving.read_timeout_seconds, PARAMS.serving.max_connections)
