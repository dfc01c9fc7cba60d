"""The operating-system layer of the sandbox: rlimits, no_new_privs, Landlock and seccomp.

The worker calls ``lockdown`` once, before the first untrusted line and before any thread
starts, because Landlock and seccomp bind the calling thread and the threads it creates
later. The host imports the probes (``landlock_abi``, ``seccomp_available``,
``no_new_privs_available``) to learn what the kernel offers without applying anything, so
this module uses the standard library only and does nothing on import beyond loading libc.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._syscalls import ARCHES, Arch, current_arch

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

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
        PACKAGE_DIR,
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
