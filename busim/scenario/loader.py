"""Reading scenario files: YAML with line marks, overrides, validation.

The YAML is composed into nodes rather than loaded straight to Python, so that
every key path keeps the line and column it came from. Validation errors from
pydantic and from the cross-reference checks are then mapped back to those
marks and reported together, as ``FILE:LINE:COL: key.path: message``.
"""

from __future__ import annotations

import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from busim.errors import OverrideError, Problem, ScenarioError, ScenarioFileError
from busim.scenario.references import reference_problems
from busim.scenario.schema import Scenario, did_you_mean

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """Where a value came from: a file position, or an override (no position)."""

    source: str
    line: int | None = None
    column: int | None = None


@dataclass
class Document:
    """Raw scenario data plus the mark of every key and value in it."""

    data: Any
    source: str
    key_marks: dict[KeyPath, Mark] = field(default_factory=dict)
    value_marks: dict[KeyPath, Mark] = field(default_factory=dict)

    def value_mark(self, path: KeyPath) -> Mark:
        """The mark of the value at ``path``, or of its nearest marked ancestor."""
        for end in range(len(path), -1, -1):
            mark = self.value_marks.get(path[:end])
            if mark is not None:
                return mark
        return Mark(self.source, 1, 1)

    def key_mark(self, path: KeyPath) -> Mark:
        return self.key_marks.get(path) or self.value_mark(path)


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario and the file it came from."""

    scenario: Scenario
    file: str
    sha256: str
    overrides: tuple[str, ...] = ()


# ---------------------------------------------------------------- YAML with marks
def _mark(source: str, yaml_mark: yaml.Mark) -> Mark:
    return Mark(source, yaml_mark.line + 1, yaml_mark.column + 1)


def parse_yaml(text: str, source: str) -> Document:
    """Parse YAML text into a :class:`Document`.

    Raises:
        ScenarioError: the text is not valid YAML, or repeats a key.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax error: {error.problem or error.context}"
        if error.context and error.context_mark and error.problem:
            message += f" ({error.context} from line {error.context_mark.line + 1})"
        if "block" in (error.problem or ""):
            message += "; check the indentation"
        raise ScenarioError([Problem(source, line, column, "", message)]) from None
    document = Document(data=None, source=source)
    if root is None:
        return document
    constructor = yaml.constructor.SafeConstructor()
    problems: list[Problem] = []

    def build(node: yaml.Node, path: KeyPath) -> Any:
        document.value_marks[path] = _mark(source, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            constructor.flatten_mapping(node)
            mapping: dict[Any, Any] = {}
            first_seen: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    key = str(key)
                if key in first_seen:
                    first = first_seen[key].start_mark.line + 1
                    problems.append(
                        Problem(
                            source,
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                            format_path((*path, key)),
                            f"duplicate key {key!r} (first given on line {first})",
                        )
                    )
                    continue
                first_seen[key] = key_node
                document.key_marks[(*path, key)] = _mark(source, key_node.start_mark)
                mapping[key] = build(value_node, (*path, key))
            return mapping
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, index)) for index, item in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    try:
        document.data = build(root, ())
    except yaml.constructor.ConstructorError as error:
        mark = error.problem_mark
        raise ScenarioError(
            [Problem(source, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1, "", str(error.problem))]
        ) from None
    if problems:
        raise ScenarioError(problems)
    return document


# ---------------------------------------------------------------- overrides
def apply_override(document: Document, assignment: str) -> None:
    """Apply one ``KEY=VALUE`` override to ``document`` in place.

    ``KEY`` is a dotted path; an entry of ``publishers`` or ``consumers`` is
    addressed by its name (``consumers.inventory.instances``) or its index.
    ``VALUE`` is read as YAML, so ``8`` is a number and ``[a, b]`` a list.

    Raises:
        OverrideError: the assignment is malformed or names no scenario key.
    """
    key, equals, text = assignment.partition("=")
    if not equals or not key.strip():
        raise OverrideError(f"--set {assignment}: expected KEY=VALUE, for example broker.loss=0.01")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    if not isinstance(document.data, dict):
        raise OverrideError(f"--set {assignment}: the scenario file is empty")
    parts = key.strip().split(".")
    node: Any = document.data
    path: KeyPath = ()
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if isinstance(node, list):
            index = _entry_index(node, part, path, assignment)
            if last:
                node[index] = value
            else:
                node = node[index]
            path = (*path, index)
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
            path = (*path, part)
        else:
            raise OverrideError(f"--set {assignment}: {format_path(path)} is not a mapping or a list")
    for marks in (document.key_marks, document.value_marks):
        for marked in [p for p in marks if p[: len(path)] == path]:
            del marks[marked]
    document.value_marks[path] = Mark(f"--set {assignment}")


def _entry_index(entries: list[Any], part: str, path: KeyPath, assignment: str) -> int:
    if part.isdigit():
        index = int(part)
        if index < len(entries):
            return index
        raise OverrideError(f"--set {assignment}: {format_path(path)} has {len(entries)} entries, no [{index}]")
    names = [entry.get("name") for entry in entries if isinstance(entry, dict)]
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("name") == part:
            return index
    listed = ", ".join(str(name) for name in names) or "none"
    raise OverrideError(
        f"--set {assignment}: no entry named {part!r} in {format_path(path)}"
        f"{did_you_mean(part, [str(n) for n in names])} (names: {listed})"
    )


