"""Reading scenario files: YAML with line marks, overrides, validation.

The YAML is composed into nodes rather than loaded straight to Python, so that
every key path keeps the line and column it came from. Validation errors from
pydantic and from the cross-reference checks are then mapped back to those
marks and reported together, as ``FILE:LINE:COL: key.path: message``.
"""

from __future__ import annotations

import hashlib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from busim.errors import OverrideError, Problem, ScenarioError, ScenarioFileError
from busim.scenario.presets import PRESETS
from busim.scenario.references import reference_problems
from busim.scenario.schema import Scenario, did_you_mean

KeyPath = tuple[str | int, ...]

MAX_YAML_VALUES = 100_000  # a large scenario has a few thousand
_MERGE_TAG = "tag:yaml.org,2002:merge"
IGNORED_PREFIX = "x-"  # top-level keys for YAML anchors, as in Compose files


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
    problems: list[Problem] = field(default_factory=list)  # found while reading, reported with the rest
    # How each value YAML read as true or false was written (on, No), so that a message names the word.
    booleans: dict[KeyPath, str] = field(default_factory=dict)

    def forget(self, path: KeyPath) -> None:
        """Drop the marks of ``path`` and everything under it."""
        for marks in (self.key_marks, self.value_marks, self.booleans):
            for marked in [p for p in marks if p[: len(path)] == path]:
                del marks[marked]

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

    Repeated keys are kept in ``document.problems`` and reported with the
    validation errors, so that one pass shows everything.

    Raises:
        ScenarioError: the text is not valid YAML, or its aliases run away.
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
    if root is not None:
        document.data = _Builder(document).build(root, (), frozenset())
    return document


class _UnreadableYaml(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node


class _Builder:
    """Builds Python data from YAML nodes, recording the mark of every key and value.

    Merges (``<<``) follow YAML's rules, as PyYAML's own constructor does, but
    a key repeated in one mapping is reported rather than silently overridden.
    It keeps a key as it is
    written (``3`` and ``true`` become the strings "3" and "true"), and stops
    on aliases that contain themselves or expand beyond :data:`MAX_YAML_VALUES`.
    """

    def __init__(self, document: Document) -> None:
        self.document = document
        self.constructor = yaml.constructor.SafeConstructor()
        self.values = 0

    def build(self, node: yaml.Node, path: KeyPath, ancestors: frozenset[int]) -> Any:
        try:
            return self._build(node, path, ancestors)
        except _UnreadableYaml as error:
            raise ScenarioError([self._problem(error.node, path, str(error))]) from None
        except yaml.constructor.ConstructorError as error:
            mark = error.problem_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise ScenarioError([Problem(self.document.source, line, column, "", str(error.problem))]) from None

    def _problem(self, node: yaml.Node, path: KeyPath, message: str) -> Problem:
        mark = node.start_mark
        return Problem(self.document.source, mark.line + 1, mark.column + 1, format_path(path), message)

    def _build(self, node: yaml.Node, path: KeyPath, ancestors: frozenset[int]) -> Any:
        if id(node) in ancestors:
            raise _UnreadableYaml(node, "an alias refers to a value that contains it")
        self.values += 1
        if self.values > MAX_YAML_VALUES:
            raise _UnreadableYaml(node, f"the file expands to more than {MAX_YAML_VALUES:,} values through its aliases")
        self.document.value_marks[path] = _mark(self.document.source, node.start_mark)
        inside = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, inside)
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*path, index), inside) for index, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, bool):
            self.document.booleans[path] = node.value
        return value

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, inside: frozenset[int]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        own: dict[str, yaml.Node] = {}
        for key_node, value_node, merged in self._pairs(node, inside):
            key = self._key(key_node)
            here = (*path, key)
            if key in own and not merged:
                first = own[key].start_mark.line + 1
                self.document.problems.append(
                    self._problem(key_node, here, f"duplicate key {key!r} (first given on line {first})")
                )
                continue
            if key in mapping:
                continue  # a merged value never overrides one already set
            if not merged:
                own[key] = key_node
            self.document.key_marks[here] = _mark(self.document.source, key_node.start_mark)
            mapping[key] = self._build(value_node, here, inside)
        return mapping

    def _pairs(self, node: yaml.MappingNode, inside: frozenset[int]) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """The mapping's ``(key, value, merged)`` pairs, highest precedence first.

        YAML's merge key: the mapping's own keys come first, then each merged
        mapping's pairs, earlier mappings of a ``<<: [*a, *b]`` list before
        later ones (and, inside each, its own keys before its merges).
        """
        own = [(key, value, False) for key, value in node.value if key.tag != _MERGE_TAG]
        merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
        for key, value in node.value:
            if key.tag != _MERGE_TAG:
                continue
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                if id(source) in inside or source is node:
                    raise _UnreadableYaml(source, "an alias refers to a value that contains it")
                if not isinstance(source, yaml.MappingNode):
                    raise _UnreadableYaml(source, "<< merges a mapping or a list of mappings")
                merged += [(k, v, True) for k, v, _ in self._pairs(source, inside | {id(node)})]
        return own + merged

    def _key(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.ScalarNode):
            return node.value
        return str(self.constructor.construct_object(node, deep=True))


