"""ctypes binding of libdarn: library discovery, struct mirrors of include/darn/darn.h, status -> exceptions.

The mirrors follow darn.h field by field (C11, natural alignment; enums are `int`). A layout check runs at
load time (darn_desc_init must fill the fields where this module expects them), and
python/tests/test_layout.py compares sizes and offsets with a C probe compiled against darn.h.
"""
import ctypes
import ctypes.util
import os
import re
import struct
import threading

# ---- enums and flags (darn.h; values are stable) ----------------------------------------------------------
F32, F16, BF16 = 0, 1, 2
FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ = 3, 4, 5, 6  # out_dtype only
RMSNORM, LAYERNORM = 0, 1
BACKEND_CPU, BACKEND_GPU = 0, 1

FLAG_ZERO_CENTERED_WEIGHT = 1 << 0
FLAG_RESIDUAL_IN_FP32 = 1 << 1
FLAG_HAS_RESIDUAL = 1 << 2
FLAG_HAS_BIAS = 1 << 3
FLAG_HAS_ROWSCALE = 1 << 4
FLAG_HAS_X1 = 1 << 5       # parallel residual: h += dropout1(x1)
FLAG_HAS_WEIGHT1 = 1 << 6  # second output y1 = norm(h) * weight1'
FLAG_HAS_BIAS1 = 1 << 7    # y1 += bias1

# DARN_STATUS_LIST: value -> name.
STATUS_NAMES = {
    0: "DARN_OK",
    1: "DARN_ERR_NULL_POINTER",
    2: "DARN_ERR_BAD_SHAPE",
    3: "DARN_ERR_OVERFLOW",
    4: "DARN_ERR_BAD_STRIDE",
    5: "DARN_ERR_BAD_DROPOUT",
    6: "DARN_ERR_BAD_EPS",
    7: "DARN_ERR_BAD_ENUM",
    8: "DARN_ERR_UNSUPPORTED",
    9: "DARN_ERR_ALIASING",
    10: "DARN_ERR_MISALIGNED",
    11: "DARN_ERR_WORKSPACE",
    12: "DARN_ERR_BACKEND_UNAVAILABLE",
    13: "DARN_ERR_DEVICE",
    14: "DARN_ERR_UNSUPPORTED_ON_GPU",
    15: "DARN_ERR_BAD_SCALE",
    16: "DARN_ERR_CHUNK_SPLIT",
    17: "DARN_ERR_COL_SPLIT",
}


class DarnError(RuntimeError):
    """A darn call failed. `status` is the darn_status value, `status_name` its name, and the message is
    darn_last_error() of the failing call (it names the bad argument)."""

    def __init__(self, status: int, message: str, function: str = "") -> None:
        self.status: int = status
        self.status_name: str = STATUS_NAMES.get(status, "unknown status %d" % status)
        self.darn_message: str = message
        super().__init__("%s%s: %s" % (function + ": " if function else "", self.status_name, message))


class DarnArgumentError(DarnError, ValueError):
    """An argument darn rejected (shape, stride, dropout p, eps, enum, aliasing, alignment, workspace)."""


class DarnUnsupportedError(DarnError, NotImplementedError):
    """A combination of options darn does not support (DARN_ERR_UNSUPPORTED, DARN_ERR_UNSUPPORTED_ON_GPU)."""


def _error_class(status):
    if status in (8, 14):
        return DarnUnsupportedError
    if 1 <= status <= 11 or status in (15, 16, 17):  # BAD_SCALE, CHUNK_SPLIT, COL_SPLIT
        return DarnArgumentError
    return DarnError


# ---- struct mirrors ----------------------------------------------------------------------------------------
_i64, _u64, _u32, _int, _f32, _f64, _vp = (ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int,
                                          ctypes.c_float, ctypes.c_double, ctypes.c_void_p)


class Desc(ctypes.Structure):
    """darn_desc"""
    _fields_ = [
        ("norm", _int),
        ("rows", _i64),
        ("cols", _i64),
        ("x_dtype", _int),
        ("residual_dtype", _int),
        ("weight_dtype", _int),
        ("bias_dtype", _int),
        ("out_dtype", _int),
        ("flags", _u32),
        ("eps", _f32),
        ("dropout_p", _f64),
        ("seed", _u64),
        ("offset", _u64),
        ("rng_seed_ptr", _vp),
        ("rng_offset_ptr", _vp),
        ("dy_dtype", _int),
        ("out_scale", _f32),
        ("out_scale_ptr", _vp),
    ]


