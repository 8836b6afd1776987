"""The scenario format: frozen pydantic models, one per YAML mapping.

The models are inert data. Every duration is held in seconds and every rate in
messages per second, whatever unit the file used. Dumping a model
(``scenario.model_dump()``) gives the resolved scenario back in the YAML
shape, defaults filled in, so that it loads again to the same model.

Checks that look at one model live here as validators; checks that relate
several parts of a scenario (a consumer subscribing to an undeclared event)
live in :mod:`busim.scenario.references`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from busim.scenario.presets import BROKER_KEYS, COMMON_KEYS, PRESET_NAMES, PRESETS, defaults_of, inapplicable_hint
from busim.scenario.units import duration_json_schema, parse_duration, parse_rate, rate_json_schema
from busim.words import counted


class Model(BaseModel):
    """Base of every scenario model: immutable, strict, and unknown keys are errors.

    Strict: ``true`` is not a number and ``"5"`` is not an integer; YAML already
    gives numbers their types.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_ZIPF_KEYS = 10_000_000
MAX_WORKERS = 1_000_000
MAX_REPLICATIONS = 10_000

Integer = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
# WithJsonSchema: what the JSON Schema of a file (busim.scenario.json_schema) says the loader accepts.
# A model such a schema names, {MODEL_REF: "RateStep"}, becomes a $ref to the model's definition there.
MODEL_REF = "busim:model"
Seconds = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(duration_json_schema())]
PositiveSeconds = Annotated[
    float, BeforeValidator(parse_duration), Field(gt=0), WithJsonSchema(duration_json_schema(positive=True))
]
PerSecond = Annotated[float, BeforeValidator(parse_rate), WithJsonSchema(rate_json_schema())]
PositivePerSecond = Annotated[
    float, BeforeValidator(parse_rate), Field(gt=0), WithJsonSchema(rate_json_schema(positive=True))
]
Probability = Annotated[float, Field(ge=0, le=1)]
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:-]*$")
Name = Annotated[str, StringConstraints(min_length=1, pattern=NAME_PATTERN.pattern)]


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | str | float) or (isinstance(value, int) and INT64_MIN <= value <= INT64_MAX):
        return value
    if isinstance(value, int):
        raise ValueError(f"integers must lie within ±2^63 (got {value})")
    raise ValueError(f"expected a number, a string or true/false (got {_kind_of(value)})")


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


Scalar = Annotated[
    int | float | str | bool,
    BeforeValidator(_scalar),
    WithJsonSchema({"type": ["integer", "number", "string", "boolean"]}),
]


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _kind_of(value)


# Words that mean "false". YAML 1.1 reads them unquoted (off, Off, OFF) as false, as it reads
# no and yes, on and true: a key that takes one of these words takes false too, and keeps the word.
FALSE_WORDS = ("off",)


def _is_word(value: Any, word: str) -> bool:
    """Whether ``value`` is ``word``, or false where ``word`` means false (unquoted ``off`` in YAML)."""
    return value == word or (value is False and word in FALSE_WORDS)


def _count_or(word: str, minimum: int):
    """A whole number of at least ``minimum``, or ``word``, with one error message for both."""

    def validate(value: Any) -> int | str:
        if _is_word(value, word):
            return word
        if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= INT64_MAX:
            return value
        raise ValueError(f"expected a whole number >= {minimum} or {word} (got {_got(value)})")

    return validate


