"""The cancel-flow editor's forms, turned into flows items (the flows service validates them).

An edit starts from the item as it is and overlays what the form holds, so keys the form does
not show (an offer's pass-thru URL, copy in other languages) are kept. A field left empty is
removed, and the flows document's own defaults apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stayflow.flows.rules import Op

FormData = Mapping[str, list[str]]

# Languages the editor offers translations for (the cancel page's own besides English).
LANGUAGES = ("fr", "de")
OPS: tuple[str, ...] = Op.__args__  # type: ignore[attr-defined]
CONDITION_ROWS = 6
VARIANT_ROWS = 4
OFFER_TYPE_KEYS = (
    "coupon",
    "promotion_code",
    "existing_discount",
    "duration",
    "interval",
    "over_renewal",
    "price",
    "proration_behavior",
    "days",
    "url",
)


def one(form: FormData, name: str) -> str:
    values = form.get(name) or [""]
    return values[-1].strip()


def many(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.get(name, []) if v.strip()]


def _set(item: dict[str, Any], key: str, value: Any) -> None:
    if value in (None, "", [], {}):
        item.pop(key, None)
    else:
        item[key] = value


def _integer(text: str) -> int | str:
    """An integer, or the text as given (the document's validation then names the field)."""
    try:
        return int(text)
    except ValueError:
        return text


def _translations(
    existing: Any, form: FormData, keys: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    found = {k: dict(v) for k, v in dict(existing or {}).items() if isinstance(v, dict)}
    for lang in LANGUAGES:
        copy = dict(found.get(lang, {}))
        for key in keys:
            _set(copy, key, one(form, f"{key}_{lang}"))
        if copy:
            found[lang] = copy
        else:
            found.pop(lang, None)
    return found


def reason(existing: Mapping[str, Any], form: FormData) -> dict[str, Any]:
    item = dict(existing)
    _set(item, "label", one(form, "label"))
    _set(item, "feedback", one(form, "feedback"))
    item["comment"] = one(form, "comment") == "1"
    _set(item, "translations", _translations(item.get("translations"), form, ("label",)))
    return item


def offer(existing: Mapping[str, Any], form: FormData) -> dict[str, Any]:
    item = dict(existing)
    kind = one(form, "type")
    if kind != item.get("type"):
        for key in OFFER_TYPE_KEYS:
            item.pop(key, None)
    item["type"] = kind
    if kind == "discount":
        _set(item, "coupon", one(form, "coupon"))
        _set(item, "promotion_code", one(form, "promotion_code"))
    elif kind in ("pause", "extension"):
        _set(item, "duration", _integer(one(form, "duration")))
        _set(item, "interval", one(form, "interval"))
    elif kind == "plan_change":
        _set(item, "price", one(form, "price"))
        _set(item, "proration_behavior", one(form, "proration_behavior"))
    elif kind == "trial_extension":
        _set(item, "days", _integer(one(form, "days")))
    elif kind == "redirect":
        _set(item, "url", one(form, "url"))
    _set(item, "reasons", many(form, "reasons"))
    _set(item, "audience", one(form, "audience"))
    for key in ("headline", "body", "button"):
        _set(item, key, one(form, key))
    keys = ("headline", "body", "button")
    _set(item, "translations", _translations(item.get("translations"), form, keys))
    return item


def _value(op: str, text: str) -> Any:
    """A condition's value as typed: JSON when it parses (3, true, ["a", "b"]), else text;
    for ``in`` a comma-separated list, for ``between`` two comma-separated bounds."""
    if op == "exists":
        return None if text == "" else text.lower() not in ("false", "no", "0")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    if op in ("in", "between") and not isinstance(parsed, list):
        return [_value("equals", part.strip()) for part in text.split(",") if part.strip()]
    return parsed


def conditions_of(rule: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """(all|any, conditions) when the rule is flat enough for the builder, else None."""
    if isinstance(rule, dict) and "field" in rule:
        return "all", [rule]
    for combine in ("all", "any"):
        parts = rule.get(combine) if isinstance(rule, dict) else None
        if isinstance(parts, list) and all(isinstance(p, dict) and "field" in p for p in parts):
            return combine, list(parts)
    return None


def shown_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    return json.dumps(value)


def audience(existing: Mapping[str, Any], form: FormData) -> dict[str, Any]:
    item = dict(existing)
    _set(item, "description", one(form, "description"))
    conditions = []
    for row in range(CONDITION_ROWS * 4):
        field = one(form, f"field_{row}")
        if not field:
            continue
        op = one(form, f"op_{row}") or "equals"
        condition: dict[str, Any] = {"field": field, "op": op}
        value = _value(op, one(form, f"value_{row}"))
        if value is not None:
            condition["value"] = value
        conditions.append(condition)
    if len(conditions) == 1:
        item["rule"] = conditions[0]
    elif conditions:
        item["rule"] = {"any" if one(form, "combine") == "any" else "all": conditions}
    else:
        item.pop("rule", None)  # the document's validation says a rule is needed
    return item


def experience(existing: Mapping[str, Any], form: FormData) -> dict[str, Any]:
    item = dict(existing)
    _set(item, "audience", one(form, "audience"))
    if one(form, "all_reasons") == "1":
        item.pop("reasons", None)
    else:
        item["reasons"] = many(form, "reasons")
    item["offers"] = many(form, "offers")
    for key in ("title", "intro", "offers_title", "confirm_title", "confirm_body"):
        _set(item, key, one(form, key))
    _set(item, "translations", _translations(item.get("translations"), form, ("title", "intro")))
    branding = dict(item.get("branding") or {})
    _set(branding, "company_name", one(form, "company_name"))
    _set(branding, "primary_color", one(form, "primary_color"))
    _set(item, "branding", branding)
    return item


def experiment(existing: Mapping[str, Any], form: FormData) -> dict[str, Any]:
    item = dict(existing)
    _set(item, "audience", one(form, "audience"))
    item["active"] = one(form, "active") == "1"
    variants = []
    for row in range(VARIANT_ROWS * 4):
        chosen = one(form, f"variant_experience_{row}")
        if not chosen:
            continue
        variant: dict[str, Any] = {"experience": chosen}
        _set(variant, "id", one(form, f"variant_id_{row}"))
        weight = one(form, f"variant_weight_{row}")
        if weight:
            variant["weight"] = _integer(weight)
        variants.append(variant)
    item["variants"] = variants
    return item


BUILDERS = {
    "reasons": reason,
    "offers": offer,
    "audiences": audience,
    "experiences": experience,
    "experiments": experiment,
}
