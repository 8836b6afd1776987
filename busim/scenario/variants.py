"""Variants to compare: several scenario files, a grid of --vary values, or a scenario's variants block."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from busim.errors import OverrideError, Problem, ScenarioError
from busim.scenario.loader import LoadedScenario, flow_text, load_scenario, overridden_document, override_key
from busim.scenario.presets import BROKER_KEYS, COMMON_KEYS, PRESETS
from busim.scenario.ranges import Axis, AxisValue, parse_axis
from busim.scenario.schema import Broker, did_you_mean


@dataclass(frozen=True)
class Variant:
    """One scenario of a comparison, and what made it."""

    name: str
    loaded: LoadedScenario
    values: tuple[AxisValue, ...] = ()  # a grid point's value of each --vary axis, in order
    left_out: tuple[str, ...] = ()  # the --set assignments its broker preset does not take


def load_variants(
    files: list[Path], vary: list[str], overrides: list[str], max_variants: int | None = None, finished_runs: int = 0
) -> list[Variant]:
    """The variants that ``busim compare`` runs.

    Several files are one variant each; one file is varied by the grid of
    every ``--vary KEY=V1,V2`` (their product), or else by its ``variants:``
    block. ``overrides`` apply to every variant first. ``finished_runs``
    compared beside them (run folders) make one file without variants a
    variant of its own.

    Raises:
        OverrideError: a --vary is malformed, its grid has more than
            ``max_variants`` points, or there is nothing to compare.
        ScenarioFileError, ScenarioError: a file or a variant is invalid.
    """
    if len(files) > 1:
        if vary:
            raise OverrideError("--vary varies one scenario file; give one file, or several files without --vary")
        # A variant is named after its file; files of the same name in other folders keep their paths.
        stems = [path.stem for path in files]
        return _distinct(
            [
                Variant(path.stem if stems.count(path.stem) == 1 else str(path), load_scenario(path, overrides))
                for path in files
            ],
            finished_runs,
        )
    (path,) = files
    if vary:
        axes = [parse_axis(spec) for spec in vary]
        size = math.prod(len(axis.values) for axis in axes)
        if max_variants is not None and size > max_variants:  # before a single variant is built
            sizes = " x ".join(f"{len(axis.values):,}" for axis in axes)
            raise OverrideError(
                f"--vary makes {sizes} = {size:,} variants, more than the limit of {max_variants:,} simulations "
                "(raise it with --max-runs)"
            )
        return _distinct(grid(path, axes, overrides), finished_runs)
    base = load_scenario(path, overrides)
    if not base.scenario.variants and finished_runs:
        return [Variant(path.stem, base)]
    if not base.scenario.variants:
        raise OverrideError(
            f"{path}: nothing to compare; give two or more scenario files, --vary KEY=V1,V2, "
            "or a variants: block in the scenario"
        )
    variants, problems = [], []
    for name, changes in base.scenario.variants.items():
        try:
            variants.append(Variant(name, _variant(path, name, changes, overrides)))
        except (ScenarioError, OverrideError) as error:  # report every variant's problems at once
            problems.append(str(error))
    if problems:
        raise OverrideError("\n".join(problems))
    return _distinct(variants, finished_runs)


def grid(path: Path, axes: list[Axis], overrides: list[str]) -> list[Variant]:
    """The scenario file ``path`` at every point of the grid of ``axes``: their product, the first axis slowest.

    ``overrides`` apply to every point before its axis values. A broker key
    that applies to one preset only (``broker.prefetch``), set or varied, is
    left out of the points whose preset does not take it, and named in their
    ``left_out``; a key that applies to no point's preset is refused.

    Raises:
        OverrideError: an axis sets the seed or the replications, two axes vary one key, a --set sets a
            key an axis varies, or an assignment is malformed.
        ScenarioFileError, ScenarioError: the file or a point is invalid.
    """
    for axis in axes:
        _shared(axis.key, f"--vary {axis.key}")
    _check_distinct(axes, overrides)
    labels = axis_labels([axis.key for axis in axes])
    points = list(itertools.product(*(axis.values for axis in axes)))
    assignments = [
        tuple(
            (f"{axis.key}={value.text}", f"--vary {axis.key}={value.text}")
            for axis, value in zip(axes, point, strict=True)
        )
        for point in points
    ]
    variants = []
    for point, labelled, left_out in zip(points, assignments, _left_out(path, overrides, assignments), strict=True):
        name = " ".join(f"{label}={value.label}" for label, value in zip(labels, point, strict=True))
        taken = [assignment for assignment in overrides if f"--set {assignment}" not in left_out]
        kept = tuple((assignment, source) for assignment, source in labelled if source not in left_out)
        try:
            loaded = load_scenario(path, taken, kept)
        except ScenarioError as error:
            raise ScenarioError([_at_point(problem, name, kept) for problem in error.problems]) from None
        except OverrideError as error:
            named = all(source in str(error) for _, source in kept)
            raise OverrideError(str(error) if named else f"{error} (at point {name})") from None
        variants.append(Variant(name, loaded, values=point, left_out=left_out))
    return variants


def _at_point(problem: Problem, name: str, labelled: tuple[tuple[str, str], ...]) -> Problem:
    """``problem`` of the grid point ``name``, naming the point unless it names every --vary of it already."""
    if all(source in (problem.source, problem.cause.removeprefix("caused by ")) for _, source in labelled):
        return problem
    where = f"at point {name}"
    return replace(problem, cause=f"{problem.cause} {where}" if problem.cause else where)


def _check_distinct(axes: list[Axis], overrides: list[str]) -> None:
    """Refuse two axes of one key, and a --set that an axis would silently replace.

    Raises:
        OverrideError: naming the flags.
    """
    varied: dict[tuple[str, ...], str] = {}
    for axis in axes:
        key = override_key(f"{axis.key}=")
        if key in varied:
            raise OverrideError(f"--vary {axis.key}: varied twice; give all of its values in one --vary")
        varied[key] = axis.key
    for assignment in overrides:
        key = override_key(assignment)
        for axis_key, written in varied.items():
            if key[: len(axis_key)] == axis_key:
                raise OverrideError(
                    f"--set {assignment}: --vary {written} sets it at every point; drop the --set, or give "
                    "its value in the --vary"
                )


def _left_out(path: Path, overrides: list[str], points: list[tuple[tuple[str, str], ...]]) -> list[tuple[str, ...]]:
    """For each point, the --set and --vary assignments (as ``--set KEY=VALUE``, ``--vary KEY=VALUE``) of
    broker keys its preset does not take.

    An assignment no point's preset takes is left in everywhere, to be refused
    as it is without a grid: it is a mistake, not a setting for some points.
    """
    specific = [assignment for assignment in overrides if _preset_key(assignment)]
    if not specific and not any(_preset_key(assignment) for labelled in points for assignment, _ in labelled):
        return [()] * len(points)
    general = [assignment for assignment in overrides if assignment not in specific]
    # The keys each point's preset takes (the preset is set, or varied, by a key common to every preset);
    # None where the preset is not known, for validation to report.
    taking = [
        _preset_keys(overridden_document(path, general, tuple(p for p in labelled if not _preset_key(p[0])))[1].data)
        for labelled in points
    ]
    candidates = [(assignment, f"--set {assignment}") for assignment in specific] + [
        (assignment, source) for labelled in points for assignment, source in labelled if _preset_key(assignment)
    ]
    applicable = {
        key
        for assignment, _ in candidates
        if (key := _preset_key(assignment)) and any(keys is None or key in keys for keys in taking)
    }
    left_out = []
    for labelled, keys in zip(points, taking, strict=True):
        own = [(assignment, f"--set {assignment}") for assignment in specific] + [
            (assignment, source) for assignment, source in labelled if _preset_key(assignment)
        ]
        left_out.append(
            tuple(
                source
                for assignment, source in own
                if keys is not None and _preset_key(assignment) in applicable and _preset_key(assignment) not in keys
            )
        )
    return left_out


def _preset_key(assignment: str) -> str | None:
    """The broker key an override sets, where that key applies to some presets and not to others."""
    parts = override_key(assignment)
    if len(parts) == 2 and parts[0] == "broker" and parts[1] in BROKER_KEYS and parts[1] not in COMMON_KEYS:
        return parts[1]
    return None


def _preset_keys(data: Any) -> tuple[str, ...] | None:
    """The broker keys the preset of a scenario's data takes; None where its preset is not known."""
    broker = data.get("broker") if isinstance(data, dict) else None
    if broker is None:
        broker = {}
    preset = broker.get("preset", Broker.model_fields["preset"].default) if isinstance(broker, dict) else None
    return PRESETS[preset].keys if isinstance(preset, str) and preset in PRESETS else None


