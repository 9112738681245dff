"""Stage `split`: train / valid / test partitions, stratified, random or by time.

Valid is for early stopping, tuning and threshold choice; test is touched only by
evaluate and register, so the reported metrics are honest estimates.
Outputs: ``data/split/{train,valid,test}.parquet`` and ``reports/split.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from cycleml.config import Params, SplitParams
from cycleml.data.schema import Schema
from cycleml.files import read_json, write_json, write_parquet
from cycleml.paths import Paths

__all__ = ["PARTS", "run", "split"]

PARTS = ("train", "valid", "test")
_REGRESSION_STRATA = 10


def _strata(frame: pd.DataFrame, schema: Schema) -> pd.Series:
    y = frame[schema.target]
    if schema.task == "classification":
        return pd.Series(schema.encode_target(y), index=frame.index)
    # regression: stratify on target deciles so each part sees the whole range
    return pd.qcut(y, q=_REGRESSION_STRATA, labels=False, duplicates="drop")


def split(frame: pd.DataFrame, schema: Schema, params: SplitParams) -> dict[str, pd.DataFrame]:
    """Partition ``frame``; rows without a target are dropped first."""
    frame = frame[frame[schema.target].notna()].reset_index(drop=True)
    if params.strategy == "time":
        assert schema.time_column is not None  # enforced by Params
        frame = frame[frame[schema.time_column].notna()]
        frame = frame.sort_values(schema.time_column, kind="stable").reset_index(drop=True)
        n = len(frame)
        cut1, cut2 = round(n * params.train), round(n * (params.train + params.valid))
        return {"train": frame[:cut1], "valid": frame[cut1:cut2], "test": frame[cut2:]}

    # whole row counts, so 0.7/0.2/0.1 of 1000 rows is exactly 700/200/100
    n_test = round(len(frame) * params.test)
    n_holdout = n_test + round(len(frame) * params.valid)
    stratify = params.strategy == "stratified"
    train, rest = train_test_split(
        frame,
        test_size=n_holdout,
        random_state=params.seed,
        stratify=_strata(frame, schema) if stratify else None,
    )
    valid, test = train_test_split(
        rest,
        test_size=n_test,
        random_state=params.seed,
        stratify=_strata(rest, schema) if stratify else None,
    )
    return {"train": train, "valid": valid, "test": test}


def _summary(parts: dict[str, pd.DataFrame], schema: Schema) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, part in parts.items():
        info: dict[str, object] = {"rows": len(part)}
        if schema.task == "classification":
            counts = np.bincount(
                schema.encode_target(part[schema.target]), minlength=len(schema.classes)
            )
            info["class_share"] = {
                c: round(int(k) / max(len(part), 1), 4)
                for c, k in zip(schema.classes, counts, strict=True)
            }
        else:
            info["target_mean"] = float(part[schema.target].mean())
        out[name] = info
    return out


def run(params: Params, paths: Paths) -> dict[str, object]:
    frame = pd.read_parquet(paths.raw)
    schema = Schema.model_validate(read_json(paths.schema))
    parts = split(frame, schema, params.split)
    for name, part in parts.items():
        if part.empty:
            raise ValueError(f"split: part {name!r} is empty; use more rows or other ratios")
        write_parquet(paths.split(name), part.reset_index(drop=True))
    summary = _summary(parts, schema)
    write_json(paths.report("split.json"), summary)
    return summary
