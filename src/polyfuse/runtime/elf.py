"""A model library's ELF headers, checked before dlopen.

dlopen maps a library's segments as its program headers say, without comparing them with the
file's size: a truncated ``libpfmodel.so`` then kills the process with SIGBUS when the loader
touches a page past the end, instead of failing. :func:`check_library` reads the headers and
raises ArtifactError for a file that is not an ELF shared object or is shorter than they say.
"""
from __future__ import annotations

import struct
from pathlib import Path

from ..errors import ArtifactError

_PT_LOAD = 1
# (header: phoff, shoff at; phentsize, phnum, shentsize, shnum at), (program header: offset, filesz)
_LAYOUT = {1: (("II", 0x1C), ("HHHH", 0x2A), ("I", 4), ("I", 16)),
           2: (("QQ", 0x20), ("HHHH", 0x36), ("Q", 8), ("Q", 32))}


def check_library(path: Path) -> None:
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if (len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in _LAYOUT or head[5] not in (1, 2)
                or len(head) < (52 if head[4] == 1 else 64)):
            raise ArtifactError(f"{path}: not a shared library (no ELF header); the artifact is damaged, recompile")
        order = "<" if head[5] == 1 else ">"
        (offs, at), (counts, at2), (off_fmt, off_at), (sz_fmt, sz_at) = _LAYOUT[head[4]]
        phoff, shoff = struct.unpack_from(order + offs, head, at)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + counts, head, at2)
        need = max(phoff + phnum * phentsize, shoff + shnum * shentsize)
        if phoff + phnum * phentsize <= size:
            f.seek(phoff)
            table = f.read(phnum * phentsize)
            for k in range(phnum):
                entry = table[k * phentsize:(k + 1) * phentsize]
                if struct.unpack_from(order + "I", entry, 0)[0] == _PT_LOAD:
                    offset = struct.unpack_from(order + off_fmt, entry, off_at)[0]
                    need = max(need, offset + struct.unpack_from(order + sz_fmt, entry, sz_at)[0])
    if need > size:
        raise ArtifactError(f"{path}: truncated ({size} bytes, its headers describe {need}); the artifact is "
                            "damaged, recompile")
