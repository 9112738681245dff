"""`make bench`: the benchmark suite. Every comparison runs both sides in the same run,
on the same model, on this machine; the figures are medians of repeated runs.

    python -m benchmarks.suite                 # full sizes: writes benchmarks/results/latest.json
                                               # and the results table in BENCHMARKS.md
    python -m benchmarks.suite --size tiny --results /tmp/r.json --markdown /tmp/B.md
    python -m benchmarks.suite --only pipeline,realtime

Sections: pipeline (the whole demo pipeline, `dvc repro` with nothing changed,
`cycleml --help`), in_process and batch scoring, realtime HTTP (cycleml's service vs
`mlflow models serve`), tuning (1 and 2 workers, pruning), monitoring (1M x 30 columns),
neighbour (realtime and batch again, idle and beside a CPU-bound process).
Each target is checked against its figure; a miss is reported, never hidden.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, SIZES, Size
from benchmarks.http import generator

SECTIONS = ("pipeline", "in_process", "realtime", "batch", "tuning", "monitoring", "neighbour")
START, END = "<!-- results:start -->", "<!-- results:end -->"
MODEL_NAME = "cycleml-churn"


@dataclass(frozen=True)
class Target:
    """One promise of issue 7: what is measured, the limit, and how to read the result."""

    key: str
    what: str
    limit: str
    check: Callable[[dict[str, Any]], tuple[str, str, bool]]
    """results -> (cycleml's figure, the comparison's figure, met)."""


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results["sections"]
    for key in path:
        node = node[key]
    return node


def _realtime_latency(r: dict[str, Any]) -> tuple[str, str, bool]:
    me, them = _get(r, "realtime", "cycleml"), _get(r, "realtime", "mlflow")
    return (
        f"p50 {me['p50_ms']:.2f} ms, p99 {me['p99_ms']:.2f} ms",
        f"p50 {them['p50_ms']:.2f} ms, p99 {them['p99_ms']:.2f} ms",
        me["p50_ms"] <= 2 and me["p99_ms"] <= 6,
    )


def _realtime_throughput(r: dict[str, Any]) -> tuple[str, str, bool]:
    rt = _get(r, "realtime")
    me, them = rt["cycleml"], rt["mlflow"]
    return (
        f"{me['concurrent_rps']:,.0f} req/s ({rt['throughput_ratio']:.1f}x), {me['errors']} errors",
        f"{them['concurrent_rps']:,.0f} req/s, {them['errors']} errors",
        rt["throughput_ratio"] >= 5 and me["errors"] == 0,
    )


def _in_process(r: dict[str, Any]) -> tuple[str, str, bool]:
    ip = _get(r, "in_process")
    return (
        f"{ip['cycleml_p50_ms']:.3f} ms ({ip['scorer']} scorer)",
        f"Pipeline.predict_proba {ip['pipeline_p50_ms']:.2f} ms",
        ip["cycleml_p50_ms"] <= 0.3,
    )


def _batch(r: dict[str, Any]) -> tuple[str, str, bool]:
    b = _get(r, "batch")
    me, them = b["cycleml"], b["pipeline"]
    return (
        f"{me['rows_per_s']:,.0f} rows/s, peak {me['peak_mb']:,.0f} MB "
        f"(command wall {me['wall_s']:.1f} s = {me['wall_rows_per_s']:,.0f} rows/s)",
        f"{them['rows_per_s']:,.0f} rows/s in memory, peak {them['peak_mb']:,.0f} MB",
        me["rows_per_s"] >= 400_000 and me["peak_mb"] <= 1536,
    )


def _noop(r: dict[str, Any]) -> tuple[str, str, bool]:
    s = _get(r, "pipeline", "repro_noop_s")
    return f"{s:.2f} s", "", s <= 1.5


def _help(r: dict[str, Any]) -> tuple[str, str, bool]:
    s = _get(r, "pipeline", "help_s")
    return f"{s:.2f} s", "", s <= 0.5


def _workers(r: dict[str, Any]) -> tuple[str, str, bool]:
    t = _get(r, "tuning")
    return (
        f"{t['two_workers']['trials_per_min']:.1f} trials/min: {t['speedup_two_workers']:.2f}x "
        f"one worker, {t['speedup_at_equal_threads']:.2f}x at equal threads per trial",
        f"1 worker: {t['one_worker']['trials_per_min']:.1f} trials/min (XGBoost on 2 threads), "
        f"{t['one_worker_one_thread']['trials_per_min']:.1f} (1 thread)",
        t["speedup_two_workers"] >= 1.6,
    )


def _monitor(r: dict[str, Any]) -> tuple[str, str, bool]:
    m = _get(r, "monitoring")
    return (
        f"{m['seconds']:.1f} s, peak {m['peak_mb']:,.0f} MB ({m['verdict']})",
        f"{m['rows']:,} x {m['input_columns']} vs {m['reference_rows']:,} reference rows",
        m["seconds"] <= 30 and m["peak_mb"] <= 4096,
    )


def _neighbour_latency(r: dict[str, Any]) -> tuple[str, str, bool]:
    n = _get(r, "neighbour")
    me, them = n["cycleml"], n["mlflow"]
    return (
        f"p50 {me['neighbour']['p50_ms']:.2f} ms, p99 {me['neighbour']['p99_ms']:.2f} ms "
        f"(idle: p50 {me['idle']['p50_ms']:.2f} ms)",
        f"p50 {them['neighbour']['p50_ms']:.2f} ms, p99 {them['neighbour']['p99_ms']:.2f} ms "
        f"(idle: p50 {them['idle']['p50_ms']:.2f} ms)",
        me["neighbour"]["p50_ms"] <= 2,
    )


def _neighbour_throughput(r: dict[str, Any]) -> tuple[str, str, bool]:
    n = _get(r, "neighbour")
    me, them, ratio = n["cycleml"], n["mlflow"], n["throughput_ratio"]
    return (
        f"{me['neighbour']['concurrent_rps']:,.0f} req/s ({ratio['neighbour']:.1f}x), "
        f"{me['neighbour']['errors']} errors",
        f"{them['neighbour']['concurrent_rps']:,.0f} req/s",
        ratio["neighbour"] >= 5 and me["neighbour"]["errors"] == 0,
    )


def _neighbour_cpu(r: dict[str, Any]) -> tuple[str, str, bool]:
    n = _get(r, "neighbour")
    me, them = n["cycleml"], n["mlflow"]
    share = me["idle"].get("cpu_per_loop") or float("inf")
    return (
        f"{me['idle']['cpu_s_per_1000']:.2f} s, {share:.2f}x its event loop's "
        f"(neighbour: {me['neighbour']['cpu_s_per_1000']:.2f} s)",
        f"mlflow {them['idle']['cpu_s_per_1000']:.2f} s "
        f"(neighbour: {them['neighbour']['cpu_s_per_1000']:.2f} s)",
        share <= 1.3,
    )


def _neighbour_batch(r: dict[str, Any]) -> tuple[str, str, bool]:
    b = _get(r, "neighbour", "batch")
    kept = b["neighbour"]["rows_per_s"] / b["idle"]["rows_per_s"]
    return (
        f"{b['neighbour']['rows_per_s']:,.0f} rows/s ({kept:.0%} of idle)",
        f"idle {b['idle']['rows_per_s']:,.0f} rows/s",
        kept >= 0.45,
    )


def _neighbour_monitor(r: dict[str, Any]) -> tuple[str, str, bool]:
    m = _get(r, "monitoring")
    slower = m["neighbour_seconds"] / m["seconds"]
    return (
        f"{m['neighbour_seconds']:.1f} s ({slower:.2f}x idle)",
        f"idle {m['seconds']:.1f} s",
        slower <= 2.2,
    )


TARGETS = [
    Target(
        "realtime",
        "one-record HTTP latency, sequential keep-alive",
        "p50 <= 2 ms, p99 <= 6 ms",
        _realtime_latency,
    ),
    Target(
        "realtime",
        "throughput at {clients} concurrent clients",
        ">= 5x mlflow, 0 errors",
        _realtime_throughput,
    ),
    Target("in_process", "in-process scoring of one record, p50", "<= 0.3 ms", _in_process),
    Target("batch", "batch, Parquet -> Parquet", ">= 400k rows/s, peak <= 1.5 GB", _batch),
    Target("pipeline", "`dvc repro` with nothing changed", "<= 1.5 s", _noop),
    Target("pipeline", "`cycleml --help`", "<= 0.5 s", _help),
    Target("tuning", "tuning with 2 workers", ">= 1.6x one worker", _workers),
    Target(
        "monitoring", "`cycleml monitor`, 1M x 30 vs 1M reference", "<= 30 s, <= 4 GB", _monitor
    ),
    Target(
        "neighbour",
        "one-record HTTP latency beside a busy process",
        "p50 <= 2 ms",
        _neighbour_latency,
    ),
    Target(
        "neighbour",
        "throughput at {clients} clients beside a busy process",
        ">= 5x mlflow, 0 errors",
        _neighbour_throughput,
    ),
    Target(
        "neighbour",
        "server CPU per 1,000 one-record requests (all threads)",
        "<= 1.3x the event loop's",
        _neighbour_cpu,
    ),
    Target(
        "neighbour",
        "`cycleml predict` beside a busy process",
        ">= 45% of the idle rate",
        _neighbour_batch,
    ),
    Target(
        "monitoring",
        "`cycleml monitor` beside a busy process",
        "<= 2.2x the idle time",
        _neighbour_monitor,
    ),
]


def machine() -> dict[str, Any]:
    import psutil

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    versions = {}
    for package in (
        "cycleml",
        "mlflow",
        "bentoml",
        "xgboost",
        "scikit-learn",
        "pandas",
        "pyarrow",
        "optuna",
        "evidently",
        "dvc",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    wrk = shutil.which("wrk")
    if wrk:
        first = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
        versions["wrk"] = first.split()[1] if first.split() else "?"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_generator": generator(),
        "versions": versions,
    }


def run_sections(size: Size, only: list[str], work: Path) -> dict[str, Any]:
    from benchmarks import monitoring, neighbour, pipeline, realtime, scoring, tuning

    project = work / "project"
    project.mkdir(parents=True)
    pipeline.make_project(project, size)
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "pipeline": lambda: pipeline.measure(project, size),
        "in_process": lambda: scoring.in_process(project, size, MODEL_NAME),
        "realtime": lambda: realtime.measure(project, size, MODEL_NAME),
        "batch": lambda: scoring.batch(project, size, MODEL_NAME, work),
        "tuning": lambda: tuning.measure(project, size),
        "monitoring": lambda: monitoring.measure(work / "wide", size),
        "neighbour": lambda: neighbour.measure(project, size, MODEL_NAME, work),
    }
    if "pipeline" not in only:  # the other sections need the project's champion
        pipeline.build(project)
    out: dict[str, Any] = {}
    for name in SECTIONS:
        if name not in only:
            continue
        started = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        try:
            out[name] = steps[name]()
        except Exception as err:  # noqa: BLE001 - reported in the results, run goes on
            traceback.print_exc()
            out[name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
        out[name]["section_seconds"] = round(time.perf_counter() - started, 1)
        print(f"[bench] {name} done in {out[name]['section_seconds']} s", flush=True)
    return out


def check(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against its figure (a section that failed misses its targets)."""
    rows = []
    sections = results["sections"].values()
    clients = next((s["clients"] for s in sections if "clients" in s), 32)
    for target in TARGETS:
        section = results["sections"].get(target.key)
        if section is None:
            continue
        what = target.what.format(clients=clients)
        if "error" in section:
            rows.append(
                {
                    "what": what,
                    "target": target.limit,
                    "cycleml": "failed",
                    "compared_with": section["error"][:200],
                    "met": False,
                }
            )
            continue
        mine, theirs, met = target.check(results)
        rows.append(
            {
                "what": what,
                "target": target.limit,
                "cycleml": mine,
                "compared_with": theirs,
                "met": bool(met),
            }
        )
    return rows


