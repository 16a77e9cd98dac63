#!/usr/bin/python3
"""Open a file through aliases the Deno API cannot express, for the VM file
enforcement test. Prints one line "<alias> ok" or "<alias> <errno name>".

  aliases.py opath-reopen PATH   O_PATH fd, then open /proc/self/fd/N for reading
  aliases.py openat2 PATH        openat2(AT_FDCWD, PATH, {O_RDONLY}) (syscall 437)
"""
import ctypes
import errno
import os
import sys

AT_FDCWD = -100
SYS_OPENAT2 = 437


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def opath_reopen(path):
    fd = os.open(path, os.O_PATH)
    try:
        os.close(os.open(f"/proc/self/fd/{fd}", os.O_RDONLY))
    finally:
        os.close(fd)


def openat2(path):
    libc = ctypes.CDLL(None, use_errno=True)
    how = OpenHow(os.O_RDONLY, 0, 0)
    fd = libc.syscall(SYS_OPENAT2, AT_FDCWD, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.close(fd)


def main():
    kind, path = sys.argv[1], sys.argv[2]
    try:
        {"opath-reopen": opath_reopen, "openat2": openat2}[kind](path)
        print(f"{kind} ok")
    except OSError as e:
        print(f"{kind} {errno.errorcode.get(e.errno, e.errno)}")


main()
