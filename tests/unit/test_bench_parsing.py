"""The benchmark suite's readers: wrk's report, and medians of repeated runs."""

from __future__ import annotations

import pytest
from benchmarks.common import median_of
from benchmarks.http import parse_wrk

pytestmark = pytest.mark.unit

# `wrk -t1 -c2 -d1s --latency` against a server answering 501 (captured here)
WRK_REPORT = """Running 1s test @ http://127.0.0.1:8765/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.95ms    1.02ms   6.23ms   84.83%
    Req/Sec     2.59k   321.56     3.07k    70.00%
  Latency Distribution
     50%  481.00us
     75%    1.04ms
     90%    2.67ms
     99%    4.33ms
  2579 requests in 1.00s, 1.37MB read
  Non-2xx or 3xx responses: 2579
Requests/sec:   2575.09
Transfer/sec:      1.36MB
"""


def test_wrk_report_is_read_in_milliseconds_with_errors() -> None:
    found = parse_wrk(WRK_REPORT)
    assert found == {
        "requests": 2579,
        "requests_per_second": 2575.09,
        "errors": 2579,
        "p50_ms": pytest.approx(0.481),
        "p99_ms": pytest.approx(4.33),
    }


def test_wrk_socket_errors_count_as_errors_and_seconds_convert() -> None:
    report = (
        WRK_REPORT.replace("  Non-2xx or 3xx responses: 2579\n", "")
        .replace("99%    4.33ms", "99%    1.20s")
        .replace(
            "Requests/sec", "  Socket errors: connect 0, read 3, write 1, timeout 2\nRequests/sec"
        )
    )
    found = parse_wrk(report)
    assert found["errors"] == 6
    assert found["p99_ms"] == pytest.approx(1200.0)


def test_median_of_repeats_takes_numbers_and_keeps_labels() -> None:
    runs = [
        {"rps": 10.0, "tool": "wrk"},
        {"rps": 30.0, "tool": "wrk"},
        {"rps": 20.0, "tool": "wrk"},
    ]
    assert median_of(runs) == {"rps": 20.0, "tool": "wrk"}
