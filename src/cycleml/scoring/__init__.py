"""Scoring: a fitted or registered model turned into predictions.

- ``plan``: a fitted Pipeline compiled into a JSON plan (derived features, imputation and
  scaling constants, one-hot lookups probed from the encoder, the boosting rounds);
- ``columns``: model inputs as the compiled scorer takes them (``Coded`` text) and the
  derived features computed over them;
- ``runtime``: the scorers, the Pipeline itself and the compiled scorer running a plan on
  records, frames or Arrow columns;
- ``verify``: a plan kept only when it scores as the Pipeline does (``compile_verified``);
- ``loaded``: the one loader of registered versions (``load_model``);
- ``inputs``: a chunk of rows cleaned into the model's inputs (the ingest text rule);
- ``batch``: files of any size scored in chunks (``cycleml predict``).

May import ``cycleml.model``, ``cycleml.data`` and the leaves (``config``, ``paths``,
``names``, ``files``); never evaluation or anything above it.
"""

import os

# OpenMP threads (XGBoost's, scikit-learn's) sleep between parallel regions instead of
# busy-waiting for the next one (issue 20). A spinning thread costs nothing seen on an idle
# machine and a whole core on a busy one: the Pipeline scorer's CPU per 1,000 one-record
# predictions fell from 23.6 s to 9.3 s with it on a loaded two-core machine. libgomp
# reads the variable once, when it is loaded, which is when ``runtime`` first imports
# scikit-learn or XGBoost: so here, before any scoring module. A value already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
