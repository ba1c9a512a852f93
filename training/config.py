"""Training configs: a YAML file, optional ``base:`` inheritance, and ``key=value`` overrides.

    cfg = load_config("training/configs/mano_regressor_synthetic.yaml",
                      ["optim.lr=3e-4", "data.batch_size=64", "task.args.model.cfg.backbone=resnet34"])

Every key the trainer reads is declared in :data:`SCHEMA` with its type and default. Keys that are
not declared are refused with a message naming the key (and the closest known key), so a typo
never trains silently with a default. Some parts are free-form and handed to other code
unchanged: every ``task`` key but ``name`` (the task's config: its model's constructor config,
loss weights, ...), ``data.options`` / ``data.val_options`` (the dataset reader's keyword
arguments) and ``data.augment`` (options of :func:`training.augment.build_transform`).

Values are typed: an override's text is read as YAML (``true``, ``3``, ``[1, 2]``, ``null``) and
then checked against the declared type; ``1e-3`` is accepted for a float (plain YAML 1.1 reads it
as a string). A file may start from another one with ``base: other.yaml`` (a path relative to the
file); its keys are merged over the base's, dictionaries key by key.

The model file a run starts from (fine-tuning) is the top-level ``init``. The older
``task.init_from`` is still read, after the whole config (base chain and overrides) is merged:
it is moved to ``init`` with a :class:`FutureWarning`; set together with an ``init`` naming
another file it is a :class:`ConfigError` naming both.
"""
from __future__ import annotations

