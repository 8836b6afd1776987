"""A real run calibrated against the simulation: the checks before and after fitting, and calibration.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from busim.analysis.calibration import Calibration, FigureCheck, LatencyCurves
from busim.analysis.fitting import Fitted
from busim.results.model import Result

CALIBRATION_SCHEMA = "busim.calibration/1"


@dataclass(frozen=True)
class CalibrationRun:
    """A real run beside replications of its scenario as declared, and of the scenario fitted to it."""

    folder: Path | None  # the real run's folder; None for a run given as its Result
    real: Result
    seeds: tuple[int, ...]  # the replications' seeds (their publishers draw with the real run's seed)
    declared: Calibration  # the real run against its scenario as declared
    fitted: Fitted
    after_fit: Calibration  # the real run against the fitted scenario


def calibration_document(run: CalibrationRun) -> dict[str, Any]:
    """calibration.json: every check, before and after fitting, and where each fitted number came from."""
    scenario = run.real.scenario
    return {
        "schema": CALIBRATION_SCHEMA,
        "run": None if run.folder is None else str(run.folder),
        "scenario": scenario.name,
        "seed": scenario.seed,
        "replications": run.declared.replications,
        "seeds": list(run.seeds),
        "declared": _calibration(run.declared),
        "fitted": {"notes": dict(run.fitted.notes), **_calibration(run.after_fit)},
    }


def _calibration(calibration: Calibration) -> dict[str, Any]:
    return {
        "checks": [_check(check) for check in calibration.checks],
        "outside": len(calibration.outside()),
        "latency_quantiles_s": {name: _curves(curves) for name, curves in calibration.curves.items()},
    }


def _check(check: FigureCheck) -> dict[str, Any]:
    simulated = check.simulated
    return {
        "consumer": check.consumer,
        "figure": check.figure,
        "unit": check.unit,
        "real": check.real,
        "simulated": {
            "mean": _number(simulated.mean),
            "low": _number(simulated.low),
            "high": _number(simulated.high),
            "one_run_low": _number(check.one_run_low),
            "one_run_high": _number(check.one_run_high),
        },
        "verdict": check.verdict,
        "gap": check.gap,
    }


def _curves(curves: LatencyCurves) -> dict[str, Any]:
    return {"real": [list(pair) for pair in curves.real], "simulated": [list(pair) for pair in curves.simulated]}


def _number(value: float) -> float | None:
    return None if value != value else value  # NaN (no interval) is null in JSON