def _parsed_or(word: str, parse: Any, example: str):
    """A positive duration or rate, or ``word``, with one error message for both."""

    def validate(value: Any) -> float | str:
        if _is_word(value, word):
            return word
        try:
            parsed = parse(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed > 0:
            return parsed
        raise ValueError(f"expected {example}, or {word} (got {_got(value)})")

    return validate


def _or_word(schema: dict[str, Any], word: str) -> WithJsonSchema:
    """The JSON Schema of a value or ``word`` (or false, where ``word`` means false)."""
    words: list[Any] = [word, False] if word in FALSE_WORDS else [word]
    return WithJsonSchema({"anyOf": [schema, {"enum": words}]})


Unlimited = Literal["unlimited"]
Limit = Annotated[
    int | Unlimited,
    PlainValidator(_count_or("unlimited", 1)),
    _or_word({"type": "integer", "minimum": 1}, "unlimited"),
]
Retries = Annotated[
    int | Unlimited,
    PlainValidator(_count_or("unlimited", 0)),
    _or_word({"type": "integer", "minimum": 0}, "unlimited"),
]
Throughput = Annotated[
    float | Unlimited,
    PlainValidator(_parsed_or("unlimited", parse_rate, "a rate such as 300/s")),
    _or_word(rate_json_schema(positive=True), "unlimited"),
]
ClaimInterval = Annotated[
    float | Literal["off"],
    PlainValidator(_parsed_or("off", parse_duration, "a duration such as 5s")),
    _or_word(duration_json_schema(positive=True), "off"),
]


def _tagged(kinds: tuple[str, ...], what: str, scalar_kind: str | None, listed: tuple[str, ...] = ()):
    """Turn ``{kind: {params}}`` (or a bare scalar) into ``{"kind": kind, **params}``.

    The tag then selects the model of a discriminated union, and errors inside
    the parameters keep the YAML path (``latency.lognormal.median``). A kind
    in ``listed`` may take a list instead of a mapping, which its model reads
    from ``points``.
    """

    def tag(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((kind, params),) = value.items()
            if kind in kinds:
                if kind == "constant":
                    return {"kind": kind, "value": params}
                if kind in listed and isinstance(params, list):
                    return {"kind": kind, "points": params}
                if params is None:
                    params = {}
                if not isinstance(params, dict):
                    raise ValueError(f"{kind} takes a mapping of parameters (got {_kind_of(params)})")
                return {"kind": kind, **params}
            hint = did_you_mean(str(kind), kinds) or f"; expected one of {', '.join(kinds)}"
            raise ValueError(f"unknown {what} {kind!r}{hint}")
        if scalar_kind is not None and not isinstance(value, dict | list):
            return {"kind": scalar_kind, "value": value}
        expected = f"one of {', '.join(kinds)}"
        if scalar_kind is not None:
            expected = f"a constant or {expected}"
        raise ValueError(f"expected {what} as {expected}, written as {{kind: {{parameters}}}} (got {_got(value)})")

    return tag


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A suggestion to append to an error message, or ``""`` when nothing is close."""
    choices = list(choices)
    close = [choice for choice in choices if choice.startswith(word)][:1] if len(word) >= 3 else []
    close = close or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class TaggedModel(Model):
    """A model written in YAML as ``{kind: {parameters}}``."""

    @model_serializer(mode="wrap")
    def _as_yaml(self, handler: Any) -> Any:
        data = handler(self)
        kind = data.pop("kind")
        return {kind: data}


# ---------------------------------------------------------------- distributions
class ConstantTime(TaggedModel):
    """Always the same duration; written as the bare duration (``2ms``)."""

    kind: Literal["constant"] = "constant"
    value: Seconds

    @model_serializer(mode="plain")
    def _as_yaml(self) -> Any:
        return self.value


class ExponentialTime(TaggedModel):
    kind: Literal["exponential"]
    mean: PositiveSeconds


class UniformTime(TaggedModel):
    kind: Literal["uniform"]
    low: Seconds
    high: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> UniformTime:
        if self.high < self.low:
            raise ValueError(f"high (={self.high:g}s) must be >= low (={self.low:g}s)")
        return self


class NormalTime(TaggedModel):
    """A normal distribution truncated at 0 (negative draws are drawn again)."""

    kind: Literal["normal"]
    mean: Seconds
    sd: Seconds


class LogNormalTime(TaggedModel):
    kind: Literal["lognormal"]
    median: PositiveSeconds
    sigma: Annotated[float, Field(ge=0)]


class QuantileTime(TaggedModel):
    """A distribution through given percentiles: ``{p50: 3ms, p99: 5.4ms, p99.9: 18.3ms}``.

    Between two given percentiles the logarithm of the duration is linear in
    the normal score of the probability, so two percentiles give a lognormal
    and more bend its tail to fit published measurements; below the first
    the first segment continues, and above the last the last one goes on for
    two more nines of probability, the longest draw (see
    :mod:`busim.engine.sampling`).
    """

    kind: Literal["quantiles"]
    points: dict[float, float]  # percentile (0 < p < 100) -> duration in seconds (> 0)

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "points" in data:
            return data
        form = "write quantiles as pNN: DURATION, such as p50: 3ms or p99.9: 18ms"
        return {"kind": data.get("kind"), "points": _read_percentiles(data, form, bounded=False)}

    @model_validator(mode="after")
    def _increasing(self) -> QuantileTime:
        if len(self.points) < 2:
            raise ValueError("quantiles needs at least two percentiles, such as p50 and p99")
        _check_order(self.points, strictly=True)
        return self

    @model_serializer(mode="plain")
    def _as_yaml(self) -> Any:
        return _points_yaml(self.kind, self.points)


class EmpiricalTime(TaggedModel):
    """A distribution measured in a run: ``{p0: 0.2ms, p50: 0.9ms, p99: 4ms, p100: 11ms}``.

    A draw is a uniform probability read through the given percentiles, the
    duration linear in the probability between two of them, so the draws
    never leave the range from p0 to p100. Written as a list, the durations
    stand at evenly spaced percentiles: five are p0, p25, p50, p75 and p100.
    """

    kind: Literal["empirical"]
    points: dict[float, float]  # percentile (0 <= p <= 100, with 0 and 100) -> duration in seconds (>= 0)

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, data: Any) -> Any:
        if not isinstance(data, dict) or isinstance(data.get("points"), dict):
            return data
        if isinstance(data.get("points"), list):
            return {"kind": data.get("kind"), "points": _evenly_spaced(data["points"])}
        form = (
            "write empirical as pNN: DURATION, such as p0: 0.2ms or p100: 11ms, "
            "or as a list of durations at evenly spaced percentiles"
        )
        return {"kind": data.get("kind"), "points": _read_percentiles(data, form, bounded=True)}

    @model_validator(mode="after")
    def _bounded(self) -> EmpiricalTime:
        missing = [f"p{p}" for p in (0, 100) if p not in self.points]
        if missing:
            raise ValueError(
                "empirical needs p0 and p100, the shortest and the longest duration: the distribution is "
                f"bounded (missing {' and '.join(missing)})"
            )
        _check_order(self.points, strictly=False)
        return self

    @model_serializer(mode="plain")
    def _as_yaml(self) -> Any:
        return _points_yaml(self.kind, self.points)


def _read_percentiles(data: dict[str, Any], form: str, *, bounded: bool) -> dict[float, float]:
    """Read ``pNN: DURATION`` pairs, each problem named by its key; ``form`` says how to write them.

    Bounded, the percentiles run from 0 to 100 included and a duration may be
    0; otherwise both ends are excluded and a duration must be > 0.
    """
    points: dict[float, float] = {}
    for key, value in data.items():
        if key == "kind":
            continue
        percentile = _percentile(key)
        if percentile is None:
            raise ValueError(f"{form} (got {key!r})")
        if bounded and not 0 <= percentile <= 100:
            raise ValueError(f"{key}: a percentile must lie between 0 and 100")
        if not bounded and not 0 < percentile < 100:
            raise ValueError(f"{key}: a percentile must lie strictly between 0 and 100")
        if percentile in points:
            raise ValueError(f"{key}: p{percentile:g} is given twice")
        try:
            duration_s = parse_duration(value)
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
        if duration_s <= 0 and not bounded:
            raise ValueError(f"{key}: must be > 0 (got {_got(value)})")
        points[percentile] = duration_s
    return points


def _evenly_spaced(durations: list[Any]) -> dict[float, float]:
    """Durations at evenly spaced percentiles, from p0 to p100, each problem named by its index."""
    if len(durations) < 2:
        raise ValueError(
            f"empirical as a list needs at least two durations, the shortest and the longest (got {len(durations)})"
        )
    points: dict[float, float] = {}
    for index, value in enumerate(durations):
        try:
            duration_s = parse_duration(value)
        except ValueError as error:
            raise ValueError(f"[{index}]: {error}") from None
        if points and duration_s < points[max(points)]:
            shorter = points[max(points)]
            raise ValueError(f"[{index}] (={duration_s:g}s) must be at least as long as [{index - 1}] (={shorter:g}s)")
        points[100 * index / (len(durations) - 1)] = duration_s
    return points


def _check_order(points: dict[float, float], *, strictly: bool) -> None:
    """Refuse a duration shorter than the one at a lower percentile (or as long, ``strictly``)."""
    relation = "longer than" if strictly else "at least as long as"
    for (p_low, low_s), (p_high, high_s) in pairwise(sorted(points.items())):
        if high_s < low_s or (strictly and high_s == low_s):
            raise ValueError(f"p{p_high:g} (={high_s:g}s) must be {relation} p{p_low:g} (={low_s:g}s)")


def _points_yaml(kind: str, points: dict[float, float]) -> dict[str, dict[str, float]]:
    """``{kind: {pNN: seconds}}`` in percentile order, each percentile written to read back exactly."""
    return {kind: {f"p{_exact(p)}": value for p, value in sorted(points.items())}}


def _exact(number: float) -> str:
    """The shortest decimal that reads back as ``number``, without an exponent: ``50``, ``33.333333333333336``."""
    text = format(Decimal(repr(number)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _percentile(key: Any) -> float | None:
    match = re.fullmatch(r"p(\d+(?:\.\d+)?)", str(key))
    return float(match.group(1)) if match else None


TIME_KINDS = ("constant", "exponential", "uniform", "normal", "lognormal", "quantiles", "empirical")
TimeDistribution = Annotated[
    ConstantTime | ExponentialTime | UniformTime | NormalTime | LogNormalTime | QuantileTime | EmpiricalTime,
    Field(discriminator="kind"),
    BeforeValidator(_tagged(TIME_KINDS, "distribution", scalar_kind="constant", listed=("empirical",))),
]


# ---------------------------------------------------------------- payload fields
class ConstantField(TaggedModel):
    kind: Literal["constant"]
    value: Scalar

    @model_serializer(mode="plain")
    def _as_yaml(self) -> Any:
        return {"constant": self.value}


class UniformIntField(TaggedModel):
    """Integers from ``low`` to ``high``, both included, equally likely."""

    kind: Literal["uniform_int"]
    low: Integer
    high: Integer

    @model_validator(mode="after")
    def _ordered(self) -> UniformIntField:
        if self.high < self.low:
            raise ValueError(f"high (={self.high}) must be >= low (={self.low})")
        return self


class ChoiceField(TaggedModel):
    kind: Literal["choice"]
    values: Annotated[list[Scalar], Field(min_length=1)]
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> ChoiceField:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights has {counted(len(self.weights), 'entry')} "
                    f"but values has {counted(len(self.values), 'entry')}"
                )
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be 0")
        return self


class ZipfField(TaggedModel):
    """Integers 1..n with P(k) proportional to k^-s: a few hot keys, a long tail."""

    kind: Literal["zipf"]
    n: Annotated[int, Field(ge=1, le=MAX_ZIPF_KEYS)]
    s: Annotated[float, Field(ge=0)]


class SequenceField(TaggedModel):
    """Consecutive integers from ``start``, in publish order across the event's publishers."""

    kind: Literal["sequence"]
    start: Annotated[int, Field(ge=-(2**62), le=2**62)] = 1  # leaves room to count up within int64


FIELD_KINDS = ("constant", "uniform_int", "choice", "zipf", "sequence")
FieldGenerator = Annotated[
    ConstantField | UniformIntField | ChoiceField | ZipfField | SequenceField,
    Field(discriminator="kind"),
    BeforeValidator(_tagged(FIELD_KINDS, "field generator", scalar_kind=None)),
]


# ---------------------------------------------------------------- the scenario
class Event(Model):
    key: str | None = None
    fields: dict[Name, FieldGenerator] = {}


class RateStep(Model):
    at: Seconds
    rate: PerSecond


def _rate_schedule(value: Any) -> Any:
    if isinstance(value, list):
        return value
    return [{"at": 0.0, "rate": parse_rate(value)}]


class PublisherCrash(Model):
    """The publishing service crashes after committing its own state and before its event is out."""

    probability: Probability
    restart_after: Seconds = 5.0


class Publisher(Model):
    name: Name
    event: str
    arrivals: Literal["poisson", "uniform"] = "poisson"
    rate: Annotated[
        list[RateStep],
        BeforeValidator(_rate_schedule),
        Field(min_length=1),
        WithJsonSchema(
            {"anyOf": [rate_json_schema(), {"type": "array", "items": {MODEL_REF: "RateStep"}, "minItems": 1}]}
        ),
    ]
    count: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    retries: Retries = "unlimited"
    publish_timeout: PositiveSeconds = 30.0
    crash: PublisherCrash | None = None
    outbox: bool = False

    @field_validator("rate")
    @classmethod
    def _steps_ascend(cls, steps: list[RateStep]) -> list[RateStep]:
        for before, after in pairwise(steps):
            if after.at <= before.at:
                raise ValueError(
                    f"rate steps must be in increasing order of 'at' "
                    f"(a step at {after.at:g}s follows one at {before.at:g}s)"
                )
        return steps


class Outage(Model):
    at: Seconds
    duration: PositiveSeconds

    @property
    def end_s(self) -> float:
        return self.at + self.duration


# ---------------------------------------------------------------- processing failures and slowdowns
GIVE_UP_ACTIONS = ("nack", "dead_letter", "drop", "ack")
Fraction = Annotated[float, Field(ge=0, le=1)]


class Failures(Model):
    """Processing that raises: by chance on any attempt, or on every attempt of a poison message.

    ``probability`` fails an attempt (a later one may succeed); ``poison``
    is the fraction of messages, drawn per message and fixed for the run,
    that fail on every attempt. ``after`` is the fraction of the processing
    time spent before the failure. The failure comes before the commit, so
    a failed attempt applies nothing, unless it comes at the end (``after:
    1``) of a processing whose effects are written without a transaction
    (``effects_isolation`` other than ``atomic``).
    """

    probability: Probability = 0.0
    poison: Probability = 0.0
    after: Fraction = 1.0


class ExponentialBackoff(Model):
    """``base`` x 2^(retry - 1), at most ``max``."""

    base: PositiveSeconds
    max: PositiveSeconds | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ExponentialBackoff:
        if self.max is not None and self.max < self.base:
            raise ValueError(f"max (={self.max:g}s) must be >= base (={self.base:g}s)")
        return self


class Backoff(Model):
    """How long a worker waits before it retries: ``constant`` or ``exponential``; ``jitter: full`` draws
    the wait uniformly between 0 and that."""

    constant: Seconds | None = None
    exponential: ExponentialBackoff | None = None
    jitter: Literal["none", "full"] = "none"

    @model_validator(mode="after")
    def _one_kind(self) -> Backoff:
        if (self.constant is None) == (self.exponential is None):
            raise ValueError("give one of constant (such as 1s) or exponential (such as {base: 100ms, max: 10s})")
        return self

    @model_serializer(mode="wrap")
    def _given_only(self, handler: Any) -> Any:
        return {key: value for key, value in handler(self).items() if value is not None}


class Retry(Model):
    """The consumer's own retries of a failed attempt, before it gives up on the delivery."""

    attempts: Retries = 0
    backoff: Backoff | None = None


class Slowdown(Model):
    """A window in which every duration is ``factor`` times as long: ``{from: 60s, to: 120s, factor: 5}``."""

    start: Seconds = Field(alias="from")
    to: Seconds
    factor: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Slowdown:
        if self.to <= self.start:
            raise ValueError(f"to (={self.to:g}s) must be later than from (={self.start:g}s)")
        return self

    @model_serializer(mode="plain")
    def _as_yaml(self) -> Any:
        return {"from": self.start, "to": self.to, "factor": self.factor}


def slowdowns_apart(slowdowns: list[Slowdown] | None) -> list[Slowdown] | None:
    """Slowdown windows may not overlap: which factor would hold where two do?"""
    windows_apart("slowdowns", "from", [(slowdown.start, slowdown.to) for slowdown in slowdowns or ()])
    return slowdowns


def windows_apart(what: str, preposition: str, windows: list[tuple[float, float]]) -> None:
    """Refuse windows ``(start_s, end_s)`` that overlap, naming them by their start."""
    for (start_s, end_s), (later_s, _) in pairwise(sorted(windows, key=lambda window: window[0])):
        if later_s < end_s:
            raise ValueError(
                f"{what} overlap: the one {preposition} {later_s:g}s starts before "
                f"the one {preposition} {start_s:g}s ends ({end_s:g}s)"
            )


class RetryTopic(Model):
    """Kafka retry topics: a failed record waits ``delays[i]`` in the i-th, then goes to a dead-letter topic."""

    delays: Annotated[list[PositiveSeconds], Field(min_length=1)]


# Broker keys for failures that only some presets have: key -> the presets.
FAILURE_KEYS = {
    "backoff": ("nats-jetstream",),
    "kafka_retry": ("kafka",),
    "retry_topic": ("kafka",),
}


def unknown_preset(name: str) -> str:
    """Why ``name`` is refused as a preset: the nearest preset, and every one."""
    return f"unknown preset {name!r}{did_you_mean(name, PRESET_NAMES)} (presets: {', '.join(PRESET_NAMES)})"


def _known_preset(value: Any) -> Any:
    if isinstance(value, str) and value not in PRESETS:
        raise ValueError(unknown_preset(value))
    return value


class Broker(Model):
    """The broker: a preset's delivery semantics, with any of its keys overridden.

    A key left out takes the preset's default (see :mod:`busim.scenario.presets`);
    a key that does not apply to the preset is an error. Keys that do not
    apply are held as None.
    """

    preset: Annotated[Literal[PRESET_NAMES], BeforeValidator(_known_preset)] = "ideal"
    # Every preset.
    delivery: Literal["at-most-once", "at-least-once"] = "at-least-once"
    latency: TimeDistribution = ConstantTime(value=0.0)
    duplication: Probability = 0.0
    loss: Probability = 0.0
    publish_ack_loss: Probability = 0.0
    throughput: Throughput = "unlimited"
    outages: list[Outage] = []
    # Timers that redeliver an unacknowledged message.
    ack_timeout: PositiveSeconds | None = None
    consumer_timeout: PositiveSeconds | None = None
    visibility_timeout: PositiveSeconds | None = None
    ack_wait: PositiveSeconds | None = None
    claim_interval: ClaimInterval | None = None
    claim_min_idle: Seconds | None = None
    # Delivery limits, after which a message is dead-lettered.
    max_deliveries: Limit | None = None
    delivery_limit: Limit | None = None
    max_receive_count: Limit | None = None
    max_deliver: Limit | None = None
    # How many unacknowledged messages a consumer holds.
    prefetch: Limit | None = None
    batch_size: Annotated[int, Field(ge=1, le=MAX_WORKERS)] | None = None
    max_ack_pending: Limit | None = None
    max_poll_records: Annotated[int, Field(ge=1, le=MAX_WORKERS)] | None = None
    # Queue length.
    capacity: Limit | None = None
    overflow: Literal["drop-head", "reject-publish"] | None = None
    # Deduplication of producer retries.
    dedup_window: Seconds | None = None
    idempotent_producer: bool | None = None
    # Kafka's partitions and offsets.
    partitions: Annotated[int, Field(ge=1, le=MAX_WORKERS)] | None = None
    commit: Literal["auto", "per-message", "per-batch"] | None = None
    auto_commit_interval: PositiveSeconds | None = None
    session_timeout: Seconds | None = None
    max_poll_interval: PositiveSeconds | None = None
    # What a consumer's nack or give-up does, where the preset has a setting for it.
    backoff: Annotated[list[PositiveSeconds], Field(min_length=1)] | None = None
    kafka_retry: Literal["blocking", "retry_topic"] | None = None
    retry_topic: RetryTopic | None = None
    slowdowns: list[Slowdown] | None = None

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        """Fill in the preset's defaults; ``null`` for a key also means the default."""
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "ideal")
        defaults = defaults_of(preset) if isinstance(preset, str) and preset in PRESETS else {}
        given = {key: value for key, value in data.items() if value is not None or key not in defaults}
        return {**defaults, **given}

    @field_validator(*(key for key in BROKER_KEYS if key not in COMMON_KEYS))
    @classmethod
    def _applies(cls, value: Any, info: ValidationInfo) -> Any:
        preset = info.data.get("preset")
        if value is not None and preset is not None and info.field_name not in PRESETS[preset].keys:
            raise ValueError(inapplicable_hint(info.field_name, preset))
        return value

    @field_validator(*FAILURE_KEYS)
    @classmethod
    def _failure_key_applies(cls, value: Any, info: ValidationInfo) -> Any:
        preset = info.data.get("preset")
        if value is not None and preset is not None and preset not in FAILURE_KEYS[info.field_name]:
            users = ", ".join(FAILURE_KEYS[info.field_name])
            raise ValueError(f"{info.field_name} does not apply to preset {preset}; it applies to {users}")
        if info.field_name == "retry_topic" and value is not None and info.data.get("kafka_retry") != "retry_topic":
            raise ValueError("retry_topic applies only with kafka_retry: retry_topic")
        return value

    _slowdowns_apart = field_validator("slowdowns")(slowdowns_apart)

    @field_validator("batch_size")
    @classmethod
    def _sqs_batch(cls, size: int | None, info: ValidationInfo) -> int | None:
        if size is not None and size > 10 and str(info.data.get("preset")).startswith(("sqs", "sns")):
            raise ValueError(f"SQS receives at most 10 messages at a time (got {size})")
        return size

    @field_validator("outages")
    @classmethod
    def _outages_apart(cls, outages: list[Outage]) -> list[Outage]:
        windows_apart("outages", "at", [(outage.at, outage.end_s) for outage in outages])
        return outages

    @model_serializer(mode="wrap")
    def _applicable_only(self, handler: Any) -> Any:
        return {key: value for key, value in handler(self).items() if value is not None}


def _one_or_more(value: Any) -> Any:
    """A single value where a list is expected stands for a list of one."""
    return value if isinstance(value, list) else [value]


def _one_or_more_json(item: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]}


