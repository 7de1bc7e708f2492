"""Per-call time of darn's PyTorch functions on CPU tensors (darn's CPU backend), small shapes, one torch thread:
the Python path's overhead plus darn's CPU call, next to torch's own ops timed the same way.

    DARN_LIBRARY=build/none/libdarn.so /usr/bin/python3 python/tools/cpu_overhead.py [--m 4] [--n 64] \\
        [--repeats 5] [--clock thread|wall] [--only SUBSTRING] [--out FILE]

Method: each case is called back to back in batches (ITERS calls, best of BEST batches: the least disturbed one on
a shared machine); that per-call time is one repeat's value. The whole set of cases runs --repeats times (>= 3) in
this process; "us" is the median over repeats, "us_spread" the [min, max] over repeats. --clock thread (default)
counts this thread's CPU time (time.thread_time_ns: robust when other processes share the cores), wall counts
time.perf_counter_ns. Prints JSON (microseconds per call), or with --table one line per case.

Not GPU numbers: on CPU tensors autograd's backward runs on the calling thread (no device-thread hand-off) and the
CPU kernels are part of the time. python/tools/gpu_overhead.py times the CUDA path and takes it apart."""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

if os.environ.get("DARN_TEST_INSTALLED") != "1":  # the checkout's darn, unless told to use the installed one
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402

import darn  # noqa: E402
from darn import _lib as L  # noqa: E402

BEST = 5


def per_call(fn, iters, clock):
    for _ in range(min(iters, 300)):
        fn()
    best = float("inf")
    for _ in range(BEST):
        t0 = clock()
        for _ in range(iters):
            fn()
        best = min(best, (clock() - t0) / iters / 1e3)
    return best


