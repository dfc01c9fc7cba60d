"""Sandbox worker: a persistent Python namespace behind operating-system lockdown.

The host (``sandbox.session``) starts this file as a script with two pipe fds. Everything the
worker needs is imported *before* the lockdown, because afterwards only a read-only set of
paths is reachable and no new privileges can be gained. The host also imports this module for
its capability probes, so it depends on the standard library only and does nothing on import.

Threads that model code leaves running after a cell returns keep running (there is no safe way
to stop a Python thread), but their output is discarded from later results and the result of the
cell that started them carries a warning; they die with the worker on close or restart.
"""

from __future__ import annotations

import ast
import builtins
import collections
import ctypes
import dataclasses
import difflib
import errno
import faulthandler
import functools
import io
import itertools
import json
import linecache
import math
import mmap
import os
import platform
import queue
import re
import resource
import signal
import statistics
import string
import struct
import sys
import textwrap
import threading
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

# Imported before lockdown so that the modules models use most are already in memory.
PRELOADED = (collections, dataclasses, difflib, functools, itertools, math, re, statistics)
PRELOADED_MORE = (string, textwrap, typing)

HEADER = struct.Struct(">I")
WORKER_FILE = os.path.abspath(__file__)

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_GET_ACTION_AVAIL = 2

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
CLONE_THREAD = 0x00010000
AF_UNIX = 1

LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE = 1 << 0
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1


@dataclasses.dataclass(frozen=True)
class Arch:
    audit: int
    landlock: tuple[int, int, int]
    seccomp: int
    clone: int
    clone3: int
    kill: tuple[int, ...]
    prlimit64: int
    socketpair: int
    deny: dict[str, int]


_GENERIC_NEW = {
    "fchmodat2": 452,
    "setxattrat": 463,
    "removexattrat": 466,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "pidfd_send_signal": 424,
    "pidfd_open": 434,
    "pidfd_getfd": 438,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
}