def load_variant(path: Path, name: str, overrides: list[str]) -> LoadedScenario:
    """Variant ``name`` of the ``variants:`` block of the scenario file ``path``, ``overrides`` applied first.

    Raises:
        OverrideError: the file has no variants, or none named ``name``.
        ScenarioFileError, ScenarioError: the file or the variant is invalid.
    """
    base = load_scenario(path, overrides)
    names = list(base.scenario.variants)
    if not names:
        raise OverrideError(f"{path}: --variant {name}: the scenario has no variants: block to pick from")
    if name not in names:
        raise OverrideError(
            f"{path}: --variant {name}: no such variant{did_you_mean(name, names)} (variants: {', '.join(names)})"
        )
    return replace(_variant(path, name, base.scenario.variants[name], overrides), variant=name)


def _variant(path: Path, name: str, changes: dict[str, Any], overrides: list[str]) -> LoadedScenario:
    """The scenario of ``path`` with ``overrides``, then the ``changes`` of its variant ``name``."""
    source = f"{path}: variants.{name}"
    for key in changes:
        _shared(key, source)
    assignments = tuple((f"{key}={flow_text(value)}", source) for key, value in changes.items())
    return load_scenario(path, overrides, assignments)


def axis_labels(keys: list[str]) -> list[str]:
    """What names each --vary axis in a variant's name: the last part of its key, or as many last parts
    as tell it from the other axes (``inventory.instances`` beside ``payment.instances``)."""
    parts = [key.strip().split(".") for key in keys]
    labels = []
    for index, own in enumerate(parts):
        others = [other for position, other in enumerate(parts) if position != index]
        length = next((n for n in range(1, len(own) + 1) if all(other[-n:] != own[-n:] for other in others)), len(own))
        labels.append(".".join(own[-length:]))
    return labels


def _distinct(variants: list[Variant], finished_runs: int = 0) -> list[Variant]:
    """A comparison needs two or more variants (``finished_runs`` among them), each named once."""
    names = [variant.name for variant in variants]
    if len(variants) + finished_runs < 2:
        raise OverrideError(f"a comparison needs two or more variants (got {', '.join(names) or 'none'})")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise OverrideError(f"variants named more than once: {', '.join(twice)}; give each a different value")
    return variants


def _shared(key: str, source: str) -> None:
    """Every variant runs on the same seed and replications: they are not for a variant to change."""
    if key.strip() in ("seed", "replications"):
        raise OverrideError(
            f"{source}: every variant runs on the same seed and replications; "
            f"set {key.strip()} for all of them with --{key.strip()}"
        )
