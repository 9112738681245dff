"""Typed params: every knob of the pipeline, loaded once from params.yaml.

A wrong key or value fails here, before any work, with a message that names the key
(``data.source.rows: Input should be greater than 0``), so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

__all__ = [
    "ConfigError",
    "DataParams",
    "Params",
    "apply_overrides",
    "load_params",
    "params_hash",
    "read_yaml",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
# business KPIs from the goals block (binary classification / regression)
CLASSIFICATION_KPIS = ("profit", "profit_uplift")
REGRESSION_KPIS = ("error_cost", "within_band")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape", "error_cost"})


class ConfigError(ValueError):
    """params.yaml is missing, malformed, or holds a wrong key or value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- data ------------------------------------------------------------------------------


class DemoSource(_Strict):
    """The bundled churn generator (see ``cycleml.data.demo``)."""

    kind: Literal["demo"]
    rows: int = Field(20_000, gt=0)
    seed: int = 42
    scenario: str = "none"


def _as_text(value: Any) -> Any:
    """A date or number as text: YAML reads ``2024-06-01`` as a date and ``7`` as a number,
    and ``dvc exp run -S`` writes values unquoted."""
    if isinstance(value, date):
        return value.isoformat()
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Fingerprint = Annotated[
    str | None,
    BeforeValidator(_as_text),
    Field(
        description="the version of data DVC cannot hash (a URL, a SQL table): any text that "
        "changes when the data does, e.g. its load date; a change re-runs ingest"
    ),
]


class FileSource(_Strict):
    """A CSV or Parquet file: a local path or any fsspec URL (s3://, gs://, https://).
    DVC sees a local file's changes when it lies in data/external/ (ingest's dependency)."""

    kind: Literal["file"]
    path: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    sep: str | None = Field(None, description="CSV delimiter; None sniffs it from the file")
    encoding: str = "utf-8"
    header: bool = True
    columns: list[str] | None = Field(None, description="column names for a header-less CSV")
    fingerprint: Fingerprint = None


class SqlSource(_Strict):
    """The result of a query against any SQLAlchemy URL."""

    kind: Literal["sql"]
    url: str
    query: str
    fingerprint: Fingerprint = None


Source = Annotated[DemoSource | FileSource | SqlSource, Field(discriminator="kind")]
_KINDS = frozenset({"demo", "file", "sql"})


class CleanRules(_Strict):
    """The explicit rules ingest applies to messy real-world tables."""

    na_values: list[str] = ["", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "-"]
    strip_whitespace: bool = True
    numeric_text_threshold: float = Field(
        0.95,
        ge=0.5,
        le=1.0,
        description="a text column whose non-missing values parse as numbers at least this "
        "often becomes numeric; the rest become missing",
    )
    drop_duplicates: bool = True
    drop_empty_columns: bool = True


class Partitions(_Strict):
    """New labelled data appended to the source: immutable Parquet files, one per
    ``cycleml retrain``, each versioned by DVC. Ingest reads them after the source."""

    dir: str = Field("data/partitions", description="folder of the partition files")
    use_source: bool = Field(
        True, description="false: train on the partitions only (after a concept drift)"
    )
    last: int | None = Field(None, ge=1, description="only the newest N partitions; null: all")


class DataParams(_Strict):
    source: Source
    target: str
    positive_class: str | int | float | bool | None = None
    id_columns: list[str] = []
    drop_columns: list[str] = []
    time_column: str | None = None
    time_format: str | None = Field(
        None, description="strftime format of time_column, e.g. %d/%m/%Y; None = ISO 8601"
    )
    clean: CleanRules = CleanRules()
    partitions: Partitions = Partitions()


# --- goals -----------------------------------------------------------------------------


class CampaignGoals(_Strict):
    """Binary classification as a decision: act on a positive prediction (a retention offer).

    Acting costs ``offer_cost`` per contacted row; acting on a true positive succeeds with
    probability ``acceptance_rate`` and is then worth ``value_if_retained``. Profit is
    measured against doing nothing, so "contact nobody" earns 0.
    """

    value_if_retained: float = Field(500.0, ge=0, description="value of a retained customer")
    offer_cost: float = Field(50.0, ge=0, description="cost of one retention offer")
    acceptance_rate: float = Field(0.3, ge=0, le=1, description="share of churners it retains")


class ErrorGoals(_Strict):
    """Regression as a cost: each unit of absolute error costs money; a band is acceptable."""

    cost_per_unit_error: float = Field(1.0, ge=0)
    error_band: float | None = Field(
        None, gt=0, description="an absolute error within this band is acceptable"
    )


