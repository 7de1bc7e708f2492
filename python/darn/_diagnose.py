"""`python -m darn`: what to paste into a bug report, and a self-check of every backend.

Prints the package's and the library's versions, the numerics contract of the library, the library file in use and
how it was built, Python / torch / platform, darn's backends and the devices torch sees, then checks:
- cpu: the package's calls (forward + backward, with dropout, residual, bias, rowscale, mixed dtypes) against
  darn_fwd / darn_bwd called directly on ctypes structs, bit for bit (the binding), and the forward against fp64
  math within a few ulps (the library);
- each GPU device (when libdarn has a GPU backend and torch sees devices): the same calls on the device against the
  CPU backend, bit for bit (darn's contract: every backend gives the CPU reference's bits).
Nothing here knows any output bits: every comparison is between two runs. Exit status 0 when every check passed.

    python -m darn [--json] [--no-check]
"""
import argparse
import ctypes
import json
import os
import platform
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import _lib as L
from . import ops

_DT = {L.F32: torch.float32, L.F16: torch.float16, L.BF16: torch.bfloat16}
_NAME = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
_ULP = {torch.float32: 2.0 ** -23, torch.float16: 2.0 ** -10, torch.bfloat16: 2.0 ** -7}

# (name, is_rms, shape, x, residual, weight, bias, out, rowscale, zero_centered, residual_in_fp32, p, prenorm)
CASES = [
    ("rms-bf16-res_f32-p0.1-prenorm", True, (7, 4096), torch.bfloat16, torch.float32, torch.bfloat16, None, None,
     False, False, False, 0.1, True),
    ("layer-f32-bias-rowscale", False, (5, 1000), torch.float32, torch.float32, torch.float32, torch.float32, None,
     True, False, False, 0.0, False),
    ("rms-f16-no_res-rfp32-zc-p0.25-out_bf16", True, (3, 33), torch.float16, None, torch.float32, None,
     torch.bfloat16, False, True, True, 0.25, True),
    ("layer-bf16-res_bf16-bias_f32-p0.5", False, (4, 768), torch.bfloat16, torch.bfloat16, torch.bfloat16,
     torch.float32, None, False, False, False, 0.5, True),
]
SEED, OFFSET = 20261202, 12


def _inputs(case) -> Dict[str, Any]:
    _, is_rms, shape, xd, rd, wd, bd, od, has_rs, zc, rfp32, p, prenorm = case
    g = torch.Generator().manual_seed(1)
    m, n = shape
    t = {"x": torch.randn(shape, generator=g).to(xd),
         "r": torch.randn(shape, generator=g).to(rd) if rd is not None else None,
         "w": (torch.randn(n, generator=g) * (0.2 if zc else 0.5) + (0.0 if zc else 1.0)).to(wd),
         "b": (torch.randn(n, generator=g) * 0.1).to(bd) if bd is not None else None,
         "rs": torch.rand(m, generator=g) + 0.5 if has_rs else None}
    t["gy"] = torch.randn(shape, generator=g).to(od or xd)
    t["gh"] = torch.randn(shape, generator=g)  # cast to h's dtype once h is known
    return t


def _package_run(case, t, device) -> Dict[str, Any]:
    """The package's layer_norm_fn forward + backward on `device`; every result back on the CPU."""
    _, is_rms, shape, xd, rd, wd, bd, od, has_rs, zc, rfp32, p, prenorm = case
    leaf = {k: (t[k].to(device).requires_grad_() if t[k] is not None else None) for k in ("x", "r", "w", "b")}
    rs = t["rs"].to(device) if t["rs"] is not None else None
    res: Any = ops.layer_norm_fn(leaf["x"], leaf["w"], leaf["b"], leaf["r"], eps=1e-5, dropout_p=p, rowscale=rs,
                                 prenorm=True, residual_in_fp32=rfp32, zero_centered_weight=zc, is_rms_norm=is_rms,
                                 return_dropout_mask=True, out_dtype=od, seed=SEED, offset=OFFSET)
    y, h, mask, _ = res
    outs, grads = [y], [t["gy"].to(device)]
    if prenorm:
        outs.append(h)
        grads.append(t["gh"].to(h.dtype).to(device))
    torch.autograd.backward(outs, grads)
    got = {"y": y, "h": h, "mask": mask, "dx": leaf["x"].grad, "dw": leaf["w"].grad,
           "dr": leaf["r"].grad if leaf["r"] is not None else None,
           "db": leaf["b"].grad if leaf["b"] is not None else None}
    return {k: (v.detach().cpu() if v is not None else None) for k, v in got.items()}


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return t.data_ptr() if t is not None else None


