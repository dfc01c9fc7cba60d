"""The wire format between host and worker: a 4-byte big-endian length, then a JSON object.

One implementation for both ends, so the two cannot drift apart. JSON rather than pickle
because the host decodes what untrusted code wrote; every read is bounded by a size limit
that the reader chooses. The functions used are bound at import so that model code which
replaces ``os.write`` or ``json.dumps`` inside the worker cannot break its own protocol.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from collections.abc import Iterator
from typing import Any

HEADER = struct.Struct(">I")

_dumps = json.dumps
_loads = json.loads
_os_read = os.read
_os_write = os.write


class FrameError(ValueError):
    """A frame that breaks the protocol: over the size limit or not JSON."""


def encode(msg: Any) -> bytes:
    """The whole frame for ``msg``; raises ``TypeError``/``ValueError`` for non-JSON values."""
    data = _dumps(msg).encode()
    return HEADER.pack(len(data)) + data


def write_all(fd: int, frame: bytes, deadline: float | None = None) -> None:
    """Write ``frame`` completely; a non-blocking ``fd`` waits for room until ``deadline``."""
    view = memoryview(frame)
    poller: select.poll | None = None
    while view:
        try:
            view = view[_os_write(fd, view) :]
        except BlockingIOError:
            if deadline is None:
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("worker is not reading its input") from None
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
            poller.poll(min(remaining, 0.1) * 1000)


def _read_exact(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = _os_read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int) -> Any:
    """Block until one whole frame has arrived on ``fd`` and return its decoded value."""
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size))
    if size > limit:
        raise FrameError(f"frame of {size} bytes exceeds {limit}")
    return _loads(_read_exact(fd, size))


def pop_frames(buf: bytearray, limit: int) -> Iterator[Any]:
    """Decode and remove the complete frames at the front of ``buf``; keeps a partial tail.

    The size check comes before the payload has arrived, so a huge header is refused
    without buffering what it announces.
    """
    while len(buf) >= HEADER.size:
        (size,) = HEADER.unpack_from(buf)
        if size > limit:
            raise FrameError(f"frame of {size} bytes exceeds {limit}")
        if len(buf) < HEADER.size + size:
            return
        payload = bytes(buf[HEADER.size : HEADER.size + size])
        del buf[: HEADER.size + size]
        try:
            msg = _loads(payload)
        except (ValueError, RecursionError) as exc:
            raise FrameError(f"undecodable frame: {exc}") from None
        yield msg
