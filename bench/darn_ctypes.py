"""darn_ctypes.py — the minimal ctypes view of libdarn that bench/compare_torch.py needs.

Mirrors of darn_desc, darn_fwd_tensors and darn_bwd_tensors (include/darn/darn.h, C11 natural alignment,
enums are int), library discovery, and a CPU self-test that runs every benchmark config through
darn_fwd/darn_bwd on host buffers, so the mirrors are checked against the real library without a GPU or
torch. darn.h has no size/version-of-struct function: the sizes are asserted here (LP64) and
darn_desc_init is checked to fill the fields where the mirror expects them.
"""
import ctypes
import glob
import os
import re

F32, F16, BF16 = 0, 1, 2
DTYPE_SAME_AS_OUT = 255  # darn_desc.dy_dtype's default
DTYPES = {"f32": F32, "f16": F16, "bf16": BF16}
DTYPE_SIZE = {"f32": 4, "f16": 2, "bf16": 2}
RMSNORM, LAYERNORM = 0, 1
BACKEND_CPU, BACKEND_GPU = 0, 1
FLAG_RESIDUAL_IN_FP32 = 1 << 1
FLAG_HAS_RESIDUAL = 1 << 2
FLAG_HAS_BIAS = 1 << 3
FLAG_HAS_X1 = 1 << 5       # parallel residual (contract 4): a second input x1
FLAG_HAS_WEIGHT1 = 1 << 6  # a second output y1 = norm(h) * weight1
FLAG_HAS_BIAS1 = 1 << 7    # y1 += bias1

_i64, _u64, _u32, _int, _f32, _f64, _vp = (ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int,
                                          ctypes.c_float, ctypes.c_double, ctypes.c_void_p)


class Desc(ctypes.Structure):
    """darn_desc"""
    _fields_ = [("norm", _int), ("rows", _i64), ("cols", _i64),
                ("x_dtype", _int), ("residual_dtype", _int), ("weight_dtype", _int), ("bias_dtype", _int),
                ("out_dtype", _int), ("flags", _u32), ("eps", _f32), ("dropout_p", _f64),
                ("seed", _u64), ("offset", _u64), ("rng_seed_ptr", _vp), ("rng_offset_ptr", _vp),
                ("dy_dtype", _int), ("out_scale", _f32), ("out_scale_ptr", _vp)]


class FwdTensors(ctypes.Structure):
    """darn_fwd_tensors"""
    _fields_ = [("x", _vp), ("x_stride", _i64), ("residual", _vp), ("residual_stride", _i64),
                ("rowscale", _vp), ("weight", _vp), ("bias", _vp), ("out", _vp), ("out_stride", _i64),
                ("residual_out", _vp), ("residual_out_stride", _i64), ("mask", _vp), ("rstd", _vp),
                ("mean", _vp), ("amax", _vp), ("x1", _vp), ("x1_stride", _i64), ("weight1", _vp),
                ("bias1", _vp), ("out1", _vp), ("out1_stride", _i64), ("mask1", _vp)]


class BwdTensors(ctypes.Structure):
    """darn_bwd_tensors"""
    _fields_ = [("dy", _vp), ("dy_stride", _i64), ("h", _vp), ("h_stride", _i64), ("weight", _vp),
                ("rstd", _vp), ("mean", _vp), ("rowscale", _vp), ("dresidual_out", _vp),
                ("dresidual_out_stride", _i64), ("mask", _vp), ("dx", _vp), ("dx_stride", _i64),
                ("dresidual", _vp), ("dresidual_stride", _i64), ("dweight", _vp), ("dbias", _vp),
                ("dy1", _vp), ("dy1_stride", _i64), ("weight1", _vp), ("mask1", _vp), ("dx1", _vp),
                ("dx1_stride", _i64), ("dweight1", _vp), ("dbias1", _vp)]


# sizeof on LP64 (x86-64, aarch64): desc 4+4(pad)+8+8+5*4+4+4+4(pad)+8+8+8+8+8+4+4+8; the tensor structs are
# all 8-byte fields.
EXPECTED_SIZES = {Desc: 112, FwdTensors: 22 * 8, BwdTensors: 25 * 8}


class DarnError(RuntimeError):
    pass


