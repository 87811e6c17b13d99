"""Imports that wait for their first use, so that every import stays at the top of its module.

`torch = lazy.module("torch")` at a module's top binds a stand-in; the first attribute read
(`torch.tensor`) imports torch and every later read goes straight to it. `groverlm --help`, config
loading and `import groverlm` thus never pay for torch, transformers, scikit-learn or matplotlib
(seconds together), and no function has to import inside its body to keep them out. Reads nothing,
writes nothing.

A stand-in is not put in `sys.modules` (importlib's LazyLoader would, and transformers swaps its own
`sys.modules` entry while importing, which LazyLoader refuses), so `"torch" in sys.modules` still
says whether torch was really imported.

    >>> json = module("json")
    >>> json
    <lazy module 'json'>
    >>> json.dumps([1])
    '[1]'
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class _Module(types.ModuleType):
    # ModuleType's own attributes (__name__, __doc__, __spec__, ...) answer from the stand-in;
    # everything else comes from the real module, imported (once: importlib caches it) on first read.
    def __getattr__(self, name: str) -> Any:
        if name == "__wrapped__":  # inspect.unwrap (doctest's finder) asks every global for it:
            raise AttributeError(name)  # answering must not import, nor fail on a missing package
        return getattr(importlib.import_module(self.__name__), name)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def module(name: str) -> types.ModuleType:
    """A stand-in for the module `name` (dotted names too: "torch.nn.functional",
    "matplotlib.pyplot", "groverlm.train") that imports it when an attribute is first read."""
    return _Module(name)