class Crash(Model):
    """When a consumer instance crashes: by chance after a processing, at given times, or after given counts.

    ``probability`` crashes the instance that has just processed a message,
    after its effects and before its ack. ``at`` crashes ``instance`` at
    those times, whatever it holds; ``after_messages`` crashes it right
    after its Nth processed message (counted from the start), before the
    ack. ``instance: random`` draws the instance for each scheduled crash.
    Cross-checks (an instance the consumer has, times inside the run, a
    crash while the instance is still restarting) live in
    :mod:`busim.scenario.references`.
    """

    probability: Probability = 0.0
    at: Annotated[
        list[Seconds], BeforeValidator(_one_or_more), WithJsonSchema(_one_or_more_json(duration_json_schema()))
    ] = []
    after_messages: Annotated[
        list[Annotated[int, Field(ge=1, le=INT64_MAX)]],
        BeforeValidator(_one_or_more),
        WithJsonSchema(_one_or_more_json({"type": "integer", "minimum": 1})),
    ] = []
    instance: Annotated[
        int | Literal["random"],
        PlainValidator(_count_or("random", 0)),
        _or_word({"type": "integer", "minimum": 0}, "random"),
    ] = 0
    restart_after: Seconds = 5.0

    @model_validator(mode="before")
    @classmethod
    def _says_when(cls, data: Any) -> Any:
        if isinstance(data, dict) and not {"probability", "at", "after_messages"} & set(data):
            raise ValueError(
                "say when the instance crashes: probability (after any processing), "
                "at (times, such as [30s, 95s]) or after_messages (such as 200)"
            )
        return data

    @field_validator("at", "after_messages")
    @classmethod
    def _not_empty(cls, values: list[Any], info: ValidationInfo) -> list[Any]:
        if not values:
            example = "[30s, 95s]" if info.field_name == "at" else "[200]"
            raise ValueError(f"give at least one, such as {info.field_name}: {example}, or leave the key out")
        return values

    @field_validator("after_messages")
    @classmethod
    def _ascending(cls, counts: list[int]) -> list[int]:
        for before, after in pairwise(counts):
            if after <= before:
                raise ValueError(f"counts must increase (a crash after {after} follows one after {before})")
        return counts

    @property
    def scheduled(self) -> bool:
        """Whether any crash is scheduled, by time or by count."""
        return bool(self.at or self.after_messages)

    @model_serializer(mode="wrap")
    def _given_only(self, handler: Any) -> Any:
        data = handler(self)
        if not self.scheduled:
            del data["at"], data["after_messages"], data["instance"]
        else:
            for key in ("at", "after_messages"):
                if not data[key]:
                    del data[key]
        return data