def _direct_run(case, t) -> Dict[str, Any]:
    """The same forward + backward as _package_run on the CPU, through darn_fwd / darn_bwd on ctypes structs."""
    _, is_rms, shape, xd, rd, wd, bd, od, has_rs, zc, rfp32, p, prenorm = case
    m, n = shape
    code = ops._CODE
    x, r, w, b, rs = t["x"], t["r"], t["w"], t["b"], t["rs"]
    d = L.Desc()
    L.F["desc_init"](ctypes.addressof(d), L.RMSNORM if is_rms else L.LAYERNORM, m, n, code[xd])
    d.residual_dtype = code[rd] if rd is not None else code[xd]
    d.weight_dtype = code[wd]
    d.bias_dtype = code[bd] if bd is not None else code[wd]
    d.out_dtype = code[od or xd]
    d.flags = ((L.FLAG_HAS_RESIDUAL if r is not None else 0) | (L.FLAG_HAS_BIAS if b is not None else 0)
               | (L.FLAG_HAS_ROWSCALE if rs is not None else 0) | (L.FLAG_ZERO_CENTERED_WEIGHT if zc else 0)
               | (L.FLAG_RESIDUAL_IN_FP32 if rfp32 else 0))
    d.eps, d.dropout_p, d.seed, d.offset = 1e-5, p, SEED, OFFSET
    hd = _DT[L.F["residual_out_dtype"](ctypes.addressof(d))]
    y = torch.empty(shape, dtype=od or xd)
    h = torch.empty(shape, dtype=hd)
    mask = torch.zeros((m, L.mask_row_bytes(n)), dtype=torch.uint8)
    rstd, mean = torch.empty(m), torch.empty(m)
    ft = L.FwdTensors()
    ft.x, ft.residual, ft.rowscale, ft.weight, ft.bias = _ptr(x), _ptr(r), _ptr(rs), _ptr(w), _ptr(b)
    ft.out, ft.residual_out, ft.mask, ft.rstd = _ptr(y), _ptr(h), _ptr(mask), _ptr(rstd)
    ft.mean = None if is_rms else _ptr(mean)
    ws = torch.empty(max(L.workspace_size("fwd", d, L.BACKEND_CPU), 1) + 64, dtype=torch.uint8)
    L.fwd(d, ft, ws.data_ptr() + (-ws.data_ptr() % 64), ws.numel() - 64, L.BACKEND_CPU, None)
    dx, dw = torch.empty(shape, dtype=xd), torch.empty(n, dtype=wd)
    dr = torch.empty(shape, dtype=rd) if rd is not None else None
    db = torch.empty(n, dtype=bd) if bd is not None else None
    gh = t["gh"].to(hd) if prenorm else None
    bt = L.BwdTensors()
    bt.dy, bt.h, bt.weight, bt.rstd = _ptr(t["gy"]), _ptr(h), _ptr(w), _ptr(rstd)
    bt.mean = None if is_rms else _ptr(mean)
    bt.rowscale, bt.dresidual_out, bt.mask = _ptr(rs), _ptr(gh), None  # mask regenerated from (seed, offset)
    bt.dx, bt.dresidual, bt.dweight, bt.dbias = _ptr(dx), _ptr(dr), _ptr(dw), _ptr(db)
    ws = torch.empty(L.workspace_size("bwd", d, L.BACKEND_CPU) + 64, dtype=torch.uint8)
    L.bwd(d, bt, ws.data_ptr() + (-ws.data_ptr() % 64), ws.numel() - 64, L.BACKEND_CPU, None)
    return {"y": y, "h": h, "mask": ops._unpack_mask(mask, m, n, shape) if p > 0 else None, "dx": dx, "dw": dw,
            "dr": dr, "db": db}


def _fp64_forward(case, t, mask) -> Tuple[torch.Tensor, torch.Tensor]:
    """(y, h) of darn's formula in fp64, h rounded once to its dtype; mask: the kept elements (bool) or None."""
    _, is_rms, shape, xd, rd, wd, bd, od, has_rs, zc, rfp32, p, prenorm = case
    v = t["x"].double()
    if t["rs"] is not None:
        v = v * t["rs"].double()[:, None]
    if p > 0:
        scale = float(torch.tensor(1.0 / (1.0 - p), dtype=torch.float32)) if p < 1 else 0.0
        v = torch.where(mask, v * scale, torch.zeros_like(v))
    h = v + t["r"].double() if t["r"] is not None else v
    hd = rd if rd is not None else (torch.float32 if rfp32 else xd)
    h = h.to(hd).double()
    w = t["w"].double() + 1.0 if zc else t["w"].double()
    c = h if is_rms else h - h.mean(-1, keepdim=True)
    y = c * torch.rsqrt((c * c).mean(-1, keepdim=True) + float(torch.tensor(1e-5, dtype=torch.float32))) * w
    if t["b"] is not None:
        y = y + t["b"].double()
    return y, h