class FwdTensors(ctypes.Structure):
    """darn_fwd_tensors"""
    _fields_ = [
        ("x", _vp), ("x_stride", _i64),
        ("residual", _vp), ("residual_stride", _i64),
        ("rowscale", _vp),
        ("weight", _vp),
        ("bias", _vp),
        ("out", _vp), ("out_stride", _i64),
        ("residual_out", _vp), ("residual_out_stride", _i64),
        ("mask", _vp),
        ("rstd", _vp),
        ("mean", _vp),
        ("amax", _vp),
        ("x1", _vp), ("x1_stride", _i64),
        ("weight1", _vp),
        ("bias1", _vp),
        ("out1", _vp), ("out1_stride", _i64),
        ("mask1", _vp),
    ]


class BwdTensors(ctypes.Structure):
    """darn_bwd_tensors"""
    _fields_ = [
        ("dy", _vp), ("dy_stride", _i64),
        ("h", _vp), ("h_stride", _i64),
        ("weight", _vp),
        ("rstd", _vp),
        ("mean", _vp),
        ("rowscale", _vp),
        ("dresidual_out", _vp), ("dresidual_out_stride", _i64),
        ("mask", _vp),
        ("dx", _vp), ("dx_stride", _i64),
        ("dresidual", _vp), ("dresidual_stride", _i64),
        ("dweight", _vp),
        ("dbias", _vp),
        ("dy1", _vp), ("dy1_stride", _i64),
        ("weight1", _vp),
        ("mask1", _vp),
        ("dx1", _vp), ("dx1_stride", _i64),
        ("dweight1", _vp),
        ("dbias1", _vp),
    ]


STRUCTS = {"darn_desc": Desc, "darn_fwd_tensors": FwdTensors, "darn_bwd_tensors": BwdTensors}


# ---- packed argument blocks (the per-call path) ---------------------------------------------------------------
# One call writes darn_desc followed by darn_fwd_tensors (or darn_bwd_tensors) into a per-thread buffer with one
# struct.pack_into, much cheaper than building two ctypes.Structures. The formats are derived from the mirrors'
# ctypes offsets (explicit padding, no automatic alignment) and checked against them at load time. Pointers are
# packed as unsigned 64-bit integers (0 for NULL); C float fields round like ctypes (a finite double beyond
# FLT_MAX must be turned into inf first: see FLT_MAX).
_PACK_CODES = {_int: "i", _i64: "q", _u64: "Q", _u32: "I", _f32: "f", _f64: "d", _vp: "Q"}
FLT_MAX = 3.4028234663852886e38


def _pack_format(cls):
    fmt, pos = "", 0
    for name, typ in cls._fields_:
        off = getattr(cls, name).offset
        if off > pos:
            fmt += "%dx" % (off - pos)
        fmt += _PACK_CODES[typ]
        pos = off + ctypes.sizeof(typ)
    if ctypes.sizeof(cls) > pos:
        fmt += "%dx" % (ctypes.sizeof(cls) - pos)
    return fmt


DESC_BYTES = ctypes.sizeof(Desc)
DTYPE_SAME_AS_OUT = 255  # darn_desc.dy_dtype's default: dy has out_dtype
# The darn_desc fields after rng_offset_ptr (dy_dtype, out_scale, out_scale_ptr) as darn_desc_init sets them:
# the package's calls have dy in out's dtype and no fp8 scale.
DESC_TAIL = (DTYPE_SAME_AS_OUT, 1.0, 0)
_DESC_PACK = struct.Struct("=" + _pack_format(Desc))
_FWD_PACK = struct.Struct("=" + _pack_format(Desc) + _pack_format(FwdTensors))
_BWD_PACK = struct.Struct("=" + _pack_format(Desc) + _pack_format(BwdTensors))
pack_fwd = _FWD_PACK.pack_into  # (buffer, 0, *desc fields, *darn_fwd_tensors fields)
pack_bwd = _BWD_PACK.pack_into
# The same layout in parts, for callers that pack the darn_desc once (it depends on the arguments' metadata
# only) and per call copy its bytes, write the RNG fields, then pack the tensors struct at DESC_BYTES:
# desc_bytes(*desc fields) -> bytes of DESC_BYTES; pack_rng(buffer, RNG_OFFSET, seed, offset, rng_seed_ptr,
# rng_offset_ptr); pack_fwd_tensors / pack_bwd_tensors(buffer, DESC_BYTES, *tensors fields).
desc_bytes = _DESC_PACK.pack
RNG_OFFSET = Desc.seed.offset
pack_rng = struct.Struct("=QQQQ").pack_into
pack_fwd_tensors = struct.Struct("=" + _pack_format(FwdTensors)).pack_into
pack_bwd_tensors = struct.Struct("=" + _pack_format(BwdTensors)).pack_into
_BUF_WORDS = (max(_FWD_PACK.size, _BWD_PACK.size) + 7) // 8
_tls = threading.local()


