"""`cycleml loop` (`make loop`): the whole lifecycle, once, on the demo data.

In a throwaway workspace (``loop/``, rebuilt on every run) it trains v1 with ``dvc repro``,
serves it with ``bentoml serve`` on a free 127.0.0.1 port, sends production traffic drawn
from a drift scenario of the demo generator, posts the true labels afterwards (they arrive
late in real life), runs ``cycleml monitor`` on the prediction log, retrains with
``cycleml retrain`` (a new DVC-versioned partition, ``dvc repro``, the register gate),
tells the running service to pick up the new champion, sends a second wave of traffic to
show v2 answering, and prints what changed: versions, test metrics, the business KPI
before and after, and where the reports are.

After a concept drift the old rows describe a world that is gone, so the loop retrains
on the new partitions only (``data.partitions.use_source: false``), as a sliding window
would; with a covariate drift (``--scenario price_rise``) keeping the source is the usual
choice, and the data contract will flag the shifted column for a person to accept.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cycleml.config import Params, apply_overrides, load_params, read_yaml
from cycleml.demo.harness import Service
from cycleml.evaluation.business import profit
from cycleml.files import read_json, write_json
from cycleml.paths import Paths, project_paths

__all__ = ["LoopSettings", "run"]

Say = Callable[[str], None]
_BATCH = 500  # records per HTTP request


@dataclass(frozen=True)
class LoopSettings:
    rows: int = 6000
    """Training rows of v1 (the demo generator, scenario none)."""
    traffic: int = 5000
    """Production requests per wave; their labels become v2's training data."""
    scenario: str = "churn_propensity"
    trials: int = 4
    """Optuna trials per training (tune.n_trials)."""
    seed: int = 2026
    keep_source: bool | None = None
    """Retrain on the source too; None: not after a concept drift, yes otherwise."""
    overrides: tuple[str, ...] = ()
    """Params set in the workspace: ``KEY=VALUE`` items (``evaluate.threshold=0.4``)."""


@dataclass
class Wave:
    version: str
    rows: int
    profit_per_customer: float
    versions_seen: list[str] = field(default_factory=list)


# --- the workspace --------------------------------------------------------------------


def prepare(repo: Path, root: Path, settings: LoopSettings) -> Params:
    """A fresh project in ``root``: the code, the pipeline, light params, a DVC repo."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(repo / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo / "dvc.yaml", root / "dvc.yaml")
    if (repo / "contracts").is_dir():
        shutil.copytree(repo / "contracts", root / "contracts")
    (root / "data" / "partitions").mkdir(parents=True)
    (root / "data" / "partitions" / "README.md").write_text("New labelled data (loop).\n")
    (root / "data" / "external").mkdir()  # ingest's dependency (dvc.yaml), empty: demo data
    raw = read_yaml((repo / "params.yaml").read_text(encoding="utf-8"))
    raw["data"]["source"] = {"kind": "demo", "rows": settings.rows, "seed": 42, "scenario": "none"}
    raw["tune"]["n_trials"] = settings.trials
    raw["tracking"]["tracking_uri"] = "sqlite:///mlflow.db"
    raw["serving"].update(prediction_log="sqlite:///predictions.db", reload_seconds=5)
    raw["serving"]["challenger"]["mode"] = "off"
    apply_overrides(raw, settings.overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    params = load_params(root / "params.yaml")  # a bad override fails here, named
    _run(root, [sys.executable, "-m", "dvc", "init", "--no-scm", "--quiet"], "dvc-init")
    return params


def _run(root: Path, command: list[str], name: str) -> None:
    """A command in ``root``, its output kept in logs/<name>.log (shown if it fails)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CYCLEML_ROOT", None)
    log = root / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as sink:
        done = subprocess.run(command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"`{' '.join(command[2:])}` failed ({log}):\n{tail}")


def _set_param(root: Path, dotted: str, value: Any) -> Params:
    path = root / "params.yaml"
    raw = read_yaml(path.read_text(encoding="utf-8"))
    apply_overrides(raw, {dotted: value})
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_params(path)


