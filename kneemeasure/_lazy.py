"""Package attributes imported on first use (PEP 562), for fast start-up."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` when ``name`` is first used.

    Parameters
    ----------
    package : str
        The package's name (for the error message).
    exports : dict of str to str
        Attribute name -> module that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
