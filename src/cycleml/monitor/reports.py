"""What a check leaves behind: Evidently's drift and quality reports (run on a seeded
sample, saved as HTML), the JSON summary, the metrics file and the snapshots in the
Evidently workspace. Evidently loads only when a report is made."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from cycleml.config import MonitorParams
from cycleml.data.schema import Schema
from cycleml.monitor.drift import output_column
from cycleml.monitor.result import MonitorResult

__all__ = ["drift_report", "quality_report", "sample", "save_html", "write_outputs"]


def sample(frame: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    """At most ``limit`` rows of ``frame``, seeded: Evidently's tests are slow on millions
    of rows and gain nothing from them."""
    return frame.sample(limit, random_state=seed) if len(frame) > limit else frame


def drift_report(
    schema: Schema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: MonitorParams,
    prediction_column: str,
    *,
    name: str,
    tags: list[str],
) -> tuple[Any, dict[str, Any]]:
    """Evidently's drift and data summary report on the two samples, and its per-column
    effect sizes (``large`` when above ``monitor.column_threshold``)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    cur_ds, ref_ds, columns = _evidently_inputs(schema, reference, current, False)
    # effect sizes, whatever the sample size: Wasserstein (numeric), Jensen-Shannon (text)
    drift_preset = DataDriftPreset(
        columns=columns,
        drift_share=cfg.drift_share,
        num_method="wasserstein",
        cat_method="jensenshannon",
        threshold=cfg.column_threshold,
        per_column_method={prediction_column: "psi"},
    )
    snapshot = Report([drift_preset, DataSummaryPreset()], include_tests=True).run(
        cur_ds, ref_ds, name=name, tags=tags
    )
    return snapshot, _drift_tests(snapshot, schema.features)


def quality_report(
    schema: Schema,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    max_rows: int,
    *,
    name: str,
    tags: list[str],
) -> Any:
    """Evidently's classification or regression report on the labelled rows of each side."""
    from evidently import Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    cur_l, ref_l, _ = _evidently_inputs(
        schema,
        sample(reference[reference[schema.target].notna()], max_rows),
        sample(labelled, max_rows),
        True,
    )
    preset = ClassificationPreset() if schema.task == "classification" else RegressionPreset()
    return Report([preset]).run(cur_l, ref_l, name=name, tags=tags)


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

    output = output_column(schema)
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


def save_html(snapshot: Any, target: Path) -> str:
    """``snapshot`` as an HTML report at ``target`` (written whole or not at all); returns
    the path, as the result records it."""
    from cycleml.files import atomic_path

    with atomic_path(target) as tmp:
        snapshot.save_html(str(tmp))
    return str(target)


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