# --- traffic ----------------------------------------------------------------------------


def traffic(params: Params, rows: int, seed: int, scenario: str, wave: int) -> pd.DataFrame:
    """Production customers from the demo generator, cleaned as ingest cleans (clients
    send typed values), with ids of their own; the target column holds the truth."""
    from cycleml.data.cleaning import clean
    from cycleml.data.demo import generate_churn

    frame, _ = clean(generate_churn(rows, seed, scenario), params.data)
    for col in params.data.id_columns:
        frame[col] = [f"W{wave}-{i:06d}" for i in range(len(frame))]
    return frame


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(
        frame[columns].to_json(orient="records", date_format="iso")
    )
    return records


def send(url: str, frame: pd.DataFrame, inputs: list[str]) -> list[dict[str, Any]]:
    """Every row to ``POST /predict`` in batches; the answers in row order."""
    import httpx

    answers: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(frame), _BATCH):
            chunk = frame.iloc[start : start + _BATCH]
            reply = client.post("/predict", json={"records": _records(chunk, inputs)})
            reply.raise_for_status()
            answers += reply.json()["predictions"]
    return answers


def label(url: str, answers: list[dict[str, Any]], truth: pd.Series) -> None:
    """The true outcomes, posted to ``/feedback`` for the answered request ids."""
    import httpx

    items = [
        {"request_id": a["request_id"], "label": str(y)}
        for a, y in zip(answers, truth, strict=True)
    ]
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(items), _BATCH):
            client.post(
                "/feedback", json={"items": items[start : start + _BATCH]}
            ).raise_for_status()


def _profit_per_customer(params: Params, truth: pd.Series, act: np.ndarray) -> float:
    positive = params.data.positive_class
    y = (truth.astype(str) == str(positive)).to_numpy(dtype="int64")
    return profit(y, act, params.goals.classification) / max(len(y), 1)


def _wave(
    params: Params, service: Service, frame: pd.DataFrame, inputs: list[str]
) -> tuple[Wave, list[dict[str, Any]]]:
    answers = send(service.url, frame, inputs)
    label(service.url, answers, frame[params.data.target])
    versions = sorted({str(a["model_version"]) for a in answers})
    act = np.array([bool(a.get("decision")) for a in answers])
    kpi = _profit_per_customer(params, frame[params.data.target], act)
    return Wave(versions[-1], len(answers), kpi, versions), answers


# --- the loop -----------------------------------------------------------------------------


def _test_metrics(paths: Paths) -> dict[str, float]:
    metrics: dict[str, float] = read_json(paths.metrics("evaluate"))
    return {k: metrics[k] for k in ("roc_auc", "f1", "log_loss", "profit") if k in metrics}


