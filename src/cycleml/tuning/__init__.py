"""Hyperparameter search over ``train.xgboost`` with Optuna, judged on validation data.

``space`` turns ``tune.objective`` and ``tune.search_space`` into a metric, a direction and
a trial's values; ``study`` names, opens and reads the study in its storage; ``objective``
scores one trial (one nested MLflow run, pruned on XGBoost's validation loss); ``workers``
runs more trials in other processes; ``search`` runs a whole search under one MLflow run;
``result`` summarises it.

May import evaluation, scoring, model, data and the leaves (config, paths, names, files);
never cycleml.stages or cycleml.cli.
"""
