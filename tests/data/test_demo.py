"""Tests for the seeded demo churn generator (``cycleml.demo``).

The generator is the default dataset of the whole platform, so these tests pin down the
contract the later stages rely on: determinism, schema, the deliberate messiness, the drift
scenarios, and that the churn label is actually learnable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from cycleml.data.demo import SCENARIOS, generate_churn

pytestmark = pytest.mark.data

ROWS = 20_000
SEED = 11

EXPECTED_COLUMNS = [
    "customer_id",
    "signup_date",
    "gender",
    "senior_citizen",
    "partner",
    "dependents",
    "tenure_months",
    "contract",
    "phone_service",
    "internet_service",
    "online_security",
    "tech_support",
    "streaming_tv",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "avg_monthly_gb",
    "churn",
]
TEXT_COLUMNS = [
    "customer_id",
    "gender",
    "partner",
    "dependents",
    "contract",
    "phone_service",
    "internet_service",
    "online_security",
    "tech_support",
    "streaming_tv",
    "paperless_billing",
    "payment_method",
    "total_charges",
    "churn",
]
ADDONS = ["online_security", "tech_support", "streaming_tv"]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """One 20k-row frame per scenario, same seed, shared by the module to keep it fast."""
    return {scenario: generate_churn(ROWS, SEED, scenario) for scenario in SCENARIOS}


@pytest.fixture(scope="module")
def reference(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return frames["none"]


def churn_rate(df: pd.DataFrame) -> float:
    return float((df["churn"] == "Yes").mean())


def encode(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Minimal ingest: coerce text numbers, map the "?" marker to NaN, one-hot encode."""
    features = df.drop(columns=["customer_id", "signup_date", "churn"])
    features = features.assign(
        total_charges=pd.to_numeric(features["total_charges"], errors="coerce"),
        payment_method=features["payment_method"].replace("?", np.nan),
    )
    return pd.get_dummies(features, dtype=float), (df["churn"] == "Yes").to_numpy()


# --- determinism and purity ---------------------------------------------------------------


def test_same_seed_gives_identical_frame() -> None:
    pd.testing.assert_frame_equal(generate_churn(3_000, 5), generate_churn(3_000, 5))


def test_different_seed_gives_different_frame() -> None:
    assert not generate_churn(3_000, 5).equals(generate_churn(3_000, 6))


def test_global_random_state_untouched() -> None:
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    generate_churn(500, 1)
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("rows", [1, 2, 3, 499, 500, 1_001, ROWS])
def test_exact_row_count(rows: int) -> None:
    assert len(generate_churn(rows, 3)) == rows


# --- schema ---------------------------------------------------------------------------------


def test_columns_and_dtypes(reference: pd.DataFrame) -> None:
    assert list(reference.columns) == EXPECTED_COLUMNS
    assert pd.api.types.is_datetime64_dtype(reference["signup_date"])
    for col in ["senior_citizen", "tenure_months"]:
        assert pd.api.types.is_integer_dtype(reference[col]), col
    for col in ["monthly_charges", "support_calls", "avg_monthly_gb"]:
        assert pd.api.types.is_float_dtype(reference[col]), col
    for col in TEXT_COLUMNS:
        assert reference[col].dtype == object, col
        assert reference[col].map(lambda v: isinstance(v, str)).all(), col


def test_categorical_domains(reference: pd.DataFrame) -> None:
    domains = {
        "gender": {"Female", "Male"},
        "partner": {"Yes", "No"},
        "dependents": {"Yes", "No"},
        "contract": {"Month-to-month", "One year", "Two year"},
        "phone_service": {"Yes", "No"},
        "internet_service": {"DSL", "Fiber optic", "No"},
        "paperless_billing": {"Yes", "No"},
        "payment_method": {
            "Electronic check",
            "Mailed check",
            "Bank transfer (automatic)",
            "Credit card (automatic)",
            "?",
        },
        "churn": {"Yes", "No"},
        **{col: {"Yes", "No", "No internet service"} for col in ADDONS},
    }
    for col, allowed in domains.items():
        assert set(reference[col].unique()) == allowed, col
    assert set(reference["senior_citizen"].unique()) == {0, 1}