class Counter(Model):
    initial: Integer = 0


def _integer_or_field(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"expected an integer or a field name such as quantity or -quantity (got {_got(value)})")


class Effect(Model):
    """Add to a keyed counter; with ``floor``, refuse a change that would go below it."""

    counter: str
    key: str
    add: Annotated[Integer | str, BeforeValidator(_integer_or_field)]
    floor: Integer | None = None

    @property
    def add_field(self) -> str | None:
        """The event field whose value is added, or None for a constant."""
        if isinstance(self.add, str):
            return self.add.removeprefix("-")
        return None

    @property
    def add_sign(self) -> int:
        return -1 if isinstance(self.add, str) and self.add.startswith("-") else 1


class Queries(Model):
    """Reads served from a consumer's state (its read model): Poisson at ``rate``, each of one key of ``counter``.

    That the counter is the consumer's own and has an effect to give it keys
    is checked in :mod:`busim.scenario.references`.
    """

    rate: PositivePerSecond
    counter: str


class Dedup(Model):
    """Where an idempotent consumer remembers the ids it has processed, and how well."""

    ttl: Seconds = 0.0  # 0: forever
    capacity: Limit = "unlimited"  # ids kept; beyond it the least recently seen is evicted
    durable: bool = True  # False: each instance keeps its ids in memory, lost when it crashes
    atomic_with_effects: bool = True  # False: the id is recorded after the effects, not with them


