"""Reading scenario files: YAML with line marks, overrides, validation.

The YAML is composed into nodes rather than loaded straight to Python, so that
every key path keeps the line and column it came from. Validation errors from
pydantic and from the cross-reference checks are then mapped back to those
marks and reported together, as ``FILE:LINE:COL: key.path: message``.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from busim.errors import OverrideError, Problem, ScenarioError, ScenarioFileError
from busim.scenario.presets import BROKER_KEYS, COMMON_KEYS, PRESETS
from busim.scenario.references import duration_seconds, reference_problems
from busim.scenario.schema import FAILURE_KEYS, Broker, Scenario, did_you_mean
from busim.words import counted

KeyPath = tuple[str | int, ...]

# Limits on what a scenario file may hold, far beyond any real scenario, so that a
# mistaken or hostile file is refused with a message instead of exhausting memory,
# time or the stack (PyYAML composes nodes recursively).
MAX_SCENARIO_BYTES = 4 * 1024 * 1024  # a large scenario is a few KB
MAX_YAML_VALUES = 100_000  # a large scenario has a few thousand
MAX_YAML_DEPTH = 100  # lists and mappings one inside another; a scenario nests 6 deep
# Integers beyond ±2^63 are refused anyway; past this many digits Python will not even
# print them (its limit is 4,300 digits, 640 at the least), and a float holds 309.
MAX_INTEGER_DIGITS = 400
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
    # What of the file the overrides made moot and left out: ``broker.prefetch: not a key of preset kafka``.
    left_out: list[str] = field(default_factory=list)

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
    variant: str | None = None  # the entry of the file's variants: block it is, if one
    # The file as read, with the place of every key, for problems found after validation.
    document: Document | None = field(default=None, repr=False, compare=False)
    left_out: tuple[str, ...] = ()  # what of the file the overrides made moot (Document.left_out)


# ---------------------------------------------------------------- YAML with marks
def _mark(source: str, yaml_mark: yaml.Mark) -> Mark:
    return Mark(source, yaml_mark.line + 1, yaml_mark.column + 1)


def parse_yaml(text: str, source: str) -> Document:
    """Parse YAML text into a :class:`Document`.

    Repeated keys are kept in ``document.problems`` and reported with the
    validation errors, so that one pass shows everything.

    Raises:
        ScenarioError: the text is not valid YAML, holds a character YAML
            does not allow, nests or expands beyond the limits, or its
            aliases run away.
    """
    try:
        root = _compose(text)
    except _RefusedText as error:
        raise ScenarioError([Problem(source, error.line, error.column, "", str(error))]) from None
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


class _RefusedText(Exception):
    """YAML text that is not composed, with the 1-based line and column of the reason."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stopping at :data:`MAX_YAML_DEPTH` levels and :data:`MAX_YAML_VALUES` nodes.

    Its composer calls itself once per level, so a few hundred brackets
    would exhaust Python's stack, and it keeps every node, so a large file
    would take seconds and hundreds of MB before the builder could count.
    """

    def __init__(self, stream: str, subject: str) -> None:
        super().__init__(stream)
        self.subject = subject  # what the text is, in messages: the file, the value
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        opens = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        self.nodes += 1
        self.depth += opens
        if self.depth > MAX_YAML_DEPTH or self.nodes > MAX_YAML_VALUES:
            mark = self.peek_event().start_mark
            message = _TOO_DEEP if self.depth > MAX_YAML_DEPTH else f"{self.subject} {_TOO_MANY}"
            raise _RefusedText(mark.line + 1, mark.column + 1, message)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= opens


_TOO_DEEP = f"lists and mappings nest more than {MAX_YAML_DEPTH} levels deep"
_TOO_MANY = f"holds more than {MAX_YAML_VALUES:,} values; a large scenario has a few thousand"


def _compose(text: str, subject: str = "the file") -> yaml.Node | None:
    """Compose YAML text into nodes, as ``yaml.compose`` does, within the limits.

    Raises:
        _RefusedText: a character YAML does not allow, or too many or too deep nodes.
        yaml.MarkedYAMLError: the text is not valid YAML.
    """
    try:
        loader = _GuardedLoader(text, subject)  # reads the whole text for characters it refuses
    except yaml.reader.ReaderError as error:
        line, column = _position(text, error.position)
        raise _RefusedText(line, column, _refused_character(error.character)) from None
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # YAML 1.1's line breaks, as PyYAML counts them
# The names of U+0000 to U+001F, as the ASCII standard gives them.
_CONTROL_NAMES = [
    *("NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI"),
    *("DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US"),
]


def _position(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of ``text[index]``, counted as PyYAML counts its marks."""
    head = text[:index]
    line_start = max(head.rfind(end) for end in "\n\r\x85\u2028\u2029") + 1
    # PyYAML does not count a byte order mark as a column.
    return len(_LINE_BREAK.findall(head)) + 1, index - line_start - head.count("\ufeff", line_start) + 1