ARCHES: dict[str, Arch] = {
    "x86_64": Arch(
        audit=0xC000003E,
        landlock=(444, 445, 446),
        seccomp=317,
        clone=56,
        clone3=435,
        kill=(62, 200, 234),
        prlimit64=302,
        socketpair=53,
        deny={
            "socket": 41,
            "connect": 42,
            "bind": 49,
            "listen": 50,
            "accept": 43,
            "accept4": 288,
            "execve": 59,
            "execveat": 322,
            "fork": 57,
            "vfork": 58,
            "ptrace": 101,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "bpf": 321,
            "setrlimit": 160,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "memfd_create": 319,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "perf_event_open": 298,
            "chroot": 161,
            "reboot": 169,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "personality": 135,
            "userfaultfd": 323,
            "name_to_handle_at": 303,
            "open_by_handle_at": 304,
            "quotactl": 179,
            "swapon": 167,
            "swapoff": 168,
            "acct": 163,
            "syslog": 103,
            "iopl": 172,
            "ioperm": 173,
            "vhangup": 153,
            "settimeofday": 164,
            "clock_settime": 227,
            "adjtimex": 159,
            "chmod": 90,
            "fchmod": 91,
            "fchmodat": 268,
            "chown": 92,
            "fchown": 93,
            "lchown": 94,
            "fchownat": 260,
            "utime": 132,
            "utimes": 235,
            "futimesat": 261,
            "utimensat": 280,
            "setxattr": 188,
            "lsetxattr": 189,
            "fsetxattr": 190,
            "removexattr": 197,
            "lremovexattr": 198,
            "fremovexattr": 199,
            "mknod": 133,
            "mknodat": 259,
            "setuid": 105,
            "setgid": 106,
            "setreuid": 113,
            "setregid": 114,
            "setgroups": 116,
            "setresuid": 117,
            "setresgid": 119,
            "setfsuid": 122,
            "setfsgid": 123,
            "capset": 126,
            **_GENERIC_NEW,
        },
    ),
    "aarch64": Arch(
        audit=0xC00000B7,
        landlock=(444, 445, 446),
        seccomp=277,
        clone=220,
        clone3=435,
        kill=(129, 130, 131),
        prlimit64=261,
        socketpair=199,
        deny={
            "socket": 198,
            "bind": 200,
            "listen": 201,
            "accept": 202,
            "connect": 203,
            "accept4": 242,
            "execve": 221,
            "execveat": 281,
            "ptrace": 117,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "bpf": 280,
            "setrlimit": 164,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "memfd_create": 279,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "perf_event_open": 241,
            "chroot": 51,
            "reboot": 142,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "personality": 92,
            "userfaultfd": 282,
            "name_to_handle_at": 264,
            "open_by_handle_at": 265,
            "quotactl": 60,
            "swapon": 224,
            "swapoff": 225,
            "acct": 89,
            "syslog": 116,
            "vhangup": 58,
            "settimeofday": 170,
            "clock_settime": 112,
            "adjtimex": 171,
            "fchmod": 52,
            "fchmodat": 53,
            "fchownat": 54,
            "fchown": 55,
            "utimensat": 88,
            "setxattr": 5,
            "lsetxattr": 6,
            "fsetxattr": 7,
            "removexattr": 14,
            "lremovexattr": 15,
            "fremovexattr": 16,
            "mknodat": 33,
            "setregid": 143,
            "setgid": 144,
            "setreuid": 145,
            "setuid": 146,
            "setresuid": 147,
            "setresgid": 149,
            "setfsuid": 151,
            "setfsgid": 152,
            "setgroups": 159,
            "capset": 91,
            **_GENERIC_NEW,
        },
    ),
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def current_arch() -> Arch | None:
    return ARCHES.get(platform.machine())


def _syscall(nr: int, *args: Any) -> int:
    ctypes.set_errno(0)
    res = int(_libc.syscall(ctypes.c_long(nr), *args))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syscall {nr}: {os.strerror(err)}")
    return res


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    ctypes.set_errno(0)
    res = int(_libc.prctl(option, arg2, arg3, 0, 0))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl {option}: {os.strerror(err)}")
    return res


def landlock_abi() -> int:
    """Landlock ABI version of the running kernel, 0 when unavailable."""
    arch = current_arch()
    if arch is None:
        return 0
    try:
        return _syscall(
            arch.landlock[0], ctypes.c_void_p(None), ctypes.c_size_t(0), ctypes.c_uint32(1)
        )
    except OSError:
        return 0


def seccomp_available() -> bool:
    """Whether seccomp filters can be installed (probed without installing one)."""
    arch = current_arch()
    if arch is None:
        return False
    action = ctypes.c_uint32(SECCOMP_RET_ERRNO)
    try:
        _syscall(
            arch.seccomp,
            ctypes.c_uint(SECCOMP_GET_ACTION_AVAIL),
            ctypes.c_uint(0),
            ctypes.byref(action),
        )
    except OSError:
        return False
    return True


def no_new_privs_available() -> bool:
    try:
        _prctl(PR_GET_NO_NEW_PRIVS)
    except OSError:
        return False
    return True


# --- lockdown ---------------------------------------------------------------------------


def apply_rlimits(memory_bytes: int, cpu_seconds: int, nofile: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def apply_landlock(paths: list[str]) -> int:
    """Restrict this thread (and its future threads) to reading ``paths``; returns the ABI."""
    arch = current_arch()
    abi = landlock_abi()
    if arch is None or abi < 1:
        raise OSError(errno.ENOSYS, "landlock unavailable")
    handled_fs = (1 << 13) - 1
    if abi >= 2:
        handled_fs |= 1 << 13
    if abi >= 3:
        handled_fs |= 1 << 14
    if abi >= 5:
        handled_fs |= 1 << 15
    attr = _RulesetAttr(handled_fs, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    ruleset = _syscall(
        arch.landlock[0], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    try:
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                is_dir = os.path.isdir(path)
                access = FS_EXECUTE | FS_READ_FILE | (FS_READ_DIR if is_dir else 0)
                rule = _PathBeneathAttr(access, fd)
                _syscall(
                    arch.landlock[1],
                    ctypes.c_int(ruleset),
                    ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
            finally:
                os.close(fd)
        _syscall(arch.landlock[2], ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return abi


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_LD_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06


def _arg_lo(i: int) -> int:
    return 16 + 8 * i


def seccomp_program(arch: Arch, pid: int) -> list[tuple[int, int, int, int]]:
    """The BPF program: deny dangerous syscalls with EPERM, everything else allowed.

    ``socketpair`` stays allowed for AF_UNIX only because asyncio's self-pipe needs it; such a
    pair can only ever talk to itself.
    """
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    prog: list[tuple[int, int, int, int]] = [
        (_LD_ABS, 0, 0, 4),
        (_JEQ, 1, 0, arch.audit),
        (_RET, 0, 0, SECCOMP_RET_KILL_PROCESS),
        (_LD_ABS, 0, 0, 0),
    ]
    if arch.audit == ARCHES["x86_64"].audit:
        prog += [(_JGE, 0, 1, 0x40000000), (_RET, 0, 0, eperm)]
    for nr in sorted(set(arch.deny.values())):
        prog += [(_JEQ, 0, 1, nr), (_RET, 0, 0, eperm)]
    prog += [(_JEQ, 0, 1, arch.clone3), (_RET, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    prog += [
        (_JEQ, 0, 4, arch.clone),
        (_LD_ABS, 0, 0, _arg_lo(0)),
        (_JSET, 0, 1, CLONE_THREAD),
        (_RET, 0, 0, SECCOMP_RET_ALLOW),
        (_RET, 0, 0, eperm),
    ]
    for nr in arch.kill:
        prog += [
            (_JEQ, 0, 4, nr),
            (_LD_ABS, 0, 0, _arg_lo(0)),
            (_JEQ, 0, 1, pid),
            (_RET, 0, 0, SECCOMP_RET_ALLOW),
            (_RET, 0, 0, eperm),
        ]
    prog += [
        (_JEQ, 0, 4, arch.socketpair),
        (_LD_ABS, 0, 0, _arg_lo(0)),
        (_JEQ, 0, 1, AF_UNIX),
        (_RET, 0, 0, SECCOMP_RET_ALLOW),
        (_RET, 0, 0, eperm),
    ]
    prog += [
        (_JEQ, 0, 6, arch.prlimit64),
        (_LD_ABS, 0, 0, _arg_lo(2)),
        (_JEQ, 0, 3, 0),
        (_LD_ABS, 0, 0, _arg_lo(2) + 4),
        (_JEQ, 0, 1, 0),
        (_RET, 0, 0, SECCOMP_RET_ALLOW),
        (_RET, 0, 0, eperm),
    ]
    prog.append((_RET, 0, 0, SECCOMP_RET_ALLOW))
    return prog


def apply_seccomp() -> None:
    arch = current_arch()
    if arch is None:
        raise OSError(errno.ENOSYS, f"no seccomp table for {platform.machine()}")
    prog = seccomp_program(arch, os.getpid())
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), ctypes.cast(filters, ctypes.POINTER(_SockFilter)))
    _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def readable_system_paths() -> list[str]:
    """The interpreter's own files and shared libraries, which every worker needs to read."""
    paths = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        os.path.dirname(WORKER_FILE),
        "/usr/lib",
        "/usr/lib64",
        "/lib",
        "/lib64",
        "/usr/local/lib",
        "/etc/ld.so.cache",
        "/dev/null",
        "/dev/urandom",
    ]
    paths += [p for p in sys.path if p and os.path.exists(p)]
    return paths


def lockdown(init: dict[str, Any]) -> dict[str, Any]:
    """Apply every layer in order; returns what was applied (reported to the host)."""
    strict = not init["allow_unsafe"]
    layers: dict[str, Any] = {
        "rlimits": False,
        "no_new_privs": False,
        "landlock": 0,
        "seccomp": False,
        "errors": {},
    }

    def attempt(name: str, fn: Callable[[], Any]) -> None:
        try:
            value = fn()
        except Exception as exc:
            layers["errors"][name] = f"{type(exc).__name__}: {exc}"
            if strict:
                raise
            return
        layers[name] = value if name == "landlock" else True

    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if threading.active_count() != 1:
        raise RuntimeError("lockdown must run before any thread starts")
    attempt(
        "rlimits",
        lambda: apply_rlimits(init["memory_bytes"], init["cpu_seconds"], init["nofile"]),
    )
    attempt("no_new_privs", lambda: _prctl(PR_SET_NO_NEW_PRIVS, 1))
    paths = readable_system_paths() + list(init["readable"])
    attempt("landlock", lambda: apply_landlock(paths))
    attempt("seccomp", apply_seccomp)
    return layers


# --- protocol -----------------------------------------------------------------------------

_dumps = json.dumps
_loads = json.loads
_os_read = os.read
_os_write = os.write
_exit = os._exit


def read_exact(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = _os_read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int) -> Any:
    (size,) = HEADER.unpack(read_exact(fd, HEADER.size))
    if size > limit:
        raise ValueError(f"frame of {size} bytes exceeds {limit}")
    return _loads(read_exact(fd, size))


_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


@functools.lru_cache(maxsize=256)
def host_exception_type(name: str) -> type[Exception]:
    """Builtin exceptions keep their class; any other host exception becomes a RuntimeError."""
    if name in _BUILTIN_EXCEPTIONS:
        return _BUILTIN_EXCEPTIONS[name]
    if not _IDENT.fullmatch(name):
        name = "HostError"
    return type(name, (RuntimeError,), {"__module__": "host"})


class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.kept = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}
        self.lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        with self.lock:
            room = self.limit - self.kept[stream]
            if room > 0:
                piece = text[:room]
                self.parts[stream].append(piece)
                self.kept[stream] += len(piece)
            self.dropped[stream] += max(0, len(text) - max(room, 0))

    def text(self, stream: str) -> str:
        out = "".join(self.parts[stream])
        if self.dropped[stream]:
            out += (
                f"\n[... output truncated: {self.dropped[stream]} more characters "
                f"not shown (limit {self.limit}) ...]"
            )
        return out


class _Stream(io.TextIOBase):
    def __init__(self, worker: Worker, name: str) -> None:
        self._worker = worker
        self._name = name

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        capture = self._worker.capture_for_thread()
        if capture is not None:
            capture.write(self._name, s)
        return len(s)

    def flush(self) -> None:
        return None


class HostNamespace:
    """Groups dotted host functions (``repo.grep``) under one name."""

    def __init__(self, name: str) -> None:
        self.__name = name

    def __repr__(self) -> str:
        names = sorted(k for k in vars(self) if not k.startswith("_"))
        return f"<host namespace {self.__name}: {', '.join(names)}>"


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


class Worker:
    """The worker's state: namespace, pending host calls, per-cell capture and timers.

    The main thread runs cells; a reader thread receives host messages so that host-call
    results and interrupts arrive while a cell is running.
    """

    def __init__(self, init: dict[str, Any], fd_in: int, fd_out: int) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.limit = int(init["output_limit"])
        self.max_message = int(init["max_message_bytes"])
        self.max_calls = int(init["max_host_calls"])
        self.lazy: dict[str, str] = dict(init["lazy"])
        self.lazy_cache: dict[str, str] = {}
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.write_lock = threading.Lock()
        self.pending: dict[int, list[Any]] = {}
        self.pending_lock = threading.Lock()
        self.call_ids = itertools.count(1)
        self.calls = 0
        self.requests: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.capture: _Capture | None = None
        self.gen = 0
        self.active = False
        self.current_id: int | None = None
        self.timer_fired = False
        self.timeout = 0.0
        self.main_ident = threading.get_ident()
        self.cells = itertools.count(1)
        self.stdout = _Stream(self, "stdout")
        self.stderr = _Stream(self, "stderr")
        self.reserved: dict[str, Any] = {}
        self.default_timeout = float(init["exec_timeout"])

    # protocol
    def send(self, msg: dict[str, Any]) -> None:
        data = _dumps(msg).encode()
        self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        frame = HEADER.pack(len(data)) + data
        with self.write_lock:
            view = memoryview(frame)
            while view:
                n = _os_write(self.fd_out, view)
                view = view[n:]

    def reader(self) -> None:
        try:
            while True:
                msg = read_frame(self.fd_in, self.max_message)
                kind = msg.get("type")
                if kind in ("exec", "get"):
                    self.requests.put(msg)
                elif kind == "result":
                    with self.pending_lock:
                        slot = self.pending.get(msg.get("id"))
                    if slot is not None:
                        slot[1] = msg
                        slot[0].set()
                elif kind == "interrupt" and self.active and msg.get("id") == self.current_id:
                    signal.pthread_kill(self.main_ident, signal.SIGUSR1)
        except BaseException:
            _exit(0)

    # host calls
    def host_call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        with self.pending_lock:
            if self.calls >= self.max_calls:
                raise RuntimeError(f"host call budget exhausted ({self.max_calls} calls)")
            self.calls += 1
            call_id = next(self.call_ids)
        msg = {"type": "call", "id": call_id, "name": name, "args": args, "kwargs": kwargs}
        try:
            data = _dumps(msg).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: arguments must be JSON values ({exc})") from None
        if len(data) + HEADER.size > self.max_message:
            raise ValueError(
                f"{name}: arguments too large ({len(data)} bytes; limit {self.max_message})"
            )
        slot: list[Any] = [threading.Event(), None]
        with self.pending_lock:
            self.pending[call_id] = slot
        try:
            self.send_raw(data)
            slot[0].wait()
        finally:
            with self.pending_lock:
                self.pending.pop(call_id, None)
        reply = slot[1]
        if reply.get("ok"):
            return reply.get("value")
        exc_type = host_exception_type(str(reply.get("exc_type", "RuntimeError")))
        raise exc_type(str(reply.get("message", "")))

    def bind_host_functions(self, names: list[str]) -> None:
        for full in names:
            parts = full.split(".")
            target: Any = self.ns
            for i, part in enumerate(parts[:-1]):
                if isinstance(target, dict):
                    obj = target.get(part)
                    if not isinstance(obj, HostNamespace):
                        obj = HostNamespace(".".join(parts[: i + 1]))
                        target[part] = obj
                else:
                    obj = getattr(target, part, None)
                    if not isinstance(obj, HostNamespace):
                        obj = HostNamespace(".".join(parts[: i + 1]))
                        setattr(target, part, obj)
                target = obj
            fn = self._make_host_function(full)
            if isinstance(target, dict):
                target[parts[-1]] = fn
            else:
                setattr(target, parts[-1], fn)

    def _make_host_function(self, full: str) -> Callable[..., Any]:
        call = self.host_call

        def host_function(*args: Any, **kwargs: Any) -> Any:
            return call(full, list(args), kwargs)

        host_function.__name__ = full.rsplit(".", 1)[-1]
        host_function.__qualname__ = full
        host_function.__doc__ = f"Calls the host function {full!r}."
        return host_function

    # output
    def capture_for_thread(self) -> _Capture | None:
        capture = self.capture
        if capture is None:
            return None
        if threading.get_ident() == self.main_ident:
            return capture
        if getattr(threading.current_thread(), "_sandbox_gen", None) == self.gen:
            return capture
        return None

    # signals
    def on_alarm(self, signum: int, frame: Any) -> None:
        if self.active:
            self.timer_fired = True
            raise TimeoutError(
                f"cell exceeded its {self.timeout:g} s time limit (stopped; variables are kept)"
            )

    def on_interrupt(self, signum: int, frame: Any) -> None:
        if self.active:
            raise KeyboardInterrupt("interrupted by the host")

    def install_signals(self) -> None:
        signal.signal(signal.SIGALRM, self.on_alarm)
        signal.signal(signal.SIGUSR1, self.on_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    # lazy data
    def bind_lazy(self, names: set[str]) -> None:
        for name in names & self.lazy.keys():
            if name in self.ns:
                continue
            text = self.lazy_cache.get(name)
            if text is None:
                text = self._load_text(self.lazy[name])
                self.lazy_cache[name] = text
            self.ns[name] = text

    @staticmethod
    def _load_text(path: str) -> str:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return ""
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return str(mapped, "utf-8", "replace")

    # execution
    def format_error(self, exc: BaseException) -> str:
        try:
            report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
            todo, seen = [report], set()
            while todo:
                item = todo.pop()
                if id(item) in seen:
                    continue
                seen.add(id(item))
                item.stack = traceback.StackSummary.from_list(
                    [f for f in item.stack if f.filename != WORKER_FILE]
                )
                todo += [e for e in (item.__cause__, item.__context__) if e is not None]
            text = "".join(report.format())
        except Exception:
            text = f"{type(exc).__name__}: <unprintable>\n"
        if len(text) > self.limit:
            cut = len(text) - self.limit
            text = (
                text[: self.limit // 2]
                + f"\n[... traceback truncated: {cut} characters not shown ...]\n"
                + text[-self.limit // 2 :]
            )
        return text

    def safe_repr(self, value: Any) -> tuple[str, bool]:
        text = repr(value)
        if len(text) > self.limit:
            cut = len(text) - self.limit
            return text[: self.limit] + f"... [repr truncated: {cut} more characters]", True
        return text, False

    def run_timed(self, fn: Callable[[], Any], timeout: float) -> Any:
        self.timeout = timeout
        self.timer_fired = False
        self.active = True
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001), 0.5)
            return fn()
        finally:
            self.active = False
            signal.setitimer(signal.ITIMER_REAL, 0, 0)

    def run_exec(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.gen += 1
        capture = _Capture(self.limit)
        self.capture = capture
        self.current_id = msg["id"]
        error: str | None = None
        value: str | None = None
        truncated = False
        timed_out = False
        gen = self.gen
        try:
            try:
                source = str(msg["code"])
                filename = f"<cell-{next(self.cells)}>"
                linecache.cache[filename] = (
                    len(source),
                    None,
                    source.splitlines(True),
                    filename,
                )
                tree = ast.parse(source, filename, "exec")
                last: ast.expr | None = None
                tail = tree.body[-1] if tree.body else None
                if isinstance(tail, ast.Expr):
                    tree.body.pop()
                    last = tail.value
                body = compile(tree, filename, "exec")
                expr = compile(ast.Expression(last), filename, "eval") if last is not None else None
                names = set(_code_names(body))
                if expr is not None:
                    names |= set(_code_names(expr))
                self.bind_lazy(names)
                ns = self.ns

                def run() -> tuple[str, bool] | None:
                    exec(body, ns)
                    if expr is not None:
                        result = eval(expr, ns)
                        if result is not None:
                            return self.safe_repr(result)
                    return None

                shown = self.run_timed(run, float(msg["timeout"]))
                if shown is not None:
                    value, truncated = shown
            except BaseException as exc:
                timed_out = self.timer_fired
                error = self.format_error(exc)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.capture = None
            self.restore()
        leftover = [
            t
            for t in threading.enumerate()
            if getattr(t, "_sandbox_gen", None) == gen and t.is_alive()
        ]
        if leftover:
            capture.write(
                "stderr",
                f"[sandbox] warning: {len(leftover)} thread(s) started by this cell are "
                "still running; their later output is discarded and they stop when the "
                "session closes or restarts\n",
            )
        truncated = truncated or any(capture.dropped.values())
        return {
            "type": "done",
            "id": msg["id"],
            "stdout": capture.text("stdout"),
            "stderr": capture.text("stderr"),
            "error": error,
            "value": value,
            "truncated": truncated,
            "timed_out": timed_out,
        }

    def restore(self) -> None:
        sys.stdout = self.stdout
        sys.stderr = self.stderr
        self.install_signals()
        for name, val in self.reserved.items():
            self.ns[name] = val

    def run_get(self, msg: dict[str, Any]) -> dict[str, Any]:
        name = str(msg["name"])
        max_bytes = int(msg["max_bytes"])
        self.bind_lazy({name})
        if name not in self.ns:
            return {"type": "value", "id": msg["id"], "found": False, "value": None}

        def render() -> Any:
            obj = self.ns[name]
            try:
                text = _dumps(obj)
            except (TypeError, ValueError):
                text = None
            if text is not None and len(text.encode()) <= max_bytes:
                return obj
            try:
                shown = repr(obj)
            except Exception as exc:
                shown = f"<unrepresentable {type(obj).__name__}: {exc}>"
            if len(shown) > max_bytes // 4:
                cut = len(shown) - max_bytes // 4
                shown = shown[: max_bytes // 4] + f"... [truncated: {cut} more characters]"
            return shown

        try:
            value = self.run_timed(render, self.default_timeout)
        except BaseException as exc:
            value = f"<error reading {name}: {type(exc).__name__}: {exc}>"
        finally:
            self.restore()
        return {"type": "value", "id": msg["id"], "found": True, "value": value}

    def run_prelude(self, prelude: str, reserved: list[str]) -> str | None:
        error = None
        if prelude:
            self.capture = _Capture(0)
            try:
                exec(compile(prelude, "<prelude>", "exec"), self.ns)
            except BaseException as exc:
                error = self.format_error(exc)
            finally:
                self.capture = None
        self.reserved = {name: self.ns[name] for name in reserved if name in self.ns}
        return error

    def serve(self) -> None:
        while True:
            msg = self.requests.get()
            reply = self.run_exec(msg) if msg["type"] == "exec" else self.run_get(msg)
            try:
                self.send(reply)
            except (TypeError, ValueError):
                self.send({**reply, "value": None, "error": "unserializable result"})


def _patch_thread_start(worker: Worker) -> None:
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        self._sandbox_gen = worker.gen  # type: ignore[attr-defined]
        original(self)

    threading.Thread.start = start  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    fd_in, fd_out = int(argv[1]), int(argv[2])
    faulthandler.enable(all_threads=False)
    init = read_frame(fd_in, 64 << 20)
    layers = lockdown(init) if init["lockdown"] else {"errors": {}}
    worker = Worker(init, fd_in, fd_out)
    worker.install_signals()
    sys.stdout = worker.stdout
    sys.stderr = worker.stderr
    _patch_thread_start(worker)
    worker.bind_host_functions(list(init["host_functions"]))
    threading.Thread(target=worker.reader, name="sandbox-reader", daemon=True).start()
    prelude_error = worker.run_prelude(str(init["prelude"]), list(init["reserved"]))
    worker.send(
        {
            "type": "hello",
            "pid": os.getpid(),
            "uid": os.getuid(),
            "layers": layers,
            "prelude_error": prelude_error,
        }
    )
    worker.serve()


if __name__ == "__main__":
    try:
        main(sys.argv)
    except BaseException:
        try:
            os.write(2, traceback.format_exc().encode())
        finally:
            _exit(70)