def _new_block():
    buf = (ctypes.c_uint64 * _BUF_WORDS)()  # 8-byte aligned, like the structs
    addr = ctypes.addressof(buf)
    return (buf, addr, addr + DESC_BYTES)


def call_buffer():
    """An argument block of this thread: (buffer, address of the darn_desc, address of the tensors struct). The
    C call reads both before it returns; hand the block back with release_buffer after the call. Blocks are
    reused from a per-thread free list, so a call made while another is being prepared (a finalizer, a torch
    dispatch mode running during an allocation) gets a block of its own."""
    try:
        return _tls.free.pop()
    except AttributeError:
        _tls.free = []
    except IndexError:
        pass
    return _new_block()


def release_buffer(block):
    _tls.free.append(block)


def _check_packing():
    """The packed formats put every field where the ctypes mirror (checked against darn.h) has it."""
    for pack, tcls in ((_FWD_PACK, FwdTensors), (_BWD_PACK, BwdTensors)):
        if DESC_BYTES % 8 or pack.size != DESC_BYTES + ctypes.sizeof(tcls):
            return False
        fields = [(Desc, n, t) for n, t in Desc._fields_] + [(tcls, n, t) for n, t in tcls._fields_]
        vals = [0.5 + i if t in (_f32, _f64) else 1000 + i for i, (_, _, t) in enumerate(fields)]
        buf = (ctypes.c_uint64 * _BUF_WORDS)()
        pack.pack_into(buf, 0, *vals)
        d, t = Desc.from_buffer(buf), tcls.from_buffer(buf, DESC_BYTES)
        for (cls, name, _), v in zip(fields, vals):
            if getattr(d if cls is Desc else t, name) != v:
                return False
        # the split packing (desc bytes, RNG fields, tensors struct) writes the same bytes
        nd = len(Desc._fields_)
        rng = [n for n, _ in Desc._fields_].index("seed")
        if [n for n, _ in Desc._fields_[rng:rng + 4]] != ["seed", "offset", "rng_seed_ptr", "rng_offset_ptr"]:
            return False
        split = (ctypes.c_uint64 * _BUF_WORDS)()
        head = list(vals[:nd])
        head[rng:rng + 4] = [0, 0, 0, 0]
        memoryview(split).cast("B")[:DESC_BYTES] = desc_bytes(*head)
        pack_rng(split, RNG_OFFSET, *vals[rng:rng + 4])
        (pack_fwd_tensors if tcls is FwdTensors else pack_bwd_tensors)(split, DESC_BYTES, *vals[nd:])
        if bytes(split) != bytes(buf):
            return False
    return True


# ---- loading -----------------------------------------------------------------------------------------------
_HERE = os.path.dirname(os.path.abspath(__file__))
_SONAMES = ("libdarn.so.0", "libdarn.so")


def _candidates():
    """(path-or-name, where) in search order: $DARN_LIBRARY, darn/lib/ next to the package, the system."""
    env = os.environ.get("DARN_LIBRARY")
    if env:
        yield env, "DARN_LIBRARY"
        return  # an explicit choice is never silently replaced by another library
    for name in _SONAMES:
        p = os.path.join(_HERE, "lib", name)
        if os.path.exists(p):
            yield p, "the package (darn/lib)"
    found = ctypes.util.find_library("darn")
    if found:
        yield found, "the system (find_library)"
    for name in _SONAMES:
        yield name, "the system (dlopen)"