def _refused_character(code: int | str) -> str:
    code = code if isinstance(code, int) else ord(code)
    if code < len(_CONTROL_NAMES) or code == 0x7F:
        name = _CONTROL_NAMES[code] if code < len(_CONTROL_NAMES) else "DEL"
        what = f"the control character U+{code:04X} ({name})"
    else:
        what = f"the character U+{code:04X}"
    return f"{what} is not allowed in YAML, not even in a comment; remove it"


class _UnreadableYaml(Exception):
    """A node the builder refuses; ``path`` is the key path of a value to blame, if it is not the whole file."""

    def __init__(self, node: yaml.Node, message: str, path: KeyPath | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.path = path


_INT_TAG = "tag:yaml.org,2002:int"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SCALAR_KINDS = {
    _INT_TAG: "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    _TIMESTAMP_TAG: "a date or time",
    "tag:yaml.org,2002:binary": "base64 data",
}
_LARGEST_INTEGER = 10**MAX_INTEGER_DIGITS - 1


class _Builder:
    """Builds Python data from YAML nodes, recording the mark of every key and value.

    Merges (``<<``) follow YAML's rules, as PyYAML's own constructor does, but
    a key repeated in one mapping is reported rather than silently overridden.
    It keeps a key as it is
    written (``3`` and ``true`` become the strings "3" and "true"), and stops
    on aliases that contain themselves, and on values that expand beyond
    :data:`MAX_YAML_VALUES` or nest beyond :data:`MAX_YAML_DEPTH` through
    aliases and merges.

    ``override`` names the ``--set`` override the nodes were read from: its
    values are marked with it, without the positions in its one line.
    """

    def __init__(self, document: Document, override: str | None = None) -> None:
        self.document = document
        self.override = override
        self.constructor = yaml.constructor.SafeConstructor()
        self.values = 0

    def build(self, node: yaml.Node, path: KeyPath, ancestors: frozenset[int]) -> Any:
        try:
            return self._build(node, path, ancestors)
        except _UnreadableYaml as error:
            blamed = path if error.path is None else error.path
            raise ScenarioError([self._problem(error.node, blamed, str(error))]) from None
        except yaml.constructor.ConstructorError as error:
            if self.override is not None:
                problem = Problem(self.override, None, None, format_path(path), str(error.problem))
                raise ScenarioError([problem]) from None
            mark = error.problem_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise ScenarioError([Problem(self.document.source, line, column, "", str(error.problem))]) from None

    def _mark(self, node: yaml.Node) -> Mark:
        if self.override is not None:
            return Mark(self.override)
        return _mark(self.document.source, node.start_mark)

    def _problem(self, node: yaml.Node, path: KeyPath, message: str) -> Problem:
        mark = self._mark(node)
        return Problem(mark.source, mark.line, mark.column, format_path(path), message)

    def _count(self, node: yaml.Node, values: int = 1) -> None:
        self.values += values
        if self.values > MAX_YAML_VALUES:
            what = "the value" if self.override else "the file"
            raise _UnreadableYaml(node, f"{what} expands to more than {MAX_YAML_VALUES:,} values through its aliases")

    def _build(self, node: yaml.Node, path: KeyPath, ancestors: frozenset[int]) -> Any:
        if id(node) in ancestors:
            raise _UnreadableYaml(node, "an alias refers to a value that contains it")
        self._count(node)
        self.document.value_marks[path] = self._mark(node)
        inside = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and len(path) >= MAX_YAML_DEPTH:
            # Nesting in the text is checked as it is read: this is through aliases, or under an override's key.
            raise _UnreadableYaml(node, _TOO_DEEP if self.override else f"{_TOO_DEEP} once aliases are expanded")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, inside)
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*path, index), inside) for index, item in enumerate(node.value)]
        value = self._scalar(node, path)
        if isinstance(value, bool):
            self.document.booleans[path] = node.value
        return value

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        """The value of a scalar node, refusing what its tag cannot read (``2024-13-01``, ``!!int x``)."""
        tag = node.tag  # resolved by the composer
        # int() of a long decimal string raises (Python's digit limit) or, without the limit, takes quadratic time.
        if tag == _INT_TAG and len(node.value) > 4 * MAX_INTEGER_DIGITS:
            raise _UnreadableYaml(node, _too_long(node.value), path)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (ValueError, KeyError, AttributeError) as error:
            # PyYAML's constructors assume the resolver's patterns: an explicit tag (!!int x)
            # or a date out of range (2024-13-01) fails in int(), a dict lookup or datetime.
            kind = _SCALAR_KINDS.get(tag, tag)
            detail = f": {error}" if tag == _TIMESTAMP_TAG and isinstance(error, ValueError) else ""
            if "timedelta" in detail:  # datetime's own words, about an offset such as -99:00
                detail = ": its offset from UTC must be under 24 hours"
            raise _UnreadableYaml(node, f"cannot read {_excerpt(node.value)} as {kind}{detail}", path) from None
        if isinstance(value, int) and not -_LARGEST_INTEGER <= value <= _LARGEST_INTEGER:
            raise _UnreadableYaml(node, _too_long(node.value), path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, inside: frozenset[int]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        own: dict[str, yaml.Node] = {}
        for key_node, value_node, merged in self._pairs(node, inside, 0):
            key = self._key(key_node, path)
            here = (*path, key)
            if key in own and not merged:
                first = "" if self.override else f" (first given on line {own[key].start_mark.line + 1})"
                self.document.problems.append(self._problem(key_node, here, f"duplicate key {key!r}{first}"))
                continue
            if key in mapping:
                continue  # a merged value never overrides one already set
            if not merged:
                own[key] = key_node
            self.document.key_marks[here] = self._mark(key_node)
            mapping[key] = self._build(value_node, here, inside)
        return mapping

    def _pairs(
        self, node: yaml.MappingNode, inside: frozenset[int], depth: int
    ) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """The mapping's ``(key, value, merged)`` pairs, highest precedence first.

        YAML's merge key: the mapping's own keys come first, then each merged
        mapping's pairs, earlier mappings of a ``<<: [*a, *b]`` list before
        later ones (and, inside each, its own keys before its merges).
        Merged pairs count as values as they are produced: ten mappings each
        merging the one before ten times would make 10^10 of them.
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
                if depth >= MAX_YAML_DEPTH:
                    raise _UnreadableYaml(source, f"merges (<<) nest more than {MAX_YAML_DEPTH} levels deep")
                pairs = self._pairs(source, inside | {id(node)}, depth + 1)
                self._count(source, len(pairs))
                merged += [(k, v, True) for k, v, _ in pairs]
        return own + merged

    def _key(self, node: yaml.Node, path: KeyPath) -> str:
        if isinstance(node, yaml.ScalarNode):
            return node.value
        # A list or mapping as a key names nothing in a scenario, and printing one that aliases expand could hang.
        raise _UnreadableYaml(node, "a key must be a single value, not a list or a mapping", path)


def _too_long(written: str) -> str:
    return f"integers must lie within ±2^63 (got {written[:20]}…, {len(written):,} characters long)"


def _excerpt(text: str, length: int = 40) -> str:
    """``text`` quoted, cut short with an ellipsis when it is longer than ``length``."""
    return repr(text) if len(text) <= length else repr(text[:length]) + "…"


# ---------------------------------------------------------------- overrides
_OVERRIDE_KEY = re.compile(r"^(?:[^.\[\]=]+|\[[^\]]+\])(?:\.[^.\[\]=]+|\[[^\]]+\])*$")
_OVERRIDE_PART = re.compile(r"\[([^\]]+)\]|([^.\[\]]+)")


def apply_override(document: Document, assignment: str, source: str | None = None) -> None:
    """Apply one ``KEY=VALUE`` override to ``document`` in place.

    ``KEY`` is a dotted path; an entry of ``publishers`` or ``consumers`` is
    addressed by its name or index, after a dot or in brackets
    (``consumers.inventory.instances``, ``consumers[0].instances``).
    ``VALUE`` is read as YAML, so ``8`` is a number and ``[a, b]`` a list,
    within the limits of a file. Mappings missing on the way are created.

    ``source`` names where the assignment came from in messages and marks
    (default ``--set KEY=VALUE``, cut short when it is long).

    Raises:
        OverrideError: the assignment is malformed, names no scenario key, or
            its value is beyond the limits of a file.
    """
    source = source or _default_source(assignment)
    key, equals, text = assignment.partition("=")
    key = key.strip()
    if not equals or not key:
        raise OverrideError(f"{source}: expected KEY=VALUE, for example broker.loss=0.01")
    if not _OVERRIDE_KEY.match(key):
        raise OverrideError(
            f"{source}: malformed key {key!r}; write keys such as broker.loss or consumers[inventory].instances"
        )
    root = compose_value(text, source)
    if not isinstance(document.data, dict):
        raise OverrideError(f"{source}: the scenario file does not hold a mapping of keys")
    mark = Mark(source)
    parts = list(override_key(key))
    if len(parts) > MAX_YAML_DEPTH:
        # The mappings it creates would nest deeper than a file may.
        raise OverrideError(f"{source}: the key has more than {MAX_YAML_DEPTH} parts")
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
        if not last:
            node = node[step]
    document.forget(path)
    node[step] = None if root is None else _build_value(root, source, document, path)
    document.key_marks[path] = mark
    document.value_marks[path] = mark


def _default_source(assignment: str) -> str:
    """How messages name a ``--set`` override: ``--set KEY=VALUE``, cut short when it is long."""
    return f"--set {_excerpt_text(assignment, 60)}"


def override_key(assignment: str) -> tuple[str, ...]:
    """The parts of the key of a ``KEY=VALUE`` override: ``("consumers", "inventory", "instances")``.

    Entries are named as written (a name or an index); a malformed key gives
    what parts it has, for :func:`apply_override` to refuse.
    """
    key = assignment.partition("=")[0].strip()
    return tuple(bracketed or dotted for bracketed, dotted in _OVERRIDE_PART.findall(key))


def compose_value(text: str, source: str, invalid: str = "the value is not valid YAML") -> yaml.Node | None:
    """Compose a YAML value given on the command line, within the limits of a file.

    Raises:
        OverrideError: ``f"{source}: {invalid} (why)"`` for a syntax error, or
            the value holds a character YAML does not allow or is beyond the limits.
    """
    try:
        return _compose(text, "the value")
    except _RefusedText as error:
        raise OverrideError(f"{source}: {error}") from None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error)
        raise OverrideError(f"{source}: {invalid} ({problem})") from None


def read_value(text: str, source: str, invalid: str = "the value is not valid YAML") -> tuple[Any, yaml.Node | None]:
    """A YAML value given on the command line, and its node, read as a file's values are.

    Raises:
        OverrideError: as :func:`compose_value` says, or the value repeats a key
            or expands beyond the limits through aliases.
    """
    root = compose_value(text, source, invalid)
    if root is None:
        return None, None
    document = Document(data=None, source=source)
    value = _build_value(root, source, document, ())
    if document.problems:
        raise OverrideError(str(document.problems[0]))
    return value, root


def flow_text(value: Any) -> str:
    """``value`` as one line of YAML, to be read back as the same value (a word stays as it is)."""
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


def _build_value(root: yaml.Node, source: str, document: Document, path: KeyPath) -> Any:
    """The value of an override's nodes, built into ``document`` at ``path`` and marked with ``source``."""
    try:
        return _Builder(document, override=source).build(root, path, frozenset())
    except ScenarioError as error:
        raise OverrideError(str(error)) from None


def _excerpt_text(text: str, length: int) -> str:
    """``text`` cut short with an ellipsis when longer than ``length``, control characters escaped (``\\x07``)."""
    shown = "".join(character if character.isprintable() else repr(character)[1:-1] for character in text[:length])
    return shown if len(text) <= length else shown + "…"


def _entry_index(entries: list[Any], part: str, path: KeyPath, source: str) -> int:
    if part.isdigit():
        index = int(part)
        if index < len(entries):
            return index
        count = counted(len(entries), "entry")
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
        return f"must have at least {counted(count, 'entry')}"
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
MAX_SUGGESTION_TRIES = 20  # a folder's .yaml files read to find a valid scenario to suggest


def _folder_hint(folder: FilePath) -> str:
    """Which scenario of ``folder`` to give instead: its first valid one, or, when none is, a few of its files."""
    inside = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not inside:
        return f" (there is no .yaml file in {folder})"
    for candidate in inside[:MAX_SUGGESTION_TRIES]:
        try:
            load_scenario(candidate)
        except (ScenarioError, ScenarioFileError, OverrideError):
            continue
        return f" such as {candidate}"
    shown = ", ".join(candidate.name for candidate in inside[:3]) + (", ..." if len(inside) > 3 else "")
    return f" (none of its .yaml files is a valid scenario: {shown})"


def read_scenario_text(path: FilePath) -> str:
    """Read a scenario file as text, at most :data:`MAX_SCENARIO_BYTES` of it.

    Raises:
        ScenarioFileError: the path is missing, a folder, not a regular file
            (a FIFO would block, a device might never end), or too large.
        ScenarioError: the file is not UTF-8 text, located at its first bad byte.
    """
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ScenarioFileError(f"{path}: no such file") from None
    except OSError as error:
        raise ScenarioFileError(f"{path}: cannot be read ({error.strerror})") from None
    except ValueError:  # a NUL character, which no path may hold
        raise ScenarioFileError(f"{str(path)!r}: no such file") from None
    if stat.S_ISDIR(status.st_mode):
        raise ScenarioFileError(f"{path}: is a folder; give a scenario file{_folder_hint(path)}")
    if not stat.S_ISREG(status.st_mode):
        raise ScenarioFileError(f"{path}: is {_file_kind(status.st_mode)}, not a regular file; give a scenario file")
    if status.st_size > MAX_SCENARIO_BYTES:
        raise ScenarioFileError(f"{path}: {_too_large(status.st_size)}")
    try:
        # Non-blocking: a FIFO swapped in since the stat must not block the open (fstat then refuses it).
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(path, flags), "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ScenarioFileError(f"{path}: is {_file_kind(mode)}, not a regular file; give a scenario file")
            # A byte beyond the limit tells a file that grew since the stat, or one that stat sizes 0 (in /proc).
            data = file.read(MAX_SCENARIO_BYTES + 1)
    except OSError as error:
        raise ScenarioFileError(f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > MAX_SCENARIO_BYTES:
        raise ScenarioFileError(f"{path}: {_too_large(None)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        head = data[: error.start].decode("utf-8")
        line, column = _position(head, len(head))
        message = f"is not UTF-8 text (byte 0x{data[error.start]:02X}: {error.reason}); save it as UTF-8"
        raise ScenarioError([Problem(str(path), line, column, "", message)]) from None


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_kind(mode: int) -> str:
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "a special file")


def _too_large(size: int | None) -> str:
    """Why a file of ``size`` bytes (None: unknown, but too many) is refused."""
    limit = f"the {MAX_SCENARIO_BYTES // 2**20} MiB ({MAX_SCENARIO_BYTES:,} bytes) a scenario file may hold"
    return f"is {size:,} bytes, larger than {limit}" if size is not None else f"is larger than {limit}"


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
    text, document = overridden_document(path, overrides, labelled)
    try:
        scenario = validate(document)
    except ScenarioError as error:
        raise _blamed(error, path, overrides, labelled) from None
    return LoadedScenario(
        scenario=scenario,
        file=str(path),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        overrides=(*overrides, *(assignment for assignment, _ in labelled)),
        document=document,
        left_out=tuple(document.left_out),
    )


# Up to this many overrides, every prefix of them is validated to blame a problem; beyond, a bisection.
BLAME_SCAN_LIMIT = 8


def _blamed(
    error: ScenarioError, path: FilePath, overrides: tuple[str, ...] | list[str], labelled: tuple[tuple[str, str], ...]
) -> ScenarioError:
    """``error`` with each problem at a place in the file that the file alone does not have naming the
    override that caused it (``caused by --set duration=60s``): the one after which it appears for good.

    A problem is known by where it is, not by its message, which may quote an
    overridden value. Only a scenario that fails is read again: with up to
    ``BLAME_SCAN_LIMIT`` overrides it is validated after each of them; with
    more, each problem's cause is found by bisection, which finds the one
    after which it appears where it appears only once.
    """
    assignments = [(assignment, _default_source(assignment)) for assignment in overrides] + list(labelled)
    if not assignments or all(problem.source != str(path) for problem in error.problems):
        return error
    text = read_scenario_text(path)
    found: dict[int, set[tuple[Any, ...]]] = {len(assignments): {_place(p) for p in error.problems}}

    def places(count: int) -> set[tuple[Any, ...]]:
        """Where the problems are after the first ``count`` assignments."""
        if count not in found:
            try:
                validate(_overridden_text(text, path, [], tuple(assignments[:count])))
                found[count] = set()
            except ScenarioError as earlier:
                found[count] = {_place(p) for p in earlier.problems}
        return found[count]

    problems = []
    for problem in error.problems:
        cause = _cause(_place(problem), len(assignments), places) if problem.source == str(path) else None
        problems.append(problem if cause is None else replace(problem, cause=f"caused by {assignments[cause][1]}"))
    return ScenarioError(problems)


def _place(problem: Problem) -> tuple[Any, ...]:
    return (problem.source, problem.line, problem.column, problem.path)


def _cause(place: tuple[Any, ...], total: int, places: Any) -> int | None:
    """The index of the assignment after which the problem at ``place`` appears for good, None if the
    file has it alone; ``places(count)`` is where problems are after the first ``count`` assignments."""
    if total <= BLAME_SCAN_LIMIT:
        absent = [count for count in range(total) if place not in places(count)]
        return absent[-1] if absent else None
    if place in places(0):
        return None
    low, high = 0, total  # absent after ``low`` assignments, present after ``high``
    while high - low > 1:
        middle = (low + high) // 2
        if place in places(middle):
            high = middle
        else:
            low = middle
    return low


def overridden_document(
    path: FilePath, overrides: tuple[str, ...] | list[str] = (), labelled: tuple[tuple[str, str], ...] = ()
) -> tuple[str, Document]:
    """The text of the scenario file ``path``, and its document with the overrides applied, not yet validated.

    Raises:
        ScenarioFileError, ScenarioError, OverrideError: as :func:`load_scenario` says.
    """
    text = read_scenario_text(path)
    return text, _overridden_text(text, path, overrides, labelled)


def _overridden_text(
    text: str, path: FilePath, overrides: tuple[str, ...] | list[str], labelled: tuple[tuple[str, str], ...]
) -> Document:
    """The document of ``text``, the scenario file ``path``, with the overrides applied."""
    document = parse_yaml(text, str(path))
    if isinstance(document.data, dict) and "name" not in document.data:
        document.data["name"] = path.stem
    own = _FileSettings.of(document.data)
    for assignment in overrides:
        apply_override(document, assignment)
    for assignment, source in labelled:
        apply_override(document, assignment, source)
    if overrides or labelled:
        _fit_to_overrides(document, own)
    return document


# ---------------------------------------------------------------- what an override leaves out
@dataclass(frozen=True)
class _FileSettings:
    """What the file alone says of the broker preset and the run's length, before any override;
    None where the file's value is not valid (validation reports it)."""

    preset: str | None
    duration_s: float | None
    horizon_s: float | None

    @classmethod
    def of(cls, data: Any) -> _FileSettings:
        if not isinstance(data, dict):
            return cls(None, None, None)
        broker = data.get("broker")
        preset = broker.get("preset", Broker.model_fields["preset"].default) if isinstance(broker, dict) else None
        duration_s = duration_seconds(data.get("duration"))
        drain_s = duration_seconds(data.get("drain_timeout", Scenario.model_fields["drain_timeout"].default))
        return cls(
            preset if isinstance(preset, str) and preset in PRESETS else None,
            duration_s,
            duration_s + drain_s if duration_s is not None and drain_s is not None else None,
        )


def _fit_to_overrides(document: Document, own: _FileSettings) -> None:
    """Leave out of ``document`` what the file says that an overridden preset or run length makes moot.

    Another broker preset set by an override runs the scenario on that
    broker: the file's keys of its own preset's broker, which the new one does
    not take, are left out (rather than refused, which would leave no way to
    run the file on another broker, nor to vary the preset). A shorter
    ``duration`` or ``drain_timeout`` set by an override runs the first part
    of the scenario: the file's rate steps after publishing ends, and its
    outages, slowdowns, crashes and deploys after the run ends, are left out.
    Only what the file alone has valid (``own``) is left out: what it has
    wrong stays, to be refused as it is without the override. What is left
    out is named in ``document.left_out``.
    """
    data = document.data
    if not isinstance(data, dict):
        return
    _fit_to_preset(document, data, own)
    if _overridden(document, ("duration",)) or _overridden(document, ("drain_timeout",)):
        _fit_to_duration(document, data, own)


def _overridden(document: Document, path: KeyPath) -> bool:
    mark = document.value_marks.get(path)
    return mark is not None and mark.source != document.source


def _from_file(document: Document, path: KeyPath) -> bool:
    return document.value_mark(path).source == document.source


def _fit_to_preset(document: Document, data: dict[str, Any], own: _FileSettings) -> None:
    broker = data.get("broker")
    if not isinstance(broker, dict) or not _overridden(document, ("broker", "preset")) or own.preset is None:
        return  # without a preset of its own that is valid, the file's keys are for validation to judge
    preset = broker.get("preset")
    if not isinstance(preset, str) or preset not in PRESETS or preset == own.preset:
        return  # validation names an unknown preset
    wrong = set(foreign_broker_keys(document, own.preset))  # already refused without the override
    for key in foreign_broker_keys(document, preset):
        if key in wrong:
            continue
        del broker[key]
        document.forget(("broker", key))
        document.left_out.append(f"broker.{key}: not a key of preset {preset}")


def foreign_broker_keys(document: Document, preset: str) -> list[str]:
    """The broker keys the file of ``document`` sets that ``preset`` does not take, which an override
    of the preset to ``preset`` leaves out."""
    broker = document.data.get("broker") if isinstance(document.data, dict) else None
    return [
        key
        for key in (broker if isinstance(broker, dict) else {})
        if (
            (key in BROKER_KEYS and key not in COMMON_KEYS and key not in PRESETS[preset].keys)
            or preset not in FAILURE_KEYS.get(key, (preset,))
        )
        and _from_file(document, ("broker", key))
    ]


def _fit_to_duration(document: Document, data: dict[str, Any], own: _FileSettings) -> None:
    duration_s = duration_seconds(data.get("duration"))
    drain_s = duration_seconds(data.get("drain_timeout", Scenario.model_fields["drain_timeout"].default))
    if duration_s is None or drain_s is None or own.duration_s is None or own.horizon_s is None:
        return  # validation reports the value; nothing of a file of no valid length was valid
    horizon_s, own_duration_s, own_horizon_s = duration_s + drain_s, own.duration_s, own.horizon_s
    after_publishing = f"starts after publishing ends at {duration_s:g}s"
    after_run = f"starts after the run ends at {horizon_s:g}s"

    # Only what starts before the file's own end was valid in the file.
    def after_publishing_ends(at_s: float) -> bool:
        return duration_s <= at_s < own_duration_s

    def after_run_ends(at_s: float) -> bool:
        return horizon_s <= at_s < own_horizon_s

    for index, publisher in enumerate(_listed(data.get("publishers"))):
        if isinstance(publisher, dict) and _overridden(document, ("duration",)):
            # A rate step at 0s is never after the end, so a rate keeps a step.
            _drop_entries(document, ("publishers", index, "rate"), "at", after_publishing_ends, after_publishing)
    if isinstance(data.get("broker"), dict):
        _drop_entries(document, ("broker", "outages"), "at", after_run_ends, after_run)
        _drop_entries(document, ("broker", "slowdowns"), "from", after_run_ends, after_run)
    for index, consumer in enumerate(_listed(data.get("consumers"))):
        if not isinstance(consumer, dict):
            continue
        _drop_entries(document, ("consumers", index, "deploys"), "at", after_run_ends, after_run)
        _drop_entries(document, ("consumers", index, "slowdowns"), "from", after_run_ends, after_run)
        crash = consumer.get("crash")
        if isinstance(crash, dict) and "at" in crash:
            _fit_crash(document, ("consumers", index, "crash"), crash, horizon_s, own_horizon_s)


def _fit_crash(
    document: Document, path: KeyPath, crash: dict[str, Any], horizon_s: float, own_horizon_s: float
) -> None:
    """Leave out a crash's times after the run ends (and not after the file's own end, where they were
    wrong already), and the crash when no other time or chance is left."""
    after_run = f"comes after the run ends at {horizon_s:g}s"

    def moot(time: Any) -> bool:
        return (time_s := duration_seconds(time)) is not None and horizon_s < time_s <= own_horizon_s

    times = crash["at"]
    if isinstance(times, list):
        late = [i for i, time in enumerate(times) if moot(time) and _from_file(document, (*path, "at", i))]
        for index in reversed(late):
            document.left_out.append(f"{format_path((*path, 'at', index))}: {after_run}")
        _renumber(document, (*path, "at"), times, late)
        if not late or times:
            return
    elif not moot(times) or not _from_file(document, (*path, "at")):
        return
    else:
        document.left_out.append(f"{format_path((*path, 'at'))}: {after_run}")
    del crash["at"]
    document.forget((*path, "at"))
    if not {"probability", "after_messages"} & set(crash):
        consumer = document.data["consumers"][path[1]]
        del consumer["crash"]
        document.forget(path)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _drop_entries(document: Document, path: KeyPath, key: str, late: Any, why: str) -> None:
    """Leave out the entries of the list at ``path`` from the file whose ``key`` time ``late`` finds too late."""
    node: Any = document.data
    for part in path:
        inside = isinstance(node, dict) or (isinstance(node, list) and isinstance(part, int))
        node = node[part] if inside and part in (node if isinstance(node, dict) else range(len(node))) else None
    if not isinstance(node, list):
        return
    dropped = [
        index
        for index, entry in enumerate(node)
        if isinstance(entry, dict)
        and (at_s := duration_seconds(entry.get(key))) is not None
        and late(at_s)
        and _from_file(document, (*path, index))
        and _from_file(document, (*path, index, key))
    ]
    if len(dropped) == len(node) and path[-1] == "rate":
        return  # a rate with no step left is for validation to report
    for index in dropped:
        document.left_out.append(f"{format_path((*path, index))}: {why}")
    _renumber(document, path, node, dropped)


def _renumber(document: Document, path: KeyPath, entries: list[Any], dropped: list[int]) -> None:
    """Remove ``dropped`` (indices) from ``entries``, the list at ``path``, moving the marks of those after them."""
    if not dropped:
        return
    kept = [index for index in range(len(entries)) if index not in dropped]
    depth = len(path)
    for marks in (document.key_marks, document.value_marks, document.booleans):
        moved: dict[KeyPath, Any] = {}
        for marked in [p for p in marks if p[:depth] == path and len(p) > depth]:
            value = marks.pop(marked)
            if marked[depth] in kept:
                moved[(*path, kept.index(marked[depth]), *marked[depth + 1 :])] = value
        marks.update(moved)
    entries[:] = [entries[index] for index in kept]
