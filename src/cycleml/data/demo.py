"""Seeded generator of a realistic telecom customer-churn table.

This is the embedded default dataset of cycleml. It exists so that every stage of the
platform (ingest, validation, training, evaluation, monitoring) can be exercised offline,
deterministically, and at any size, without downloading anything. The table is modelled on
the public IBM Telco churn file, including its warts, because a demo that only ever sees
clean data would hide the code paths that real data needs.

The generator is pure: it performs no I/O, has no import-time side effects and never touches
the global random state. All randomness comes from ``numpy.random.default_rng(seed)``, so the
same ``(rows, seed, scenario, start_date)`` always yields the identical frame.

Columns
-------
``customer_id, signup_date, gender, senior_citizen, partner, dependents, tenure_months,
contract, phone_service, internet_service, online_security, tech_support, streaming_tv,
paperless_billing, payment_method, monthly_charges, total_charges, support_calls,
avg_monthly_gb, churn`` (in that order). ``total_charges`` is text, as in the original file,
with a single space ``" "`` where ``tenure_months == 0``. ``churn`` is ``"Yes"``/``"No"``.

The features are correlated the way a telco's are (longer tenure makes long contracts more
likely, fiber costs more and draws more support calls, month-to-month customers favour
electronic checks), so feature-selection and drift tooling see realistic structure.
``signup_date`` is a record date spread uniformly over about three years from
``start_date``; like many real extracts it is not reconciled with ``tenure_months``, so do not
derive one from the other.

Churn mechanism
---------------
Churn is drawn as ``churn ~ Bernoulli(sigmoid(logit))`` with, in scenario ``"none"``::

    logit = -1.28
            + 1.10 * [contract == "Month-to-month"]
            + 0.55 * [contract == "Quarterly"]          (only exists in "new_contract")
            - 0.90 * [contract == "Two year"]
            - 0.035 * tenure_months
            + 0.02 * (monthly_charges - 65)
            + 0.50 * [internet_service == "Fiber optic"]
            - 0.45 * [tech_support == "Yes"]
            - 0.35 * [online_security == "Yes"]
            + 0.25 * min(support_calls, 6)
            + 0.30 * [payment_method == "Electronic check"]
            + 0.20 * [paperless_billing == "Yes"]
            + 0.25 * senior_citizen
            - 0.20 * [partner == "Yes"]
            - 0.15 * [dependents == "Yes"]

``"One year"`` is the reference contract (coefficient 0). The intercept is tuned so that the
overall churn rate is about 26%. The formula is evaluated on the *clean* values, before the
messiness below is injected: missing values, ``"?"`` markers and outliers are recording
errors, not facts about the customer, so they must not leak into the label.

Messiness (all scenarios, all seeded)
-------------------------------------
* ~2% missing values (NaN) in ``support_calls`` (which therefore is float) and in
  ``avg_monthly_gb``; ~1% of ``payment_method`` is the literal ``"?"`` missing marker.
* ~0.1% outliers: ``monthly_charges`` or ``avg_monthly_gb`` multiplied by 5-10.
* ~0.2% exact duplicate rows (ids included), appended and then shuffled with the rest; the
  returned frame still has exactly ``rows`` rows.

Drift scenarios
---------------
All scenarios consume the random stream identically, so for a given seed they share the same
customers and differ only by the scenario's deliberate change. This makes "before/after"
comparisons exact rather than statistical.

* ``"none"``: the reference distribution.
* ``"price_rise"``: covariate drift. ``monthly_charges`` is 15% higher for everyone (the bill
  history in ``total_charges`` is unchanged, it was paid at old prices). Churn responds only
  through the unchanged price coefficient, so it rises.
* ``"new_contract"``: an unseen category. About 25% of all customers (taken from
  month-to-month) are on a new ``"Quarterly"`` contract whose churn effect (+0.55) lies
  between month-to-month (+1.10) and one year (0).
* ``"churn_propensity"``: concept drift. Features are exactly as in ``"none"`` (same seed,
  same customers) but the relationship changes, as when a competitor starts poaching loyal
  customers and the support desk becomes a source of frustration:

  - the intercept is raised by 0.2 (-1.28 -> -1.08),
  - the tenure coefficient weakens from -0.035 to -0.02 (loyalty protects less),
  - the tech-support effect is reversed (+0.45 instead of -0.45).

  Churn rises from about 26% to about 39%, and a model trained on ``"none"`` loses both
  calibration and ranking quality (ROC AUC drops by about 0.04 with gradient boosting),
  while data-drift tests on the features see nothing. A pure intercept shift alone would
  leave ROC AUC untouched, which is why the tenure effect changes too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["SCENARIOS", "generate_churn"]

SCENARIOS: tuple[str, ...] = ("none", "price_rise", "new_contract", "churn_propensity")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

_INTERCEPT = -1.28
_PRICE_RISE = 1.15
_QUARTERLY_SHARE_OF_M2M = 0.45  # ~55% month-to-month * 0.45 ~= 25% of all customers
_SIGNUP_SPAN_DAYS = 3 * 365
_MISSING_RATE = 0.02
_QMARK_RATE = 0.01
_OUTLIER_RATE = 0.001
_DUPLICATE_RATE = 0.002

_YES_NO = np.array(["No", "Yes"], dtype=object)
_ADDON = np.array(["No", "Yes", "No internet service"], dtype=object)
_GENDER = np.array(["Male", "Female"], dtype=object)
_CONTRACTS = np.array(["Month-to-month", "One year", "Two year", "Quarterly"], dtype=object)
_INTERNET = np.array(["DSL", "Fiber optic", "No"], dtype=object)
_PAYMENTS = np.array(
    [
        "Electronic check",
        "Mailed check",
        "Bank transfer (automatic)",
        "Credit card (automatic)",
        "?",
    ],
    dtype=object,
)  # the trailing "?" is the file's missing marker, never drawn as a real category

# Month-to-month customers favour electronic checks; committed customers favour autopay.
_PAYMENT_P_M2M = np.array([0.45, 0.22, 0.17, 0.16])
_PAYMENT_P_OTHER = np.array([0.18, 0.24, 0.30, 0.28])


def _yes_no(flag: BoolArray) -> ObjArray:
    """Map a boolean array to the ``"Yes"``/``"No"`` labels used throughout the source file.

    Indexing a tiny object vocabulary shares the two string objects across all rows, which is
    much faster (and lighter) than materialising a new Python string per row.
    """
    out: ObjArray = _YES_NO[flag.astype(np.intp)]
    return out


def _addon(flag: BoolArray, has_internet: BoolArray) -> ObjArray:
    """Encode an internet add-on the way the Telco file does, with a third level.

    Customers without internet cannot have the add-on, and the source data says so explicitly
    (``"No internet service"``) instead of ``"No"``; keeping that quirk makes the encoder
    stages face a realistic, partly redundant category.
    """
    out: ObjArray = _ADDON[np.where(has_internet, flag.astype(np.intp), 2)]
    return out


def _sigmoid(x: FloatArray) -> FloatArray:
    """Numerically safe logistic function."""
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))
    return out


def _categorical(u: FloatArray, probs: FloatArray) -> IntArray:
    """Draw one category per row from row-specific probabilities, vectorised.

    Args:
        u: Uniform(0, 1) draws, one per row.
        probs: Array of shape ``(n, k)`` whose rows sum to one.

    Returns:
        Category indices in ``[0, k)``.
    """
    cum = np.cumsum(probs, axis=1)[:, :-1]
    idx: IntArray = (u[:, None] >= cum).sum(axis=1).astype(np.int64)
    return idx


def _tenure(rng: np.random.Generator, n: int) -> IntArray:
    """Draw tenures with the shape seen in real churn data.

    A mixture: many recent customers (geometric-like decay from one month), a flat middle,
    and a bump of loyal customers near the 72-month cap; about 1% are brand new (tenure 0,
    not yet billed), which is what produces blank ``total_charges``.
    """
    component = rng.random(n)
    recent = 1.0 + np.floor(rng.exponential(8.0, n))
    middle = rng.integers(1, 73, n).astype(np.float64)
    loyal = 72.0 - np.floor(rng.exponential(6.0, n))
    brand_new = rng.random(n) < 0.01
    tenure = np.where(component < 0.40, recent, np.where(component < 0.80, middle, loyal))
    tenure = np.where(brand_new, 0.0, np.clip(tenure, 1.0, 72.0))
    out: IntArray = tenure.astype(np.int64)
    return out


def _validate(rows: int, scenario: str) -> None:
    """Reject arguments early with messages that name the argument and the allowed values."""
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    if scenario not in SCENARIOS:
        allowed = ", ".join(repr(s) for s in SCENARIOS)
        raise ValueError(f"scenario must be one of {allowed}, got {scenario!r}")


def _customer_ids(index: IntArray) -> ObjArray:
    """Build ``"C0000001"``-style ids (zero-based row ``i`` gets number ``i + 1``)."""
    out: ObjArray = np.array([f"C{i + 1:07d}" for i in index.tolist()], dtype=object)
    return out


def _format_total(values: FloatArray, blank: BoolArray) -> ObjArray:
    """Format totals as ``"%.2f"`` text with ``" "`` blanks, like the IBM Telco file."""
    text = [f"{v:.2f}" for v in values.tolist()]
    out: ObjArray = np.array(text, dtype=object)
    out[blank] = " "
    return out


def generate_churn(
    rows: int,
    seed: int,
    scenario: str = "none",
    start_date: str = "2022-01-01",
) -> pd.DataFrame:
    """Generate a seeded, realistic and deliberately messy telecom churn table.

    The churn label follows the logistic model written in this module's docstring, so that a
    model's quality can be judged against a known ground truth; the messiness (missing
    values, ``"?"`` markers, text-encoded numbers with blanks, duplicates, outliers) is there
    so the ingest and validation stages have real work to do.

    Args:
        rows: Exact number of rows to return (duplicates included); must be >= 1.
        seed: Seed for ``numpy.random.default_rng``; equal seeds give identical frames.
        scenario: One of ``SCENARIOS``; selects a drift scenario (see module docstring).
        start_date: First possible ``signup_date``; sign-ups span about three years from it.

    Returns:
        A DataFrame with the columns listed in the module docstring, in random row order.

    Raises:
        ValueError: If ``rows`` < 1, ``scenario`` is unknown, or ``start_date`` is not a date.
    """
    _validate(rows, scenario)
    rows = int(rows)
    start = pd.Timestamp(start_date).normalize()
    rng = np.random.default_rng(seed)

    n_dup = min(rows // 2, max(1, round(rows * _DUPLICATE_RATE)))
    n = rows - n_dup

    # --- demographics -------------------------------------------------------------------
    signup_days = rng.integers(0, _SIGNUP_SPAN_DAYS + 1, n)
    female = rng.random(n) < 0.5
    senior = rng.random(n) < 0.16
    partner = rng.random(n) < 0.48
    dependents = rng.random(n) < np.where(partner, 0.50, 0.12)
    tenure = _tenure(rng, n)

    # --- contract: longer-tenured customers tend to commit for longer ----------------------
    t = tenure.astype(np.float64)
    s_one = np.exp(-1.85 + 0.035 * t)
    s_two = np.exp(-3.4 + 0.065 * t)
    denom = 1.0 + s_one + s_two
    contract_probs = np.column_stack([1.0 / denom, s_one / denom, s_two / denom])
    contract_idx = _categorical(rng.random(n), contract_probs)  # 0 m2m, 1 one, 2 two year
    quarterly_draw = rng.random(n)

    # --- services ------------------------------------------------------------------------
    phone = rng.random(n) < 0.90
    internet_idx = _categorical(rng.random(n), np.tile([0.30, 0.46, 0.24], (n, 1)))
    internet_idx = np.where(phone, internet_idx, 0)  # phone-less customers are all on DSL
    has_internet = internet_idx != 2
    fiber = internet_idx == 1
    committed = contract_idx != 0
    security = has_internet & (rng.random(n) < np.where(fiber, 0.30, 0.45) + 0.12 * committed)
    tech = has_internet & (rng.random(n) < np.where(fiber, 0.30, 0.45) + 0.12 * committed)
    streaming = has_internet & (rng.random(n) < np.where(fiber, 0.55, 0.40))
    # Hidden services: they add to the bill but are not in the table, so price is noisy.
    multi_lines = phone & (rng.random(n) < 0.45)
    movies = has_internet & (rng.random(n) < 0.45)
    paperless = rng.random(n) < 0.55 + 0.15 * fiber - 0.20 * ~has_internet
    pay_probs = np.where((contract_idx == 0)[:, None], _PAYMENT_P_M2M, _PAYMENT_P_OTHER)
    payment_idx = _categorical(rng.random(n), pay_probs)

    # --- money ----------------------------------------------------------------------------
    base_charges = (
        20.0 * phone
        + 5.0 * multi_lines
        + np.where(fiber, 50.0, np.where(has_internet, 25.0, 0.0))
        + 5.0 * security
        + 5.0 * tech
        + 10.0 * streaming
        + 10.0 * movies
        + rng.normal(0.0, 2.5, n)
    )
    base_charges = np.round(np.clip(base_charges, 18.25, 118.75), 2)
    total = base_charges * t * rng.normal(1.0, 0.04, n)
    total = np.round(np.maximum(total, 0.0), 2)

    # --- usage and support ----------------------------------------------------------------
    lam = 0.6 + 0.5 * fiber + 0.6 * (has_internet & ~tech) + 0.2 * senior
    calls = rng.poisson(lam).astype(np.float64)
    log_gb = np.log(np.where(fiber, 70.0, 25.0)) + 0.6 * (streaming | movies)
    gb = np.where(has_internet, np.round(rng.lognormal(log_gb, 0.5), 2), 0.0)

    # --- scenario changes that touch features (no extra draws: streams stay aligned) -------
    charges = base_charges
    if scenario == "price_rise":
        charges = np.round(base_charges * _PRICE_RISE, 2)
    quarterly = np.zeros(n, dtype=bool)
    if scenario == "new_contract":
        quarterly = (contract_idx == 0) & (quarterly_draw < _QUARTERLY_SHARE_OF_M2M)
    contract_code = np.where(quarterly, 3, contract_idx)

    # --- churn ----------------------------------------------------------------------------
    intercept = _INTERCEPT
    tech_coef = -0.45
    tenure_coef = -0.035
    if scenario == "churn_propensity":
        intercept += 0.2
        tech_coef = 0.45
        tenure_coef = -0.02
    logit = (
        intercept
        + 1.10 * (contract_code == 0)
        + 0.55 * (contract_code == 3)
        - 0.90 * (contract_code == 2)
        + tenure_coef * t
        + 0.02 * (charges - 65.0)
        + 0.50 * fiber
        + tech_coef * tech
        - 0.35 * security
        + 0.25 * np.minimum(calls, 6.0)
        + 0.30 * (payment_idx == 0)
        + 0.20 * paperless
        + 0.25 * senior
        - 0.20 * partner
        - 0.15 * dependents
    )
    churn = rng.random(n) < _sigmoid(logit)

    # --- messiness: recording errors injected after the label is fixed ---------------------
    calls[rng.random(n) < _MISSING_RATE] = np.nan
    gb[rng.random(n) < _MISSING_RATE] = np.nan
    qmark = rng.random(n) < _QMARK_RATE
    outlier = rng.random(n) < _OUTLIER_RATE
    factor = rng.uniform(5.0, 10.0, n)
    on_gb = (rng.random(n) < 0.5) & (gb > 0)  # NaN > 0 is False: those hit charges instead
    charges = np.where(outlier & ~on_gb, np.round(charges * factor, 2), charges)
    gb = np.where(outlier & on_gb, np.round(gb * factor, 2), gb)

    # --- duplicates and shuffling, as one row selection applied to every column ------------
    # Selecting rows on the compact numeric codes, before they become Python strings, keeps
    # the million-row case fast.
    take = np.concatenate([np.arange(n), rng.integers(0, n, n_dup)])[rng.permutation(rows)]
    signup = (start.to_datetime64().astype("datetime64[D]") + signup_days[take]).astype(
        "datetime64[ns]"
    )
    payment_code = np.where(qmark, len(_PAYMENTS) - 1, payment_idx)
    has_internet_t = has_internet[take]
    columns: dict[str, npt.NDArray[Any]] = {
        "customer_id": _customer_ids(take),
        "signup_date": signup,
        "gender": _GENDER[female[take].astype(np.intp)],
        "senior_citizen": senior[take].astype(np.int64),
        "partner": _yes_no(partner[take]),
        "dependents": _yes_no(dependents[take]),
        "tenure_months": tenure[take],
        "contract": _CONTRACTS[contract_code[take]],
        "phone_service": _yes_no(phone[take]),
        "internet_service": _INTERNET[internet_idx[take]],
        "online_security": _addon(security[take], has_internet_t),
        "tech_support": _addon(tech[take], has_internet_t),
        "streaming_tv": _addon(streaming[take], has_internet_t),
        "paperless_billing": _yes_no(paperless[take]),
        "payment_method": _PAYMENTS[payment_code[take]],
        "monthly_charges": charges[take],
        "total_charges": _format_total(total[take], tenure[take] == 0),
        "support_calls": calls[take],
        "avg_monthly_gb": gb[take],
        "churn": _yes_no(churn[take]),
    }
    # Explicit object dtype keeps text columns as plain ``str`` objects even on pandas
    # versions that would otherwise infer a dedicated string dtype.
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=object if values.dtype == object else values.dtype)
            for name, values in columns.items()
        }
    )
