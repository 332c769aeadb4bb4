"""Build a subpackage's ``__all__`` from the ``__all__`` of its imported modules."""

from __future__ import annotations

import sys


def public_names(package: str) -> list[str]:
    """The union of ``__all__`` over the loaded modules directly inside ``package``."""
    prefix = package + "."
    names: list[str] = []
    for mod_name, module in sorted(sys.modules.items()):
        if mod_name.startswith(prefix) and "." not in mod_name[len(prefix) :]:
            names.extend(getattr(module, "__all__", ()))
    return sorted(set(names))
