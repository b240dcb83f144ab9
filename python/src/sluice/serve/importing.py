"""An application's module imported by the platform (to describe it, and
in each replica) may call serve.run at its top level, as a script run by
hand does (Ray Serve's examples do): during such an import serve.run
stops the module there, and what the module defined before the call is
what the platform reads. Deploying again from inside the import would
deploy for ever."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_active = 0  # imports under way through load_module


class Stop(BaseException):
    """Raised by serve.run inside a platform's import: ends the module's
    top-level code. A BaseException, so a user's `except Exception` does
    not swallow it."""

    def __init__(self, app: Any) -> None:
        super().__init__("serve.run during the platform's import of the application's module")
        self.app = app


def active() -> bool:
    """Whether the platform is importing an application's module."""
    with _lock:
        return _active > 0


def load_module(name: str) -> ModuleType:
    """Imports module name as importlib does, except that serve.run at its
    top level ends the import there, the module keeping what it defined
    before the call (and staying in sys.modules)."""
    global _active
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)  # imports the parent packages
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with _lock:
        _active += 1
    try:
        spec.loader.exec_module(module)
    except Stop:
        pass
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        with _lock:
            _active -= 1
    return module
