"""In-memory tables with creation-order indexes, so reads and list pages stay O(log n + page).

Objects are stored in their Stripe shape (plain JSON-safe dicts). Keys starting with ``_`` are
sandbox-internal and never rendered. Nested dicts are replaced, never mutated in place, so a
rendered snapshot taken before a change stays valid for ``previous_attributes``.
"""

from __future__ import annotations

import bisect
import random
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from stayflow.sandbox.errors import missing

Obj = dict[str, Any]

_ALPHABET = string.ascii_letters + string.digits


class Ids:
    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def new(self, prefix: str, length: int = 24) -> str:
        return prefix + "_" + "".join(self._rng.choices(_ALPHABET, k=length))

    def token(self, length: int = 32) -> str:
        return "".join(self._rng.choices(_ALPHABET, k=length))


@dataclass
class OrderedIndex:
    """Object ids sorted by creation sequence (ascending), with membership."""

    ids: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    members: set[str] = field(default_factory=set)

    def add(self, object_id: str, seq: int) -> None:
        if object_id in self.members:
            return
        self.members.add(object_id)
        if not self.seqs or seq > self.seqs[-1]:
            self.ids.append(object_id)
            self.seqs.append(seq)
            return
        at = bisect.bisect_left(self.seqs, seq)
        self.ids.insert(at, object_id)
        self.seqs.insert(at, seq)


class Table:
    """One kind of object: ``objects[id]``, creation order, and named secondary indexes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.objects: dict[str, Obj] = {}
        self.seq: dict[str, int] = {}
        self.order = OrderedIndex()
        self.indexes: dict[str, dict[str, OrderedIndex]] = {}

    def __len__(self) -> int:
        return len(self.objects)

    def __contains__(self, object_id: str) -> bool:
        return object_id in self.objects

    def insert(self, obj: Obj, seq: int) -> Obj:
        object_id = obj["id"]
        self.objects[object_id] = obj
        self.seq[object_id] = seq
        self.order.add(object_id, seq)
        return obj

    def index(self, name: str, key: str, object_id: str) -> None:
        by_key = self.indexes.setdefault(name, {})
        by_key.setdefault(key, OrderedIndex()).add(object_id, self.seq[object_id])

    def get(self, object_id: str, param: str = "id") -> Obj:
        obj = self.objects.get(object_id)
        if obj is None:
            raise missing(self.kind, object_id, param)
        return obj

    def find(self, object_id: str) -> Obj | None:
        return self.objects.get(object_id)

    def delete(self, object_id: str) -> None:
        # The id stays in the ordered indexes; page scans skip ids that are gone.
        self.objects.pop(object_id, None)

    def candidates(self, index: str | None = None, key: str | None = None) -> OrderedIndex:
        if index is None or key is None:
            return self.order
        return self.indexes.get(index, {}).get(key, OrderedIndex())

    def page(
        self,
        pred: Callable[[Obj], bool] | None,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        index: str | None = None,
        key: str | None = None,
    ) -> tuple[list[Obj], bool]:
        """A page in Stripe's order (newest first), and whether more match beyond it."""
        cand = self.candidates(index, key)
        if ending_before is not None:
            seq = self._cursor_seq(ending_before, "ending_before")
            start = bisect.bisect_right(cand.seqs, seq)
            found = list(self._scan(cand, range(start, len(cand.ids)), pred, limit + 1))
            has_more = len(found) > limit
            found = found[:limit]
            found.reverse()
            return found, has_more
        end = len(cand.ids)
        if starting_after is not None:
            seq = self._cursor_seq(starting_after, "starting_after")
            end = bisect.bisect_left(cand.seqs, seq)
        found = list(self._scan(cand, range(end - 1, -1, -1), pred, limit + 1))
        return found[:limit], len(found) > limit

    def _cursor_seq(self, object_id: str, param: str) -> int:
        seq = self.seq.get(object_id)
        if seq is None:
            raise missing(self.kind, object_id, param)
        return seq

    def _scan(
        self,
        cand: OrderedIndex,
        positions: range,
        pred: Callable[[Obj], bool] | None,
        want: int,
    ) -> Iterator[Obj]:
        n = 0
        objects = self.objects
        ids = cand.ids
        for i in positions:
            obj = objects.get(ids[i])
            if obj is None or (pred is not None and not pred(obj)):
                continue
            yield obj
            n += 1
            if n >= want:
                return


class Clock:
    """Wall time plus an offset that only grows (the sandbox's movable clock)."""

    def __init__(self) -> None:
        self.offset = 0
        self.frozen_at: int | None = None

    def now(self) -> int:
        if self.frozen_at is not None:
            return self.frozen_at
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> None:
        if self.frozen_at is not None:
            self.frozen_at += seconds
        else:
            self.offset += seconds