def render(results: dict[str, Any]) -> str:
    """The results block of BENCHMARKS.md: machine, versions, targets, other figures."""
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    dates = sorted({s.get("measured", m["date"]) for s in results["sections"].values()})
    when = m["date"] if len(dates) <= 1 else f"{dates[0]} to {dates[-1]} (sections re-run)"
    lines = [
        START,
        f"Run {when} (`make bench`, size {results['size']}, median of "
        f"{results['repeats']} runs) on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
        f"{m['os']}, Python {m['python']}; load generator: {m['load_generator']}.",
        "",
        f"Versions: {versions}.",
        "",
        "| what | cycleml | compared with (same run, same model) | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in results["targets"]:
        mark = "yes" if row["met"] else "**no**"
        lines.append(
            f"| {row['what']} | {row['cycleml']} | {row['compared_with'] or '-'} | "
            f"{row['target']} | {mark} |"
        )
    s = results["sections"]
    extra = []
    if "pipeline" in s and "error" not in s["pipeline"]:
        extra.append(
            f"| the whole demo pipeline (`dvc repro`, fresh project) | "
            f"{s['pipeline']['demo_pipeline_s']:.0f} s |"
        )
    if "in_process" in s and "error" not in s["in_process"]:
        extra.append(
            f"| model served | {s['in_process']['trees']} trees "
            f"({s['in_process']['scorer']} scorer) |"
        )
    if "realtime" in s and "error" not in s["realtime"]:
        rt = s["realtime"]
        extra.append(
            f"| sequential requests/s, cycleml vs mlflow | "
            f"{rt['cycleml']['sequential_rps']:,.0f} vs "
            f"{rt['mlflow']['sequential_rps']:,.0f} |"
        )
        extra.append(
            f"| p99 at {rt['clients']} clients, cycleml vs mlflow | "
            f"{rt['cycleml']['concurrent_p99_ms']:.1f} ms vs "
            f"{rt['mlflow']['concurrent_p99_ms']:.1f} ms |"
        )
        extra.append(
            f"| server memory (RSS, process tree), cycleml vs mlflow | "
            f"{rt['cycleml']['rss_mb']:,.0f} MB vs {rt['mlflow']['rss_mb']:,.0f} MB |"
        )
    if "neighbour" in s and "error" not in s["neighbour"]:
        n = s["neighbour"]
        for name, label in (("idle", "idle"), ("neighbour", "beside a busy process")):
            one, two, theirs = n["cycleml"][name], n["cycleml_2_workers"][name], n["mlflow"][name]
            extra.append(
                f"| {label}: sequential req/s and {n['clients']}-client req/s, cycleml 1 worker "
                f"/ 2 workers / mlflow | {one['sequential_rps']:,.0f} / "
                f"{two['sequential_rps']:,.0f} / {theirs['sequential_rps']:,.0f}; "
                f"{one['concurrent_rps']:,.0f} / {two['concurrent_rps']:,.0f} / "
                f"{theirs['concurrent_rps']:,.0f} |"
            )
            extra.append(
                f"| {label}: p99 at {n['clients']} clients, cycleml 1 worker / 2 workers / "
                f"mlflow | {one['concurrent_p99_ms']:.1f} / {two['concurrent_p99_ms']:.1f} / "
                f"{theirs['concurrent_p99_ms']:.1f} ms |"
            )
    if "tuning" in s and "error" not in s["tuning"]:
        t = s["tuning"]
        eq = t["equal_best"]
        extra.append(
            f"| tuning with pruning vs without (1 worker, {t['trials_per_run']} trials) "
            f"| {t['one_worker']['trials_per_min']:.1f} vs "
            f"{t['no_pruning']['trials_per_min']:.1f} trials/min; best "
            f"{t['one_worker']['best_value']:.4g} vs {t['no_pruning']['best_value']:.4g}"
            f" ({t['one_worker']['pruned']:.0f} pruned) |"
        )
        if eq.get("pruning_s") is not None and eq.get("no_pruning_s") is not None:
            extra.append(
                f"| time to the same best value ({eq['target']:.4g}), pruning vs not "
                f"| {eq['pruning_s']:.0f} s vs {eq['no_pruning_s']:.0f} s |"
            )
    if extra:
        lines += ["", "| other figures | |", "| --- | --- |", *extra]
    lines.append(END)
    return "\n".join(lines)


def write_markdown(path: Path, block: str) -> None:
    text = (
        path.read_text(encoding="utf-8") if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    )
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + block + tail, encoding="utf-8")


