"""The ctypes mirrors in darn/_lib.py against darn.h: sizes and field offsets from a C probe compiled
against the header (skips without a C compiler or the header, e.g. on an installed-only machine)."""
import ctypes
import os
import shutil
import subprocess

import pytest

from conftest import REPO
from darn import _lib as L

HEADER_DIR = os.environ.get("DARN_INCLUDE_DIR", os.path.join(REPO, "include"))


def test_struct_layout_matches_header(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    if not os.path.exists(os.path.join(HEADER_DIR, "darn", "darn.h")):
        pytest.skip("darn.h not found (set DARN_INCLUDE_DIR)")
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include <darn/darn.h>', 'int main(void) {']
    for cname, py in L.STRUCTS.items():
        lines.append('printf("%s sizeof %%zu\\n", sizeof(%s));' % (cname, cname))
        for field, _ in py._fields_:
            lines.append('printf("%s %s %%zu %%zu\\n", offsetof(%s, %s), sizeof(((%s *)0)->%s));'
                         % (cname, field, cname, field, cname, field))
    lines += ['return 0;', '}']
    src = tmp_path / "probe.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "probe"
    subprocess.run([cc, "-std=c11", "-I", HEADER_DIR, str(src), "-o", str(exe)], check=True)
    got = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        got[(parts[0], parts[1])] = tuple(int(v) for v in parts[2:])
    for cname, py in L.STRUCTS.items():
        assert got[(cname, "sizeof")] == (ctypes.sizeof(py),), cname
        for field, ftype in py._fields_:
            assert got[(cname, field)] == (getattr(py, field).offset, ctypes.sizeof(ftype)), (cname, field)
        # every C field is mirrored: the mirrored sizes plus padding add up to sizeof
    assert len(L.Desc._fields_) == 18 and len(L.FwdTensors._fields_) == 22 and len(L.BwdTensors._fields_) == 25


def test_status_names_match_header():
    for value, name in L.STATUS_NAMES.items():
        assert L.F["status_string"](value).decode().startswith(name + ":"), name
    assert L.F["status_string"](len(L.STATUS_NAMES)).decode() == "unknown status"


def test_mask_row_bytes_matches_library():
    for n in (1, 31, 32, 33, 4096, 4097):
        assert L.mask_row_bytes(n) == L.F["mask_row_bytes"](n)


def test_packed_argument_blocks_match_mirrors():
    """The per-call path packs darn_desc + darn_{fwd,bwd}_tensors with struct formats derived from the mirrors."""
    assert L._check_packing()
    assert L._FWD_PACK.size == ctypes.sizeof(L.Desc) + ctypes.sizeof(L.FwdTensors)
    assert L._BWD_PACK.size == ctypes.sizeof(L.Desc) + ctypes.sizeof(L.BwdTensors)
    a, b = L.call_buffer(), L.call_buffer()  # a block in use is never handed out twice
    assert a[1] != b[1] and a[1] % 8 == 0 and a[2] == a[1] + ctypes.sizeof(L.Desc)
    L.release_buffer(b)
    L.release_buffer(a)
