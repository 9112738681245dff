"""In-depth evaluation: calibration, gains, slices, fairness, SHAP, behaviour, learning fit.

Pure functions of a fitted pipeline and a table: no files, no MLflow. The evaluate stage
writes their results. Tables come back as DataFrames (``to_records`` makes any of them
JSON-able: NaN becomes None, NumPy scalars become Python ones); the rest are plain dicts.

Slicing rule shared by ``segment_metrics`` and ``fairness``: a categorical column (or a
numeric one with at most ``_MAX_LEVELS`` distinct values, such as a 0/1 flag) is sliced by
value; any other numeric column is cut into quartiles. Missing values form their own slice.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from cycleml.config import BehaviourCheck, FairnessParams, GoalsParams
from cycleml.data.schema import Schema, label_key
from cycleml.evaluation.business import task_kpis
from cycleml.model.decision import decide
from cycleml.model.pipeline import iteration_range, predict_scores

__all__ = [
    "behaviour_checks",
    "brier_score",
    "calibration",
    "explanations",
    "fairness",
    "feature_sources",
    "gains",
    "learning_verdict",
    "segment_metrics",
    "to_records",
]

# A numeric column with at most this many distinct values is sliced by value (flags, counts
# of children), not by quartile: quartile edges of a 0/1 column collapse into one bin.
_MAX_LEVELS = 10
_QUARTILES = 4
_MISSING = "(missing)"
_TOP_FEATURES = 5
_BASE = "(base value)"
_OTHER = "(other features)"

# learning_verdict thresholds, relative to the validation loss so they hold for logloss and
# rmse alike. Measured on the demo (20k rows): a good model (depth 5) ends 0.2% above its
# minimum with a 6% train/valid gap; a deep one (depth 8, worse valid loss) shows a 20% gap;
# a 40-tree depth-2 model still drops 1.1% over its last 5 rounds.
_MAX_RISE = 0.02
"""Overfitting: the last round's valid loss is more than 2% above the minimum. Early
stopping lets the loss drift up for ``early_stopping_rounds``; a 2% climb in that window
means the trees past the minimum are memorising noise fast."""
_MAX_GAP = 0.15
"""Overfitting: at the round the model uses, train loss is more than 15% below valid loss:
the model knows its training rows much better than new ones."""
_TAIL_SHARE, _MIN_TAIL = 0.1, 5
_STILL_FALLING = 0.005
"""Underfitting: valid loss fell more than 0.5% over the last tenth of the rounds (at least
5): more rounds would still help, so training stopped too early."""


# --- helpers ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-able Python value: NaN/NaT -> None, NumPy scalars -> Python, dates -> ISO."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` as JSON-able dicts (NaN -> None, NumPy -> Python)."""
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _none_for_nan(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns holding NaN become object columns holding None (undefined, not a number)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].isna().any():
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values)) and not pd.api.types.is_bool_dtype(values)


def _slices(values: pd.Series) -> pd.Series:
    """Each row's slice label (see the module docstring), as an ordered categorical."""
    present = values.dropna()
    if _is_numeric(values) and present.nunique() > _MAX_LEVELS:
        numbers = values.astype("float64")
        edges = np.unique(np.quantile(present.astype("float64"), np.linspace(0, 1, _QUARTILES + 1)))
        names = [
            f"{'[' if i == 0 else '('}{lo:.4g}, {hi:.4g}]"
            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
        ]
        codes = np.clip(np.searchsorted(edges, numbers.to_numpy(), side="left") - 1, 0, None)
        labels = pd.Series(np.asarray(names, dtype=object)[np.minimum(codes, len(names) - 1)])
        labels.index = values.index
    else:
        labels = values.map(label_key, na_action="ignore").astype(object)
        names = sorted(labels.dropna().unique(), key=str)
    labels = labels.where(values.notna(), _MISSING)
    order = [*names, _MISSING] if values.isna().any() else list(names)
    return pd.Series(pd.Categorical(labels, categories=order, ordered=True), index=values.index)


# --- calibration and gains -------------------------------------------------------------