class GoalsParams(_Strict):
    """The business goal: how predictions turn into money (see README 'Goals')."""

    classification: CampaignGoals = CampaignGoals()
    regression: ErrorGoals = ErrorGoals()


# --- frame -----------------------------------------------------------------------------


class Rule(_Strict):
    """A baseline without ML: a pandas expression over the columns.

    Classification: a boolean expression, true = predict the positive class
    (``contract == 'Month-to-month'``). Regression: an expression giving the prediction.
    """

    name: str = Field(min_length=1)
    expression: str = Field(min_length=1)


class FrameParams(_Strict):
    rules: list[Rule] = []
    auto_rule: bool = Field(
        True, description="also search the best one-feature rule on the training data"
    )
    min_rows_per_feature: float = Field(10.0, gt=0)
    min_minority_rows: int = Field(50, ge=1)


# --- explore ---------------------------------------------------------------------------


class ExploreParams(_Strict):
    bins: int = Field(10, ge=2, description="quantile bins for target rate by numeric feature")
    max_categories: int = Field(20, ge=2, description="categories shown per column")


# --- split -----------------------------------------------------------------------------


class SplitParams(_Strict):
    strategy: Literal["stratified", "random", "time"] = "stratified"
    train: float = Field(0.8, gt=0, lt=1)
    valid: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitParams:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + valid + test must add up to 1, got {total:g} "
                f"({self.train:g} + {self.valid:g} + {self.test:g})"
            )
        return self


# --- validate --------------------------------------------------------------------------


class ValidateParams(_Strict):
    min_rows: int = Field(100, ge=1)
    max_target_missing: float = Field(
        0.2, ge=0, le=1, description="largest share of rows whose target is missing"
    )
    min_class_rows: int = Field(10, ge=1, description="fewest rows any class may have")
    max_classes: int = Field(
        20, ge=2, description="a classification target with more classes is refused"
    )
    id_like_unique_share: float = Field(
        0.9,
        gt=0,
        le=1,
        description="a text column with this share of distinct values is an identifier, "
        "not a feature, and is left out",
    )
    contract: str | None = Field(
        "auto",
        description="data contract file: auto = contracts/<source>.yaml, inferred on the "
        "first run and enforced after; a path; or null for none",
    )
    range_tolerance: float = Field(0.1, ge=0, description="for inferred contract ranges")
    drift_error_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="out-of-range values or new categories in more than this share of rows "
        "break the contract (fewer are warnings)",
    )
    pii_columns: list[str] = Field([], description="columns known to hold personal data")
    detect_pii: bool = Field(True, description="also find PII by column name and values")
    max_leakage_score: float = Field(
        0.98,
        gt=0.5,
        le=1,
        description="a feature that alone predicts the target this well (AUC, accuracy or "
        "R²) is leakage and is left out",
    )
    outlier_iqr: float = Field(3.0, gt=0, description="outlier = beyond this many IQRs")


# --- train -----------------------------------------------------------------------------