def test_realistic_marginals(reference: pd.DataFrame) -> None:
    assert reference["tenure_months"].between(0, 72).all()
    assert 0.13 <= reference["senior_citizen"].mean() <= 0.19
    contract = reference["contract"].value_counts(normalize=True)
    assert 0.50 <= contract["Month-to-month"] <= 0.60
    tenure = reference["tenure_months"]
    assert (tenure <= 12).mean() > 0.30  # many new customers
    assert (tenure >= 66).mean() > 0.10  # and a bump of loyal ones
    charges = reference["monthly_charges"]
    assert charges.min() >= 18.0
    assert 17.0 <= charges.quantile(0.01) and charges.quantile(0.99) <= 120.0
    assert (charges.round(2) == charges).all()
    fiber = reference["internet_service"] == "Fiber optic"
    assert charges[fiber].median() > charges[~fiber].median() + 15


def test_customer_ids(reference: pd.DataFrame) -> None:
    ids = reference["customer_id"]
    assert ids.str.fullmatch(r"C\d{7}").all()
    assert reference.drop_duplicates()["customer_id"].is_unique


def test_signup_dates_span_three_years_in_random_order() -> None:
    df = generate_churn(5_000, 2, start_date="2020-03-15")
    dates = df["signup_date"]
    assert (dates == dates.dt.normalize()).all()
    assert dates.min() >= pd.Timestamp("2020-03-15")
    assert dates.max() <= pd.Timestamp("2023-03-16")
    assert (dates.max() - dates.min()).days > 3 * 365 - 30
    assert not dates.is_monotonic_increasing
    assert abs(dates.rank().corr(pd.Series(np.arange(len(df)), dtype=float))) < 0.05


def test_total_charges_is_text_with_blanks_exactly_at_zero_tenure(
    reference: pd.DataFrame,
) -> None:
    total = reference["total_charges"]
    zero = reference["tenure_months"] == 0
    assert zero.any()
    assert (total == " ").equals(zero)
    filled = total[~zero]
    assert filled.str.fullmatch(r"\d+\.\d{2}").all()
    expected = reference.loc[~zero, "monthly_charges"] * reference.loc[~zero, "tenure_months"]
    ratio = filled.astype(float) / expected
    assert 0.95 <= ratio.median() <= 1.05


def test_no_internet_service_consistency(reference: pd.DataFrame) -> None:
    no_internet = reference["internet_service"] == "No"
    for col in ADDONS:
        assert (reference[col] == "No internet service").equals(no_internet), col
    assert (reference.loc[no_internet, "avg_monthly_gb"].dropna() == 0).all()
    assert (reference.loc[~no_internet, "avg_monthly_gb"].dropna() > 0).all()


def test_churn_rate(reference: pd.DataFrame) -> None:
    assert 0.22 <= churn_rate(reference) <= 0.32


# --- messiness -----------------------------------------------------------------------------


def test_duplicates_present(reference: pd.DataFrame) -> None:
    n_dup = int(reference.duplicated().sum())
    assert 0.001 * ROWS <= n_dup <= 0.004 * ROWS


def test_missing_values_and_markers(reference: pd.DataFrame) -> None:
    for col in ["support_calls", "avg_monthly_gb"]:
        assert 0.01 <= reference[col].isna().mean() <= 0.03, col
    assert 0.005 <= (reference["payment_method"] == "?").mean() <= 0.02
    other = reference.drop(columns=["support_calls", "avg_monthly_gb"])
    assert not other.isna().any().any()
    calls = reference["support_calls"].dropna()
    assert (calls >= 0).all() and (calls == calls.round()).all()


def test_outliers_present(reference: pd.DataFrame) -> None:
    charges_out = reference["monthly_charges"] > 125
    gb = reference["avg_monthly_gb"]
    gb_out = gb > 5 * gb.quantile(0.99)
    n_out = int(charges_out.sum() + gb_out.sum())
    assert 1 <= n_out <= 0.003 * ROWS
    assert charges_out.any()


