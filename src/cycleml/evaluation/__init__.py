"""Judging a fitted model: on test data, against baselines, and before it is registered.

``metrics`` computes the test-set metrics under the names users see; ``business`` the KPI
from the ``goals`` block and the KPI-maximising threshold; ``baselines`` the rules without
ML the model has to beat. The in-depth analyses: ``curves`` (calibration, gains, the
learning-curve verdict), ``segments`` (metrics per slice, the slicing rule), ``fairness``
(group fairness of the decisions), ``explanations`` (SHAP values) and ``behaviour``
(directional checks). ``evaluator`` puts them together for the evaluate, tune and register
stages; ``gate`` holds the register gate: criteria, baseline margin, fairness limits and
the comparison with the champion.

May import scoring, model, data and the leaves (config, paths, names, files); never
cycleml.stages or cycleml.cli.
"""