class XGBoostParams(_Strict):
    n_estimators: int = Field(300, ge=1)
    max_depth: int = Field(5, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.9, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(1.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    reg_alpha: float = Field(0.0, ge=0)
    n_jobs: int = Field(2, ge=1)


class FeatureParams(_Strict):
    numeric_impute: Literal["median", "mean", "most_frequent"] = "median"
    scale_numeric: bool = True
    min_category_share: float = Field(
        0.005, ge=0, lt=1, description="rarer categories are pooled as 'infrequent'"
    )
    max_categories: int = Field(30, ge=2, description="most one-hot columns per categorical")


class TrainParams(_Strict):
    seed: int = 42
    early_stopping_rounds: int | None = Field(30, ge=1)
    imbalance: Literal["none", "class_weight"] = Field(
        "none",
        description="class_weight: weight each class by the inverse of its frequency in the "
        "training rows (classification)",
    )
    features: FeatureParams = FeatureParams()
    xgboost: XGBoostParams = XGBoostParams()


# --- tune ------------------------------------------------------------------------------


class SearchDimension(_Strict):
    """One hyperparameter's range: int or float (optionally log-scaled), or categorical."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _complete(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs choices")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"an {self.type} dimension needs low < high")
        return self


class TuneParams(_Strict):
    """Optuna search over train.xgboost; the best values go to models/best_params.json."""

    enabled: bool = True
    n_trials: int = Field(20, ge=1, description="total trials of the study (resumed runs count)")
    timeout: float | None = Field(None, gt=0, description="seconds; stops the search early")
    n_jobs: int = Field(1, ge=1, description="trials run in parallel (worker processes)")
    seed: int = 42
    objective: str = Field(
        "auto",
        description="metric on validation data: a technical metric, a KPI, or auto = the "
        "task's business KPI",
    )
    pruning: bool = Field(True, description="stop hopeless trials early (median pruner)")
    storage: str = Field(
        "sqlite:///optuna.db", description="Optuna RDB storage: a rerun resumes the study"
    )
    study_name: str = "cycleml"
    search_space: dict[str, SearchDimension] = {}

    @model_validator(mode="after")
    def _space_names_xgboost_params(self) -> TuneParams:
        known = set(XGBoostParams.model_fields)
        unknown = sorted(set(self.search_space) - known)
        if unknown:
            raise ValueError(
                f"search_space: {unknown} are not train.xgboost parameters; "
                f"choose from {', '.join(sorted(known))}"
            )
        return self


# --- featurize -------------------------------------------------------------------------

_TWO_COLUMNS = {"ratio", "difference", "product"}


class DerivedFeature(_Strict):
    """A feature computed from raw columns inside the model's Pipeline (so serving has it).

    ratio / difference / product: two numeric columns; date_part: one date column and a
    ``part``; bin: one numeric column cut at ``edges``; interaction: two or more
    categorical columns joined into one category.
    """

    name: str = Field(min_length=1)
    kind: Literal["ratio", "difference", "product", "date_part", "bin", "interaction"]
    columns: list[str] = Field(min_length=1)
    part: Literal["year", "quarter", "month", "day", "dayofweek", "dayofyear", "hour"] | None = None
    edges: list[float] | None = None

    @model_validator(mode="after")
    def _shape(self) -> DerivedFeature:
        n = len(self.columns)
        if self.kind in _TWO_COLUMNS and n != 2:
            raise ValueError(f"{self.name}: a {self.kind} takes exactly 2 columns, got {n}")
        if self.kind == "interaction" and n < 2:
            raise ValueError(f"{self.name}: an interaction takes 2 or more columns")
        if self.kind in {"date_part", "bin"} and n != 1:
            raise ValueError(f"{self.name}: a {self.kind} takes exactly 1 column, got {n}")
        if self.kind == "date_part" and self.part is None:
            raise ValueError(f"{self.name}: date_part needs part (year, month, dayofweek, …)")
        if self.kind == "bin" and (not self.edges or sorted(self.edges) != self.edges):
            raise ValueError(f"{self.name}: bin needs edges in increasing order")
        return self


class FeaturizeParams(_Strict):
    derived: list[DerivedFeature] = []

    @model_validator(mode="after")
    def _unique_names(self) -> FeaturizeParams:
        names = [d.name for d in self.derived]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"derived feature names must be unique; repeated: {dupes}")
        return self


# --- evaluate and register -------------------------------------------------------------


class FairnessParams(_Strict):
    """Group fairness for declared sensitive columns (fairlearn), with limits the gate holds."""

    sensitive: list[str] = []
    max_demographic_parity_difference: float | None = Field(0.2, ge=0, le=1)
    max_equalized_odds_difference: float | None = Field(0.2, ge=0, le=1)


class BehaviourCheck(_Strict):
    """ "Raising monthly charges must not lower churn risk": a directional expectation."""

    name: str
    column: str
    change: float = Field(description="added to the column (numeric)")
    expect: Literal["increase", "decrease", "no_change"]
    tolerance: float = Field(0.01, ge=0, description="allowed move against the expectation")
    min_share: float = Field(0.95, ge=0, le=1, description="share of rows that must comply")


class EvaluateParams(_Strict):
    threshold: float | Literal["auto"] = Field(
        "auto",
        description="decision threshold (binary): a number, or auto = the one that maximises "
        "the business KPI on the validation data",
    )
    segments: list[str] = Field([], description="columns to slice test metrics by")
    fairness: FairnessParams = FairnessParams()
    behaviour: list[BehaviourCheck] = []
    explain_rows: int = Field(20, ge=0, description="test rows explained one by one (SHAP)")

    @model_validator(mode="after")
    def _threshold_in_range(self) -> EvaluateParams:
        if self.threshold != "auto" and not 0 < float(self.threshold) < 1:
            raise ValueError(f"threshold must be 'auto' or between 0 and 1, got {self.threshold}")
        return self


class Bound(_Strict):
    min: float | None = None
    max: float | None = None


class RegisterParams(_Strict):
    model_name: str = Field("cycleml-model", min_length=1)
    primary_metric: dict[Literal["classification", "regression"], str] = {
        "classification": "roc_auc",
        "regression": "rmse",
    }
    criteria: dict[Literal["classification", "regression"], dict[str, Bound]] = {}
    approval: Literal["auto", "manual"] = Field(
        "auto",
        description="auto: a version that passes every gate is approved at once; manual: it "
        "waits (pending) for `cycleml registry approve/reject`",
    )
    beat_baseline_by: float | None = Field(
        0.05,
        ge=0,
        description="the model's KPI must beat the best baseline's by this share of its "
        "magnitude; null switches the baseline gate off",
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> RegisterParams:
        known = {
            "classification": CLASSIFICATION_METRICS + CLASSIFICATION_KPIS,
            "regression": REGRESSION_METRICS + REGRESSION_KPIS,
        }
        for task, metric in self.primary_metric.items():
            if metric not in known[task]:
                raise ValueError(
                    f"primary_metric.{task}: unknown metric {metric!r}; "
                    f"choose one of {', '.join(known[task])}"
                )
        for task, bounds in self.criteria.items():
            for metric in bounds:
                if metric not in known[task]:
                    raise ValueError(
                        f"criteria.{task}.{metric}: unknown metric; "
                        f"choose from {', '.join(known[task])}"
                    )
        return self


class ChallengerParams(_Strict):
    """A second version beside the champion: scored and logged (shadow) or answering a share
    of the requests (canary)."""

    mode: Literal["off", "shadow", "canary"] = "off"
    alias: str = "challenger"
    canary_share: float = Field(0.1, ge=0, le=1, description="share of requests (canary)")


class ServingParams(_Strict):
    """The HTTP service (serving/service.py) and its prediction log."""

    alias: str = Field("champion", description="the registry alias the service serves")
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes it to the network")
    port: int = Field(3000, ge=1, le=65535)
    prediction_log: str = Field(
        "sqlite:///predictions.db", description="SQLAlchemy URL of the prediction log"
    )
    reload_seconds: float | None = Field(
        30, gt=0, description="check the alias this often and swap to a new version; null: never"
    )
    admin_token_env: str = Field(
        "CYCLEML_ADMIN_TOKEN", description="environment variable holding the admin token"
    )
    max_records: int = Field(10_000, ge=1, description="records per /predict request")
    max_feedback_items: int = Field(
        1000, ge=1, le=10_000, description="labels per /feedback request (one query for all)"
    )
    max_log_backlog: int = Field(
        100_000,
        ge=100,
        description="prediction-log rows held while its store cannot take them; "
        "newer answers are then not logged (counted in /metadata, warned about)",
    )
    max_body_bytes: int = Field(
        16 * 2**20, ge=1024, description="larger request bodies are refused with 413"
    )
    max_batch_size: int = Field(64, ge=1, description="adaptive batching on /predict_one")
    max_latency_ms: int = Field(
        1000,
        ge=10,
        description="adaptive batching: a request that would wait longer is refused (503)",
    )
    workers: int = Field(1, ge=1, description="service worker processes (each loads the model)")
    access_log: bool = Field(
        False, description="BentoML's per-request access log (the prediction log keeps answers)"
    )
    tracing: bool = Field(
        False, description="OpenTelemetry spans per request (configure an exporter in BentoML)"
    )
    allowed_hosts: list[str] = Field(
        [],
        description="Host names answered besides 127.0.0.1, localhost, ::1 and serving.host "
        "(others get 400: a web page cannot reach the service through DNS rebinding)",
    )
    read_timeout_seconds: float = Field(
        30, gt=0, description="a connection must send a whole request within this time"
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open connections per worker; at the limit the oldest idle one is closed",
    )
    challenger: ChallengerParams = ChallengerParams()


class MonitorParams(_Strict):
    """`cycleml monitor`: the prediction log (or a file) against the reference profile."""

    window_rows: int = Field(10_000, ge=1, description="default window: the newest N predictions")
    min_rows: int = Field(200, ge=1, description="fewer rows: no drift verdict (noted)")
    drift_share: float = Field(
        0.3, gt=0, le=1, description="share of drifted feature columns that is dataset drift"
    )
    drifted_columns: int | None = Field(
        1, ge=1, description="this many drifted feature columns is drift; null: share only"
    )
    column_threshold: float | None = Field(
        None, gt=0, description="effect size (distance) of a drifted column; null: 0.1"
    )
    significance: float = Field(
        0.01, gt=0, lt=1, description="a drifted column's shift must also have p below this"
    )
    prediction_psi: float | None = Field(
        0.1, gt=0, description="PSI of the prediction above this is drift; null: ignore it"
    )
    min_labelled: int = Field(200, ge=1, description="labelled rows needed to judge quality")
    max_quality_drop: dict[str, float] = Field(
        {"roc_auc": 0.04, "log_loss": 0.15, "rmse": 0.1, "mae": 0.1},
        description="metric -> largest relative worsening vs the reference (0.04 = 4%)",
    )
    reference_rows: int = Field(50_000, ge=100, description="rows kept in the reference profile")
    max_rows: int = Field(
        20_000, ge=100, description="larger windows are sampled (seeded) for the Evidently report"
    )
    workspace: str = Field("monitoring", description="Evidently workspace (`evidently ui`)")
    project: str = Field("cycleml", description="Evidently project name")


class RetrainParams(_Strict):
    """`cycleml retrain`: labelled predictions -> a new data partition -> `dvc repro`."""

    min_rows: int = Field(200, ge=1, description="fewest new labelled rows worth a retrain")
    role: Literal["served", "all"] = Field(
        "served", description="served: only answers clients got (not shadow scores)"
    )


class TrackingParams(_Strict):
    experiment: str = "cycleml"
    tracking_uri: str = Field(
        "sqlite:///mlflow.db", description="MLFLOW_TRACKING_URI in the environment wins"
    )


# --- the whole file --------------------------------------------------------------------


class Params(_Strict):
    data: DataParams
    task: Literal["auto", "classification", "regression"] = "auto"
    goals: GoalsParams = GoalsParams()
    frame: FrameParams = FrameParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    explore: ExploreParams = ExploreParams()
    featurize: FeaturizeParams = FeaturizeParams()
    split: SplitParams = SplitParams()
    tune: TuneParams = TuneParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    register_: RegisterParams = Field(RegisterParams(), alias="register")
    serving: ServingParams = ServingParams()
    monitor: MonitorParams = MonitorParams()
    retrain: RetrainParams = RetrainParams()
    tracking: TrackingParams = TrackingParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _time_split_needs_time_column(self) -> Params:
        if self.split.strategy == "time" and not self.data.time_column:
            raise ValueError(
                "split.strategy: 'time' needs data.time_column (the column to sort by)"
            )
        return self


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"] if not str(p).startswith("function-")]
        # a discriminated union adds its tag to the path (data.source.demo.rows): drop it
        loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "source" and p in _KINDS)]
        key = ".".join(loc)
        key = key.replace("validate_", "validate").replace("register_", "register")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see README 'Configuration')"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {key}: {msg}" if key else f"  {msg}")
    return "\n".join(lines)


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed mapping; raise ConfigError naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of blocks at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def apply_overrides(
    raw: dict[str, Any], overrides: Iterable[str] | Mapping[str, Any]
) -> dict[str, Any]:
    """Set params by dotted key (``tune.n_trials``) in a raw mapping; return it, changed.

    The one parser of overrides (``cycleml loop --set``, the loop's workspace, the tests):
    ``KEY=VALUE`` items with VALUE read as YAML, as ``dvc exp run -S`` reads it (``2`` an
    int, ``null`` None, ``[a, b]`` a list), or a mapping of dotted keys to typed values.
    Missing blocks are created; whether a key exists is :func:`parse_params`'s to say, so a
    misspelt key is still named there.

    Raises:
        ConfigError: naming the item that is not ``KEY=VALUE``, whose VALUE is not YAML, or
            whose key runs through a value that is not a block of params.
    """

    def parsed(item: str) -> tuple[str, Any]:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{item!r}: use KEY=VALUE, e.g. tune.n_trials=2")
        try:
            return key.strip(), read_yaml(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{item!r}: VALUE is not valid YAML: {err}") from None

    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parsed, overrides)
    for key, value in pairs:
        *blocks, leaf = key.split(".")
        node = raw
        for depth, block in enumerate(blocks, 1):
            node = node.setdefault(block, {})
            if not isinstance(node, dict):
                where = ".".join(blocks[:depth])
                raise ConfigError(f"{key}: {where} is a value, not a block of params")
        node[leaf] = value
    return raw


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only true and false.

    DVC reads and rewrites params.yaml as YAML 1.2 (ruamel), where ``off``, ``Yes`` and
    ``no`` are text, and drops the quotes when it writes (``dvc exp run -S ...``): read
    as YAML 1.1, ``mode: off`` became False and ``positive_class: Yes`` became True.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str) -> Any:
    """YAML text as DVC reads it (YAML 1.2 booleans): the one reader of params."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run cycleml from the project root)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, str(path))


def params_hash(params: Params) -> str:
    """A short, stable fingerprint of the params, for lineage tags."""
    canonical = json.dumps(params.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