def _dlopen(path):
    """ctypes.CDLL, but a dependency the loader cannot find (libgomp.so.1, say) is taken from the library's own
    folder when it is there, as in a bundle made by bundle-for-device."""
    preloaded = []
    while True:
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            m = re.match(r"(\S+?): cannot open shared object file", str(e))
            dep = os.path.join(os.path.dirname(path), m.group(1)) if m and os.sep in path else None
            if not dep or dep in preloaded or not os.path.exists(dep) or len(preloaded) > 8:
                raise
            ctypes.CDLL(dep, mode=ctypes.RTLD_GLOBAL)
            preloaded.append(dep)


class _NotDarn(Exception):
    """A library that loaded but is not a usable libdarn; the message says what was found."""


def _what_is(path):
    """Why `path` (given as a file path) cannot be a library, or None when it may be one."""
    if os.sep not in path:
        return None  # a bare name: the system loader searches for it
    if os.path.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.startswith("libdarn.so"))
        return "found a directory, not a library file%s" % (
            " (it holds %s: set DARN_LIBRARY to one of them)" % ", ".join(inside) if inside else
            " (with no libdarn.so* in it)")
    if not os.path.exists(path):
        return "no such file"
    return None


def _open():
    """(library, the path or name it was opened by, where that came from, bound functions)."""
    tried = []
    for path, where in _candidates():
        why = _what_is(path)
        if why is None:
            try:
                lib = _dlopen(path)
            except OSError as e:
                why = "the loader refused it: %s" % e
            else:
                try:
                    return lib, path, where, _bind(lib)
                except _NotDarn as e:
                    why = str(e)
        tried.append("  %s (from %s): %s" % (path, where, why))
    raise ImportError(
        "darn: cannot load libdarn. `pip install ./python` (in a darn checkout) builds it into the package; or build "
        "it (cmake -S . -B build/none -DDARN_GPU=none, or DARN_GPU=nvidia|amd for GPU tensors) and set "
        "DARN_LIBRARY=/path/to/libdarn.so, or install it system-wide. Tried:\n" + "\n".join(tried))


def _bind(lib):
    missing = []

    def fn(name, restype, *argtypes):
        try:
            f = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            return None
        f.restype = restype
        f.argtypes = list(argtypes)
        return f

    p = _vp
    f = {
        "version": fn("darn_version", _int),
        "version_string": fn("darn_version_string", ctypes.c_char_p),
        "contract_version": fn("darn_contract_version", _int),
        "status_string": fn("darn_status_string", ctypes.c_char_p, _int),
        "last_error": fn("darn_last_error", ctypes.c_char_p),
        "backend_available": fn("darn_backend_available", _int, _int),
        "desc_init": fn("darn_desc_init", None, p, _int, _i64, _i64, _int),
        "residual_out_dtype": fn("darn_residual_out_dtype", _int, p),
        "mask_row_bytes": fn("darn_mask_row_bytes", _i64, _i64),
        "fwd_workspace_size": fn("darn_fwd_workspace_size", _int, p, _int, p),
        "fwd": fn("darn_fwd", _int, p, p, p, ctypes.c_size_t, _int, p),
        "bwd_workspace_size": fn("darn_bwd_workspace_size", _int, p, _int, p),
        "bwd": fn("darn_bwd", _int, p, p, p, ctypes.c_size_t, _int, p),
    }
    if missing:
        if len(missing) == len(f):
            raise _NotDarn("found a shared library that is not libdarn (none of darn's functions, e.g. no %s)"
                           % missing[0])
        raise _NotDarn("found a libdarn without %s (older than this package?)" % ", ".join(missing))
    return f


def _loaded_file(lib, fallback):
    """The file the loader actually opened for lib (dladdr of one of its functions), else fallback."""
    try:
        class DlInfo(ctypes.Structure):
            _fields_ = [("fname", ctypes.c_char_p), ("fbase", _vp), ("sname", ctypes.c_char_p), ("saddr", _vp)]
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [_vp, ctypes.POINTER(DlInfo)]
        info = DlInfo()
        if dladdr(ctypes.cast(lib.darn_version, _vp), ctypes.byref(info)) and info.fname:
            return os.path.abspath(info.fname.decode())
    except (OSError, AttributeError, ValueError):
        pass
    return fallback