def find_library(explicit=None):
    """--lib, else $DARN_LIBRARY, else the usual build and bundle places relative to the repository."""
    if explicit:
        return explicit
    if os.environ.get("DARN_LIBRARY"):
        return os.environ["DARN_LIBRARY"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for rel in ("build/nvidia/libdarn.so", ".devbundle/lib/libdarn.so.0", "build/amd/libdarn.so",
                "build/none/libdarn.so"):
        p = os.path.join(root, rel)
        if os.path.exists(p):
            return p
    return "libdarn.so.0"


def _load_cdll(path):
    """CDLL(path); a dependency missing from the system but lying beside the library (a .devbundle/lib
    of bundle-for-device) is preloaded from there first, so no LD_LIBRARY_PATH is needed."""
    tried = set()
    while True:
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            m = re.match(r"(\S+?\.so[.\d]*): cannot open shared object file", str(e))
            dep = m and os.path.join(os.path.dirname(os.path.abspath(path)), m.group(1))
            if not dep or dep in tried or not os.path.exists(dep):
                raise
            tried.add(dep)
            _load_cdll_global(dep)


def _load_cdll_global(path):
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        for other in glob.glob(os.path.join(os.path.dirname(path), "*.so*")):
            if other != path:
                try:
                    ctypes.CDLL(other, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


class Darn:
    """The loaded library with typed entry points and checked calls."""

    def __init__(self, path):
        self.path = path
        self.lib = _load_cdll(path)
        L, p = self.lib, _vp

        def fn(name, restype, *args):
            f = getattr(L, name)
            f.restype, f.argtypes = restype, list(args)
            return f

        self.version_string = fn("darn_version_string", ctypes.c_char_p)
        self.contract_version = fn("darn_contract_version", _int)
        self.status_string = fn("darn_status_string", ctypes.c_char_p, _int)
        self.last_error = fn("darn_last_error", ctypes.c_char_p)
        self.backend_available = fn("darn_backend_available", _int, _int)
        self.desc_init = fn("darn_desc_init", None, p, _int, _i64, _i64, _int)
        self.mask_row_bytes = fn("darn_mask_row_bytes", _i64, _i64)
        self._fwd_ws = fn("darn_fwd_workspace_size", _int, p, _int, p)
        self._bwd_ws = fn("darn_bwd_workspace_size", _int, p, _int, p)
        self._fwd = fn("darn_fwd", _int, p, p, p, ctypes.c_size_t, _int, p)
        self._bwd = fn("darn_bwd", _int, p, p, p, ctypes.c_size_t, _int, p)
        self.check_layout()

    def check_layout(self):
        for cls, size in EXPECTED_SIZES.items():
            if ctypes.sizeof(cls) != size:
                raise DarnError("ctypes mirror %s has size %d, darn.h gives %d" % (cls.__name__, ctypes.sizeof(cls), size))
        d = Desc()
        ctypes.memset(ctypes.addressof(d), 0xAB, ctypes.sizeof(d))
        self.desc_init(ctypes.byref(d), LAYERNORM, 3, 5, BF16)
        ok = (d.norm == LAYERNORM and d.rows == 3 and d.cols == 5 and d.x_dtype == BF16 and d.out_dtype == BF16
              and d.flags == 0 and abs(d.eps - 1e-5) < 1e-9 and d.dropout_p == 0.0 and d.seed == 0
              and d.offset == 0 and not d.rng_seed_ptr and not d.rng_offset_ptr
              and d.dy_dtype == DTYPE_SAME_AS_OUT and d.out_scale == 1.0 and not d.out_scale_ptr)
        if not ok:
            raise DarnError("darn_desc_init does not fill the ctypes Desc as expected: darn.h changed?")

    def _check(self, status, what):
        if status != 0:
            raise DarnError("%s: %s (%s)" % (what, self.status_string(status).decode(), self.last_error().decode()))

    def desc(self, cfg, rows, cols, eps=None):
        """darn_desc of a benchmark config (a dict of CONFIGS below); eps None keeps darn_desc_init's (1e-5)."""
        d = Desc()
        self.desc_init(ctypes.byref(d), LAYERNORM if cfg["norm"] == "layer" else RMSNORM, rows, cols, DTYPES[cfg["x"]])
        if eps is not None:
            d.eps = eps
        d.residual_dtype, d.weight_dtype = DTYPES[cfg["res"]], DTYPES[cfg["w"]]
        d.bias_dtype, d.out_dtype = DTYPES[cfg["b"] or cfg["w"]], DTYPES[cfg["out"]]
        d.flags = (FLAG_HAS_RESIDUAL | (FLAG_RESIDUAL_IN_FP32 if cfg["rif32"] else 0) | (FLAG_HAS_BIAS if cfg["b"] else 0)
                   | (FLAG_HAS_X1 if cfg.get("x1") else 0) | (FLAG_HAS_WEIGHT1 if cfg.get("w1") else 0)
                   | (FLAG_HAS_BIAS1 if cfg.get("b1") else 0))
        d.dropout_p, d.seed, d.offset = cfg["p"], 1234, 0
        return d

    def workspace_bytes(self, desc, backend):
        a, b = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self._check(self._fwd_ws(ctypes.byref(desc), backend, ctypes.byref(a)), "darn_fwd_workspace_size")
        self._check(self._bwd_ws(ctypes.byref(desc), backend, ctypes.byref(b)), "darn_bwd_workspace_size")
        return max(a.value, b.value)

    def fwd(self, desc, t, ws, ws_bytes, backend, stream=None):
        self._check(self._fwd(ctypes.byref(desc), ctypes.byref(t), ws, ws_bytes, backend, stream), "darn_fwd")

    def bwd(self, desc, t, ws, ws_bytes, backend, stream=None):
        self._check(self._bwd(ctypes.byref(desc), ctypes.byref(t), ws, ws_bytes, backend, stream), "darn_bwd")


# The benchmark configs, as darn-bench (bench/bench_config.c). dtype names; b = bias dtype or None;
# backward: rstd/mean written and the backward timed; mask: the forward writes the packed mask (and mask1 with x1).
# Parallel residual (only where given): x1 = True adds an input x1 of x's dtype; w1 = True a second output y1 (out's
# dtype) with weight1 (w's dtype); b1 = True y1's bias1 (b's dtype, else w's).
CONFIGS = {
    "train": dict(norm="rms", x="bf16", res="f32", w="bf16", b=None, out="bf16", rif32=True, p=0.1, backward=True, mask=False),
    "infer": dict(norm="rms", x="bf16", res="bf16", w="bf16", b=None, out="bf16", rif32=False, p=0.0, backward=False, mask=False),
    "f32": dict(norm="rms", x="f32", res="f32", w="f32", b=None, out="f32", rif32=False, p=0.1, backward=True, mask=False),
    "layernorm": dict(norm="layer", x="bf16", res="f32", w="bf16", b="bf16", out="bf16", rif32=True, p=0.1, backward=True, mask=False),
    "mask": dict(norm="rms", x="bf16", res="f32", w="bf16", b=None, out="bf16", rif32=True, p=0.1, backward=True, mask=True),
    # fp8 (darn-bench only) has no mirror here: compare_torch.py's peers have no fp8 output
    "parallel": dict(norm="rms", x="bf16", res="f32", w="bf16", b=None, out="bf16", rif32=True, p=0.1, backward=True,
                     mask=False, x1=True, w1=True, b1=False),
}


def is_parallel(cfg):
    """True for a config with flash-attn's parallel residual (x1 and/or a second output y1)."""
    return bool(cfg.get("x1") or cfg.get("w1"))


def h_dtype(cfg):
    """dtype of residual_out (h): f32 with residual-in-fp32, else the residual's."""
    return "f32" if cfg["rif32"] else cfg["res"]


def directions(cfg):
    return ["fwd"] + (["bwd_mask"] if cfg["backward"] and cfg["mask"] else []) + (["bwd"] if cfg["backward"] else [])


def mask_row_bytes(cols):
    return (cols + 31) // 32 * 4


def min_bytes(cfg, m, n, direction):
    """Minimal bytes read + written by one call (bench/README.md; same as bench_config_bytes in C)."""
    s = DTYPE_SIZE
    sx, sr, sw, so, sh = s[cfg["x"]], s[cfg["res"]], s[cfg["w"]], s[cfg["out"]], s[h_dtype(cfg)]
    sb = s[cfg["b"]] if cfg["b"] else 0
    mn = m * n
    stats = 4 * m * (2 if cfg["norm"] == "layer" else 1) if cfg["backward"] else 0
    mask = m * mask_row_bytes(n)
    # parallel residual: x1 (x's dtype, with mask1), weight1 (+ bias1) and the second output y1 (out's dtype)
    x1, w1 = (1 if cfg.get("x1") else 0), (1 if cfg.get("w1") else 0)
    sb1 = s[cfg["b"] or cfg["w"]] if cfg.get("b1") else 0
    masks = mask * (1 + x1)  # mask (+ mask1)
    if direction in ("fwd", "fwd_grad"):  # fwd_grad: the same call with autograd recording (compare_torch.py)
        return (mn * (sx + sr) + n * (sw + sb) + x1 * mn * sx + w1 * n * sw + n * sb1
                + mn * (so + sh) + stats + (masks if cfg["mask"] else 0) + w1 * mn * so)
    return (mn * (so + sh) + n * sw + stats + mn * sh + w1 * (mn * so + n * sw) + (masks if direction == "bwd_mask" else 0)
            + mn * (sx + sr) + n * (sw + sb) + x1 * mn * sx + w1 * n * sw + n * sb1)


def cpu_selftest(darn, rows=3, cols=64):
    """Runs every config's forward and backward on the CPU backend with host buffers (values 1.0, so
    the results are finite); raises DarnError on a failing call or an unwritten output."""
    one = {"f32": b"\x00\x00\x80\x3f", "bf16": b"\x80\x3f", "f16": b"\x00\x3c"}
    keep = []

    def buf(dtype, count, fill=True):
        raw = (one[dtype] if fill else b"\xa5" * DTYPE_SIZE[dtype]) * count
        b = ctypes.create_string_buffer(raw, len(raw))
        keep.append(b)
        return ctypes.cast(b, _vp), b

    for name, cfg in CONFIGS.items():
        d = darn.desc(cfg, rows, cols)
        mn = rows * cols
        f, b = FwdTensors(), BwdTensors()
        f.x, _ = buf(cfg["x"], mn)
        f.residual, _ = buf(cfg["res"], mn)
        f.weight, _ = buf(cfg["w"], cols)
        f.bias = buf(cfg["b"], cols)[0] if cfg["b"] else None
        f.out, out_raw = buf(cfg["out"], mn, False)
        f.residual_out, _ = buf(h_dtype(cfg), mn, False)
        f.mask = buf("f32", rows * mask_row_bytes(cols) // 4, False)[0] if cfg["mask"] else None
        b1_dtype = cfg["b"] or cfg["w"]
        if cfg.get("x1"):
            f.x1, _ = buf(cfg["x"], mn)
            f.mask1 = buf("f32", rows * mask_row_bytes(cols) // 4, False)[0] if cfg["mask"] else None
        if cfg.get("w1"):
            f.weight1, _ = buf(cfg["w"], cols)
            f.out1, out1_raw = buf(cfg["out"], mn, False)
        if cfg.get("b1"):
            f.bias1, _ = buf(b1_dtype, cols)
        if cfg["backward"]:
            f.rstd, _ = buf("f32", rows, False)
            f.mean = buf("f32", rows, False)[0] if cfg["norm"] == "layer" else None
        ws_bytes = darn.workspace_bytes(d, BACKEND_CPU)
        ws = buf("f32", ws_bytes // 4 + 4, False)[0]
        darn.fwd(d, f, ws, ws_bytes, BACKEND_CPU)
        if out_raw.raw == b"\xa5" * len(out_raw.raw):
            raise DarnError("%s: darn_fwd wrote no output" % name)
        if cfg.get("w1") and out1_raw.raw == b"\xa5" * len(out1_raw.raw):
            raise DarnError("%s: darn_fwd wrote no out1" % name)
        if not cfg["backward"]:
            continue
        b.dy, _ = buf(cfg["out"], mn)
        b.h, b.weight, b.rstd, b.mean = f.residual_out, f.weight, f.rstd, f.mean
        b.dresidual_out, _ = buf(h_dtype(cfg), mn)
        b.mask = f.mask
        b.dx, dx_raw = buf(cfg["x"], mn, False)
        b.dresidual, _ = buf(cfg["res"], mn, False)
        b.dweight, _ = buf(cfg["w"], cols, False)
        b.dbias = buf(cfg["b"], cols, False)[0] if cfg["b"] else None
        if cfg.get("x1"):
            b.mask1 = f.mask1
            b.dx1, dx1_raw = buf(cfg["x"], mn, False)
        if cfg.get("w1"):
            b.dy1, _ = buf(cfg["out"], mn)
            b.weight1 = f.weight1
            b.dweight1, _ = buf(cfg["w"], cols, False)
        if cfg.get("b1"):
            b.dbias1, _ = buf(b1_dtype, cols, False)
        darn.bwd(d, b, ws, ws_bytes, BACKEND_CPU)
        if dx_raw.raw == b"\xa5" * len(dx_raw.raw):
            raise DarnError("%s: darn_bwd wrote no dx" % name)
        if cfg.get("x1") and dx1_raw.raw == b"\xa5" * len(dx1_raw.raw):
            raise DarnError("%s: darn_bwd wrote no dx1" % name)
    return list(CONFIGS)
