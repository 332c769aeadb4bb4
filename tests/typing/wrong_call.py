"""A deliberately wrong call that the type checker must flag (tests/test_typing.py)."""

import functional_optim as fo

opt = fo.adamw(lr="x")