class Emit(Model):
    """A follow-up event a consumer publishes after processing a message."""

    event: str
    when: Literal["accepted", "rejected", "always"] = "accepted"


class Deploy(Model):
    """A deploy of a consumer's instances at ``at``: each is stopped, and serves again ``restart_time`` later.

    ``rolling`` takes down ``max_unavailable`` instances at a time, the next
    ones once those serve again; ``all_at_once`` takes down every instance.
    ``graceful`` stops receiving and works off what the instance holds before
    it goes down; ``kill`` stops it at once, as a crash does. Cross-checks (a
    ``max_unavailable`` the consumer has, times inside the run, deploys apart)
    live in :mod:`busim.scenario.references`.
    """

    at: Seconds
    kind: Literal["rolling", "all_at_once"] = "rolling"
    max_unavailable: Annotated[int, Field(ge=1, le=MAX_WORKERS)] | None = None  # rolling: 1 unless given
    restart_time: Seconds = 0.0
    drain: Literal["graceful", "kill"] = "graceful"

    def batch(self, instances: int) -> int:
        """How many of ``instances`` serving instances the deploy takes down at once."""
        return instances if self.kind == "all_at_once" else self.max_unavailable or 1

    @model_serializer(mode="wrap")
    def _given_only(self, handler: Any) -> Any:
        return {key: value for key, value in handler(self).items() if value is not None}