import copy
import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that cannot be used (names the file or key and what is wrong)."""


@dataclass(frozen=True)
class Field:
    type: Any  # a type, a tuple of types, or 'any'
    default: Any = None
    nullable: bool = False
    choices: tuple | None = None
    required: bool = False
    help: str = ""


FREE = "free-form"  # a dictionary passed on unchanged: any keys allowed

SCHEMA: dict = {
    "task": {
        "name": Field(str, required=True, help="registered training task (training.tasks)"),
        "*": FREE,  # every other key goes to the task unchanged (model cfg, loss weights, ...)
    },
    "data": {
        "name": Field(str, required=True, help="registered dataset (training.datasets)"),
        "root": Field(str, None, nullable=True, help="dataset root folder"),
        "split": Field(str, "train"),
        "options": FREE,
        "val_split": Field(str, None, nullable=True, help="held-out split evaluated during training"),
        "val_root": Field(str, None, nullable=True, help="root of the held-out split (default: root)"),
        "val_options": FREE,
        "val_max_samples": Field(int, None, nullable=True),
        "crop_size": Field(int, 224, help="side of the square network input, pixels"),
        "transform": Field(bool, True, help="crop around the hand (+ augment when training) with "
                           "training.augment; false: the reader already yields crop_size crops"),
        "augment": FREE,
        "batch_size": Field(int, 32, help="GLOBAL batch (all ranks together)"),
        "val_batch_size": Field(int, None, nullable=True),
        "workers": Field(int, 2, help="data-loader worker processes per rank"),
        "mp_context": Field(str, None, nullable=True, choices=("fork", "spawn", "forkserver"),
                            help="worker start method (spawn/forkserver for renderers in workers)"),
        "shuffle": Field(bool, True),
    },
    "optim": {
        "name": Field(str, "adamw", choices=("adamw", "adam", "sgd")),
        "lr": Field(float, 1e-3),
        "weight_decay": Field(float, 1e-4),
        "betas": Field(list, [0.9, 0.999]),
        "momentum": Field(float, 0.9),
        "nesterov": Field(bool, False),
    },
    "schedule": {
        "name": Field(str, "cosine", choices=("cosine", "step", "constant")),
        "warmup_steps": Field(int, 0),
        "warmup_start_factor": Field(float, 0.01),
        "min_lr_factor": Field(float, 0.0, help="cosine: final lr / lr"),
        "milestones": Field(list, [], help="step: steps where lr is multiplied by gamma"),
        "step_size": Field(int, None, nullable=True, help="step: multiply by gamma every step_size steps"),
        "gamma": Field(float, 0.1),
    },
    "precision": Field(str, "fp32", choices=("fp32", "bf16", "fp16")),
    "grad_clip": Field(float, 0.0, help="max global grad norm; 0 = off"),
    "steps": Field(int, None, nullable=True, help="optimizer steps (overrides epochs)"),
    "epochs": Field(int, 1),
    "seed": Field(int, 0),
    "init": Field(str, None, nullable=True, help="model file whose weights start the run (fine-tuning); "
                  "not used when resuming"),
    "out": Field(str, None, nullable=True, help="run folder (default runs/<config name>)"),
    "device": Field(str, "auto", choices=("auto", "cpu", "cuda")),
    "sync_batchnorm": Field(bool, False, help="SyncBatchNorm under DDP"),
    "find_unused_parameters": Field(bool, False, help="DDP: for tasks whose loss skips some parameters"),
    "imports": Field(list, [], help="modules imported first (they may register tasks, datasets, models)"),
    "log": {
        "interval": Field(int, 20, help="steps between log lines and TensorBoard scalars"),
        "image_interval": Field(int, 500, help="steps between TensorBoard image grids; 0 = never"),
        "images": Field(int, 8, help="pictures per grid"),
        "tensorboard": Field(bool, True),
        "progress": Field(bool, True, help="tqdm bar on rank 0 (only on a terminal)"),
    },
    "ckpt": {
        "interval": Field(int, 500, help="steps between checkpoints; 0 = only at the end"),
        "keep": Field(int, 3, help="checkpoints kept (newest); 0 = all"),
    },
    "eval": {
        "interval": Field(int, 0, help="steps between held-out evaluations (needs data.val_split); 0 = only at the end"),
        "at_start": Field(bool, False, help="also evaluate the initial weights (a 'before' number)"),
        "at_end": Field(bool, True),
    },
}


def _is_free(spec) -> bool:
    return spec is FREE


def defaults(schema: dict = SCHEMA) -> dict:
    """The config with every declared key at its default (required keys are None)."""
    out = {}
    for key, spec in schema.items():
        if key == "*":
            continue
        if isinstance(spec, dict):
            out[key] = defaults(spec)
        elif _is_free(spec):
            out[key] = {}
        else:
            out[key] = copy.deepcopy(spec.default)
    return out


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(path: str, value, field: Field, origin: str):
    """Check ``value`` against ``field``; return it converted where the conversion is lossless."""
    if value is None:
        if field.nullable or field.required:
            return None
        raise ConfigError(f"{origin}: {path} may not be null")
    t = field.type
    if t is float:
        if isinstance(value, bool):
            raise ConfigError(f"{origin}: {path} must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            value = float(value)
        elif isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{origin}: {path} must be a number, got {value!r}") from None
        else:
            raise ConfigError(f"{origin}: {path} must be a number, got {type(value).__name__} {value!r}")
    elif t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{origin}: {path} must be an integer, got {value!r}")
    elif t is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{origin}: {path} must be true or false, got {value!r}")
    elif t is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # e.g. a numeric split name
        if not isinstance(value, str):
            raise ConfigError(f"{origin}: {path} must be a string, got {type(value).__name__} {value!r}")
    elif t is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{origin}: {path} must be a list, got {value!r}")
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{origin}: {path} must be one of {', '.join(map(str, field.choices))}; got {value!r}")
    return value


def _merge(base: dict, new: dict, schema, origin: str, prefix: str = "") -> dict:
    """Merge ``new`` over ``base`` checking keys and types against ``schema``."""
    if not isinstance(new, dict):
        raise ConfigError(f"{origin}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {new!r}")
    out = dict(base)
    for key, value in new.items():
        key = str(key)
        path = prefix + key
        if _is_free(schema):
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merge(out[key], value, FREE, origin, path + ".")
            else:
                out[key] = copy.deepcopy(value)
            continue
        if key not in schema and "*" in schema:
            spec = schema["*"]
            out[key] = _merge(out[key], value, spec, origin, path + ".") if (
                isinstance(value, dict) and isinstance(out.get(key), dict)) else copy.deepcopy(value)
            continue
        if key not in schema:
            where = f"in '{prefix.rstrip('.')}'" if prefix else "at the top level"
            raise ConfigError(f"{origin}: unknown config key {path!r}{_suggest(key, schema)}; "
                              f"known keys {where}: {', '.join(sorted(schema))}")
        spec = schema[key]
        if isinstance(spec, dict) or _is_free(spec):
            if value is None:
                value = {}
            out[key] = _merge(out.get(key) or {}, value, spec, origin, path + ".")
        else:
            out[key] = _coerce(path, value, spec, origin)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def _load_file(path: Path, seen: tuple = ()) -> dict:
    path = Path(path).resolve()
    if path in seen:
        raise ConfigError(f"config file {path}: 'base' chain loops ({' -> '.join(map(str, seen + (path,)))})")
    data = _read_yaml(path)
    base_name = data.pop("base", None)
    merged = defaults()
    if base_name is not None:
        merged = _load_file(path.parent / str(base_name), seen + (path,))
    return _merge(merged, data, SCHEMA, f"config file {path}")


def parse_override(text: str) -> tuple[str, Any]:
    """``'optim.lr=3e-4'`` -> ``('optim.lr', 3e-4)``: the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=3e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from err
    return key, value


