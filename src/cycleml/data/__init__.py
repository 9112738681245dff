"""Data: reading, cleaning and checking a table, and the schema fixed from it.

- ``sources``: ``data.source`` read into a table (demo, file or SQL), ``IngestError``;
- ``cleaning``: the cleaning rules ingest applies, and the one text rule (``clean_text``);
- ``contract``: the data contract, inferred once, then enforced;
- ``checks``: what a contract cannot express (PII, target leakage, outliers);
- ``schema``: the problem's schema (task, target encoding, feature columns);
- ``validation``: the checks of stage ``validate``, with ``validation_features`` (which
  columns become features) and ``validation_report`` (``ValidationFailed``, the report);
- ``demo``: the seeded generator of the demo churn table.

May import only the leaves (``config``, ``paths``, ``names``, ``files``) and itself; never
``model`` or anything above it.
"""
