"""The ten pipeline stages as commands, in dvc.yaml order and with the stages' names.

Each one loads params, runs its stage's ``run(params, paths)`` and shows the result; the
stage module is imported inside the command, so ``cycleml --help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path

from cycleml.cli.render import (
    ParamsOption,
    console,
    in_depth_lines,
    metric_lines,
    running_stage,
    show,
)

__all__ = [
    "evaluate",
    "explore",
    "frame",
    "ingest",
    "reference",
    "register",
    "split",
    "train",
    "tune",
    "validate",
]


def ingest(params: ParamsOption = Path("params.yaml")) -> None:
    """Read data.source, apply data.clean rules, write data/raw/data.parquet."""
    from cycleml.stages import ingest as stage

    with running_stage("ingest", params) as (p, paths):
        report = stage.run(p, paths)
    show("ingest", report.lines())


def validate(params: ParamsOption = Path("params.yaml")) -> None:
    """Check the raw table; fix task, target classes and features in data/interim/schema.json."""
    from cycleml.stages import validate as stage

    with running_stage("validate", params) as (p, paths):
        report = stage.run(p, paths)
    lines = [f"{report.rows:,} rows, task: {report.task}"]
    if report.class_counts:
        lines.append("classes: " + ", ".join(f"{k}={v:,}" for k, v in report.class_counts.items()))
    lines += [f"[yellow]![/] {w}" for w in report.warnings]
    show("validate", lines)


def explore(params: ParamsOption = Path("params.yaml")) -> None:
    """Profile the raw table: reports/explore.html, figures, target rate by feature."""
    from cycleml.stages import explore as stage

    with running_stage("explore", params) as (p, paths):
        exp = stage.run(p, paths)
    show("explore", [f"{exp.rows:,} rows -> {paths.report('explore.html')}", *exp.findings])


def split(params: ParamsOption = Path("params.yaml")) -> None:
    """Partition into data/split/{train,valid,test}.parquet (split.strategy, ratios, seed)."""
    from cycleml.stages import split as stage

    with running_stage("split", params) as (p, paths):
        summary = stage.run(p, paths)
    show("split", [f"{name}: {info}" for name, info in summary.items()])


def frame(params: ParamsOption = Path("params.yaml")) -> None:
    """Frame the problem: task, balance, and the baselines (dummy, rules) a model must beat."""
    from cycleml.stages import frame as stage

    with running_stage("frame", params) as (p, paths):
        framing = stage.run(p, paths)
    show("frame", stage.describe(framing))


def tune(params: ParamsOption = Path("params.yaml")) -> None:
    """Search train.xgboost with Optuna on validation data; write models/best_params.json."""
    from cycleml.stages import tune as stage

    with running_stage("tune", params, spinner=False) as (p, paths):
        result = stage.run(p, paths)
    show(f"tune ({result.objective})" if result.enabled else "tune (disabled)", result.lines())


def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Fit the pipeline (preprocessing + XGBoost), log the run and model to MLflow."""
    from cycleml.stages import train as stage

    with running_stage("train", params) as (p, paths):
        summary = stage.run(p, paths)
    show(
        f"train: MLflow run {summary['run_id']}",
        [
            f"best iteration {summary['best_iteration']}: train loss "
            f"{summary['train_loss']:.4f}, valid loss {summary['valid_loss']:.4f}",
            f"model: {summary['model_uri']} (and {paths.model_dir})",
            f"fit: {summary['fit']['verdict']}: {summary['fit']['advice']}",
        ],
    )


def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Score the test split; write metrics/evaluate.json and plot data."""
    from cycleml.stages import evaluate as stage

    with running_stage("evaluate", params) as (p, paths):
        result = stage.run(p, paths)
    baselines = result["baselines"]
    show(
        "evaluate (test set)",
        [
            *metric_lines(result["metrics"]),
            f"baselines ({baselines['kpi']}): "
            + ", ".join(f"{k} {v:,.2f}" for k, v in baselines["test"].items()),
            baselines["verdict"],
            *in_depth_lines(result["reports"]),
        ],
    )


def reference(params: ParamsOption = Path("params.yaml")) -> None:
    """Save the reference profile (held-out rows + predictions) that monitoring compares with."""
    from cycleml.stages import reference as stage

    with running_stage("reference", params) as (p, paths):
        info = stage.run(p, paths)
    show(
        "reference",
        [
            f"{info['rows']:,} held-out rows with predictions -> {paths.reference} (and run "
            f"{info['run_id']})"
        ],
    )


def register(params: ParamsOption = Path("params.yaml")) -> None:
    """Gate on register.criteria; register in MLflow as champion or challenger."""
    from cycleml.stages import register as stage

    with running_stage("register", params) as (p, paths):
        d = stage.run(p, paths)
    if not d.registered:
        console.print(f"[yellow]✗ register: {d.model_name} not registered[/] (gate not met)")
        for reason in d.reasons:
            console.print(f"  - {reason}")
        console.print(f"  decision written to {paths.report('register.json')}")
        return
    show(
        f"register: {d.model_name} v{d.version} -> @{d.alias}",
        [f"{d.primary_metric} = {d.candidate:.4f}", *d.reasons, *([d.scorer] if d.scorer else [])],
    )