def _free_at(parts) -> bool:
    """Whether the dotted path ``parts`` names a free-form dictionary (or lies inside one)."""
    spec = SCHEMA
    for p in parts:
        if _is_free(spec):
            return True
        if not isinstance(spec, dict):
            return False
        spec = spec.get(p, spec.get("*"))
        if spec is None:
            return False
    return _is_free(spec)


def apply_overrides(cfg: dict, overrides) -> dict:
    """Apply ``key=value`` strings (dotted keys) to ``cfg`` with the same checks as files.

    A mapping given for a free-form key replaces it (``data.options={length: 100}`` drops the
    file's other reader options); for a declared section it sets only the keys it names."""
    for text in overrides or ():
        key, value = parse_override(text)
        parts = key.split(".")
        if isinstance(value, dict) and _free_at(parts):
            cfg = copy.deepcopy(cfg)
            node = cfg
            for p in parts[:-1]:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    break
            else:
                node[parts[-1]] = {}
        nested = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        cfg = _merge(cfg, nested, SCHEMA, f"override {text!r}")
    return cfg


def migrate_init_from(cfg: dict, origin: str = "config") -> dict:
    """Move the deprecated ``task.init_from`` to the top-level ``init`` (warning once per config);
    the task never sees the key. Both naming different files is a :class:`ConfigError`."""
    task = cfg.get("task")
    if not isinstance(task, dict) or "init_from" not in task:
        return cfg
    cfg = {**cfg, "task": dict(task)}
    old = _coerce("task.init_from", cfg["task"].pop("init_from"), Field(str, nullable=True), origin)
    if not old:  # 'init_from: null' (an old config's placeholder): nothing to move
        return cfg
    new = cfg.get("init")
    if new and not _same_file(new, old):
        raise ConfigError(f"{origin}: init={new!r} and task.init_from={old!r} name different model files; "
                          "task.init_from is deprecated: set only init=")
    warnings.warn(f"{origin}: task.init_from is deprecated, use init= (the model file the run starts "
                  f"from); task.init_from={old!r} is read as init={old!r}", FutureWarning, stacklevel=3)
    cfg["init"] = new or old
    return cfg


def _same_file(a: str, b: str) -> bool:
    def norm(p):
        return os.path.realpath(os.path.expanduser(str(p)))

    return norm(a) == norm(b)


