"""What a check returns: the verdict, its exit code and the result record, and
``MonitorError`` for a window or reference that cannot be judged. Every other monitor
module builds on these, so this one imports nothing of cycleml's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEGRADED",
    "DRIFT",
    "EXIT_CODES",
    "OK",
    "TOO_SMALL",
    "MonitorError",
    "MonitorResult",
]

OK, DRIFT, DEGRADED, TOO_SMALL = "ok", "drift", "degraded", "too_small"
EXIT_CODES = {OK: 0, DRIFT: 3, DEGRADED: 4, TOO_SMALL: 5}
"""Exit status per verdict (1 is an error, 2 bad usage), for cron and CI. ``too_small``:
the window has fewer than ``monitor.min_rows`` rows, so nothing was judged; a scheduler
testing for 0 must not read that as a healthy model."""


class MonitorError(ValueError):
    """A window or reference that cannot be monitored (empty, wrong columns, no profile)."""


@dataclass
class MonitorResult:
    verdict: str
    model_name: str
    model_version: str
    window: str
    rows: int
    labelled_rows: int
    reference_rows: int
    sampled_rows: int | None
    """Rows per side the drift tests ran on, when the window was sampled."""
    drift: dict[str, Any] = field(default_factory=dict)
    prediction: dict[str, Any] = field(default_factory=dict)
    data_quality: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def metrics(self) -> dict[str, Any]:
        """The flat numbers `dvc metrics show` tabulates."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "drifted_columns": len(self.drift.get("drifted", [])),
            "drift_share": self.drift.get("share"),
            "prediction_psi": self.prediction.get("psi"),
        }
        for metric, info in self.quality.get("metrics", {}).items():
            out[f"{metric}_current"] = info["current"]
            out[f"{metric}_reference"] = info["reference"]
        return out
