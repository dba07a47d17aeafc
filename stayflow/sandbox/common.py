"""Helpers every resource uses: list pages, metadata, ``previous_attributes``."""

from __future__ import annotations

from typing import Any

from stayflow.sandbox.emulator import Emulator
from stayflow.sandbox.errors import invalid
from stayflow.sandbox.params import (
    ListOf,
    Params,
)
from stayflow.sandbox.store import Obj

LIST: dict[str, Any] = {
    "limit": "int",
    "starting_after": "str",
    "ending_before": "str",
    "expand": ListOf("str"),
}
EXPAND: dict[str, Any] = {"expand": ListOf("str")}


# Stripe's test payment methods: token -> (brand, last4, funding, decline code or None).
def page_args(params: Params) -> tuple[int, str | None, str | None]:
    limit = params.get("limit", 10)
    if limit > 100:
        raise invalid("This value must be less than or equal to 100.", param="limit")
    if limit < 1:
        raise invalid("This value must be greater than or equal to 1.", param="limit")
    return limit, params.get("starting_after"), params.get("ending_before")


def list_page(
    em: Emulator,
    table: str,
    url: str,
    params: Params,
    pred: Any = None,
    index: str | None = None,
    key: str | None = None,
) -> Obj:
    limit, after, before = page_args(params)
    rows, has_more = em.t[table].page(
        pred, limit=limit, starting_after=after, ending_before=before, index=index, key=key
    )
    return em.list_object(url, [em.render(table, r) for r in rows], has_more)


def merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe's metadata update: keys merge, ``""`` deletes a key, ``metadata=""`` clears."""
    if update == "":
        return {}
    merged = dict(current)
    for k, v in update.items():
        if v == "":
            merged.pop(k, None)
        else:
            merged[k] = v
    if len(merged) > 50:
        raise invalid("Metadata can have at most 50 keys.", param="metadata")
    return merged


def deleted(obj_id: str, kind: str) -> Obj:
    return {"id": obj_id, "object": kind, "deleted": True}


def blank(value: Any) -> Any:
    return None if value == "" else value


def ts_match(value: int, cmp: dict[str, int]) -> bool:
    for op, bound in cmp.items():
        if op == "eq" and value != bound:
            return False
        if op == "gt" and not value > bound:
            return False
        if op == "gte" and not value >= bound:
            return False
        if op == "lt" and not value < bound:
            return False
        if op == "lte" and not value <= bound:
            return False
    return True


# -- previous_attributes ---------------------------------------------------------------------


def diff(old: Obj, new: Obj) -> Obj:
    """Stripe's ``previous_attributes``: old values of what changed; sub-hashes diffed by key,
    lists and list objects given whole."""
    out: Obj = {}
    for key in old.keys() | new.keys():
        a = old.get(key)
        b = new.get(key)
        if a == b:
            continue
        if (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.get("object") != "list"
            and "id" not in a
        ):
            out[key] = diff(a, b)
        else:
            out[key] = a
    return out
