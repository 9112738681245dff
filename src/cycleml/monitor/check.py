"""Monitoring: production data and predictions against the reference profile.

A *window* of current rows (the prediction log by row count, time or model version, or
a file scored with a registered version) is compared with that version's reference
profile (held-out rows and their predictions, saved at training time):

* **data drift**, per feature column: drifted when the shift is both large (Evidently's
  normed Wasserstein distance for numbers, Jensen-Shannon distance for categories, above
  0.1) and significant (K-S or chi-squared p below ``monitor.significance``); the share of
  drifted columns (``monitor.drift_share`` or more is dataset drift);
* **prediction drift**: the population stability index (PSI) of the model's output,
  above ``monitor.prediction_psi`` and unlikely by chance for the window's size;
* **data quality** of the incoming rows: missing values and categories the reference
  never had, per column;
* **model quality** (concept drift), on the rows whose labels have arrived: the task's
  metrics against the same metrics on the reference; a worsening beyond
  ``monitor.max_quality_drop`` is degradation.

The verdict is ``degraded`` (the model is worse), else ``drift`` (inputs or predictions
moved), else ``ok``; the command's exit code says it to a scheduler. Evidently runs on a
seeded sample of at most ``monitor.max_rows`` rows per side (its tests are slow on
millions of rows and gain nothing from them); quality metrics use every labelled row.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cycleml.config import DataParams, MonitorParams, Params
from cycleml.data.schema import Schema
from cycleml.evaluation.metrics import advantage, task_metrics
from cycleml.monitor.reference import canonical_target, with_predictions
from cycleml.names import REFERENCE_ARTIFACT as ARTIFACT
from cycleml.paths import Paths
from cycleml.scoring.batch import prepare_inputs
from cycleml.scoring.loaded import LoadedModel

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "EXIT_CODES",
    "MonitorError",
    "MonitorResult",
    "check",
    "from_file",
    "from_log",
    "load_reference",
    "parse_since",
    "psi",
    "run",
    "write_outputs",
]

OK, DRIFT, DEGRADED = "ok", "drift", "degraded"
EXIT_CODES = {OK: 0, DRIFT: 3, DEGRADED: 4}
"""Exit status per verdict (1 is an error, 2 bad usage), for cron and CI."""
_PSI_BINS = 10
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class MonitorError(ValueError):
    """A window or reference that cannot be monitored (empty, wrong columns, no profile)."""


@dataclass
class MonitorResult:
    verdict: str
    model_name: str
    model_version: str
    window: str
    rows: int
    labelled_rows: int
    reference_rows: int
    sampled_rows: int | None
    """Rows per side the drift tests ran on, when the window was sampled."""
    drift: dict[str, Any] = field(default_factory=dict)
    prediction: dict[str, Any] = field(default_factory=dict)
    data_quality: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def metrics(self) -> dict[str, Any]:
        """The flat numbers `dvc metrics show` tabulates."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "drifted_columns": len(self.drift.get("drifted", [])),
            "drift_share": self.drift.get("share"),
            "prediction_psi": self.prediction.get("psi"),
        }
        for metric, info in self.quality.get("metrics", {}).items():
            out[f"{metric}_current"] = info["current"]
            out[f"{metric}_reference"] = info["reference"]
        return out