AUTOSCALE_METRICS = ("backlog_per_instance", "lag_s", "utilisation")


class Autoscale(Model):
    """A scaler over a queue metric, as KEDA or a Kubernetes HPA: desired = ceil(instances x metric / target).

    Every ``interval`` it looks at ``metric``: the copies waiting or held
    unacknowledged per instance, the age in seconds of the oldest waiting
    one, or the share of the workers' time spent processing over the last
    interval. New instances serve after ``scale_up_delay``; instances are
    removed gracefully, never within ``cooldown`` of the last change.
    """

    min: Annotated[int, Field(ge=1, le=MAX_WORKERS)]
    max: Annotated[int, Field(ge=1, le=MAX_WORKERS)]
    metric: Literal[AUTOSCALE_METRICS]
    target: Annotated[float, Field(gt=0)]
    interval: PositiveSeconds = 15.0
    scale_up_delay: Seconds = 30.0
    cooldown: Seconds = 120.0

    @model_validator(mode="after")
    def _consistent(self) -> Autoscale:
        if self.min > self.max:
            raise ValueError(f"min must be at most max (got min {self.min}, max {self.max})")
        if self.metric == "utilisation" and self.target > 1:
            raise ValueError(
                f"a utilisation target is a fraction of the workers' time, at most 1 (got {self.target:g})"
            )
        return self


