"""Stripe's form encoding and parameter validation.

The SDK sends ``items[0][price]=p&expand[0]=customer&metadata[k]=v`` (also ``expand[]=x`` from
other clients). :func:`parse_form` turns that into nested dicts (lists stay dicts keyed by index
until a schema says a field is a list, because metadata keys may look like indexes), and
:func:`validate` checks the tree against a schema: unknown keys answer Stripe's
``parameter_unknown``, bad scalars its ``parameter_invalid_*`` codes.

A schema is a dict ``name -> Spec``. A spec is a scalar kind (``"str"``, ``"int"``, ``"bool"``,
``"num"``, ``"ts_now"`` = an integer or ``"now"``, ``"metadata"``, ``"any"``), an :class:`Enum`,
a :class:`ListOf`, a nested schema dict, or any of these wrapped in :class:`Emptyable` (``""``
allowed, meaning "unset", passed on as ``""``). :class:`Required` marks a required field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from stayflow.sandbox.errors import StripeError, invalid, missing_param, unknown_param

Spec: TypeAlias = "str | Enum | ListOf | Emptyable | Required | dict[str, Any]"
Params: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Enum:
    values: frozenset[str]

    @classmethod
    def of(cls, *values: str) -> Enum:
        return cls(frozenset(values))


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Spec
    max_items: int | None = None


@dataclass(frozen=True, slots=True)
class Emptyable:
    spec: Spec


@dataclass(frozen=True, slots=True)
class Required:
    spec: Spec


def _split_key(key: str) -> list[str]:
    """``a[b][0][]`` -> ``["a", "b", "0", ""]``."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    parts = [head]
    rest = "[" + rest
    while rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise invalid(f"Invalid parameter name: {key}")
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    if rest:
        raise invalid(f"Invalid parameter name: {key}")
    return parts


def parse_form(query: str) -> Params:
    """Parse an ``application/x-www-form-urlencoded`` body or query string."""
    root: Params = {}
    if not query:
        return root
    for key, value in parse_qsl(query, keep_blank_values=True, max_num_fields=10_000):
        parts = _split_key(key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # a[] appends
                if not isinstance(node, dict):
                    raise invalid(f"Invalid array: {key}")
                part = str(len(node))
            if not isinstance(node, dict):
                raise invalid(f"Invalid parameter name: {key}")
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return root


def _path(parent: str, key: str) -> str:
    return f"{parent}[{key}]" if parent else key


def _as_list(value: Any, path: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        try:
            ordered = sorted(value.items(), key=lambda kv: int(kv[0]))
        except ValueError:
            raise invalid(f"Invalid array: {path}", param=path) from None
        return [v for _, v in ordered]
    raise invalid(f"Invalid array: {path}", param=path)


def _coerce(value: Any, spec: Spec, path: str) -> Any:
    if isinstance(spec, Required):
        spec = spec.spec
    if isinstance(spec, Emptyable):
        if value == "":
            return ""
        spec = spec.spec
    elif value == "" and spec not in ("str", "any"):
        raise invalid(
            f"You passed an empty string for '{path}'. We assume empty values are an attempt to "
            f"unset a parameter; however '{path}' cannot be unset. You should remove '{path}' "
            "from your request or supply a non-empty value.",
            param=path,
            code="parameter_invalid_empty",
        )
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {path}", param=path)
        return validate(value, spec, path)
    if isinstance(spec, ListOf):
        items = _as_list(value, path)
        if spec.max_items is not None and len(items) > spec.max_items:
            raise invalid(
                f"Invalid array: {path} must have at most {spec.max_items} elements",
                param=path,
            )
        return [_coerce(v, spec.item, f"{path}[{i}]") for i, v in enumerate(items)]
    if isinstance(spec, Enum):
        if not isinstance(value, str) or value not in spec.values:
            allowed = ", ".join(sorted(spec.values))
            raise invalid(f"Invalid {path}: must be one of {allowed}", param=path)
        return value
    if spec == "any":
        return value
    if spec == "metadata":
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {path}", param=path)
        for k, v in value.items():
            if not isinstance(v, str):
                raise invalid(f"Invalid metadata value: {path}[{k}]", param=f"{path}[{k}]")
        return dict(value)
    if not isinstance(value, str):
        raise invalid(f"Invalid {path}: expected a single value", param=path)
    if spec == "str":
        return value
    if spec == "int":
        return _int(value, path)
    if spec == "ts_now":
        return "now" if value == "now" else _int(value, path)
    if spec == "bool":
        if value in ("true", "True"):
            return True
        if value in ("false", "False"):
            return False
        raise invalid(f"Invalid boolean: {value}", param=path, code="parameter_invalid_boolean")
    if spec == "num":
        try:
            return float(value)
        except ValueError:
            raise invalid(
                f"Invalid decimal: {value}", param=path, code="parameter_invalid_decimal"
            ) from None
    raise AssertionError(f"unknown spec {spec!r}")


def _int(value: str, path: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise invalid(
            f"Invalid integer: {value}", param=path, code="parameter_invalid_integer"
        ) from None


def validate(params: Params, schema: dict[str, Any], parent: str = "") -> Params:
    out: Params = {}
    for key, value in params.items():
        spec = schema.get(key)
        if spec is None:
            raise unknown_param(_path(parent, key))
        out[key] = _coerce(value, spec, _path(parent, key))
    for key, spec in schema.items():
        if isinstance(spec, Required) and key not in out:
            raise missing_param(_path(parent, key))
    return out


def parse_ts_list_filter(value: Any, path: str) -> dict[str, int]:
    """``created=123`` or ``created[gt]=123``: a dict of comparisons."""
    if isinstance(value, dict):
        out: dict[str, int] = {}
        for op, raw in value.items():
            if op not in ("gt", "gte", "lt", "lte"):
                raise unknown_param(f"{path}[{op}]")
            out[op] = _int(raw, f"{path}[{op}]")
        return out
    if isinstance(value, str):
        return {"eq": _int(value, path)}
    raise StripeError(400, f"Invalid {path}", param=path)
