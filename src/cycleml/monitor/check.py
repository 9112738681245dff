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
* **model quality** (concept drift), on the rows whose labels have arrived, less the rows
  the version trained on (matched on the id columns): the task's metrics against the same
  metrics on the reference; a worsening beyond ``monitor.max_quality_drop`` is
  degradation. Fewer than ``monitor.min_labelled`` such rows: not checked.

The verdict is ``degraded`` (the model is worse), else ``too_small`` (fewer than
``monitor.min_rows`` rows: drift not judged), else ``drift`` (inputs or predictions
moved), else ``ok``; the command's exit code says it to a scheduler. Evidently runs on a
seeded sample of at most ``monitor.max_rows`` rows per side (its tests are slow on
millions of rows and gain nothing from them); quality metrics use every labelled row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cycleml.config import MonitorParams, Params
from cycleml.data.schema import Schema
from cycleml.monitor.drift import column_drift, prediction_drift
from cycleml.monitor.quality import data_quality, labelled_rows, model_quality, unseen_rows
from cycleml.monitor.reports import (
    absent_classes,
    drift_report,
    quality_report,
    sample,
    save_html,
    write_outputs,
)
from cycleml.monitor.result import (
    DEGRADED,
    DRIFT,
    EXIT_CODES,
    OK,
    TOO_SMALL,
    MonitorError,
    MonitorResult,
)
from cycleml.monitor.window import (
    from_file,
    from_log,
    load_reference,
    load_seen_rows,
    parse_since,
    prepare_window,
)
from cycleml.paths import Paths
from cycleml.scoring.loaded import LoadedModel

if TYPE_CHECKING:
    from mlflow import MlflowClient

# the entry the CLI and the demo loop call, with what its callers catch and read
__all__ = [
    "DEGRADED",
    "DRIFT",
    "EXIT_CODES",
    "OK",
    "TOO_SMALL",
    "MonitorError",
    "MonitorResult",
    "check",
    "describe",
    "from_file",
    "from_log",
    "parse_since",
    "run",
]


def check(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    model: LoadedModel,
    cfg: MonitorParams,
    *,
    window: str,
    reports_dir: Path,
    na_values: list[str] | None = None,
    seen: np.ndarray | None = None,
) -> tuple[MonitorResult, list[Any]]:
    """Compare ``current`` (inputs, outputs, ``_label``) with ``reference``; write the
    HTML reports into ``reports_dir``. ``seen``: the keys of the rows the version trained
    on (``schema.row_keys``), left out of model quality. Returns the result and the
    Evidently snapshots."""
    started = time.perf_counter()
    schema = model.schema
    current = prepare_window(current, schema, na_values)
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
    result.prediction = prediction_drift(
        schema, reference, current, cfg.prediction_psi, cfg.significance
    )
    result.data_quality = data_quality(schema, reference, current)
    ref_sample = sample(reference, cfg.max_rows)
    cur_sample = sample(current, cfg.max_rows)
    if len(cur_sample) < len(current) or len(ref_sample) < len(reference):
        result.sampled_rows = max(len(cur_sample), len(ref_sample))
        result.notes.append(
            f"drift tests on a seeded sample of {cfg.max_rows:,} rows per side (monitor.max_rows)"
        )
    reports_dir.mkdir(parents=True, exist_ok=True)
    title, tags = f"{model.name} v{model.version}", [f"v{model.version}", model.name]
    drift_snapshot, per_column = drift_report(
        schema,
        ref_sample,
        cur_sample,
        cfg,
        result.prediction["column"],
        name=f"{title}: drift",
        tags=tags,
    )
    result.drift = column_drift(per_column, schema, ref_sample, cur_sample, cfg)
    if result.rows < cfg.min_rows:
        reason = (
            f"not checked ({result.rows} rows, needs {cfg.min_rows}: monitor.min_rows); "
            "widen the window"
        )
        result.drift["not_checked"] = result.prediction["not_checked"] = reason
    result.reports["drift"] = save_html(drift_snapshot, reports_dir / "monitor.html")
    snapshots = [drift_snapshot]

    labelled, trained = unseen_rows(schema, labelled_rows(schema, current), seen)
    result.quality = _judge_quality(schema, reference, labelled, model.threshold, cfg)
    result.quality["trained_rows"] = trained
    absent = absent_classes(schema, reference, labelled)
    if "metrics" in result.quality and absent:
        result.notes.append(
            f"no Evidently quality report: no labelled row of class(es) {', '.join(absent)} "
            "(it needs every class); the metrics above cover the classes present"
        )
    elif "metrics" in result.quality:
        quality_snapshot = quality_report(
            schema, reference, labelled, cfg.max_rows, name=f"{title}: quality", tags=tags
        )
        html = reports_dir / "monitor_quality.html"
        result.reports["quality"] = save_html(quality_snapshot, html)
        snapshots.append(quality_snapshot)
    result.verdict = _verdict(result, cfg)
    result.seconds = time.perf_counter() - started
    return result, snapshots