# --- the current window ---------------------------------------------------------------


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``30m``, ``7d``, ``2w`` ago, or an ISO date/time, as a Unix time."""
    now = time.time() if now is None else now
    if match := _SINCE.match(text.strip()):
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise MonitorError(
            f"--since {text!r}: use a duration such as 24h, 30m, 7d, or an ISO date "
            "such as 2026-11-20 or 2026-11-20T08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _decode(texts: pd.Series) -> list[Any]:
    """JSON texts to Python values (one C-level parse per value)."""
    import orjson

    return [orjson.loads(t) if t is not None else None for t in texts]


def _json_columns(texts: pd.Series, schema: pa.Schema) -> pd.DataFrame:
    """JSON objects, one per text, as columns of ``schema``'s types, parsed by Arrow in
    C++ (fields outside the schema are ignored; absent ones are null)."""
    import io

    import pyarrow.json as pj

    data = ("\n".join(texts)).encode()
    table = pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, 1 << 28))),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _log_types(model: LoadedModel) -> tuple[pa.Schema, pa.Schema]:
    """The Arrow types of a logged request record and of a logged answer."""
    schema = model.schema
    numeric = set(schema.numeric)
    inputs = pa.schema(
        [pa.field(c, pa.float64() if c in numeric else pa.string()) for c in schema.inputs]
    )
    if schema.task == "regression":
        answer = pa.schema([pa.field("prediction", pa.float64())])
    else:
        probabilities = pa.struct([pa.field(c, pa.float64()) for c in schema.classes])
        answer = pa.schema(
            [pa.field("prediction", pa.string()), pa.field("probabilities", probabilities)]
        )
    return inputs, answer


def _window_rows(raw: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """One chunk of log rows as a table: inputs, outputs, label, time and request id."""
    input_types, answer_types = _log_types(model)
    rows = _json_columns(raw["inputs"], input_types)
    answers = _json_columns(raw["outputs"], answer_types)
    rows["prediction"] = answers["prediction"].to_numpy()
    if "probabilities" in answers:
        for cls in model.schema.classes:
            rows[f"probability_{cls}"] = [
                p.get(cls) if isinstance(p, dict) else None for p in answers["probabilities"]
            ]
    rows["_label"] = _decode(raw["label"])
    rows["_ts"] = raw["ts"].to_numpy()
    rows["_request_id"] = raw["request_id"].to_numpy()
    return rows


def from_log(
    url: str,
    model_name: str,
    load: Callable[[str], LoadedModel],
    *,
    last: int | None = None,
    since: float | None = None,
    version: str | None = None,
    chunk_rows: int = 100_000,
) -> tuple[pd.DataFrame, LoadedModel]:
    """Served predictions from the prediction log, with their labels where they arrived.

    One model version per window (a reference belongs to one version): ``version``, or
    else the version that answered the newest row; ``load`` turns it into the model.
    Returns the rows, oldest first (inputs, prediction, probabilities, ``_label``,
    ``_ts``, ``_request_id``), and the model. Read in chunks, JSON parsed by Arrow.
    """
    import sqlalchemy as sa

    from cycleml.serve.predlog import FEEDBACK, PREDICTIONS

    p, f = PREDICTIONS.c, FEEDBACK.c
    engine = sa.create_engine(url)
    chunks: list[pd.DataFrame] = []
    try:
        with engine.connect() as conn:
            base = sa.and_(p.role == "served", p.model_name == model_name)
            if version is None:
                newest = conn.execute(
                    sa.select(p.model_version).where(base).order_by(p.ts.desc()).limit(1)
                ).scalar()
                if newest is None:
                    raise MonitorError(
                        f"the prediction log ({url}) has no served predictions of "
                        f"{model_name!r} yet; send traffic first, or monitor a file "
                        "with --current"
                    )
                version = str(newest)
            query = (
                sa.select(p.request_id, p.ts, p.inputs, p.outputs, f.label)
                .select_from(PREDICTIONS.outerjoin(FEEDBACK, p.request_id == f.request_id))
                .where(base, p.model_version == version)
                .order_by(p.ts.desc())
            )
            if since is not None:
                query = query.where(p.ts >= since)
            if last is not None:
                query = query.limit(last)
            model: LoadedModel | None = None
            for raw in pd.read_sql(query, conn, chunksize=chunk_rows):
                if raw.empty:
                    continue
                model = model or load(version)
                chunks.append(_window_rows(raw, model))
    except sa.exc.OperationalError as err:
        raise MonitorError(f"cannot read the prediction log {url}: {err.orig}") from None
    finally:
        engine.dispose()
    if model is None or not chunks:
        raise MonitorError(f"no served predictions of {model_name} v{version} in this window")
    rows = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    return rows.iloc[::-1].reset_index(drop=True), model


def from_file(path: Path, model: LoadedModel, data: DataParams) -> pd.DataFrame:
    """Rows of a CSV or Parquet file, read and cleaned as ingest reads and cleans the
    source (separator, encoding, missing markers, numbers stored as text), scored by
    ``model``; its target column, when present, gives the labels."""
    from cycleml.config import FileSource
    from cycleml.data.cleaning import clean
    from cycleml.data.sources import IngestError, read_source

    options = data.source.model_dump() if isinstance(data.source, FileSource) else {}
    source = FileSource.model_validate({**options, "kind": "file", "path": str(path)})
    # every row is data to judge: keep duplicates and empty columns, drop nothing
    rules = data.clean.model_copy(update={"drop_duplicates": False, "drop_empty_columns": False})
    as_ingest = data.model_copy(update={"source": source, "clean": rules, "drop_columns": []})
    try:
        frame, _ = clean(read_source(source), as_ingest)
    except IngestError as err:
        raise MonitorError(f"--current {path}: {err}") from None
    missing = [c for c in model.schema.inputs if c not in frame.columns]
    if missing:
        raise MonitorError(
            f"{path} lacks column(s) {', '.join(missing)} that {model.name} v{model.version} "
            "was trained with; add them"
        )
    if frame.empty:
        raise MonitorError(f"{path} has no rows to monitor")
    out = with_predictions(frame, model, data.clean.na_values)
    target = data.target
    out["_label"] = frame[target].to_numpy() if target in frame.columns else None
    return out


def load_reference(client: MlflowClient, run_id: str, fallback: Path | None) -> pd.DataFrame:
    """The reference profile logged on ``run_id``; else ``fallback`` (models/reference.parquet)."""
    import tempfile

    import mlflow.artifacts

    try:
        with tempfile.TemporaryDirectory(prefix="cycleml-reference-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=ARTIFACT,
                dst_path=tmp,
                tracking_uri=client.tracking_uri,
            )
            return pd.read_parquet(local)
    except Exception:  # noqa: BLE001 - older runs have no profile: try the local one
        if fallback is not None and fallback.exists():
            return pd.read_parquet(fallback)
    raise MonitorError(
        f"training run {run_id} has no {ARTIFACT} (trained before monitoring existed?) and "
        "models/reference.parquet is missing: run `dvc repro` to build the reference"
    )


# --- the checks ---------------------------------------------------------------------


def psi(reference: np.ndarray, current: np.ndarray, bins: int = _PSI_BINS) -> float:
    """Population stability index of a numeric output: quantile bins of the reference,
    shares floored at 1e-4 so an empty bin does not divide by zero."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if not len(reference) or not len(current):
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, current), minlength=len(edges) + 1)
    e = np.maximum(expected / len(reference), 1e-4)
    a = np.maximum(actual / len(current), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _category_psi(reference: pd.Series, current: pd.Series) -> float:
    levels = sorted(set(reference.dropna().astype(str)) | set(current.dropna().astype(str)))
    shares = [
        side.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()
        for side in (reference, current)
    ]
    e, a = np.maximum(shares[0], 1e-4), np.maximum(shares[1], 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _output_column(schema: Schema) -> str:
    """The one column that summarises the model's output: P(positive) or the value."""
    if schema.task == "regression" or not schema.is_binary:
        return "prediction"
    return f"probability_{schema.classes[1]}"


def _prediction_drift(
    schema: Schema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    limit: float | None,
    alpha: float,
) -> dict[str, Any]:
    column = _output_column(schema)
    if column == "prediction" and schema.task == "classification":
        value = _category_psi(reference[column], current[column])
    else:
        value = psi(
            reference[column].to_numpy(dtype="float64"), current[column].to_numpy(dtype="float64")
        )
    # PSI / (1/n + 1/m) is roughly chi-squared with bins - 1 degrees of freedom when
    # nothing changed: small windows get a large PSI by chance, so it must also be unlikely
    from scipy import stats

    n, m = current[column].notna().sum(), reference[column].notna().sum()
    p_value = float(stats.chi2.sf(value / (1 / n + 1 / m), _PSI_BINS - 1)) if n and m else 1.0
    out = {
        "column": column,
        "psi": value,
        "limit": limit,
        "p_value": p_value,
        "drifted": bool(limit is not None and value == value and value > limit and p_value < alpha),
        "reference_mean": _mean(reference, column, schema),
        "current_mean": _mean(current, column, schema),
    }
    return out


def _mean(frame: pd.DataFrame, column: str, schema: Schema) -> float | None:
    if schema.task == "classification" and column == "prediction":
        return None
    return float(pd.to_numeric(frame[column], errors="coerce").mean())


def _data_quality(schema: Schema, reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Per feature: missing share now and in the reference; categories never seen."""
    columns: dict[str, Any] = {}
    for col in schema.features:
        info: dict[str, Any] = {
            "missing_share": float(current[col].isna().mean()),
            "reference_missing_share": float(reference[col].isna().mean()),
        }
        if col in schema.categorical:
            known = {str(v) for v in reference[col].dropna().unique()}
            counts = current[col].value_counts()  # once per category, not per row
            new = counts[~counts.index.astype(str).isin(known)]
            if len(new):
                info["new_categories"] = {str(k): int(v) for k, v in new.head(5).items()}
                info["new_category_share"] = float(new.sum() / max(len(current), 1))
        columns[col] = info
    all_missing = [c for c, i in columns.items() if i["missing_share"] == 1.0]
    return {"columns": columns, "all_missing": all_missing}


def _quality_columns(schema: Schema) -> list[str]:
    outputs = ["prediction"] if schema.task == "regression" else []
    return [schema.target, *outputs, *(f"probability_{c}" for c in schema.classes)]


def _rows(frame: pd.DataFrame, keep: pd.Series, columns: list[str] | None = None) -> pd.DataFrame:
    """``frame``'s ``keep`` rows (``columns`` of them, or all): no copy of a million-row
    window when every row is kept."""
    if columns is None:
        return frame if keep.all() else frame[keep]
    present = [c for c in columns if c in frame.columns]
    return frame[present] if keep.all() else frame.loc[keep, present]


def _quality(
    schema: Schema,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    threshold: float,
    cfg: MonitorParams,
) -> dict[str, Any]:
    """The task's metrics on labelled current rows against the same on the reference."""

    def scores(frame: pd.DataFrame) -> np.ndarray:
        if schema.task == "regression":
            return frame["prediction"].to_numpy(dtype="float64")
        proba = frame[[f"probability_{c}" for c in schema.classes]].to_numpy(dtype="float64")
        return np.asarray(proba / proba.sum(axis=1, keepdims=True))  # float32 rounding

    y_now = schema.encode_target(labelled[schema.target])
    y_ref = schema.encode_target(reference[schema.target].dropna())
    ref_rows = _rows(reference, reference[schema.target].notna(), _quality_columns(schema))
    if schema.task == "classification" and len(np.unique(y_now)) < 2:
        return {"skipped": "the labelled rows hold a single class: no ranking metric"}
    now = task_metrics(schema.task, y_now, scores(labelled), threshold)
    ref = task_metrics(schema.task, y_ref, scores(ref_rows), threshold)
    metrics: dict[str, Any] = {}
    for name, limit in cfg.max_quality_drop.items():
        if name not in now or now[name] != now[name] or not ref.get(name):
            continue
        worse = -advantage(name, now[name], ref[name]) / abs(ref[name])
        p_value = _worse_by_chance(
            name, schema, (y_ref, scores(ref_rows)), (y_now, scores(labelled))
        )
        metrics[name] = {
            "reference": ref[name],
            "current": now[name],
            "relative_worsening": worse,
            "limit": limit,
            "p_value": p_value,
            "degraded": bool(worse > limit and (p_value is None or p_value < cfg.significance)),
        }
    if schema.task == "classification":
        k = len(schema.classes)
        rate_now = np.bincount(y_now, minlength=k) / len(y_now)
        rate_ref = np.bincount(y_ref, minlength=k) / len(y_ref)
        label_shift = {
            c: {"reference": float(rate_ref[i]), "current": float(rate_now[i])}
            for i, c in enumerate(schema.classes)
        }
    else:
        label_shift = {
            "mean": {"reference": float(np.mean(y_ref)), "current": float(np.mean(y_now))}
        }
    return {
        "rows": len(labelled),
        "metrics": metrics,
        "degraded": [m for m, i in metrics.items() if i["degraded"]],
        "labels": label_shift,
    }


def _row_losses(name: str, schema: Schema, y: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
    """Each row's share of a metric that is a mean over rows (None for other metrics)."""
    if name == "log_loss" and schema.task == "classification":
        picked = scores[np.arange(len(y)), y]
        return np.asarray(-np.log(np.clip(picked, 1e-15, 1.0)))
    if schema.task != "regression":
        return None
    error = y - scores
    if name == "rmse":
        return np.asarray(error**2)
    if name == "mae":
        return np.asarray(np.abs(error))
    if name == "mape":
        nonzero = y != 0
        return np.asarray(np.abs(error[nonzero] / y[nonzero]))
    return None


def _auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's standard error of a ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return float(np.sqrt(max(var, 0.0)))


def _worse_by_chance(
    name: str,
    schema: Schema,
    reference: tuple[np.ndarray, np.ndarray],
    current: tuple[np.ndarray, np.ndarray],
) -> float | None:
    """One-sided p-value of the current rows being this much worse by chance alone: Welch's
    t-test on per-row losses (log_loss, rmse via squared errors, mae, mape), Hanley-McNeil
    for a binary roc_auc; None for metrics without a test here."""
    from scipy import stats

    losses = [_row_losses(name, schema, y, s) for y, s in (reference, current)]
    if losses[0] is not None and losses[1] is not None:
        if min(len(losses[0]), len(losses[1])) < 2:
            return None
        test = stats.ttest_ind(losses[1], losses[0], equal_var=False, alternative="greater")
        return float(test.pvalue)
    if name == "roc_auc" and schema.is_binary:
        from sklearn.metrics import roc_auc_score

        ses, aucs = [], []
        for y, s in (reference, current):
            positives = int(y.sum())
            aucs.append(float(roc_auc_score(y, s[:, 1])))
            ses.append(_auc_se(aucs[-1], positives, len(y) - positives))
        z = (aucs[0] - aucs[1]) / max(float(np.hypot(ses[0], ses[1])), 1e-12)
        return float(stats.norm.sf(z))
    return None


def _evidently_inputs(
    schema: Schema, reference: pd.DataFrame, current: pd.DataFrame, labelled: bool
) -> tuple[Any, Any, list[str]]:
    """Evidently datasets of the two frames: features and the model's output (and the
    target with the classification/regression definition when ``labelled``)."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Regression,
    )

    output = _output_column(schema)
    numeric = [*schema.numeric] + ([output] if output != "prediction" else [])
    categorical = [*schema.categorical]
    probas = [f"probability_{c}" for c in schema.classes]
    if schema.task == "regression":
        numeric.append("prediction")
    else:
        categorical.append("prediction")
        numeric += [c for c in probas if c not in numeric]
    columns = [*schema.features, *dict.fromkeys([output, "prediction"])]
    keep = [*dict.fromkeys([*numeric, *categorical])]
    tasks: dict[str, Any] = {}
    if labelled:
        keep.append(schema.target)
        if schema.task == "regression":
            numeric.append(schema.target)
            tasks["regression"] = [Regression(target=schema.target, prediction="prediction")]
        else:
            categorical.append(schema.target)
            if schema.is_binary:
                tasks["classification"] = [
                    BinaryClassification(
                        target=schema.target,
                        prediction_labels="prediction",
                        prediction_probas=output,
                        pos_label=schema.classes[1],
                    )
                ]
            else:
                tasks["classification"] = [
                    MulticlassClassification(
                        target=schema.target,
                        prediction_labels="prediction",
                        prediction_probas=probas,
                    )
                ]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical, **tasks)

    def dataset(frame: pd.DataFrame) -> Any:
        table = frame[keep].copy()
        for col in categorical:
            table[col] = table[col].astype("object").where(table[col].notna(), None)
        return Dataset.from_pandas(table, data_definition=definition)

    return dataset(current), dataset(reference), columns


def _drift_tests(snapshot: Any, features: list[str]) -> dict[str, Any]:
    """Per-column drift results out of an Evidently snapshot (metric values, test status)."""
    content = snapshot.dict()
    values = {m["id"]: m["value"] for m in content["metrics"]}
    columns: dict[str, Any] = {}
    for test in content["tests"]:
        config = test.get("metric_config", {})
        params = config.get("params", {})
        if params.get("type", "").endswith("ValueDrift") and params.get("column") in features:
            score = values.get(config.get("metric_id"))
            columns[params["column"]] = {
                "method": params.get("method"),
                "threshold": params.get("threshold"),
                "score": float(score) if isinstance(score, int | float) else None,
                "large": test["status"] == "FAIL",
            }
    return columns


def _p_value(reference: pd.Series, current: pd.Series, categorical: bool) -> float:
    """How likely a difference this large is by chance: chi-squared on the category
    counts, or the two-sample Kolmogorov-Smirnov test."""
    from scipy import stats

    ref, cur = reference.dropna(), current.dropna()
    if not len(ref) or not len(cur):
        return 1.0
    if categorical:
        levels = sorted(set(ref.astype(str)) | set(cur.astype(str)))
        table = np.array(
            [
                ref.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy(),
                cur.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy(),
            ]
        )
        if table.shape[1] < 2:
            return 1.0
        return float(stats.chi2_contingency(table)[1])
    return float(
        stats.ks_2samp(ref.to_numpy(dtype="float64"), cur.to_numpy(dtype="float64")).pvalue
    )


def _judge_columns(
    columns: dict[str, Any],
    schema: Schema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    alpha: float,
) -> None:
    """A column drifted when the shift is large (Evidently's effect-size test) and real
    (significant at ``alpha``): large samples make tiny shifts significant, small samples
    make large-looking shifts by chance; either alone raises false alarms."""
    for col, info in columns.items():
        if info["large"]:
            info["p_value"] = _p_value(reference[col], current[col], col in schema.categorical)
            info["drifted"] = info["p_value"] < alpha
        else:
            info["drifted"] = False


def _sample(frame: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    return frame.sample(limit, random_state=seed) if len(frame) > limit else frame


def check(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    model: LoadedModel,
    cfg: MonitorParams,
    *,
    window: str,
    reports_dir: Path,
    na_values: list[str] | None = None,
) -> tuple[MonitorResult, list[Any]]:
    """Compare ``current`` (inputs, outputs, ``_label``) with ``reference``; write the
    HTML reports into ``reports_dir``. Returns the result and the Evidently snapshots."""
    from evidently import Report
    from evidently.presets import (
        ClassificationPreset,
        DataDriftPreset,
        DataSummaryPreset,
        RegressionPreset,
    )

    started = time.perf_counter()
    schema = model.schema
    missing = [c for c in schema.inputs if c not in current.columns]
    if missing:
        raise MonitorError(f"the window lacks model input column(s): {', '.join(missing)}")
    cleaned = prepare_inputs(current, schema, na_values)
    current = current.copy(deep=False)  # columns below are replaced, never written into
    for col in schema.inputs:
        current[col] = cleaned[col]
    labels = current["_label"] if "_label" in current else pd.Series(None, index=current.index)
    current[schema.target] = None
    if labels.notna().any():
        present = labels.notna()
        try:
            current.loc[present, schema.target] = canonical_target(schema, labels[present])
        except ValueError as err:
            raise MonitorError(f"feedback labels: {err}") from None
    result = MonitorResult(
        verdict=OK,
        model_name=model.name,
        model_version=model.version,
        window=window,
        rows=len(current),
        labelled_rows=int(current[schema.target].notna().sum()),
        reference_rows=len(reference),
        sampled_rows=None,
    )
    if result.rows < cfg.min_rows:
        result.notes.append(
            f"only {result.rows} rows in the window (monitor.min_rows={cfg.min_rows}): "
            "too few to judge drift; widen the window"
        )
    result.prediction = _prediction_drift(
        schema, reference, current, cfg.prediction_psi, cfg.significance
    )
    result.data_quality = _data_quality(schema, reference, current)
    ref_sample = _sample(reference, cfg.max_rows)
    cur_sample = _sample(current, cfg.max_rows)
    if len(cur_sample) < len(current) or len(ref_sample) < len(reference):
        result.sampled_rows = max(len(cur_sample), len(ref_sample))
        result.notes.append(
            f"drift tests on a seeded sample of {cfg.max_rows:,} rows per side (monitor.max_rows)"
        )
    cur_ds, ref_ds, columns = _evidently_inputs(schema, ref_sample, cur_sample, False)
    # effect sizes, whatever the sample size: Wasserstein (numeric), Jensen-Shannon (text)
    drift_preset = DataDriftPreset(
        columns=columns,
        drift_share=cfg.drift_share,
        num_method="wasserstein",
        cat_method="jensenshannon",
        threshold=cfg.column_threshold,
        per_column_method={result.prediction["column"]: "psi"},
    )
    reports_dir.mkdir(parents=True, exist_ok=True)
    tags = [f"v{model.version}", model.name]
    drift_snapshot = Report([drift_preset, DataSummaryPreset()], include_tests=True).run(
        cur_ds, ref_ds, name=f"{model.name} v{model.version}: drift", tags=tags
    )
    per_column = _drift_tests(drift_snapshot, schema.features)
    _judge_columns(per_column, schema, ref_sample, cur_sample, cfg.significance)
    drifted = sorted(c for c, i in per_column.items() if i["drifted"])
    share = len(drifted) / max(len(schema.features), 1)
    result.drift = {
        "share": share,
        "limit": cfg.drift_share,
        "dataset_drift": share >= cfg.drift_share,
        "drifted": drifted,
        "drifted_columns_limit": cfg.drifted_columns,
        "columns": per_column,
    }
    html = reports_dir / "monitor.html"
    _save_html(drift_snapshot, html)
    result.reports["drift"] = str(html)
    snapshots = [drift_snapshot]

    labelled = _rows(current, current[schema.target].notna())
    if len(labelled) >= cfg.min_labelled:
        try:
            result.quality = _quality(schema, reference, labelled, model.threshold, cfg)
        except ValueError as err:
            raise MonitorError(f"feedback labels: {err}") from None
        if "metrics" in result.quality:
            cur_l, ref_l, _ = _evidently_inputs(
                schema,
                _sample(reference[reference[schema.target].notna()], cfg.max_rows),
                _sample(labelled, cfg.max_rows),
                True,
            )
            preset = (
                ClassificationPreset() if schema.task == "classification" else RegressionPreset()
            )
            quality_snapshot = Report([preset]).run(
                cur_l, ref_l, name=f"{model.name} v{model.version}: quality", tags=tags
            )
            html = reports_dir / "monitor_quality.html"
            _save_html(quality_snapshot, html)
            result.reports["quality"] = str(html)
            snapshots.append(quality_snapshot)
    else:
        result.quality = {
            "skipped": f"{len(labelled)} labelled rows, fewer than monitor.min_labelled="
            f"{cfg.min_labelled}: model quality not judged yet"
        }

    enough = result.rows >= cfg.min_rows
    if result.quality.get("degraded"):
        result.verdict = DEGRADED
    elif enough and (
        result.drift["dataset_drift"]
        or (cfg.drifted_columns is not None and len(drifted) >= cfg.drifted_columns)
        or result.prediction["drifted"]
    ):
        result.verdict = DRIFT
    result.seconds = time.perf_counter() - started
    return result, snapshots


def _save_html(snapshot: Any, target: Path) -> None:
    from cycleml.files import atomic_path

    with atomic_path(target) as tmp:
        snapshot.save_html(str(tmp))


# --- outputs ------------------------------------------------------------------------


def write_outputs(
    result: MonitorResult,
    snapshots: list[Any],
    summary: Path,
    metrics: Path,
    workspace: Path,
    project: str,
) -> None:
    """The JSON summary, the metrics file, and the snapshots in the Evidently workspace."""
    from cycleml.files import write_json

    result.reports["workspace"] = str(workspace)
    write_json(summary, asdict(result))
    write_json(metrics, result.metrics())
    _add_to_workspace(workspace, project, snapshots)


def _add_to_workspace(folder: Path, name: str, snapshots: list[Any]) -> None:
    """Snapshots into an Evidently workspace, so `evidently ui` plots drift over time."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(folder))
    found = workspace.search_project(name)
    if found:
        project = found[0]
    else:
        project = workspace.create_project(name, description="cycleml monitoring")
        project.dashboard.add_panel(
            line_plot_panel(
                "Share of drifted columns",
                values=[
                    PanelMetric(
                        legend="share",
                        metric="DriftedColumnsCount",
                        metric_labels={"value_type": "share"},
                    )
                ],
            )
        )
    for snapshot in snapshots:
        workspace.add_run(project.id, snapshot, include_data=False)


def run(
    params: Params,
    paths: Paths,
    client: MlflowClient,
    *,
    last: int | None = None,
    since: str | None = None,
    version: str | None = None,
    current: Path | None = None,
) -> MonitorResult:
    """Monitor a window of the prediction log (or the file ``current``) and write every
    output: the HTML reports, the JSON summary, the metrics and the workspace snapshots."""
    from cycleml.files import read_json
    from cycleml.scoring.loaded import load_model

    name = params.register_.model_name
    if current is not None:
        model = load_model(client, name, version or "@champion")
        frame = from_file(current, model, params.data)
        window = f"file {current}"
    else:
        limit = last or (None if since else params.monitor.window_rows)
        frame, model = from_log(
            paths.database_url(params.serving.prediction_log),
            name,
            lambda number: load_model(client, name, number),
            last=limit,
            since=parse_since(since) if since else None,
            version=version.lstrip("@") if version else None,
        )
        window = "prediction log" + (f", since {since}" if since else "")
        window += f", newest {limit:,} rows" if limit else ""
    local_run = read_json(paths.train_run).get("run_id") if paths.train_run.exists() else None
    reference = load_reference(
        client, model.run_id, paths.reference if local_run == model.run_id else None
    )
    result, snapshots = check(
        reference,
        frame,
        model,
        params.monitor,
        window=window,
        reports_dir=paths.report("monitor.html").parent,
        na_values=params.data.clean.na_values,
    )
    write_outputs(
        result,
        snapshots,
        paths.report("monitor.json"),
        paths.metrics("monitor"),
        paths.root / params.monitor.workspace,
        params.monitor.project,
    )
    return result


def describe(result: MonitorResult) -> list[str]:
    """The result in a few lines, for the terminal."""
    lines = [f"window: {result.window}: {result.rows:,} rows, {result.labelled_rows:,} labelled"]
    d = result.drift
    lines.append(
        f"data drift: {len(d['drifted'])} of {len(d['columns'])} feature columns "
        f"({d['share']:.0%}, limit {d['limit']:.0%})"
        + (f": {', '.join(d['drifted'][:8])}" if d["drifted"] else "")
    )
    p = result.prediction
    if p["psi"] == p["psi"]:
        lines.append(
            f"prediction drift: PSI {p['psi']:.3f} on {p['column']}"
            + (f" (limit {p['limit']:g})" if p["limit"] is not None else "")
            + (
                f", mean {p['reference_mean']:.3f} -> {p['current_mean']:.3f}"
                if p["current_mean"] is not None
                else ""
            )
        )
    dq = result.data_quality
    new = {
        c: i["new_category_share"] for c, i in dq["columns"].items() if "new_category_share" in i
    }
    if new:
        lines.append(
            "new categories: " + ", ".join(f"{c} ({s:.1%} of rows)" for c, s in new.items())
        )
    if dq["all_missing"]:
        lines.append(f"[red]always missing now:[/] {', '.join(dq['all_missing'])}")
    q = result.quality
    if "skipped" in q:
        lines.append(f"model quality: {q['skipped']}")
    else:
        for name, info in q["metrics"].items():
            mark = "[red]✗[/]" if info["degraded"] else "[green]✓[/]"
            lines.append(
                f"model quality {mark} {name} {info['reference']:.4f} -> {info['current']:.4f} "
                f"({info['relative_worsening']:+.1%} worse, limit {info['limit']:.0%})"
            )
        lines.append(
            "labels: "
            + ", ".join(
                f"{k} {v['reference']:.3g} -> {v['current']:.3g}" for k, v in q["labels"].items()
            )
        )
    lines += result.notes
    lines += [f"{kind}: {where}" for kind, where in result.reports.items()]
    return lines