def calibration(y: np.ndarray, score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability table of a binary score: mean predicted vs observed rate per quantile bin.

    Quantile bins hold equal numbers of rows, so each point is equally trustworthy even when
    scores crowd near 0. Tied scores never straddle bins, so there may be fewer bins.
    """
    score = np.asarray(score, dtype="float64")
    edges = np.unique(np.quantile(score, np.linspace(0, 1, bins + 1)))
    which = np.searchsorted(edges[1:-1], score, side="right")
    counts = np.bincount(which, minlength=len(edges) - 1)
    keep = counts > 0
    predicted = np.bincount(which, weights=score, minlength=len(counts))[keep] / counts[keep]
    observed = np.bincount(which, weights=np.asarray(y, "float64"), minlength=len(counts))
    return pd.DataFrame(
        {
            "mean_predicted": predicted,
            "observed_rate": observed[keep] / counts[keep],
            "rows": counts[keep].astype("int64"),
        }
    )


def brier_score(y: np.ndarray, score: np.ndarray) -> float:
    """Mean squared gap between the positive-class probability and the 0/1 outcome."""
    return float(np.mean((np.asarray(score, "float64") - np.asarray(y, "float64")) ** 2))


def gains(y: np.ndarray, score: np.ndarray, points: int = 20) -> pd.DataFrame:
    """Cumulative gains and lift: contact the top-scored share, find this share of positives.

    ``lift`` is how many times better than contacting at random that share is. Raises
    ValueError when ``y`` holds no positive row (nothing to find).
    """
    y = np.asarray(y, "float64")
    total = y.sum()
    if total <= 0:
        raise ValueError("gains need at least one positive row")
    found = np.concatenate([[0.0], np.cumsum(y[np.argsort(-np.asarray(score), kind="stable")])])
    contacted = np.unique(np.ceil(np.linspace(1, points, points) / points * len(y)).astype(int))
    share = contacted / len(y)
    share_found = found[contacted] / total
    return pd.DataFrame(
        {
            "share_contacted": share,
            "share_of_positives_found": share_found,
            "lift": share_found / share,
        }
    )


# --- segments --------------------------------------------------------------------------


def _slice_metrics(
    schema: Schema, y: np.ndarray, scores: np.ndarray, threshold: float, goals: GoalsParams
) -> dict[str, Any]:
    if schema.task == "regression":
        error = y - scores
        kpi = task_kpis(schema, y, scores, goals)
        return {
            "mean_target": float(y.mean()),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mae": float(np.mean(np.abs(error))),
            "error_cost": kpi["error_cost"],
        }
    if not schema.is_binary:
        return {"accuracy": float((decide(scores) == y).mean())}
    pos = scores[:, 1]
    decided = decide(scores, threshold)
    both = len(np.unique(y)) == 2
    return {
        "positive_rate": float(y.mean()),
        "accuracy": float((decided == y).mean()),
        "precision": _number(skm.precision_score(y, decided, zero_division=np.nan)),
        "recall": _number(skm.recall_score(y, decided, zero_division=np.nan)),
        "roc_auc": float(skm.roc_auc_score(y, pos)) if both else None,
        "profit": task_kpis(schema, y, decided, goals)["profit"],
    }


def segment_metrics(
    frame: pd.DataFrame,
    schema: Schema,
    scores: np.ndarray,
    threshold: float,
    columns: list[str],
    goals: GoalsParams,
) -> tuple[pd.DataFrame, list[str]]:
    """Test metrics per slice of each column: where does the model do worse?

    ``scores`` are ``predict_scores`` of ``frame``. One row per (column, segment) with
    ``rows`` and, binary: ``positive_rate accuracy precision recall roc_auc profit``
    (precision/recall None when undefined in the slice, roc_auc None for a one-class
    slice); regression: ``mean_target rmse mae error_cost``; multiclass: ``accuracy``.
    Columns absent from ``frame`` are skipped and named in the returned notes.
    """
    y = schema.encode_target(frame[schema.target])
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    for column in columns:
        if column not in frame.columns:
            notes.append(f"segments: column {column!r} absent, skipped")
            continue
        labels = _slices(frame[column])
        for segment, index in labels.groupby(labels, observed=True).indices.items():
            metrics = _slice_metrics(schema, y[index], scores[index], threshold, goals)
            records.append(
                {"column": column, "segment": str(segment), "rows": len(index), **metrics}
            )
    table = (
        pd.DataFrame.from_records(records)
        if records
        else pd.DataFrame(columns=["column", "segment", "rows"])
    )
    return _none_for_nan(table), notes


# --- fairness --------------------------------------------------------------------------


def fairness(
    frame: pd.DataFrame,
    schema: Schema,
    y: np.ndarray,
    decisions: np.ndarray,
    sensitive: list[str],
    params: FairnessParams,
) -> dict[str, Any]:
    """Group fairness of binary decisions (fairlearn), with the params' limits checked.

    Per sensitive column: by group ``rows positives selection_rate true_positive_rate
    false_positive_rate``, and ``demographic_parity_difference`` (largest gap in selection
    rate between groups) and ``equalized_odds_difference`` (largest gap in TPR or FPR).
    ``violations`` lists each difference above its limit (a None limit is not checked).
    A group without positives (or negatives) has no real TPR (FPR): fairlearn counts it as
    0, so a note warns that equalized odds is then unreliable.
    """
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    if not schema.is_binary:
        return {"skipped": "fairness metrics need a binary classification task"}
    y, decisions = np.asarray(y, "int64"), np.asarray(decisions, "int64")
    limits = {
        "demographic_parity_difference": params.max_demographic_parity_difference,
        "equalized_odds_difference": params.max_equalized_odds_difference,
    }
    measures = {
        "rows": count,
        "positives": lambda yt, yp: int(np.sum(yt)),
        "selection_rate": selection_rate,
        "true_positive_rate": partial(true_positive_rate, pos_label=1),
        "false_positive_rate": partial(false_positive_rate, pos_label=1),
    }
    columns: dict[str, Any] = {}
    violations: list[dict[str, Any]] = []
    notes: list[str] = []
    for column in sensitive:
        if column not in frame.columns:
            notes.append(f"fairness: column {column!r} absent, skipped")
            continue
        slices = _slices(frame[column])
        groups = slices.astype(str).to_numpy()
        by_group = MetricFrame(
            metrics=measures, y_true=y, y_pred=decisions, sensitive_features=groups
        ).by_group
        by_group = by_group.reindex([g for g in slices.cat.categories if g in by_group.index])
        by_group.index.name = "group"
        table = by_group.reset_index()
        table[["rows", "positives"]] = table[["rows", "positives"]].astype("int64")
        differences = {
            "demographic_parity_difference": float(
                demographic_parity_difference(y, decisions, sensitive_features=groups)
            ),
            "equalized_odds_difference": float(
                equalized_odds_difference(y, decisions, sensitive_features=groups)
            ),
        }
        if ((table["positives"] == 0) | (table["positives"] == table["rows"])).any():
            notes.append(
                f"fairness: a group of {column!r} has only one outcome class; its TPR or FPR "
                "is undefined, so equalized_odds_difference is unreliable"
            )
        columns[column] = {"groups": to_records(table), **differences}
        for metric, value in differences.items():
            limit = limits[metric]
            if limit is not None and value > limit:
                violations.append(
                    {"column": column, "metric": metric, "value": value, "limit": limit}
                )
    return {"columns": columns, "violations": violations, "notes": notes}


# --- explanations (SHAP) ---------------------------------------------------------------


def feature_sources(preprocess: ColumnTransformer) -> list[str]:
    """The input column behind each output column of a fitted ColumnTransformer.

    One-hot columns ``contract_Two year`` map back to ``contract``: within each transformer
    the output is given to the longest of its input columns that the name equals or starts
    with (``<column>_``), so ``contract_x_internet_DSL`` goes to ``contract_x_internet``,
    not ``contract``. An output matching no input keeps its own name.
    """
    names = [str(n) for n in preprocess.get_feature_names_out()]
    sources = list(names)
    for name, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, str) or name not in preprocess.output_indices_:
            continue  # "drop" / "passthrough" remainder: drop has no outputs
        listed = [columns] if isinstance(columns, str | int) else list(columns)
        inputs = [
            str(preprocess.feature_names_in_[c]) if isinstance(c, int | np.integer) else str(c)
            for c in listed
        ]
        for i in range(*preprocess.output_indices_[name].indices(len(names))):
            out = names[i].removeprefix(f"{name}__")
            match = [c for c in inputs if out == c or out.startswith(f"{c}_")]
            sources[i] = max(match, key=len) if match else out
    return sources


def explanations(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame, rows: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SHAP values from XGBoost's own TreeSHAP (``pred_contribs``), per source feature.

    Contributions are in margin units (log-odds for classification, the target for
    regression) and, with the base value, add up to the model's margin. One-hot columns
    are summed back into their source column; derived features count as themselves.
    Multiclass: global importance averages |SHAP| over classes; each explained row shows
    the contributions to its predicted class.

    Returns ``(importance, rows)``: ``feature, mean_abs_shap`` sorted by importance over
    all of ``frame``; and for the first ``rows`` rows a long table ``row, feature, value,
    contribution`` (``row`` is the position in ``frame``) holding the base value, the top 5
    features by |contribution| with their input values, and the sum of the rest, so each
    row's contributions add up to its margin.
    """
    import xgboost

    derive = pipeline.named_steps.get("derive")
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    model = pipeline.named_steps["model"]
    x = schema.feature_frame(frame)
    if derive is not None:
        x = derive.transform(x)
    matrix = np.asarray(preprocess.transform(x), dtype="float64")
    booster = model.get_booster()
    contribs = booster.predict(
        xgboost.DMatrix(matrix, feature_names=booster.feature_names, missing=model.missing),
        pred_contribs=True,
        iteration_range=iteration_range(model),
    )
    sources = feature_sources(preprocess)
    features = list(dict.fromkeys(sources))
    grouping = np.zeros((len(sources), len(features)))
    grouping[np.arange(len(sources)), [features.index(s) for s in sources]] = 1.0
    grouped = contribs[..., :-1] @ grouping  # (n, features) or (n, classes, features)
    base = contribs[..., -1]
    magnitude = np.abs(grouped).mean(axis=0)
    if grouped.ndim == 3:  # multiclass: per row, the predicted class
        magnitude = magnitude.mean(axis=0)
        chosen = contribs.sum(axis=2).argmax(axis=1)
        grouped = grouped[np.arange(len(chosen)), chosen]
        base = base[np.arange(len(chosen)), chosen]
    importance = (
        pd.DataFrame({"feature": features, "mean_abs_shap": magnitude})
        .sort_values("mean_abs_shap", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    records: list[dict[str, Any]] = []
    shown = min(rows, len(frame))
    top = np.argsort(-np.abs(grouped[:shown]), axis=1, kind="stable")[:, :_TOP_FEATURES]
    for r in range(shown):
        records.append({"row": r, "feature": _BASE, "value": None, "contribution": float(base[r])})
        for j in top[r]:
            value = x[features[j]].iloc[r] if features[j] in x.columns else None
            records.append(
                {
                    "row": r,
                    "feature": features[j],
                    "value": _plain(value),
                    "contribution": float(grouped[r, j]),
                }
            )
        rest = float(grouped[r].sum() - grouped[r, top[r]].sum())
        records.append({"row": r, "feature": _OTHER, "value": None, "contribution": rest})
    per_row = pd.DataFrame.from_records(
        records, columns=["row", "feature", "value", "contribution"]
    )
    per_row["value"] = per_row["value"].astype(object)
    return importance, per_row


# --- behaviour -------------------------------------------------------------------------


def behaviour_checks(
    pipeline: Pipeline, schema: Schema, frame: pd.DataFrame, checks: list[BehaviourCheck]
) -> list[dict[str, Any]]:
    """Directional expectations: add ``change`` to a column, does the score move as expected?

    The score is the positive-class probability (binary) or the prediction (regression).
    A row complies when ``new - old >= -tolerance`` (increase), ``<= tolerance``
    (decrease) or ``|new - old| <= tolerance`` (no_change); the check passes when the share
    of complying rows reaches ``min_share``. Multiclass problems, absent and non-numeric
    columns are skipped with the reason.
    """
    results: list[dict[str, Any]] = []
    old: np.ndarray | None = None
    for check in checks:
        if schema.task == "classification" and not schema.is_binary:
            results.append({"name": check.name, "skipped": "multiclass scores have no direction"})
            continue
        if check.column not in frame.columns:
            results.append({"name": check.name, "skipped": "column absent"})
            continue
        if not _is_numeric(frame[check.column]):
            results.append({"name": check.name, "skipped": "column not numeric"})
            continue
        if old is None:
            old = _score(pipeline, schema, frame)
        changed = frame.assign(**{check.column: frame[check.column] + check.change})
        delta = _score(pipeline, schema, changed) - old
        if check.expect == "increase":
            ok = delta >= -check.tolerance
        elif check.expect == "decrease":
            ok = delta <= check.tolerance
        else:
            ok = np.abs(delta) <= check.tolerance
        share = float(ok.mean()) if len(ok) else 0.0
        results.append(
            {
                "name": check.name,
                "column": check.column,
                "change": check.change,
                "expect": check.expect,
                "tolerance": check.tolerance,
                "rows": len(ok),
                "share_ok": share,
                "min_share": check.min_share,
                "passed": bool(len(ok)) and share >= check.min_share,
                "mean_delta": float(delta.mean()) if len(delta) else 0.0,
            }
        )
    return results


def _score(pipeline: Pipeline, schema: Schema, frame: pd.DataFrame) -> np.ndarray:
    scores = predict_scores(pipeline, schema, frame)
    return scores[:, 1] if schema.is_binary else scores


# --- learning curves -------------------------------------------------------------------


def learning_verdict(curves: dict[str, list[float]], best_iteration: int | None) -> dict[str, Any]:
    """Overfitting, underfitting or a good fit, from train and valid loss per round.

    Underfitting is checked first: if the valid loss is still falling steeply, more rounds
    help whatever the gap. Then overfitting: the valid loss ends well above its minimum, or
    at the round the model uses (``best_iteration``, else the last) the train loss is far
    below the valid loss. Thresholds: ``_STILL_FALLING``, ``_MAX_RISE``, ``_MAX_GAP``.
    """
    train, valid = np.asarray(curves.get("train", [])), np.asarray(curves.get("valid", []))
    if not len(valid) or len(train) != len(valid):
        return {"verdict": "unknown", "advice": "no learning curves to judge", "rounds": len(valid)}
    rounds = len(valid)
    used = best_iteration if best_iteration is not None and best_iteration < rounds else rounds - 1
    low = int(np.argmin(valid))
    scale = max(float(valid[low]), 1e-12)
    tail = min(max(_MIN_TAIL, int(rounds * _TAIL_SHARE)), rounds - 1)
    rise = float((valid[-1] - valid[low]) / scale)
    gap = float((valid[used] - train[used]) / max(float(valid[used]), 1e-12))
    drop = float((valid[-1 - tail] - valid[-1]) / scale) if tail else 0.0
    if drop > _STILL_FALLING:
        verdict = "underfitting"
        advice = (
            f"valid loss still fell {drop:.1%} over the last {tail} rounds: raise "
            "n_estimators (or learning_rate) so training can go on."
        )
    elif rise > _MAX_RISE or gap > _MAX_GAP:
        verdict = "overfitting"
        advice = (
            f"valid loss ends {rise:.1%} above its minimum and train loss is {gap:.1%} below "
            "valid: lower max_depth or raise min_child_weight (or reg_lambda)."
        )
    else:
        verdict = "good fit"
        advice = (
            f"train and valid loss agree (gap {gap:.1%}) and the valid loss has levelled "
            "off: no change needed."
        )
    return {
        "verdict": verdict,
        "advice": advice,
        "rounds": rounds,
        "best_iteration": best_iteration,
        "valid_min": float(valid[low]),
        "valid_min_round": low,
        "valid_end": float(valid[-1]),
        "rise_after_min": rise,
        "train_at_best": float(train[used]),
        "valid_at_best": float(valid[used]),
        "gap_at_best": gap,
        "tail_rounds": tail,
        "tail_drop": drop,
    }