def _check_layout(f):
    """darn_desc_init must put its values where Desc expects them: catches a header that moved fields."""
    d = Desc()
    ctypes.memset(ctypes.addressof(d), 0xAB, ctypes.sizeof(d))
    f["desc_init"](ctypes.addressof(d), LAYERNORM, 3, 5, BF16)
    ok = (d.norm == LAYERNORM and d.rows == 3 and d.cols == 5 and d.flags == 0 and d.dropout_p == 0.0
          and d.seed == 0 and d.offset == 0 and not d.rng_seed_ptr and not d.rng_offset_ptr
          and d.dy_dtype == DTYPE_SAME_AS_OUT and d.out_scale == 1.0 and not d.out_scale_ptr
          and abs(d.eps - 1e-5) < 1e-9
          and (d.x_dtype, d.residual_dtype, d.weight_dtype, d.bias_dtype, d.out_dtype) == (BF16,) * 5)
    d.flags = FLAG_RESIDUAL_IN_FP32
    ok = ok and f["residual_out_dtype"](ctypes.addressof(d)) == F32
    d.flags = FLAG_HAS_RESIDUAL
    d.residual_dtype = F16
    ok = ok and f["residual_out_dtype"](ctypes.addressof(d)) == F16
    if not ok or not _check_packing():
        raise ImportError("darn: the ctypes mirror of darn_desc does not match the loaded libdarn (%s); "
                          "this package and the library come from different darn versions" % PATH)


LIB, _OPENED_AS, FOUND_IN, F = _open()
PATH = _loaded_file(LIB, _OPENED_AS)  # the library file in use (darn.library_path)
_check_layout(F)
VERSION = F["version_string"]().decode()
CONTRACT_VERSION = F["contract_version"]()  # whatever the library implements: nothing here depends on its bits

_fwd, _bwd = F["fwd"], F["bwd"]
_fwd_ws, _bwd_ws = F["fwd_workspace_size"], F["bwd_workspace_size"]
_last_error = F["last_error"]
_gpu_available = None
_gpu_lock = threading.Lock()


def gpu_available() -> bool:
    """True when libdarn has a GPU backend built in and sees a device (darn_backend_available(GPU)); cached."""
    global _gpu_available
    if _gpu_available is None:
        with _gpu_lock:
            _gpu_available = bool(F["backend_available"](BACKEND_GPU))
    return _gpu_available


def raise_status(status, function):
    msg = _last_error()
    msg = msg.decode(errors="replace") if msg else F["status_string"](status).decode()
    raise _error_class(status)(status, msg, function)


def workspace_size(kind, desc, backend):
    n = ctypes.c_size_t(0)
    st = (_fwd_ws if kind == "fwd" else _bwd_ws)(ctypes.addressof(desc), backend, ctypes.addressof(n))
    if st:
        raise_status(st, "darn_%s_workspace_size" % kind)
    return n.value


def fwd(desc, t, ws_ptr, ws_bytes, backend, stream):
    st = _fwd(ctypes.addressof(desc), ctypes.addressof(t), ws_ptr, ws_bytes, backend, stream)
    if st:
        raise_status(st, "darn_fwd")


def bwd(desc, t, ws_ptr, ws_bytes, backend, stream):
    st = _bwd(ctypes.addressof(desc), ctypes.addressof(t), ws_ptr, ws_bytes, backend, stream)
    if st:
        raise_status(st, "darn_bwd")


def workspace_size_of(is_fwd, dv, backend):
    """workspace_size for the darn_desc fields dv (norm .. dropout_p, in order; the RNG fields 0): the per-call
    path packs them into an argument block of this thread."""
    block = call_buffer()
    try:
        _DESC_PACK.pack_into(block[0], 0, *dv, 0, 0, 0, 0, *DESC_TAIL)
        n = ctypes.c_size_t(0)
        st = (_fwd_ws if is_fwd else _bwd_ws)(block[1], backend, ctypes.addressof(n))
    finally:
        release_buffer(block)
    if st:
        raise_status(st, "darn_%s_workspace_size" % ("fwd" if is_fwd else "bwd"))
    return n.value


def mask_row_bytes(n):
    return 4 * ((n + 31) // 32)
