"""File names as the index spells them: any name the file system holds, as valid UTF-8 text.

A POSIX file name is bytes. Python decodes it with ``surrogateescape``: a byte
that is not valid UTF-8 becomes a lone surrogate (``\\udce9`` for a latin-1
``é``), which no UTF-8 text (SQLite or PostgreSQL ``TEXT``, JSON, a terminal)
can carry. The index therefore never holds the OS form. It holds the
**escaped form**, made by :func:`escape`:

- each byte that is not valid UTF-8 (a surrogate ``\\udcNN``) becomes ``\\xNN``;
- each control character (U+0000 to U+001F, U+007F: a newline, a tab) becomes
  ``\\xNN``, so one name is one line of output;
- a backslash that is followed by ``x`` and two hex digits becomes ``\\x5c``, so
  a name that already reads like an escape stays distinguishable;
- every other character is itself: a valid UTF-8 name without control
  characters (nearly every name) is unchanged.

:func:`unescape` turns every ``\\xNN`` back (``NN`` of 80 and above: the byte,
as its surrogate), so ``unescape(escape(name)) == name`` for every name, and
``escape`` keeps ``/`` where it was, so a path escapes component by component.
The stores, the file table, search results, MCP and CLI output all use the
escaped form; the file system is reached only through :func:`unescape`. A path
given back as input is accepted in either form (see :meth:`FileTable.norm
<rlm_mcp.index.files.FileTable.norm>`).
"""

from __future__ import annotations

import re

__all__ = ["escape", "is_raw", "needs_escape", "unescape"]

_NEEDS = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]|\\x[0-9a-fA-F]{2}")
_RAW = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]")
_ESCAPED = re.compile(r"\\x([0-9a-fA-F]{2})")


def _one(m: re.Match[str]) -> str:
    ch = m.group()
    if ch[0] == "\\":
        return "\\x5c" + ch[1:]
    code = ord(ch)
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def _back(m: re.Match[str]) -> str:
    code = int(m.group(1), 16)
    return chr(0xDC00 + code if code >= 0x80 else code)


def needs_escape(name: str) -> bool:
    """Whether :func:`escape` changes ``name`` (a fast test first: most names are plain)."""
    if name.isprintable() and "\\" not in name:
        return False
    return _NEEDS.search(name) is not None


def escape(name: str) -> str:
    """``name`` (as ``os.fsdecode`` gives it) in the index's spelling; see the module."""
    if name.isprintable() and "\\" not in name:
        return name
    return _NEEDS.sub(_one, name)


def unescape(name: str) -> str:
    """The OS name (``surrogateescape`` form) an escaped name stands for."""
    if "\\" not in name:
        return name
    return _ESCAPED.sub(_back, name)


def is_raw(name: str) -> bool:
    """``name`` holds what only an OS name can: a surrogate or a control character."""
    return _RAW.search(name) is not None
