"""What a search found: :class:`TuneResult`, read from the finished study."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = ["TuneResult", "summarise"]

_NO_TRIAL = "no trial completed: train keeps train.xgboost as it is"


@dataclass
class TuneResult:
    """What a tune run did; ``resumed`` counts the study's finished trials before this run."""

    enabled: bool
    objective: str
    direction: str
    study: str = ""
    resumed: int = 0
    ran: int = 0
    complete: int = 0
    pruned: int = 0
    value: float | None = None
    untuned_value: float | None = None
    improvement: float | None = None
    best: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    note: str = ""

    def lines(self) -> list[str]:
        """Human-readable summary for the CLI."""
        if not self.enabled:
            return [self.note]
        origin = (
            f"resumed study {self.study} with {self.resumed} finished trials"
            if self.resumed
            else f"new study {self.study}"
        )
        lines = [
            origin,
            f"ran {self.ran} trials; the study has {self.complete} complete, "
            f"{self.pruned} pruned ({self.direction} {self.objective} on validation data)",
        ]
        if self.value is None:
            lines.append(self.note)
        else:
            gain = "" if self.improvement is None else f" (improvement {self.improvement:+,.4f})"
            lines.append(
                f"best {self.objective} {self.value:,.4f} vs untuned "
                f"{_short(self.untuned_value)}{gain}"
            )
            lines.append(", ".join(f"{k}={_short(v)}" for k, v in self.best.items()))
        if self.run_id:
            lines.append(f"MLflow run {self.run_id}")
        return lines


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarise(
    study: optuna.Study, objective: str, study_direction: str, untuned: float, resumed: int
) -> TuneResult:
    """The study's counts and best trial, and how much it beats the untuned params by."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    result = TuneResult(
        enabled=True,
        objective=objective,
        direction=study_direction,
        study=study.study_name,
        resumed=resumed,
        ran=complete + pruned - resumed,
        complete=complete,
        pruned=pruned,
        untuned_value=untuned,
    )
    if not complete:
        result.note = _NO_TRIAL
        return result
    best = study.best_trial
    result.value = float(best.value) if best.value is not None else None
    result.best = dict(best.params)
    if result.value is not None and math.isfinite(untuned):
        sign = -1.0 if study_direction == "minimize" else 1.0
        result.improvement = sign * (result.value - untuned)
    return result
