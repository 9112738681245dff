"""Stage `explore`: a first look at the ingested table before any model is fitted.

Computes, for every column, a summary (type, missingness, spread, top values); the target
rate by category and by quantile bin of each feature; numeric correlations (Pearson and
Spearman) and categorical associations (bias-corrected Cramér's V); and a few findings in
plain words. Outputs: ``reports/explore.html`` (self-contained, figures embedded),
``reports/explore.json`` (summary and findings), ``reports/explore/*.png`` and, for
``dvc plots``, ``plots/explore/target_rate.csv`` and ``plots/explore/missing.csv``. All of
it is logged to MLflow as a run named ``explore``. The work is done by
:mod:`cycleml.exploration`; this module reads the inputs and writes and logs the outputs.
"""

from __future__ import annotations

import pandas as pd

from cycleml.config import Params
from cycleml.data.schema import Schema
from cycleml.exploration.figures import render
from cycleml.exploration.profile import Exploration, explore
from cycleml.exploration.report import report_html, report_json
from cycleml.files import read_json, write_csv, write_json, write_text
from cycleml.names import TAG_STAGE
from cycleml.paths import Paths

__all__ = ["run"]


def run(params: Params, paths: Paths) -> Exploration:
    """Explore ``data/raw`` as the schema describes it; write the report; log it to MLflow."""
    tracking = params.tracking
    bins, max_categories = params.explore.bins, params.explore.max_categories
    import mlflow

    from cycleml.model.tracking import configure, file_md5

    schema = Schema.model_validate(read_json(paths.schema))
    exp = explore(pd.read_parquet(paths.raw), schema, bins, max_categories)
    folder = paths.report("explore")
    figures = render(exp, folder)
    for stale in set(folder.glob("*.png")) - set(figures):
        stale.unlink()
    page = write_text(paths.report("explore.html"), report_html(exp, figures))
    summary = write_json(paths.report("explore.json"), report_json(exp, figures))
    tables = [
        write_csv(paths.plot("explore/target_rate.csv"), exp.target_rate),
        write_csv(paths.plot("explore/missing.csv"), exp.missing[["column", "missing_share"]]),
    ]
    configure(tracking, paths)
    with mlflow.start_run(run_name="explore"):
        mlflow.set_tags({TAG_STAGE: "explore", "cycleml.data.raw.md5": file_md5(paths.raw)})
        mlflow.log_params({"bins": bins, "max_categories": max_categories, "rows": exp.rows})
        mlflow.log_artifacts(str(folder), artifact_path="explore")
        for file in tables:
            mlflow.log_artifact(str(file), artifact_path="explore")
        mlflow.log_artifact(str(page))
        mlflow.log_artifact(str(summary))
    return exp
