"""User code named on a command line (`--trainer-module mypkg.job:train`, `pbt-results replay
--trainer ...`), imported the one way both commands do it."""

from __future__ import annotations

import os
import pkgutil
import sys
from collections.abc import Callable


def load_callable(spec: str, flag: str) -> Callable[..., object]:
    """`package.module:function` (or `module:Class.method`) -> the callable, imported with the
    current directory importable, as `python -m` would. Raises ValueError naming `flag`, the spec
    and what is wrong.

    Example:
        train = load_callable("examples.toy.problem:train", "--trainer-module")
    """
    module_name, colon, attribute = spec.partition(":")
    if not module_name or not colon or not attribute:
        raise ValueError(f"{flag} {spec!r}: expected 'package.module:function'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = pkgutil.resolve_name(spec)
    except AttributeError as error:
        raise ValueError(f"{flag} {spec!r}: {error}") from None
    except ImportError as error:
        raise ValueError(f"{flag} {spec!r}: cannot import {error.name or module_name!r}: {error}") from None
    if not callable(target):
        raise ValueError(f"{flag} {spec!r}: {attribute} is not callable")
    return target
