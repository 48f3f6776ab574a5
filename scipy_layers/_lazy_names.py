"""A package's public names loaded on first use (PEP 562), for ``scipy_layers`` (whose
layers import torch) and ``scipy_layers.reports`` (whose command must start before
pandas can fail)."""
import importlib
import importlib.util


def lazy_names(package: str, exports: dict[str, str], namespace: dict):
    """(``__getattr__``, ``__dir__``) for ``package``: each name of ``exports`` (name ->
    submodule) from its submodule on first use, then kept in ``namespace``; any other
    name that is a submodule imports it (never a dunder, so never ``__main__``). Names
    an earlier load kept are dropped (importlib.reload would leave them stale)."""
    for name in exports:
        namespace.pop(name, None)

    def __getattr__(name):
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f".{module}", package), name)
            namespace[name] = value  # (found directly from now on)
            return value
        if not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}"):
            return importlib.import_module(f".{name}", package)  # (binds itself here)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
