"""Data checks a contract cannot express: PII, target leakage, outliers.

Each check is a pure, vectorised function over a DataFrame, so it runs in well under a
second on a 20,000-row table and is tested on tiny frames that violate it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

from cycleml.data.schema import Schema, label_key

__all__ = ["leakage_scores", "outlier_counts", "pii_columns"]

# Column names that say "this is about a person": the term must end the name, so
# "home_phone" is flagged and "phone_service" is not.
_PII_NAME = re.compile(
    r"^name$|(^|_)((first|last|full|sur|given|family|middle|customer|user|contact|person|client|"
    r"passenger|employee|patient)_?name|e_?mail(_?address)?|phone(_?(number|no|num))?|"
    r"mobile_?(number|phone|no)|cell_?phone|ssn|social_security(_?number)?|passport(_?number)?|"
    r"(street_?|home_?|postal_?|mailing_?)?address|street|zip_?code|postcode|iban|"
    r"credit_?card(_?number)?|card_?number|account_?(number|no|num)|birth_?date|"
    r"date_of_birth|dob|ip_?address)$"
)
# Values that look like contact details or account numbers.
_PII_VALUE = {
    "email address": re.compile(r"^[\w.+-]+@[\w-]+\.[\w.-]+$"),
    "phone number": re.compile(r"^(\+\d{1,3}[\s.-]?)?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,5}$"),
    "card or account number": re.compile(r"^(\d[ -]?){12,19}$"),
    "IBAN": re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$"),
    "IP address": re.compile(r"^\d{1,3}(\.\d{1,3}){3}$"),
}
_PII_VALUE_SHARE = 0.5
_PII_MIN_DISTINCT = 20
_PII_SAMPLE = 500
_LEAK_BUCKETS = 20
_LEAK_CATEGORIES = 50


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()).strip("_")


def pii_columns(frame: pd.DataFrame, declared: list[str], skip: set[str]) -> dict[str, str]:
    """Columns that hold personal data, with the reason: declared, by name, or by value."""
    found = {c: "declared in validate.pii_columns" for c in declared if c in frame.columns}
    for col in frame.columns:
        if col in found or col in skip:
            continue
        if _PII_NAME.search(_snake(str(col))):
            # "Street" in a housing table holds Pave/Grvl: a name alone is not enough when
            # the values are a handful of categories
            if frame[col].nunique() > _PII_MIN_DISTINCT:
                found[col] = f"the name {col!r} suggests personal data"
                continue
        if frame[col].dtype != object:
            continue
        sample = frame[col].dropna().astype(str).str.strip()
        sample = sample.head(_PII_SAMPLE)
        if sample.empty:
            continue
        for what, pattern in _PII_VALUE.items():
            share = float(sample.str.match(pattern).mean())
            if share >= _PII_VALUE_SHARE:
                found[col] = f"{share:.0%} of values look like an {what}"
                break
    return found


def _buckets(x: pd.Series) -> pd.Series:
    """Quantile bins for numbers, top categories for text; missing is a bucket of its own."""
    if pd.api.types.is_numeric_dtype(x) and x.nunique() > _LEAK_BUCKETS:
        codes = pd.qcut(x, q=_LEAK_BUCKETS, labels=False, duplicates="drop")
        return codes.fillna(-1).astype("int64")
    keys = x.map(label_key, na_action="ignore")
    top = keys.value_counts().index[:_LEAK_CATEGORIES]
    return keys.where(keys.isin(top), "(other)").fillna("(missing)")


def leakage_scores(frame: pd.DataFrame, schema: Schema, columns: list[str]) -> dict[str, float]:
    """How well each column alone predicts the target (1.0 = perfectly).

    The column is bucketed (quantile bins or categories) and the target's mean per bucket is
    the prediction: binary problems score its ROC AUC, multiclass the accuracy of the
    bucket's majority class, regression the R². A score near 1 means the column encodes
    the answer (it is computed from the target, or recorded after the outcome).
    """
    rows = frame[frame[schema.target].notna()]
    y = schema.encode_target(rows[schema.target])
    scores: dict[str, float] = {}
    for col in columns:
        buckets = _buckets(rows[col]).to_numpy()
        if schema.task == "regression":
            pred = pd.Series(y).groupby(buckets).transform("mean").to_numpy()
            scores[col] = float(r2_score(y, pred))
        elif schema.is_binary:
            rate = pd.Series(y).groupby(buckets).transform("mean").to_numpy()
            scores[col] = float(roc_auc_score(y, rate))
        else:
            majority = pd.crosstab(buckets, y).idxmax(axis=1)
            scores[col] = float((pd.Series(buckets).map(majority).to_numpy() == y).mean())
    return scores


def outlier_counts(frame: pd.DataFrame, columns: list[str], iqr_factor: float) -> dict[str, int]:
    """Values beyond ``iqr_factor`` inter-quartile ranges outside the quartiles, per column."""
    out: dict[str, int] = {}
    for col in columns:
        x = frame[col]
        q1, q3 = x.quantile(0.25), x.quantile(0.75)
        spread = q3 - q1
        if not np.isfinite(spread) or spread == 0:
            continue
        n = int(((x < q1 - iqr_factor * spread) | (x > q3 + iqr_factor * spread)).sum())
        if n:
            out[col] = n
    return out