def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.contiguous()
    if t.dtype == torch.bool:
        return t
    return t.view(torch.int32) if t.element_size() == 4 else t.view(torch.int16)


def _diff(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """The names of the results where a and b differ in presence, dtype, shape or any bit."""
    bad = []
    for k in a:
        u, v = a[k], b[k]
        if (u is None) != (v is None):
            bad.append("%s (present in one run only)" % k)
        elif u is not None and (u.dtype != v.dtype or u.shape != v.shape or not torch.equal(_bits(u), _bits(v))):
            n = int((_bits(u) != _bits(v)).sum()) if u.dtype == v.dtype and u.shape == v.shape else -1
            bad.append("%s (%s)" % (k, "%d of %d elements differ" % (n, u.numel()) if n >= 0 else "dtype/shape"))
    return bad


def check_cpu() -> Dict[str, Any]:
    """The package against direct darn calls (bits) and fp64 math (ulps), on the CPU backend."""
    failures = []
    for case in CASES:
        t = _inputs(case)
        got = _package_run(case, t, "cpu")
        bad = _diff(got, _direct_run(case, t))
        if bad:
            failures.append("%s: package vs direct darn calls: %s" % (case[0], ", ".join(bad)))
        y64, h64 = _fp64_forward(case, t, got["mask"])
        for name, v, ref in (("y", got["y"], y64), ("h", got["h"], h64)):
            err = (v.double() - ref).abs()
            tol = 8 * _ULP[v.dtype] * (ref.abs() + 1.0) + 1e-5
            if not bool((err <= tol).all()):
                failures.append("%s: %s vs fp64: max error %.3g" % (case[0], name, float(err.max())))
        p = case[11]
        if p > 0:
            dropped = 1.0 - float(got["mask"].float().mean())
            if abs(dropped - p) > 0.1 + 3.0 / got["mask"].numel() ** 0.5:
                failures.append("%s: dropped %.3f of the elements at p = %g" % (case[0], dropped, p))
    return {"ok": not failures, "cases": len(CASES), "failures": failures,
            "what": "package calls = direct darn_fwd/darn_bwd calls bit for bit; forward within 8 ulps of fp64"}


def check_gpu(device: str) -> Dict[str, Any]:
    """Every result of the package's calls on `device` equal to the CPU backend's, bit for bit."""
    failures = []
    for case in CASES:
        t = _inputs(case)
        bad = _diff(_package_run(case, t, device), _package_run(case, t, "cpu"))
        if bad:
            failures.append("%s: %s vs cpu: %s" % (case[0], device, ", ".join(bad)))
    return {"ok": not failures, "cases": len(CASES), "failures": failures,
            "what": "forward outputs, mask and gradients bit-identical to the CPU reference"}


def _gpu_backend_state() -> str:
    """'available', or the library's own words on why its GPU backend is not usable."""
    if L.gpu_available():
        return "available"
    d = L.Desc()
    L.F["desc_init"](ctypes.addressof(d), L.RMSNORM, 1, 1, L.F32)
    n = ctypes.c_size_t(0)
    st = L.F["fwd_workspace_size"](ctypes.addressof(d), L.BACKEND_GPU, ctypes.addressof(n))
    msg = L.F["last_error"]()
    return "unavailable: " + (msg.decode(errors="replace") if st and msg else "darn_backend_available() = 0")


def _build_info() -> Optional[Dict[str, str]]:
    try:
        from . import _build_info as b
    except ImportError:
        return None
    return {"version": b.version, "DARN_GPU": b.darn_gpu, "CMAKE_ARGS": b.cmake_args}


def _torch_devices() -> List[Dict[str, Any]]:
    devs = []
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install: report no devices rather than fail the report
        count = 0
    for i in range(count):
        p = torch.cuda.get_device_properties(i)
        devs.append({"device": "cuda:%d" % i, "name": p.name, "capability": "%d.%d" % (p.major, p.minor),
                     "memory_gib": round(p.total_memory / 2 ** 30, 1)})
    return devs


def report(check: bool = True) -> Dict[str, Any]:
    """Everything `python -m darn` prints, as a dict (its --json output)."""
    from . import __version__
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
    r: Dict[str, Any] = {
        "package_version": __version__,
        "package_path": os.path.dirname(os.path.abspath(__file__)),
        "library_version": L.VERSION,
        "contract_version": L.CONTRACT_VERSION,
        "library_path": L.PATH,
        "library_found_in": L.FOUND_IN,
        "library_is_bundled": os.path.dirname(os.path.abspath(L.PATH)) == bundled,
        "package_build": _build_info(),
        "python": "%s (%s)" % (platform.python_version(), sys.executable),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_hip": getattr(torch.version, "hip", None),
        "custom_op": ops.HAS_CUSTOM_OP,
        "platform": "%s, %s" % (platform.platform(), " ".join(platform.libc_ver())),
        "env": {k: os.environ[k] for k in ("DARN_LIBRARY", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                                           "OMP_NUM_THREADS") if k in os.environ},
        "backends": {"cpu": "available", "gpu": _gpu_backend_state()},
        "torch_devices": _torch_devices(),
        "checks": {},
    }
    if check:
        checks: List[Tuple[str, Any, tuple]] = [("cpu", check_cpu, ())]
        if r["backends"]["gpu"] == "available":
            checks += [(d["device"], check_gpu, (d["device"],)) for d in r["torch_devices"]]
        for name, fn, args in checks:
            t0 = time.perf_counter()
            try:
                res = fn(*args)
            except Exception as e:  # a crash of a check is a failed check, reported like the others
                res = {"ok": False, "failures": ["raised %s: %s" % (type(e).__name__, e)]}
            res["seconds"] = round(time.perf_counter() - t0, 2)
            r["checks"][name] = res
        if r["torch_devices"] and r["backends"]["gpu"] != "available":
            r["checks"]["gpu"] = {"ok": None, "failures": [], "what": "skipped: torch sees %d device(s) but libdarn's "
                                  "GPU backend is %s; CUDA/ROCm tensors will raise" % (len(r["torch_devices"]),
                                                                                       r["backends"]["gpu"])}
    r["ok"] = all(c["ok"] is not False for c in r["checks"].values())
    return r


def format_report(r: Dict[str, Any]) -> str:
    b = r["package_build"]
    lines = [
        "darn %s (package at %s)" % (r["package_version"], r["package_path"]),
        "libdarn %s, numerics contract %d" % (r["library_version"], r["contract_version"]),
        "library: %s (from %s%s)" % (r["library_path"], r["library_found_in"],
                                     ", built with the package" if r["library_is_bundled"] else ""),
        "package build: " + ("DARN_GPU=%s, CMAKE_ARGS=%r" % (b["DARN_GPU"], b["CMAKE_ARGS"]) if b else
                             "none (python/ of a checkout on sys.path, not an installed package)"),
        "python %s" % r["python"],
        "torch %s (CUDA %s, HIP %s; torch.library.custom_op / torch.compile support: %s)" % (
            r["torch"], r["torch_cuda"] or "-", r["torch_hip"] or "-", "yes" if r["custom_op"] else "no"),
        "platform: %s" % r["platform"],
    ]
    if r["env"]:
        lines.append("environment: " + ", ".join("%s=%s" % kv for kv in r["env"].items()))
    lines.append("backends: cpu %s; gpu %s" % (r["backends"]["cpu"], r["backends"]["gpu"]))
    devs = ", ".join("%s %s (%s, %.0f GiB)" % (d["device"], d["name"], d["capability"], d["memory_gib"])
                     for d in r["torch_devices"])
    lines.append("devices (torch): " + (devs or "no CUDA/ROCm device"))
    for name, c in r["checks"].items():
        state = {True: "ok", False: "FAILED", None: "skipped"}[c["ok"]]
        extra = " (%d cases, %.2f s)" % (c["cases"], c["seconds"]) if "cases" in c else ""
        lines.append("self-check %s: %s%s%s" % (name, state, extra, ": " + c["what"] if c.get("what") else ""))
        lines += ["  " + f for f in c["failures"]]
    if r["checks"]:
        lines.append("result: " + ("ok" if r["ok"] else "FAILED"))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m darn", description="darn's versions, library, backends and devices, "
                                 "and a self-check of each backend (what to paste into a bug report)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--no-check", action="store_true", help="skip the self-checks")
    a = ap.parse_args(argv)
    r = report(check=not a.no_check)
    print(json.dumps(r, indent=1) if a.json else format_report(r))
    return 0 if r["ok"] else 1