ISOLATIONS = ("atomic", "read-modify-write", "optimistic")
DEFAULT_REPLAY_RATE_PER_S = 10_000.0


class Consumer(Model):
    name: Name
    subscribes: Annotated[list[str], Field(min_length=1)]
    instances: Annotated[int, Field(ge=1, le=MAX_WORKERS)] = 1
    concurrency: Annotated[int, Field(ge=1, le=MAX_WORKERS)] = 1
    processing_time: TimeDistribution = ConstantTime(value=0.0)
    idempotency: Literal["none", "dedup"] = "none"
    dedup: Dedup | None = None
    effects_isolation: Literal[ISOLATIONS] = "atomic"
    crash: Crash | None = None
    snapshot_every: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    replay_rate: PositivePerSecond | None = None
    state: dict[Name, Counter] = {}
    effects: list[Effect] = []
    emits: list[Emit] = []
    queries: Queries | None = None
    deploys: list[Deploy] = []
    autoscale: Autoscale | None = None
    failures: Failures | None = None
    retry: Retry | None = None
    on_give_up: Literal[GIVE_UP_ACTIONS] | None = None
    slowdowns: list[Slowdown] | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """An idempotent consumer gets the default store, an event-sourced one the default replay rate."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        if filled.get("idempotency") == "dedup" and filled.get("dedup") is None:
            filled["dedup"] = {}
        if filled.get("snapshot_every") is not None and filled.get("replay_rate") is None:
            filled["replay_rate"] = DEFAULT_REPLAY_RATE_PER_S
        return filled

    @field_validator("concurrency")
    @classmethod
    def _workers_bounded(cls, concurrency: int, info: ValidationInfo) -> int:
        instances = info.data.get("instances", 1)
        if instances * concurrency > MAX_WORKERS:
            raise ValueError(
                f"instances x concurrency must be at most {MAX_WORKERS:,} (got {instances} x {concurrency})"
            )
        return concurrency

    @field_validator("dedup")
    @classmethod
    def _dedup_needs_idempotency(cls, dedup: Dedup | None, info: ValidationInfo) -> Dedup | None:
        # Field validators run on given values only, and in declaration order.
        if dedup is not None and info.data.get("idempotency", "dedup") != "dedup":
            raise ValueError("dedup applies only with idempotency: dedup")
        return dedup

    @field_validator("replay_rate")
    @classmethod
    def _replay_needs_snapshots(cls, rate: float | None, info: ValidationInfo) -> float | None:
        if rate is not None and info.data.get("snapshot_every", 1) is None:
            raise ValueError("replay_rate applies only with snapshot_every (an event-sourced consumer)")
        return rate

    @field_validator("autoscale")
    @classmethod
    def _scaled_within(cls, autoscale: Autoscale | None, info: ValidationInfo) -> Autoscale | None:
        if autoscale is None:
            return None
        instances, concurrency = info.data.get("instances", 1), info.data.get("concurrency", 1)
        if not autoscale.min <= instances <= autoscale.max:
            raise ValueError(
                f"instances, the count the scaler starts from, must lie within min and max "
                f"(got {instances}, not within {autoscale.min} to {autoscale.max})"
            )
        if autoscale.max * concurrency > MAX_WORKERS:
            raise ValueError(f"max x concurrency must be at most {MAX_WORKERS:,} (got {autoscale.max} x {concurrency})")
        return autoscale

    @field_validator("retry", "on_give_up")
    @classmethod
    def _needs_failures(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("failures", 1) is None:
            raise ValueError(f"{info.field_name} applies only with failures (such as failures: {{probability: 0.01}})")
        return value

    _slowdowns_apart = field_validator("slowdowns")(slowdowns_apart)

    @model_serializer(mode="wrap")
    def _given_only(self, handler: Any) -> Any:
        """Keys for deploys, scaling, failures and slowdowns appear only where given."""
        data = handler(self)
        if not self.deploys:
            del data["deploys"]
        if self.autoscale is None:
            del data["autoscale"]
        for key in ("failures", "retry", "on_give_up", "slowdowns"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @property
    def workers(self) -> int:
        return self.instances * self.concurrency

    @property
    def most_instances(self) -> int:
        """The most instances the group ever has: the scaler's ``max``, or ``instances``."""
        return self.autoscale.max if self.autoscale is not None else self.instances


# ---------------------------------------------------------------- invariants
# The figures of a consumer that an invariant can bound, and the unit of each
# limit: a duration is written with units (250ms) and held in seconds; counts and
# fractions are numbers >= 0. busim.analysis.invariants.METRICS reads each from a
# run, and a test keeps the two tables in step.
INVARIANT_METRICS: dict[str, Literal["count", "duration", "fraction"]] = {
    "duplicate_effects": "count",
    "duplicate_deliveries": "count",
    "redelivered": "count",
    "lost": "count",
    "dead_lettered": "count",
    "stuck_pending": "count",
    "rejected": "count",
    "wrongly_rejected": "count",
    "wrongly_accepted": "count",
    "out_of_order": "count",
    "in_flight_at_end": "count",
    "crashes": "count",
    "max_backlog": "count",
    "drain_time": "duration",
    "processed": "count",
    "latency_p50": "duration",
    "latency_p90": "duration",
    "latency_p95": "duration",
    "latency_p99": "duration",
    "latency_p999": "duration",
    "latency_max": "duration",
    "latency_mean": "duration",
    "duplicate_effect_fraction": "fraction",
    "lost_fraction": "fraction",
    "oversold": "count",
    "lost_updates": "count",
    "optimistic_retries": "count",
    "recovery_max": "duration",
    "stale_read_fraction": "fraction",
    "given_up": "count",
    "poison_in_flight": "count",
}


