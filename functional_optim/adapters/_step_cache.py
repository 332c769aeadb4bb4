"""What a group's next step can reuse from the last one (see `StepCache`)."""

from __future__ import annotations

import itertools
import operator
from typing import Any

from torch import Tensor


class StepCache:
    """What a group's next step can reuse: the functional state of the last step, valid while the
    state layout (the structure of the transform's state: a new learning rate keeps it, a new
    ``amsgrad`` flag does not), the parameters with a gradient and every tensor in their
    ``self.state`` entries are the same objects (checked at C speed: ``map`` over the dicts), and
    so are the group's values (``glob``, the group's ``FUNCTIONAL_STATE_KEY`` dict, and its
    entries)."""

    __slots__ = ("columns", "fstate", "glob", "glob_values", "ids", "layout", "lengths", "sts")

    def __init__(
        self,
        layout: tuple,
        ids: tuple,
        sts: list,
        fstate: Any,
        columns: dict,
        lengths: list,
        glob: dict | None = None,
    ) -> None:
        self.layout, self.ids, self.sts, self.fstate = layout, ids, sts, fstate
        self.columns, self.lengths = columns, lengths
        self.glob = glob
        self.glob_values = () if glob is None else tuple(glob.values())

    @classmethod
    def make(
        cls,
        layout: tuple,
        present: list[Tensor],
        torch_states: list[dict],
        sts: list[dict],
        fstate: Any,
        glob: dict | None = None,
    ) -> StepCache:
        keys = set().union(*torch_states)
        columns = {k: list(map(dict.get, torch_states, itertools.repeat(k))) for k in keys}
        return cls(layout, tuple(map(id, present)), sts, fstate, columns, list(map(len, torch_states)), glob)

    def fits_globals(self, glob: dict | None) -> bool:
        """``glob`` is the dict of the last step, holding the very values that step stored."""
        return (
            glob is not None
            and glob is self.glob
            and len(glob) == len(self.glob_values)
            and all(map(operator.is_, glob.values(), self.glob_values))
        )

    def store_globals(self) -> None:
        """Remember the values the step just stored into ``glob``."""
        assert self.glob is not None
        self.glob_values = tuple(self.glob.values())

    def fits(self, layout: tuple, present: list[Tensor], torch_states: list[dict]) -> bool:
        if layout is not self.layout or list(map(len, torch_states)) != self.lengths:
            return False
        if tuple(map(id, present)) != self.ids:
            return False
        is_ = operator.is_
        return all(
            all(map(is_, map(dict.get, torch_states, itertools.repeat(k)), column))
            for k, column in self.columns.items()
        )