def _earlier(path: Path, size: Size, only: list[str]) -> dict[str, Any]:
    """With ``--only``, the other sections of the last run of the same size (each keeps
    the date it was measured), so re-measuring one section keeps the whole table."""
    if set(only) == set(SECTIONS) or not path.exists():
        return {}
    try:
        last = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    if last.get("size") != size.name:
        return {}
    kept = {k: v for k, v in last.get("sections", {}).items() if k not in only}
    for section in kept.values():
        section.setdefault("measured", last.get("machine", {}).get("date"))
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections ({', '.join(SECTIONS)})",
    )
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks/results/latest.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--work", type=Path, help="keep the projects here (default: a temp dir)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    size = SIZES[args.size]
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=False)
        sections = run_sections(size, only, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="cycleml-bench-") as tmp:
            sections = run_sections(size, only, Path(tmp))
    now = machine()
    for section in sections.values():
        section["measured"] = now["date"]
    results: dict[str, Any] = {
        "size": size.name,
        "repeats": size.repeats,
        "machine": now,
        "seconds": round(time.perf_counter() - started, 1),
        "sections": {**_earlier(args.results, size, only), **sections},
    }
    results["targets"] = check(results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    write_markdown(args.markdown, render(results))
    print(render(results))
    print(f"\nresults: {args.results}\ntable: {args.markdown}")
    failed = [name for name, section in sections.items() if "error" in section]
    if failed:
        print(f"sections that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
