"""Variants to compare: several scenario files, a grid of --vary values, or a scenario's variants block."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from busim.errors import OverrideError, ScenarioError
from busim.scenario.loader import LoadedScenario, load_scenario, read_value
from busim.scenario.schema import did_you_mean


@dataclass(frozen=True)
class Variant:
    name: str
    loaded: LoadedScenario


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
        axes = [_vary_axis(spec) for spec in vary]
        size = math.prod(len(axis) for axis in axes)
        if max_variants is not None and size > max_variants:  # before a single variant is built
            grid = " x ".join(f"{len(axis):,}" for axis in axes)
            raise OverrideError(
                f"--vary makes {grid} = {size:,} variants, more than the limit of {max_variants:,} simulations "
                "(raise it with --max-runs)"
            )
        keys = [axis[0].partition("=")[0] for axis in axes]
        for key in keys:
            _shared(key, f"--vary {key}")
        labels = axis_labels(keys)
        variants = []
        for combination in itertools.product(*axes):
            assignments = tuple((assignment, f"--vary {assignment}") for assignment in combination)
            name = " ".join(f"{label}={assignment.partition('=')[2]}" for label, assignment in zip(labels, combination))
            variants.append(Variant(name, load_scenario(path, overrides, assignments)))
        return _distinct(variants, finished_runs)
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
    assignments = tuple((f"{key}={_flow(value)}", source) for key, value in changes.items())
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


def _vary_axis(spec: str) -> list[str]:
    """``KEY=V1,V2`` as the assignments ``KEY=V1`` and ``KEY=V2``."""
    key, equals, text = spec.partition("=")
    key = key.strip()
    if not equals or not key or not text.strip():
        raise OverrideError(f"--vary {spec}: expected KEY=V1,V2,..., for example broker.preset=kafka,rabbitmq")
    # Read as a file's values are, within its limits: the text comes from the command line too.
    values, root = read_value(f"[{text}]", f"--vary {spec}", "the values are not valid YAML")
    nodes = root.value if root is not None else []
    if len(values) < 1:
        raise OverrideError(f"--vary {spec}: give at least one value")
    # A plain word keeps its spelling, which names the variant: off, not the false YAML reads it as.
    return [f"{key}={node.value if _plain(node) else _flow(value)}" for value, node in zip(values, nodes, strict=True)]


def _plain(node: yaml.Node) -> bool:
    """Whether ``node`` is an unquoted scalar, which reads the same on its own as in a flow list."""
    return isinstance(node, yaml.ScalarNode) and node.style is None


def _flow(value: Any) -> str:
    """A value as one line of YAML, to be read back as the same value."""
    if isinstance(value, str):
        return value if _reads_as_itself(value) else yaml.safe_dump(value, default_flow_style=True).strip()
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def _reads_as_itself(text: str) -> bool:
    """Whether ``text`` unquoted reads back as the same string; text beyond the limits does not."""
    try:
        value, _ = read_value(text, "")
    except OverrideError:
        return False
    return value == text
