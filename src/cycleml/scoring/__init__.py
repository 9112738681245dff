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