# ---------------------------------------------------------------- validation
def format_path(path: KeyPath) -> str:
    """``("publishers", 1, "rate")`` -> ``publishers[1].rate``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def validate(document: Document) -> Scenario:
    """Validate a document into a :class:`Scenario`.

    Raises:
        ScenarioError: with every problem found, in file order.
    """
    data = document.data
    if not isinstance(data, dict):
        raise ScenarioError(
            [
                Problem(
                    document.source,
                    1,
                    1,
                    "",
                    "a scenario must be a mapping with at least duration, events, publishers and consumers",
                )
            ]
        )
    problems: list[Problem] = []
    scenario = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        problems += [_problem(document, detail) for detail in error.errors()]
    for path, message in reference_problems(data):
        mark = document.value_mark(path)
        problems.append(Problem(mark.source, mark.line, mark.column, format_path(path), message))
    if problems:
        problems.sort(key=lambda p: (p.source != document.source, p.line or 0, p.column or 0, p.path))
        raise ScenarioError(problems)
    assert scenario is not None
    return scenario


def _problem(document: Document, detail: Any) -> Problem:
    loc: KeyPath = tuple(part for part in detail["loc"] if part != "[key]")
    if loc[-2:] == ("constant", "value"):
        # `{constant: V}` keeps its key in YAML; a constant duration is written bare.
        loc = loc[:-1] if loc[:-1] in document.value_marks else loc[:-2]
    kind = detail["type"]
    if kind == "extra_forbidden":
        mark = document.key_mark(loc)
    elif kind == "missing":
        mark = document.key_mark(loc[:-1]) if loc[:-1] else Mark(document.source, 1, 1)
    else:
        mark = document.value_mark(loc)
    return Problem(mark.source, mark.line, mark.column, format_path(loc), _message(detail, loc))


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _message(detail: Any, loc: KeyPath) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    got = _shown(detail.get("input"))
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        key = str(loc[-1])
        suggestion = did_you_mean(key, allowed)
        return f"unknown key {key!r}{suggestion}" + ("" if suggestion else f" (valid keys: {', '.join(allowed)})")
    if kind == "value_error":
        return str(ctx.get("error", detail["msg"]))
    comparisons = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in comparisons:
        name, sign = comparisons[kind]
        return f"must be {sign} {_shown(ctx[name])} (got {got})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number (got {got})"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number (got {got})"
    if kind in ("string_type",):
        return f"expected a string (got {got})"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false (got {got})"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']} (got {got})"
    if kind == "list_type":
        return f"expected a list (got {got})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys (got {got})"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"must have at least {count} {'entry' if count == 1 else 'entries'}"
    if kind == "string_pattern_mismatch":
        return f"a name may hold letters, digits and _ . : - and must not start with a punctuation mark (got {got})"
    if kind == "string_too_short":
        return "must not be empty"
    return f"{detail['msg']} (got {got})"


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _allowed_keys(loc: KeyPath) -> list[str]:
    """The keys the scenario schema accepts in the mapping at ``loc``."""
    annotation: Any = Scenario
    for part in loc:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if origin is list:
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(
                (
                    member
                    for member in map(_unwrap, typing.get_args(annotation))
                    if isinstance(member, type)
                    and issubclass(member, BaseModel)
                    and "kind" in member.model_fields
                    and typing.get_args(member.model_fields["kind"].annotation) == (part,)
                ),
                None,
            )
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = annotation.model_fields[part].annotation if part in annotation.model_fields else None
        else:
            annotation = None
        if annotation is None:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [name for name in annotation.model_fields if name != "kind"]
    return []


# ---------------------------------------------------------------- files
def read_scenario_text(path: FilePath) -> str:
    """Read a scenario file as text.

    Raises:
        ScenarioFileError: the path is missing, a folder, or not UTF-8 text.
    """
    if not path.exists():
        raise ScenarioFileError(f"{path}: no such file")
    if path.is_dir():
        raise ScenarioFileError(f"{path}: is a folder; give a scenario file such as {path}/flash-sale.yaml")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioFileError(f"{path}: is not a UTF-8 text file") from None
    except OSError as error:
        raise ScenarioFileError(f"{path}: cannot be read ({error.strerror})") from None


def load_scenario(path: str | FilePath, overrides: tuple[str, ...] | list[str] = ()) -> LoadedScenario:
    """Read, override and validate a scenario file.

    A scenario without ``name`` takes the file's stem.

    Raises:
        ScenarioFileError, ScenarioError, OverrideError: as their names say.
    """
    path = FilePath(path)
    text = read_scenario_text(path)
    document = parse_yaml(text, str(path))
    if isinstance(document.data, dict) and "name" not in document.data:
        document.data["name"] = path.stem
    for assignment in overrides:
        apply_override(document, assignment)
    scenario = validate(document)
    return LoadedScenario(
        scenario=scenario,
        file=str(path),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        overrides=tuple(overrides),
    )