def _judge_quality(
    schema: Schema,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    threshold: float,
    cfg: MonitorParams,
) -> dict[str, Any]:
    """Model quality on the labelled rows, once there are ``monitor.min_labelled`` of them."""
    if len(labelled) < cfg.min_labelled:
        return {
            "skipped": f"not checked ({len(labelled)} labelled rows, needs "
            f"{cfg.min_labelled}: monitor.min_labelled)"
        }
    try:
        return model_quality(schema, reference, labelled, threshold, cfg)
    except ValueError as err:
        raise MonitorError(f"feedback labels: {err}") from None


def _verdict(result: MonitorResult, cfg: MonitorParams) -> str:
    """``degraded`` when the model is worse; else ``too_small`` when the window is too
    small to judge drift (never ``ok``: nothing was checked); else ``drift`` when inputs or
    predictions moved; else ``ok``."""
    drifted = result.drift["drifted"]
    if result.quality.get("degraded"):
        return DEGRADED
    if result.rows < cfg.min_rows:
        return TOO_SMALL
    if (
        result.drift["dataset_drift"]
        or (cfg.drifted_columns is not None and len(drifted) >= cfg.drifted_columns)
        or result.prediction["drifted"]
    ):
        return DRIFT
    return OK


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
        seen=load_seen_rows(client, model.run_id),
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
    if "not_checked" in result.drift:
        lines.append(f"data and prediction drift: {result.drift['not_checked']}")
    else:
        lines += _drift_lines(result)
    lines += _data_quality_lines(result.data_quality)
    lines += _quality_lines(result.quality)
    lines += result.notes
    lines += [f"{kind}: {where}" for kind, where in result.reports.items()]
    return lines


def _drift_lines(result: MonitorResult) -> list[str]:
    d, p = result.drift, result.prediction
    lines = [
        f"data drift: {len(d['drifted'])} of {len(d['columns'])} feature columns "
        f"({d['share']:.0%}, limit {d['limit']:.0%})"
        + (f": {', '.join(d['drifted'][:8])}" if d["drifted"] else "")
    ]
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
    return lines


def _data_quality_lines(dq: dict[str, Any]) -> list[str]:
    lines = []
    new = {
        c: i["new_category_share"] for c, i in dq["columns"].items() if "new_category_share" in i
    }
    if new:
        lines.append(
            "new categories: " + ", ".join(f"{c} ({s:.1%} of rows)" for c, s in new.items())
        )
    if dq["all_missing"]:
        lines.append(f"[red]always missing now:[/] {', '.join(dq['all_missing'])}")
    return lines


def _quality_lines(q: dict[str, Any]) -> list[str]:
    trained = q["trained_rows"]
    left_out = "rows the model trained on: " + (
        trained["not_checked"]
        if "not_checked" in trained
        else f"{trained['left_out']:,} left out of model quality"
    )
    if "skipped" in q:
        return [f"model quality: {q['skipped']}", left_out]
    lines = []
    for name, info in q["metrics"].items():
        mark = "[red]✗[/]" if info["degraded"] else "[green]✓[/]"
        lines.append(
            f"model quality {mark} {name} {info['reference']:.4f} -> {info['current']:.4f} "
            f"({info['change']}, limit {info['limit']:.0%} worse)"
        )
    lines.append(
        "labels: "
        + ", ".join(
            f"{k} {v['reference']:.3g} -> {v['current']:.3g}" for k, v in q["labels"].items()
        )
    )
    return [*lines, left_out]
