"""The starter scenario ``busim init`` writes: small, valid as is, and commented key by key.

An order service publishes orders; an inventory service keeps stock per
product and refuses an order that would take it below zero. The broker is
the preset asked for, its own keys listed at their defaults, commented out,
so that a user sees what there is to change.
"""

from __future__ import annotations

import os
from pathlib import Path

from busim.errors import BusimError
from busim.scenario.presets import PRESET_NAMES, PRESETS, preset_rows
from busim.scenario.schema import NAME_PATTERN, unknown_preset

DEFAULT_NAME = "orders"
DEFAULT_PRESET = "rabbitmq"
MODELINE = "# yaml-language-server: $schema="

_TEMPLATE = """\
{modeline}
# A busim scenario. Run it with `busim run {file}`, check it with `busim validate {file}`.
# Every key and its meaning: `busim schema` (and docs/scenarios.md in busim's source); the
# brokers and their defaults: `busim presets` (and docs/brokers.md in busim's source).
# Durations take a unit (250ms, 2s, 5min), rates a unit of time (100/s). Leave a key out for
# its default. The comment above points editors at busim's JSON Schema (`busim schema`),
# which completes and checks keys as you type.

name: {name}  # names the run: its results go to runs/{name}/<date>-<time>/
description: >-
  An order service publishes orders and an inventory service takes each order's
  quantity off the product's stock. What do the broker's redeliveries and the
  inventory's crashes do to the stock, and how long does an order wait?
seed: 1  # the same file and seed give the same results; leave it out for a fresh seed each run
duration: 60s  # publishers publish from 0 s until here; then the bus drains what is left

events:  # the event types, by name
  OrderPlaced:
    key: sku  # the ordering key: a broker that keeps order keeps it per value of this field
    fields:  # each field's value, drawn anew for every message
      order_id: {{sequence: {{start: 1}}}}  # 1, 2, 3, ...
      sku: {{zipf: {{n: 20, s: 1.1}}}}  # 20 products, a few of them far more popular
      quantity: {{uniform_int: {{low: 1, high: 3}}}}  # 1, 2 or 3, equally likely

publishers:  # who publishes which event, and how fast
  - name: order-service
    event: OrderPlaced
    rate: 50/s  # Poisson arrivals; or steps: [{{at: 0s, rate: 50/s}}, {{at: 30s, rate: 200/s}}]

broker:  # `busim presets {preset}` lists this preset's keys, their defaults and their sources
  preset: {preset}  # or another of {presets}
{preset_keys}  # duplication: 0.001  # the share of deliveries the broker copies (every preset)
  # outages: [{{at: 20s, duration: 5s}}]  # the broker is down: publishes wait, deliveries stop

consumers:  # consumer groups: each group gets every message of the events it subscribes to
  - name: inventory
    subscribes: [OrderPlaced]
    instances: 2  # the group's instances share its messages
    processing_time: {{exponential: {{mean: 5ms}}}}  # or 5ms, or as measured: {{empirical: [1ms, 4ms, 30ms]}}
    idempotency: none  # dedup: remember the ids of processed messages and skip a repeat
    crash: {{probability: 0.001, restart_after: 2s}}  # after a message's effects, before its ack
    # deploys: [{{at: 30s, kind: rolling, max_unavailable: 1, restart_time: 10s}}]  # stop and start each instance
    # autoscale: {{min: 2, max: 8, metric: backlog_per_instance, target: 100}}  # instances as the load asks
    state:
      stock: {{initial: 500}}  # a counter per key (per sku here), starting at 500
    effects:  # what processing a message does to the state
      - {{counter: stock, key: sku, add: -quantity, floor: 0}}  # refused if stock would go below 0

invariants:  # what the run must keep, each reported PASS or FAIL (busim run --fail-on-violation)
  - {{name: no-oversell, counter: stock, min: 0}}
  - {{name: applied-once, consumer: inventory, max: {{duplicate_effects: 0}}}}
"""


def schema_reference(scenario_file: Path, schema_file: Path) -> str:
    """Where a scenario's modeline finds the schema: relative to the scenario when both are in one
    project (a checkout, or a virtual environment inside it), else the absolute path."""
    relative = Path(os.path.relpath(schema_file.resolve(), scenario_file.resolve().parent))
    return relative.as_posix() if relative.parts.count("..") <= 2 else schema_file.resolve().as_posix()


def _preset_keys(preset: str) -> str:
    """The preset's own keys at their defaults, commented out, each with the first words of its source."""
    lines = []
    for key, default, basis, _url in preset_rows(preset):
        if key in ("latency",):
            continue  # a long distribution; `busim presets` shows it
        lines.append(f"  # {key}: {default}  # {basis.split(';')[0]}")
    return "".join(f"{line}\n" for line in lines)


def starter_text(name: str, preset: str, schema: str) -> str:
    """The starter scenario named ``name`` on ``preset``; ``schema``: where its modeline points."""
    return _TEMPLATE.format(
        modeline=f"{MODELINE}{schema}",
        file=f"{name}.yaml",
        name=name,
        preset=preset,
        presets=", ".join(PRESET_NAMES),
        preset_keys=_preset_keys(preset),
    )


def starter_path(name: str | None) -> Path:
    """The file ``busim init NAME`` writes: ``NAME.yaml``, or ``NAME`` itself if it ends in .yaml or .yml.

    Raises:
        BusimError: the file's name is not a scenario name.
    """
    path = Path(name or DEFAULT_NAME)
    if path.suffix not in (".yaml", ".yml"):
        path = path.with_name(f"{path.name}.yaml")
    if not NAME_PATTERN.match(path.stem):
        raise BusimError(
            f"{path.stem!r} cannot name a scenario: use letters, digits and _ : -, not starting with : or -"
        )
    return path


def check_preset(preset: str) -> None:
    """Raises: BusimError: ``preset`` is not a broker preset."""
    if preset not in PRESETS:
        raise BusimError(unknown_preset(preset))