def validate(cfg: dict, origin: str = "config") -> dict:
    """Check what a single key cannot: required keys and cross-key constraints."""

    def walk(schema, values, prefix=""):
        for key, spec in schema.items():
            if key == "*":
                continue
            if isinstance(spec, dict):
                walk(spec, values.get(key, {}), prefix + key + ".")
            elif not _is_free(spec) and spec.required and values.get(key) is None:
                raise ConfigError(f"{origin}: {prefix}{key} is required")

    walk(SCHEMA, cfg)
    for path in ("data.batch_size", "data.crop_size", "log.interval"):
        sec, key = path.split(".")
        if cfg[sec][key] <= 0:
            raise ConfigError(f"{origin}: {path} must be > 0, got {cfg[sec][key]}")
    for path in ("data.workers", "ckpt.interval", "ckpt.keep", "log.image_interval", "eval.interval",
                 "schedule.warmup_steps"):
        sec, key = path.split(".")
        if cfg[sec][key] < 0:
            raise ConfigError(f"{origin}: {path} must be >= 0, got {cfg[sec][key]}")
    if cfg["steps"] is not None and cfg["steps"] <= 0:
        raise ConfigError(f"{origin}: steps must be > 0, got {cfg['steps']}")
    if cfg["steps"] is None and cfg["epochs"] <= 0:
        raise ConfigError(f"{origin}: epochs must be > 0 (or set steps), got {cfg['epochs']}")
    if cfg["optim"]["lr"] <= 0:
        raise ConfigError(f"{origin}: optim.lr must be > 0, got {cfg['optim']['lr']}")
    if cfg["grad_clip"] < 0:
        raise ConfigError(f"{origin}: grad_clip must be >= 0, got {cfg['grad_clip']}")
    betas = cfg["optim"]["betas"]
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"{origin}: optim.betas must be two numbers in [0, 1), got {betas}")
    if not all(isinstance(m, int) and not isinstance(m, bool) for m in cfg["schedule"]["milestones"]):
        raise ConfigError(f"{origin}: schedule.milestones must be a list of step numbers")
    if not all(isinstance(m, str) for m in cfg["imports"]):
        raise ConfigError(f"{origin}: imports must be a list of module names")
    return cfg


def load_config(path, overrides=()) -> dict:
    """Read ``path`` (with its ``base`` chain), apply ``overrides``, check and return the config.

    The result is a plain dict; ``cfg['_name']`` is the config file's stem (the default run name).
    """
    path = Path(path)
    cfg = _load_file(path)
    cfg = apply_overrides(cfg, overrides)
    cfg = migrate_init_from(cfg, f"config {path}")
    cfg = validate(cfg, f"config {path}")
    if cfg["out"] is None:
        cfg["out"] = str(Path("runs") / path.stem)
    cfg["_name"] = path.stem
    return cfg


def from_dict(data: dict, overrides=(), name: str = "config") -> dict:
    """Like :func:`load_config` for a dictionary (e.g. the config stored in a checkpoint)."""
    data = {k: v for k, v in data.items() if not str(k).startswith("_")}
    cfg = _merge(defaults(), data, SCHEMA, name)
    cfg = apply_overrides(cfg, overrides)
    cfg = migrate_init_from(cfg, name)
    cfg = validate(cfg, name)
    if cfg["out"] is None:
        cfg["out"] = str(Path("runs") / name)
    cfg["_name"] = name
    return cfg


def dump(cfg: dict) -> str:
    """YAML text of a config (without private ``_`` keys)."""
    return yaml.safe_dump({k: v for k, v in cfg.items() if not k.startswith("_")}, sort_keys=False)


def import_plugins(cfg: dict) -> None:
    """Import the config's ``imports`` (modules that register tasks, datasets or models)."""
    import importlib

    for mod in cfg.get("imports") or ():
        try:
            importlib.import_module(mod)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {mod!r}: {err}") from err