# ---------------------------------------------------------------- overrides
_OVERRIDE_KEY = re.compile(r"^(?:[^.\[\]=]+|\[[^\]]+\])(?:\.[^.\[\]=]+|\[[^\]]+\])*$")
_OVERRIDE_PART = re.compile(r"\[([^\]]+)\]|([^.\[\]]+)")


def apply_override(document: Document, assignment: str, source: str | None = None) -> None:
    """Apply one ``KEY=VALUE`` override to ``document`` in place.

    ``KEY`` is a dotted path; an entry of ``publishers`` or ``consumers`` is
    addressed by its name or index, after a dot or in brackets
    (``consumers.inventory.instances``, ``consumers[0].instances``).
    ``VALUE`` is read as YAML, so ``8`` is a number and ``[a, b]`` a list.
    Mappings missing on the way are created.

    ``source`` names where the assignment came from in messages and marks
    (default ``--set KEY=VALUE``).

    Raises:
        OverrideError: the assignment is malformed or names no scenario key.
    """
    source = source or f"--set {assignment}"
    key, equals, text = assignment.partition("=")
    key = key.strip()
    if not equals or not key:
        raise OverrideError(f"{source}: expected KEY=VALUE, for example broker.loss=0.01")
    if not _OVERRIDE_KEY.match(key):
        raise OverrideError(
            f"{source}: malformed key {key!r}; write keys such as broker.loss or consumers[inventory].instances"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error)
        raise OverrideError(f"{source}: the value is not valid YAML ({problem})") from None
    if not isinstance(document.data, dict):
        raise OverrideError(f"{source}: the scenario file does not hold a mapping of keys")
    mark = Mark(source)
    parts = [bracketed or dotted for bracketed, dotted in _OVERRIDE_PART.findall(key)]
    node: Any = document.data
    path: KeyPath = ()
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if isinstance(node, list):
            step: str | int = _entry_index(node, part, path, source)
        elif isinstance(node, dict):
            step = part
            if not last and part not in node:
                node[part] = {}
                document.key_marks[(*path, part)] = mark
                document.value_marks[(*path, part)] = mark
        else:
            raise OverrideError(f"{source}: {format_path(path)} is not a mapping or a list")
        path = (*path, step)
        if last:
            node[step] = value
        else:
            node = node[step]
    document.forget(path)
    document.key_marks[path] = mark
    document.value_marks[path] = mark
    if isinstance(value, bool):
        document.booleans[path] = text.strip()