def _non_negative(value: Any) -> int | float:
    if isinstance(value, int) and not isinstance(value, bool) and value > INT64_MAX:
        # Checked apart: math.isfinite fails on an integer beyond a float's range.
        raise ValueError(f"integers must lie within ±2^63 (got {value})")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 and math.isfinite(value):
        return value
    raise ValueError(f"expected a number >= 0 (got {_got(value)})")


NonNegative = Annotated[int | float, PlainValidator(_non_negative), WithJsonSchema({"type": "number", "minimum": 0})]


class _Limits(Model):
    """Limits on figures of a consumer, one optional field per metric of :data:`INVARIANT_METRICS`."""

    def items(self) -> list[tuple[str, int | float]]:
        """The ``(metric, limit)`` pairs given, in the order of :data:`INVARIANT_METRICS`."""
        return [(metric, limit) for metric, limit in self if limit is not None]

    @model_validator(mode="after")
    def _not_empty(self) -> _Limits:
        if not self.items():
            raise ValueError("name at least one metric, such as {duplicate_effects: 0}")
        return self

    @model_serializer(mode="wrap")
    def _given_only(self, handler: Any) -> Any:
        return {key: value for key, value in handler(self).items() if value is not None}


MetricLimits = create_model(
    "MetricLimits",
    __base__=_Limits,
    **{
        metric: (Seconds | None if unit == "duration" else NonNegative | None, None)
        for metric, unit in INVARIANT_METRICS.items()
    },
)


def _invariant_kind(fields: dict[str, Any]) -> str | None:
    """``counter`` or ``consumer`` from the fields validated so far; None while a wrong value hides it."""
    if fields.get("counter") is not None:
        return "counter"
    if "counter" in fields and fields.get("consumer") is not None:
        return "consumer"
    return None


def _bound(value: Any, info: ValidationInfo) -> int | _Limits:
    """A counter's bound (an integer) or limits on a consumer's metrics (a mapping), as the invariant needs."""
    kind = _invariant_kind(info.data)
    if isinstance(value, dict) and kind != "counter":
        return MetricLimits.model_validate(value)
    is_integer = isinstance(value, int) and not isinstance(value, bool)
    if is_integer and kind != "consumer":
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integers must lie within ±2^63 (got {value})")
        return value
    if kind == "counter":
        raise ValueError(f"a counter's bound is a whole number, such as {info.field_name}: 0 (got {_got(value)})")
    if kind == "consumer":
        raise ValueError(
            f"expected a mapping of metric to limit, such as {info.field_name}: {{duplicate_effects: 0}} "
            f"(got {_got(value)})"
        )
    raise ValueError(f"expected a whole number (a counter's bound) or a mapping of metric to limit (got {_got(value)})")


def _dump_bound(bound: int | _Limits) -> Any:
    return bound if isinstance(bound, int) else bound.model_dump()


Bound = Annotated[
    int | MetricLimits,
    PlainValidator(_bound),
    PlainSerializer(_dump_bound),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {MODEL_REF: "MetricLimits"}]}),
]


class Invariant(Model):
    """A bound the run must keep: on every key of a counter, or on figures of a consumer.

    ``{counter, min, max}`` bounds a counter's values with integers (``consumer``
    names its keeper when several consumers have a counter of that name);
    ``{consumer, min, max}`` bounds the consumer's metrics, each a mapping of
    metric to limit, durations in seconds.
    """

    name: Name
    counter: str | None = None
    consumer: str | None = None
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _complete(self) -> Invariant:
        if self.counter is None and self.consumer is None:
            raise ValueError(
                "an invariant bounds a counter (counter: stock, min: 0) "
                "or a consumer's metrics (consumer: inventory, max: {duplicate_effects: 0}); give counter or consumer"
            )
        if self.min is None and self.max is None:
            example = "min: 0" if self.counter is not None else "max: {duplicate_effects: 0}"
            raise ValueError(f"an invariant needs min, max or both, such as {example}")
        if isinstance(self.min, int) and isinstance(self.max, int) and self.min > self.max:
            raise ValueError(f"min (={self.min}) must be <= max (={self.max})")
        return self

    @model_serializer(mode="wrap")
    def _given_only(self, handler: Any) -> Any:
        return {key: value for key, value in handler(self).items() if value is not None}


class Scenario(Model):
    name: Name
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    duration: PositiveSeconds
    drain_timeout: Seconds = 600.0
    warmup: Seconds = 0.0
    replications: Annotated[int, Field(ge=1, le=MAX_REPLICATIONS)] = 1
    # Named sets of overrides for `busim compare`: variant name -> {key path: value}.
    variants: dict[Name, dict[str, Any]] = {}
    events: Annotated[dict[Name, Event], Field(min_length=1)]
    publishers: Annotated[list[Publisher], Field(min_length=1)]
    broker: Broker = Broker()
    consumers: Annotated[list[Consumer], Field(min_length=1)]
    invariants: list[Invariant] = []

    @field_validator("warmup")
    @classmethod
    def _warmup_inside(cls, warmup_s: float, info: ValidationInfo) -> float:
        duration_s = info.data.get("duration")
        if duration_s is not None and warmup_s >= duration_s:
            raise ValueError(f"warmup (={warmup_s:g}s) must be shorter than duration (={duration_s:g}s)")
        return warmup_s

    @property
    def horizon_s(self) -> float:
        """The latest simulated time: publishing plus the drain timeout."""
        return self.duration + self.drain_timeout

    def consumer(self, name: str) -> Consumer:
        return next(c for c in self.consumers if c.name == name)
