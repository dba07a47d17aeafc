"""Which parameters Stripe accepts, read from stripe-python's typed params (``stripe.params``).

The sandbox refuses every parameter it does not implement. When Stripe would accept it, the
refusal says so, so nobody mistakes a sandbox gap for a mistake in their call (and nobody
mistakes a silently ignored parameter for a working one).
"""

from __future__ import annotations

import functools
import re

import stripe.params
from stripe._request_options import RequestOptions

_NOT_PARAMS = frozenset(RequestOptions.__annotations__)
_ACTIONS = {"void": "VoidInvoice"}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def params_class_name(method: str, parts: tuple[str, ...]) -> str | None:
    """``POST /v1/subscriptions/*`` -> ``SubscriptionUpdateParams``."""
    if len(parts) < 2:
        return None
    resource = _camel(parts[1][:-1] if parts[1].endswith("s") else parts[1])
    if len(parts) == 2:
        verb = {"POST": "Create", "GET": "List"}.get(method)
    elif len(parts) == 3:
        verb = {"POST": "Update", "GET": "Retrieve", "DELETE": "Delete"}.get(method)
        if resource == "Subscription" and method == "DELETE":
            verb = "Cancel"
    else:
        verb = _ACTIONS.get(parts[3], _camel(parts[3]))
    return f"{resource}{verb}Params" if verb else None


@functools.lru_cache(maxsize=512)
def stripe_accepts(class_name: str, path: str) -> bool:
    """Whether the typed params ``class_name`` declare ``path`` (``items[0][colour]``)."""
    keys = [k for k in re.split(r"[\[\]]+", path) if k and not k.isdigit()]
    name = class_name
    for depth, key in enumerate(keys):
        cls = getattr(stripe.params, name, None)
        fields = getattr(cls, "__annotations__", None)
        if fields is None or key not in fields or (depth == 0 and key in _NOT_PARAMS):
            return False
        child = _camel(key)
        candidates = [name + child, name + child[:-1]] if child.endswith("s") else [name + child]
        name = next((c for c in candidates if hasattr(stripe.params, c)), "")
        if not name and depth < len(keys) - 1:
            return False
    return True
