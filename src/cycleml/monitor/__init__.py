"""Monitoring: production data and predictions against the model's reference profile,
and the retraining that follows when they part ways.

* ``check``: the entry the CLI and the demo loop call (``run``, ``check``, ``describe``);
* ``result``: the verdict (ok, drift, degraded, too_small), its exit code, ``MonitorError``;
* ``window``: the two sides read: the prediction log by rows, time or version, a
  ``--current`` file, the reference profile; ``parse_since``;
* ``statistics``: PSI and the significance tests (chi-squared, Kolmogorov-Smirnov,
  Welch, Hanley-McNeil);
* ``drift``: prediction drift and column drift; ``quality``: data and model quality;
* ``reports``: Evidently reports and snapshots, the JSON summary, metrics, workspace;
* ``reference``: the profile saved at training time; ``retrain``: retraining on feedback.

May import ``cycleml.serve`` (the prediction log's tables), ``evaluation``, ``scoring``,
``model``, ``data`` and the leaves (``config``, ``paths``, ``names``, ``files``); never
``cycleml.stages``, ``cycleml.cli`` or ``cycleml.demo``.
"""
