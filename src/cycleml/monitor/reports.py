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

__all__ = [
    "absent_classes",
    "drift_report",
    "quality_report",
    "sample",
    "save_html",
    "write_outputs",
]


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

    cur_ds, ref_ds, columns = _drift_inputs(schema, reference, current)
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
    import warnings

    from evidently import Report
    from evidently.presets import ClassificationPreset, RegressionPreset
    from sklearn.exceptions import UndefinedMetricWarning

    ref = sample(reference[reference[schema.target].notna()], max_rows)
    cur = sample(labelled, max_rows)
    preset = ClassificationPreset() if schema.task == "classification" else RegressionPreset()
    with warnings.catch_warnings():  # its R2 per bin of a few rows warns, to the terminal
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return Report([preset]).run(
            _quality_dataset(schema, cur), _quality_dataset(schema, ref), name=name, tags=tags
        )


def absent_classes(schema: Schema, reference: pd.DataFrame, labelled: pd.DataFrame) -> list[str]:
    """Classes no labelled row of a side holds: Evidently's multiclass report fails on
    them (a KeyError, or a binary report of the two classes left), so it is not made."""
    if schema.task == "regression" or schema.is_binary:
        return []
    present = set(labelled[schema.target].unique()) & set(reference[schema.target].unique())
    return [c for c in schema.classes if c not in present]


def _drift_inputs(
    schema: Schema, reference: pd.DataFrame, current: pd.DataFrame
) -> tuple[Any, Any, list[str]]:
    """Evidently datasets of the two frames' features and model output, and the columns
    the drift preset tests."""
    from evidently import DataDefinition

    output = output_column(schema)
    probas = [f"probability_{c}" for c in schema.classes]
    numeric, categorical = [*schema.numeric], [*schema.categorical]
    if schema.task == "regression":
        numeric.append("prediction")
    else:
        categorical.append("prediction")
        numeric += [c for c in probas if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    keep = [*dict.fromkeys([*numeric, *categorical])]
    columns = [*schema.features, *dict.fromkeys([output, "prediction"])]
    return (
        _dataset(current[keep], definition, categorical),
        _dataset(reference[keep], definition, categorical),
        columns,
    )


def _quality_dataset(schema: Schema, frame: pd.DataFrame) -> Any:
    """An Evidently dataset of the target and the model's output, defined for the task.

    Evidently names a multiclass model's classes by its probability columns, so those are
    renamed to the class names (unless one is called like the target or ``prediction``:
    then labels only) and scaled to sum to one (float32 rounding makes sklearn warn)."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        MulticlassClassification,
        Regression,
    )

    target = schema.target
    if schema.task == "regression":
        definition = DataDefinition(
            numerical_columns=[target, "prediction"],
            regression=[Regression(target=target, prediction="prediction")],
        )
        return _dataset(frame[[target, "prediction"]], definition, [])
    categorical = [target, "prediction"]
    if schema.is_binary:
        output = output_column(schema)
        task: Any = BinaryClassification(
            target=target,
            prediction_labels="prediction",
            prediction_probas=output,
            pos_label=schema.classes[1],
        )
        table = frame[[*categorical, output]]
        numeric = [output]
    else:
        clash = {target, "prediction"} & set(schema.classes)
        numeric = [] if clash else list(schema.classes)
        renamed = {f"probability_{c}": c for c in numeric}
        table = frame[[*categorical, *renamed]].rename(columns=renamed)
        table[numeric] = table[numeric].div(table[numeric].sum(axis=1), axis=0)
        task = MulticlassClassification(
            target=target, prediction_labels="prediction", prediction_probas=numeric or None
        )
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=categorical, classification=[task]
    )
    return _dataset(table, definition, categorical)


def _dataset(frame: pd.DataFrame, definition: Any, categorical: list[str]) -> Any:
    """``frame`` as an Evidently dataset; categories as Python objects, missing as None."""
    from evidently import Dataset

    table = frame.copy()
    for col in categorical:
        table[col] = table[col].astype("object").where(table[col].notna(), None)
    return Dataset.from_pandas(table, data_definition=definition)


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
