"""The demo around the library: ``cycleml loop`` (the lifecycle end to end on generated
data) and the harness that starts and stops ``bentoml serve`` for the loop, the tests and
the benchmarks. The demo data generator itself is :mod:`cycleml.data.demo`.

May import every library package (monitor, serve, scoring, ...); never stages or cli.
"""