def test_support_calls_higher_for_fiber_and_without_tech_support(
    reference: pd.DataFrame,
) -> None:
    calls = reference["support_calls"]
    fiber = reference["internet_service"] == "Fiber optic"
    assert calls[fiber].mean() > calls[~fiber].mean()
    internet = reference["internet_service"] != "No"
    tech = reference["tech_support"] == "Yes"
    assert calls[internet & ~tech].mean() > calls[internet & tech].mean()


# --- drift scenarios -----------------------------------------------------------------------


def test_price_rise(frames: dict[str, pd.DataFrame]) -> None:
    base, drifted = frames["none"], frames["price_rise"]
    ratio = drifted["monthly_charges"].mean() / base["monthly_charges"].mean()
    assert 1.13 <= ratio <= 1.17
    assert churn_rate(drifted) > churn_rate(base) + 0.01
    pd.testing.assert_series_equal(drifted["tenure_months"], base["tenure_months"])


def test_new_contract_only_in_its_scenario(frames: dict[str, pd.DataFrame]) -> None:
    for scenario, df in frames.items():
        has_quarterly = bool((df["contract"] == "Quarterly").any())
        assert has_quarterly == (scenario == "new_contract"), scenario
    drifted = frames["new_contract"]
    share = (drifted["contract"] == "Quarterly").mean()
    assert 0.20 <= share <= 0.30
    rates = drifted.groupby("contract")["churn"].apply(lambda s: (s == "Yes").mean())
    assert rates["One year"] < rates["Quarterly"] < rates["Month-to-month"]


def test_churn_propensity_is_concept_drift_only(frames: dict[str, pd.DataFrame]) -> None:
    base, drifted = frames["none"], frames["churn_propensity"]
    tenure_ratio = drifted["tenure_months"].mean() / base["tenure_months"].mean()
    assert abs(tenure_ratio - 1) < 0.03
    charges_ratio = drifted["monthly_charges"].mean() / base["monthly_charges"].mean()
    assert abs(charges_ratio - 1) < 0.03
    for col in ["contract", "internet_service", "tech_support", "payment_method"]:
        shares = [df[col].value_counts(normalize=True) for df in (drifted, base)]
        assert (shares[0] - shares[1]).abs().max() < 0.02, col
    assert abs(churn_rate(drifted) - churn_rate(base)) > 0.05


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_keeps_schema_and_mess(
    frames: dict[str, pd.DataFrame], scenario: str
) -> None:
    df = frames[scenario]
    assert len(df) == ROWS
    assert list(df.columns) == EXPECTED_COLUMNS
    assert df.duplicated().any()
    assert (df["payment_method"] == "?").any()
    assert df["support_calls"].isna().any() and df["avg_monthly_gb"].isna().any()


# --- argument validation -------------------------------------------------------------------


@pytest.mark.parametrize("rows", [0, -5])
def test_rows_below_one_raise(rows: int) -> None:
    with pytest.raises(ValueError, match="rows"):
        generate_churn(rows, 1)


def test_unknown_scenario_raises_naming_allowed_values() -> None:
    with pytest.raises(ValueError, match="scenario") as excinfo:
        generate_churn(100, 1, scenario="price_drop")
    for scenario in SCENARIOS:
        assert scenario in str(excinfo.value)


# --- learnability --------------------------------------------------------------------------


def test_churn_is_learnable_and_concept_drift_hurts(frames: dict[str, pd.DataFrame]) -> None:
    x_train, y_train = encode(frames["none"])
    # One OpenMP thread: on small shared machines, busy-waiting threads make the fit ~30x
    # slower than serial, and 20k rows do not need parallelism.
    with threadpool_limits(limits=1, user_api="openmp"):
        model = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)

    def holdout_auc(scenario: str) -> float:
        x_test, y_test = encode(generate_churn(ROWS, SEED + 1, scenario))
        x_test = x_test.reindex(columns=x_train.columns, fill_value=0.0)
        return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))

    auc_none = holdout_auc("none")
    assert auc_none >= 0.78
    assert holdout_auc("churn_propensity") < auc_none - 0.02
