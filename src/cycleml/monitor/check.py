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

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cycleml.config import MonitorParams, Params
from cycleml.data.schema import Schema
from cycleml.monitor.drift import column_drift, prediction_drift
from cycleml.monitor.quality import data_quality, model_quality, select_rows
from cycleml.monitor.reports import drift_report, quality_report, sample, save_html, write_outputs
from cycleml.monitor.result import DEGRADED, DRIFT, EXIT_CODES, OK, MonitorError, MonitorResult
from cycleml.monitor.window import (
    from_file,
    from_log,
    load_reference,
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
) -> tuple[MonitorResult, list[Any]]:
    """Compare ``current`` (inputs, outputs, ``_label``) with ``reference``; write the
    HTML reports into ``reports_dir``. Returns the result and the Evidently snapshots."""
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
    if result.rows < cfg.min_rows:
        result.notes.append(
            f"only {result.rows} rows in the window (monitor.min_rows={cfg.min_rows}): "
            "too few to judge drift; widen the window"
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
    result.reports["drift"] = save_html(drift_snapshot, reports_dir / "monitor.html")
    snapshots = [drift_snapshot]

    labelled = select_rows(current, current[schema.target].notna())
    result.quality = _judge_quality(schema, reference, labelled, model.threshold, cfg)
    if "metrics" in result.quality:
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
            "skipped": f"{len(labelled)} labelled rows, fewer than monitor.min_labelled="
            f"{cfg.min_labelled}: model quality not judged yet"
        }
    try:
        return model_quality(schema, reference, labelled, threshold, cfg)
    except ValueError as err:
        raise MonitorError(f"feedback labels: {err}") from None


def _verdict(result: MonitorResult, cfg: MonitorParams) -> str:
    """``degraded`` when the model is worse; else ``drift`` when inputs or predictions
    moved in a window large enough to judge; else ``ok``."""
    drifted = result.drift["drifted"]
    if result.quality.get("degraded"):
        return DEGRADED
    if result.rows >= cfg.min_rows and (
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
