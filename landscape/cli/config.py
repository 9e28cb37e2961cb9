"""Command-line options generated from the methods' config dataclasses, so every setting of every method is
reachable as `--<field>` (underscores as hyphens) with the help text taken from the comment beside the field.
Only options given on the command line override the method's defaults; one that the chosen method does not
take is an error."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import typing
from typing import Any


def field_comments(cls: type) -> dict[str, str]:
    """The `# comment` after each field in the dataclass's source: the field's documentation (a trailing
    `# noqa: ...` for the linter is not part of it)."""
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
        if m:
            comments[m.group(1)] = re.sub(r"\s*#\s*noqa\b.*$", "", m.group(2)).strip()
    return comments


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _mapping(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"tau\": 0.01}}', got {text!r} "
                                         f"({e.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"tau\": 0.01}}', got {text!r}")
    return value


def _converter(annotation: Any) -> Any:
    text = str(annotation)
    if "Mapping" in text or text.startswith("dict"):
        return _mapping
    for name, conv in (("bool", _parse_bool), ("int", int), ("float", float), ("str", str)):
        if re.search(rf"\b{name}\b", text):
            return conv
    return str


def add_config_options(parser: argparse.ArgumentParser, configs: dict[str, type],
                       skip: set[str]) -> dict[str, set[str]]:
    """Add one option per field name found in any config (shared names share one option). Returns
    field name → the methods that take it."""
    owners: dict[str, set[str]] = {}
    helps: dict[str, list[str]] = {}
    annotations: dict[str, Any] = {}
    for method, cls in configs.items():
        comments = field_comments(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            owners.setdefault(f.name, set()).add(method)
            annotations[f.name] = hints[f.name]
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            helps.setdefault(f.name, []).append(f"[{method}, default {default!r}] {comments.get(f.name, '')}")
    group = parser.add_argument_group("method settings (each applies to the methods named in its help)")
    for name in sorted(owners):
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"cfg_{name}", default=None,
                           type=_converter(annotations[name]), metavar=name.upper(), help="; ".join(helps[name]))
    return owners


def chosen_settings(args: argparse.Namespace, method: str, owners: dict[str, set[str]]) -> dict[str, Any]:
    """The fields given on the command line; an option the method does not take is an error."""
    settings = {}
    for name, methods in owners.items():
        value = getattr(args, f"cfg_{name}")
        if value is None:
            continue
        if method not in methods:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --method {method} "
                             f"(it applies to: {', '.join(sorted(methods))})")
        settings[name] = value
    return settings
