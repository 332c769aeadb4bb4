"""What a group's next step can reuse from the last one (see `StepCache`)."""

from __future__ import annotations

import itertools
import operator
from typing import Any

from torch import Tensor

from functional_optim.adapters._layout import split_leaves


class StepCache:
    """What a group's next step can reuse: the functional state of the last step, valid while the
    state layout (the structure of the transform's state: a new learning rate keeps it, a new
    ``amsgrad`` flag does not), the parameters with a gradient and every tensor in their
    ``self.state`` entries are the same objects (checked at C speed: ``map`` over the dicts), and
    so are the group's values (``glob``, the group's ``FUNCTIONAL_STATE_KEY`` dict, and its
    entries).

    ``fields_checked``: the fused step that stored ``fstate`` found its rule's state fields plain,
    dense and real (`functional_optim.fused.Committed`); the next fused step, given the same
    tensors, does not check them again. (A tensor's type and layout cannot change; its dtype
    could only through an assignment to a state tensor's ``.data``.)"""

    __slots__ = (
        "columns",
        "fields_checked",
        "fstate",
        "glob",
        "glob_values",
        "ids",
        "layout",
        "lengths",
        "param_lists",
        "sts",
    )

    def __init__(
        self,
        layout: tuple,
        ids: tuple,
        sts: list,
        fstate: Any,
        columns: dict,
        lengths: list,
        glob: dict | None = None,
        fields_checked: bool = False,
    ) -> None:
        self.layout, self.ids, self.sts, self.fstate = layout, ids, sts, fstate
        self.columns, self.lengths = columns, lengths
        self.glob = glob
        self.fields_checked = fields_checked
        self.param_lists = split_leaves(layout, fstate)[0]  # fstate's, to compare the next step's with
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
        fields_checked: bool = False,
    ) -> StepCache:
        keys = set().union(*torch_states)
        columns = {k: list(map(dict.get, torch_states, itertools.repeat(k))) for k in keys}
        lengths = list(map(len, torch_states))
        return cls(layout, tuple(map(id, present)), sts, fstate, columns, lengths, glob, fields_checked)

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

    def fits(self, layout: tuple, ids: tuple[int, ...], torch_states: list[dict]) -> bool:
        """The cache holds for this step: the same layout, the same parameters with a gradient
        (``ids``: their identities) and the same tensors in their state entries."""
        if layout is not self.layout or ids != self.ids or list(map(len, torch_states)) != self.lengths:
            return False
        is_ = operator.is_
        return all(
            all(map(is_, map(dict.get, torch_states, itertools.repeat(k)), column))
            for k, column in self.columns.items()
        )
