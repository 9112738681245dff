"""The model and its records: what is fitted, how it decides, where versions are kept.

``pipeline`` is the one sklearn Pipeline (derived features, preprocessing, XGBoost) and the
single scoring path; ``features`` the derived features computed inside it; ``decision``
the rule from scores to a class; ``loading`` loads the model the pipeline just trained.
``registry`` is the MLflow Model Registry with approval (statuses, champion, rollback);
``tracking`` sets up MLflow and tags runs with their lineage; ``lineage`` traces a
registered version back to its code, data and params.

May import data and the leaves (config, paths, names, files) only; never evaluation,
scoring or the layers above them.
"""