class _Noop(torch.autograd.Function):
    """darn's autograd.Function shape (x, weight, bias, residual, rowscale, cfg, plan -> out, residual_out, mask)
    doing no work: autograd's own bookkeeping per step."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, rowscale, cfg, plan):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        return torch.empty_like(x), None, None

    @staticmethod
    def backward(ctx, dout, dresout, dmask):
        grads = ctx.plan
        return grads[0], grads[1], None, grads[2], None, None, None


def torch_step(x, r, w, eps=1e-6):
    """The torch eager step: h = x + residual, then RMSNorm (F.rms_norm on torch >= 2.4, else by hand)."""
    h = x + r
    if hasattr(torch.nn.functional, "rms_norm"):
        return torch.nn.functional.rms_norm(h, (h.shape[-1],), w, eps)
    hf = h.float()
    return (hf * torch.rsqrt(hf.square().mean(-1, keepdim=True) + eps)).to(h.dtype) * w


def cases(m, n):
    dt = torch.bfloat16
    g0 = torch.Generator().manual_seed(0)
    x, r, g = (torch.randn(m, n, generator=g0).to(dt) for _ in range(3))
    w = torch.ones(n, dtype=dt)
    xg, wg, rg = (t.clone().requires_grad_() for t in (x, w, r))
    out, resout = torch.empty_like(x), torch.empty_like(x)
    both = torch.empty(m, 2 * n, dtype=dt)
    rms, ln = darn.rms_norm_fn, darn.layer_norm_fn
    try:  # out= / residual_out= (NotImplementedError before they existed)
        rms(x, w, None, r, out=out)
        has_out = True
    except NotImplementedError:
        has_out = False
    c = {}

    def nograd(name, fn, iters=20000):
        c[name] = (fn, iters, True)
    nograd("darn.fwd_nograd", lambda: rms(x, w, None, r))
    nograd("darn.fwd_nograd_prenorm", lambda: rms(x, w, None, r, prenorm=True))
    nograd("darn.fwd_nograd_p0.1", lambda: rms(x, w, None, r, dropout_p=0.1))
    nograd("darn.layer_norm_bias_nograd", lambda: ln(x, w, w, r))
    if has_out:
        nograd("darn.fwd_nograd_out=", lambda: rms(x, w, None, r, out=out))
        nograd("darn.fwd_nograd_prenorm_out=_residual_out=",
               lambda: rms(x, w, None, r, prenorm=True, out=out, residual_out=resout))
        lo, hi = both[:, :n], both[:, n:]  # the views made once (slicing costs more than darn's call here)
        nograd("darn.fwd_nograd_prenorm_out=_residual_out=_halves",
               lambda: rms(x, w, None, r, prenorm=True, out=lo, residual_out=hi))
    nograd("torch.add", lambda: x + r)
    nograd("torch.add_out", lambda: torch.add(x, r, out=out))
    nograd("torch.F.layer_norm", lambda: torch.nn.functional.layer_norm(x, (n,), w, None, 1e-6))
    nograd("torch.step.fwd_nograd", lambda: torch_step(x, r, w))
    c["darn.fwd_grad"] = (lambda: rms(xg, wg, None, rg, prenorm=True), 20000, False)
    c["darn.fwd_grad_p0.1"] = (lambda: rms(xg, wg, None, rg, dropout_p=0.1), 10000, False)
    c["darn.fwd_bwd.backward_xw"] = (lambda: rms(xg, wg, None, r).backward(g), 5000, False)
    c["darn.fwd_bwd.autograd_grad"] = (lambda: torch.autograd.grad(rms(xg, wg, None, rg), (xg, wg, rg), g), 5000,
                                       False)
    c["torch.step.fwd_grad"] = (lambda: torch_step(xg, rg, wg), 10000, False)
    c["torch.step.fwd_bwd.backward_xw"] = (lambda: torch_step(xg, r, wg).backward(g), 3000, False)
    grads = (torch.empty_like(x), torch.empty_like(w), torch.empty_like(r))
    ncfg = (1e-6, 0.0, True, False, False, 2, False, False, False, None, 0)
    c["autograd.noop.fwd_grad"] = (lambda: _Noop.apply(xg, wg, None, rg, None, ncfg, grads)[0], 20000, False)
    c["autograd.noop.fwd_bwd.backward_xw"] = (
        lambda: _Noop.apply(xg, wg, None, r, None, ncfg, grads)[0].backward(g), 5000, False)
    # the floor: darn_fwd alone on prebuilt structs (same inputs, output kept)
    d = L.Desc()
    L.F["desc_init"](ctypes.addressof(d), L.RMSNORM, m, n, L.BF16)
    d.flags = L.FLAG_HAS_RESIDUAL
    t = L.FwdTensors(x.data_ptr(), 0, r.data_ptr(), 0, None, w.data_ptr(), None, out.data_ptr(), 0, None, 0, None,
                     None, None)
    c["darn_fwd_c_call"] = (lambda: L.fwd(d, t, None, 0, L.BACKEND_CPU, None), 20000, False)
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clock", choices=("thread", "wall"), default="thread")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    ap.add_argument("--scale", type=float, default=1.0, help="scale the number of calls per batch")
    ap.add_argument("--table", action="store_true", help="print a table (median [min, max]) instead of JSON")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args()
    if a.repeats < 3:
        ap.error("--repeats must be >= 3 (the spread needs them)")
    torch.set_num_threads(1)
    clock = time.thread_time_ns if a.clock == "thread" else time.perf_counter_ns
    cs = {k: v for k, v in cases(a.m, a.n).items() if a.only in k}
    vals = {k: [] for k in cs}
    for _ in range(a.repeats):
        for k, (fn, iters, no_grad) in cs.items():
            iters = max(50, int(iters * a.scale))
            if no_grad:
                with torch.no_grad():
                    vals[k].append(per_call(fn, iters, clock))
            else:
                vals[k].append(per_call(fn, iters, clock))
    res = {"torch": torch.__version__, "python": sys.version.split()[0], "M": a.m, "N": a.n, "dtype": "bf16",
           "clock": a.clock, "repeats": a.repeats, "darn_package": os.path.dirname(darn.__file__),
           "us": {k: round(statistics.median(v), 2) for k, v in vals.items()},
           "us_spread": {k: [round(min(v), 2), round(max(v), 2)] for k, v in vals.items()}}
    text = json.dumps(res, indent=1)
    if a.table:
        for k in res["us"]:
            print("%-52s %8.2f  [%.2f, %.2f]" % (k, res["us"][k], *res["us_spread"][k]))
    else:
        print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
