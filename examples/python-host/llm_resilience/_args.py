"""Argument checks shared by every call into the component.

Why a module of its own: every value must be checked *before* the component is entered, with an
error that names the argument and its limit (:class:`~llm_resilience.ArgumentError`). A Python
``str`` can hold a lone surrogate (``"\\ud800"``), which has no UTF-8 encoding; lowered into the
component it would fail halfway through the call (or, encoded lossily, make two different keys
one). Integers are range-checked against their WIT type, so that nothing is wrapped or refused
late.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ArgumentTypeError, ArgumentValueError

__all__ = ["integer", "text", "check_text", "is_int", "U16_MAX", "U32_MAX", "U64_MAX"]

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

_BITS = {"u16": U16_MAX, "u32": U32_MAX, "u64": U64_MAX}


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def _found(value: Any) -> str:
    if is_int(value) or isinstance(value, float):
        return repr(value)
    # Strings and objects are not echoed: a misplaced argument can hold a secret.
    return f"a {type(value).__name__}"


def integer(what: str, wit_type: str, value: Any) -> int:
    """``value`` as a WIT ``u16``/``u32``/``u64``: an ``int`` (not a ``bool``, not a ``float``
    even if whole) in the type's range, else an :class:`ArgumentError` naming ``what``."""
    top = _BITS[wit_type]
    limit = f"0..{top}"
    expected = f"a {wit_type} (an int)"
    if not is_int(value):
        raise ArgumentTypeError(what, expected, _found(value), limit=limit)
    if not 0 <= value <= top:
        raise ArgumentValueError(what, expected, _found(value), limit=limit)
    return value


def text(what: str, value: Any) -> str:
    """``value`` as a WIT ``string``: a ``str`` with a UTF-8 encoding (no lone surrogate)."""
    if not isinstance(value, str):
        raise ArgumentTypeError(what, "a str", _found(value))
    if not _well_formed(value):
        raise _lone_surrogate(what)
    return value


#: Any surrogate code point: in a Python ``str`` each one is lone (a pair of them is two code
#: points, not one character), and none has a UTF-8 encoding.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _well_formed(s: str) -> bool:
    # ASCII is known in O(1); otherwise one scan, without encoding a copy.
    return s.isascii() or _SURROGATE.search(s) is None


def _lone_surrogate(what: str) -> ArgumentValueError:
    return ArgumentValueError(
        what, "valid Unicode text", "a str with a lone surrogate", code="invalid-utf8"
    )


def check_text(function: str, args: tuple[Any, ...]) -> None:
    """Every ``str`` in ``args`` (and inside their records, variants and lists) has a UTF-8
    encoding; else an :class:`ArgumentError` naming ``function`` and where the text is.

    This is the net under the named checks of each wrapper: whatever a wrapper builds, no
    string reaches wasmtime's lowering unencodable.
    """
    for i, arg in enumerate(args):
        path = _find_bad_text(arg, f"argument {i}", 0)
        if path is not None:
            raise _lone_surrogate(f"{function}: {path}")


def _find_bad_text(value: Any, path: str, depth: int) -> "str | None":
    if isinstance(value, str):
        return None if _well_formed(value) else path
    if depth > 32 or isinstance(value, (bytes, bytearray, memoryview, int, float, bool)) or value is None:
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _find_bad_text(item, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
        return None
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict):
        for name, item in fields.items():
            found = _find_bad_text(item, f"{path}.{name}", depth + 1)
            if found is not None:
                return found
    return None
