"""Per-call wall time of darn's PyTorch functions on CPU tensors (darn's CPU backend), tiny shapes, one torch
thread: the Python path's overhead plus darn's CPU call. Thread CPU time (robust on a busy machine), best of 7.

    DARN_LIBRARY=build/none/libdarn.so python3 python/tools/cpu_overhead.py [M N]

Prints JSON (microseconds per call). Not GPU numbers: tests/test_gpu.py::test_overhead_small_batch times the
CUDA path, and tools/gpu_overhead.py takes it apart."""
import ctypes
import json
import os
import sys
import time

if os.environ.get("DARN_TEST_INSTALLED") != "1":  # the checkout's darn, unless told to use the installed one
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402

import darn  # noqa: E402
from darn import _lib as L  # noqa: E402


def per_call(fn, iters):
    for _ in range(min(iters, 500)):
        fn()
    best = float("inf")
    for _ in range(7):
        t0 = time.thread_time()
        for _ in range(iters):
            fn()
        best = min(best, (time.thread_time() - t0) / iters * 1e6)
    return round(best, 2)


def main():
    m, n = (int(v) for v in sys.argv[1:3]) if len(sys.argv) > 2 else (4, 64)
    torch.set_num_threads(1)
    dt = torch.bfloat16
    x, r, g = (torch.randn(m, n).to(dt) for _ in range(3))
    w = torch.ones(n, dtype=dt)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    res = {"torch": torch.__version__, "M": m, "N": n, "dtype": "bf16"}
    with torch.no_grad():
        res["fwd_no_grad_us"] = per_call(lambda: darn.rms_norm_fn(x, w, None, r), 20000)
        res["fwd_prenorm_no_grad_us"] = per_call(lambda: darn.rms_norm_fn(x, w, None, r, prenorm=True), 20000)
        res["fwd_dropout_no_grad_us"] = per_call(lambda: darn.rms_norm_fn(x, w, None, r, dropout_p=0.1), 20000)
        res["layer_norm_bias_no_grad_us"] = per_call(lambda: darn.layer_norm_fn(x, w, w, r), 20000)
        res["torch_add_us"] = per_call(lambda: x + r, 20000)
        res["torch_F_layer_norm_us"] = per_call(lambda: torch.nn.functional.layer_norm(x, (n,), w, None, 1e-6), 20000)
    res["fwd_autograd_us"] = per_call(lambda: darn.rms_norm_fn(xg, wg, None, r, prenorm=True), 20000)
    res["fwd_dropout_autograd_us"] = per_call(lambda: darn.rms_norm_fn(xg, wg, None, r, dropout_p=0.1), 10000)
    res["fwd_bwd_autograd_us"] = per_call(lambda: darn.rms_norm_fn(xg, wg, None, r).backward(g), 5000)
    # the floor: darn_fwd alone on prebuilt structs (same inputs, output kept)
    out = torch.empty(m, n, dtype=dt)
    d = L.Desc()
    L.F["desc_init"](ctypes.addressof(d), L.RMSNORM, m, n, L.BF16)
    d.flags = L.FLAG_HAS_RESIDUAL
    t = L.FwdTensors(x.data_ptr(), 0, r.data_ptr(), 0, None, w.data_ptr(), None, out.data_ptr(), 0, None, 0, None,
                     None, None)
    res["darn_fwd_c_call_us"] = per_call(lambda: L.fwd(d, t, None, 0, L.BACKEND_CPU, None), 20000)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
