"""Exploration: a first look at a table before any model is fitted, as a library.

``profile`` summarises a table as its schema describes it (per-column statistics, target
rate by bucket, correlations and associations) into plain tables; ``findings`` puts what
stands out in words; ``figures`` draws the charts with matplotlib; ``report`` writes the
self-contained HTML page and the JSON summary. Helpers: ``buckets`` (pooled categories,
quantile bins), ``associations`` (Cramér's V), ``formatting`` (numbers and rates as text).

It sits at the layer of ``tuning`` and may import ``cycleml.data`` and the leaves
(``config``, ``paths``, ``names``, ``files``), never ``cycleml.stages`` or ``cycleml.cli``.
Stage ``explore`` reads the inputs, calls it and writes and logs the outputs.
"""