def _entry_index(entries: list[Any], part: str, path: KeyPath, source: str) -> int:
    if part.isdigit():
        index = int(part)
        if index < len(entries):
            return index
        count = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}"
        raise OverrideError(f"{source}: {format_path(path)} has {count}, no [{index}]")
    names = [entry.get("name") for entry in entries if isinstance(entry, dict)]
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("name") == part:
            return index
    listed = ", ".join(str(name) for name in names) or "none"
    raise OverrideError(
        f"{source}: no entry named {part!r} in {format_path(path)}"
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
    data = {key: value for key, value in data.items() if not str(key).startswith(IGNORED_PREFIX)}
    problems: list[Problem] = list(document.problems)
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
    spelled = document.booleans.get(loc)
    if not isinstance(detail.get("input"), bool) or spelled is None or spelled.lower() in ("true", "false"):
        spelled = None  # the value is as written
    message = _message(detail, loc, document.data, spelled)
    if spelled is not None:
        message = _as_written(message, spelled)
    return Problem(mark.source, mark.line, mark.column, format_path(loc), message)


_BOOLEAN_GOT = re.compile(r"(\(got |invalid (?:duration|rate) )(true|false)\b")


def _as_written(message: str, spelled: str) -> str:
    """``message`` about a value YAML 1.1 read as true or false, naming the word as written.

    ``(got false)`` becomes ``(got no, which YAML reads as false)``: the file
    says ``no``, and without the note the message would seem to quote a value
    that is not there.
    """
    match = _BOOLEAN_GOT.search(message)
    if match is None:
        return message
    lead, shown = match.groups()
    said = f"{spelled}, which YAML reads as {shown}" if lead == "(got " else f"{spelled} (YAML reads it as {shown})"
    return f"{message[: match.start(2)]}{said}{message[match.end(2) :]}"


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | bool | int | float):
        return repr(value)
    return str(value)


def _message(detail: Any, loc: KeyPath, data: Any, spelled: str | None = None) -> str:
    """The message for one pydantic error; ``spelled``: the word YAML read as a boolean, if it was not true or false."""
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    got = _shown(detail.get("input"))
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], data)
        key = str(loc[-1])
        suggestion = did_you_mean(key, allowed)
        # The keys of an invariant's min and max name metrics.
        what = "metric" if loc[:1] == ("invariants",) and loc[2:3] in (("min",), ("max",)) else "key"
        listed = "metrics" if what == "metric" else "valid keys"
        return f"unknown {what} {key!r}{suggestion}" + ("" if suggestion else f" ({listed}: {', '.join(allowed)})")
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
    if kind == "finite_number":
        return f"must be a finite number (got {got})"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number (got {got})"
    if kind in ("string_type",):
        return f"expected a string (got {got})"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false (got {got})"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx["expected"]))
        value = spelled or detail.get("input")  # idempotency: no -> did you mean 'none'?
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"must be one of {ctx['expected']} (got {got}){hint}"
    if kind == "list_type":
        return f"expected a list (got {got})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys (got {got})"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"must have at least {count} {'entry' if count == 1 else 'entries'}"
    if kind == "string_pattern_mismatch":
        return f"a name may hold letters, digits and _ : - and must not start with : or - (got {got})"
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


def _allowed_keys(loc: KeyPath, data: Any) -> list[str]:
    """The keys the scenario schema accepts in the mapping at ``loc`` of ``data``."""
    if loc == ("broker",):
        broker = data.get("broker") if isinstance(data, dict) else None
        preset = broker.get("preset", "ideal") if isinstance(broker, dict) else "ideal"
        if isinstance(preset, str) and preset in PRESETS:
            return list(PRESETS[preset].keys)
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
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        # A value that is a number or a mapping (an invariant's bound): the keys are the mapping's.
        models = [
            member
            for member in map(_unwrap, typing.get_args(annotation))
            if isinstance(member, type) and issubclass(member, BaseModel)
        ]
        annotation = models[0] if len(models) == 1 else annotation
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
        inside = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        hint = f" such as {inside[0]}" if inside else f" (there is no .yaml file in {path})"
        raise ScenarioFileError(f"{path}: is a folder; give a scenario file{hint}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioFileError(f"{path}: is not a UTF-8 text file") from None
    except OSError as error:
        raise ScenarioFileError(f"{path}: cannot be read ({error.strerror})") from None


def load_scenario(
    path: str | FilePath,
    overrides: tuple[str, ...] | list[str] = (),
    labelled: tuple[tuple[str, str], ...] = (),
) -> LoadedScenario:
    """Read, override and validate a scenario file.

    A scenario without ``name`` takes the file's stem. ``labelled`` holds
    further ``(KEY=VALUE, source)`` overrides, applied after ``overrides``,
    whose problems name ``source`` (a variant, say) instead of ``--set``.

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
    for assignment, source in labelled:
        apply_override(document, assignment, source)
    scenario = validate(document)
    return LoadedScenario(
        scenario=scenario,
        file=str(path),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        overrides=(*overrides, *(assignment for assignment, _ in labelled)),
    )