def run(repo: Path, root: Path, settings: LoopSettings, say: Say) -> dict[str, Any]:
    """The lifecycle, once; returns (and writes to reports/loop.json) the summary."""
    import httpx

    from cycleml.model.tracking import configure
    from cycleml.monitor import check as monitor
    from cycleml.monitor import retrain
    from cycleml.scoring.batch import score_table
    from cycleml.scoring.loaded import load_model

    started = time.perf_counter()
    clock: dict[str, float] = {}

    def lap(name: str, since: float) -> None:
        clock[name] = round(time.perf_counter() - since, 1)

    t = time.perf_counter()
    params = prepare(repo, root, settings)
    paths = project_paths(root)
    say(f"workspace {root} (a fresh DVC project: {settings.rows:,} demo rows)")
    _run(root, [sys.executable, "-m", "dvc", "repro"], "repro-v1")
    v1_metrics = _test_metrics(paths)
    v1 = read_json(paths.report("register.json"))
    if not v1["registered"]:
        raise RuntimeError(
            "v1 missed the register gate, so there is nothing to serve: "
            + "; ".join(v1["reasons"])
            + " (more --rows, or loosen a gate with --set, e.g. "
            "--set evaluate.fairness.max_equalized_odds_difference=0.3)"
        )
    lap("train v1", t)
    say(f"trained and registered v{v1['version']} (@{v1['alias']}): test {_fmt(v1_metrics)}")

    client = configure(params.tracking, paths)
    name = params.register_.model_name
    summary: dict[str, Any] = {"scenario": settings.scenario, "workspace": str(root)}
    t = time.perf_counter()
    with Service.start(repo, root) as service:
        lap("start service", t)
        meta = httpx.get(service.url + "/metadata", timeout=30).json()
        inputs = [*meta["inputs"], *params.data.id_columns]
        say(f"serving v{meta['model_version']} at {service.url} (bentoml serve)")

        t = time.perf_counter()
        first = traffic(params, settings.traffic, settings.seed, settings.scenario, 1)
        before, _ = _wave(params, service, first, inputs)
        lap("wave 1 + labels", t)
        say(
            f"wave 1: {before.rows:,} requests from scenario '{settings.scenario}' answered by "
            f"v{before.version}; their labels arrived afterwards (POST /feedback)"
        )

        t = time.perf_counter()
        watch = monitor.run(params, paths, client)
        lap("monitor v1", t)
        say(f"monitor: [bold]{watch.verdict}[/] " + "; ".join(monitor.describe(watch)[1:5]))

        t = time.perf_counter()
        keep = settings.keep_source
        if keep is None:
            keep = watch.verdict != monitor.DEGRADED
        if not keep:
            params = _set_param(root, "data.partitions.use_source", False)
            say("concept drift: v2 trains on the new labelled data only (use_source: false)")
        done = retrain.run(params, paths, repro=True, quiet=True)
        lap("retrain", t)
        decision = done.decision or {}
        v2_metrics = _test_metrics(paths)
        say(
            f"retrain: {done.partition.rows:,} labelled rows -> {done.partition.path.name} "
            f"(dvc add), dvc repro -> v{decision.get('version')} @{decision.get('alias')}: "
            + "; ".join(decision.get("reasons", []))
        )

        t = time.perf_counter()
        swap = httpx.post(
            service.url + "/admin/reload",
            headers={"Authorization": f"Bearer {service.token}"},
            timeout=120,
        ).json()
        say(f"service reloaded without a restart: v{swap['before']} -> v{swap['now']}")
        second = traffic(params, settings.traffic, settings.seed + 1, settings.scenario, 2)
        after, _ = _wave(params, service, second, inputs)
        lap("reload + wave 2", t)

        # the old champion on the very same customers: the KPI gain of retraining
        old = load_model(client, name, str(v1["version"]))
        scored = score_table(second, old, params.data.clean.na_values).column("prediction")
        old_act = np.asarray(scored.to_pylist()) == str(params.data.positive_class)
        old_kpi = _profit_per_customer(params, second[params.data.target], old_act)

        t = time.perf_counter()
        watch_after = monitor.run(params, paths, client)
        lap("monitor v2", t)
    summary.update(
        {
            "versions": {"before": str(v1["version"]), "after": after.version},
            "promoted": decision.get("alias") == "champion" and after.version != before.version,
            "test_metrics": {"before": v1_metrics, "after": v2_metrics},
            "kpi": {
                "name": "profit per customer",
                "wave_1_served_by_v1": before.profit_per_customer,
                "wave_2_served_by_v2": after.profit_per_customer,
                "wave_2_if_v1_had_served": old_kpi,
            },
            "monitor": {"before": watch.verdict, "after": watch_after.verdict},
            "register": decision,
            "partition": str(done.partition.path),
            "partition_rows": done.partition.rows,
            "reports": {
                "monitor (v1)": str(paths.report("monitor_v1.json")),
                "monitor": str(paths.report("monitor.html")),
                "model quality": str(paths.report("monitor_quality.html")),
                "evidently workspace": str(root / params.monitor.workspace),
                "mlflow": f"mlflow ui --backend-store-uri sqlite:///{root / 'mlflow.db'}",
            },
            "seconds": {**clock, "total": round(time.perf_counter() - started, 1)},
        }
    )
    write_json(paths.report("monitor_v1.json"), asdict(watch))
    write_json(paths.report("loop.json"), summary)
    return summary


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.4g}" for k, v in metrics.items())
