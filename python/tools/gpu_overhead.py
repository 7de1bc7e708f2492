"""Per-call cost of darn's PyTorch forward at a launch-bound shape (default M = 16, N = 4096, bf16) on a GPU,
with references (torch, flash-attn's Triton layer_norm_fn) and a breakdown of darn's path.

    DARN_LIBRARY=/path/to/libdarn.so [DARN_FLASH_ATTN_FILE=/path/to/flash_attn/ops/triton/layer_norm.py] \\
        python3 python/tools/gpu_overhead.py [--device cuda|cpu] [--m 16] [--n 4096] [--out FILE]

Prints JSON. "us": microseconds per call, the median over batches of back-to-back calls (each batch timed on the
host's wall clock and closed by a device synchronization, so a host-bound call shows its host time and a
device-bound one its device time); "us_min": the fastest batch. "device_us": the same calls replayed from a CUDA
graph (no host work: the kernels' own time, for comparison). "part.*" split darn's no-grad forward
(rms_norm_fn(x, w, None, residual)) into the Python wrapper without the C call, the C call on a prebuilt
argument block (darn's checks + the kernel launch), darn's descriptor checks alone (darn_fwd_workspace_size,
no launch) and smaller pieces; "explained" adds the first two up for comparison with the whole call. Fails
soft: what cannot run is listed under "errors" and the rest is still measured. `--device cpu` runs the same on
CPU tensors (darn's CPU backend), to check the script without a GPU. Budget: cases starting after 25 s are
skipped (flash-attn's first calls compile and autotune Triton kernels).
"""
import time

T_PROCESS = time.perf_counter()  # the budget counts the imports too

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYROOT = os.path.dirname(HERE)
sys.path.insert(0, PYROOT)
sys.path.insert(0, os.path.join(PYROOT, "tests"))  # fa_loader

import torch  # noqa: E402

BUDGET_S = 25.0  # a case starting later than this is skipped (the whole run stays well under a minute)
BATCH_S = 0.02  # target wall time of one batch
BATCHES = 7


class Bench:
    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.t_start = T_PROCESS
        self.res = {"us": {}, "us_min": {}, "device_us": {}, "errors": {}}

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def _left(self, name):
        if time.perf_counter() - self.t_start > BUDGET_S:
            self.res["errors"][name] = "skipped: time budget of %g s spent" % BUDGET_S
            return False
        return True

    def time(self, name, fn, setup=None, teardown=None):
        """Median per-call wall time of fn over BATCHES batches of back-to-back calls, each batch synchronized."""
        if not self._left(name):
            return None
        try:
            if setup:
                setup()
            try:
                for _ in range(20):
                    fn()
                self.sync()
                t0 = time.perf_counter()
                for _ in range(20):
                    fn()
                self.sync()
                calls = int(min(5000, max(20, BATCH_S / max((time.perf_counter() - t0) / 20, 1e-7))))
                per = []
                for _ in range(BATCHES):
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        fn()
                    self.sync()
                    per.append((time.perf_counter() - t0) / calls * 1e6)
            finally:
                if teardown:
                    teardown()
        except Exception as e:  # fail soft: record and go on
            self.res["errors"][name] = repr(e)
            return None
        self.res["us"][name] = round(statistics.median(per), 2)
        self.res["us_min"][name] = round(min(per), 2)
        return self.res["us"][name]

    def device_time(self, name, fn, calls=50, replays=20):
        """Per-call device time: fn called `calls` times inside one CUDA graph, replayed (no host work per call)."""
        if not self.cuda or not self._left("device:" + name):
            return
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(calls):
                    fn()
            graph.replay()
            self.sync()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            per = []
            for _ in range(5):
                start.record()
                for _ in range(replays):
                    graph.replay()
                end.record()
                end.synchronize()
                per.append(start.elapsed_time(end) * 1e3 / (replays * calls))
            self.res["device_us"][name] = round(statistics.median(per), 2)
        except Exception as e:
            self.res["errors"]["device:" + name] = repr(e)


def darn_cases(b, darn, x, r, w, g):
    xg, rg, wg = (t.detach().clone().requires_grad_() for t in (x, r, w))
    with torch.no_grad():
        b.time("darn.fwd_nograd", lambda: darn.rms_norm_fn(x, w, None, r))
        b.time("darn.fwd_nograd_prenorm", lambda: darn.rms_norm_fn(x, w, None, r, prenorm=True))
        # first layer of a pre-norm stack: no residual yet, residual_out in fp32
        b.time("darn.fwd_nograd_prenorm_rfp32_no_residual",
               lambda: darn.rms_norm_fn(x, w, None, None, prenorm=True, residual_in_fp32=True))
        b.time("darn.fwd_nograd_p0.1", lambda: darn.rms_norm_fn(x, w, None, r, dropout_p=0.1))
        b.time("darn.fwd_nograd_prenorm_rfp32_p0.1",
               lambda: darn.rms_norm_fn(x, w, None, None, prenorm=True, residual_in_fp32=True, dropout_p=0.1))
        b.time("darn.layer_norm_fwd_nograd", lambda: darn.layer_norm_fn(x, w, w, r))
        b.device_time("darn.fwd_nograd", lambda: darn.rms_norm_fn(x, w, None, r))
    b.time("darn.fwd_grad_prenorm", lambda: darn.rms_norm_fn(xg, wg, None, rg, prenorm=True))
    b.time("darn.fwd_bwd", lambda: torch.autograd.grad(darn.rms_norm_fn(xg, wg, None, rg), (xg, wg, rg), g))
    b.time("darn.fwd_bwd_p0.1",
           lambda: torch.autograd.grad(darn.rms_norm_fn(xg, wg, None, rg, dropout_p=0.1), (xg, wg, rg), g))


def darn_parts(b, darn, x, r, w):
    """darn.fwd_nograd taken apart."""
    from darn import _lib as L
    from darn import ops
    n = x.shape[-1]
    m = x.numel() // n
    out = torch.empty_like(x)
    backend, stream, _ = ops._backend(x)
    # rms_norm_fn(x, w, None, r)'s darn_fwd arguments (darn_desc fields, then darn_fwd_tensors), packed once
    args = (L.RMSNORM, m, n, L.BF16, L.BF16, L.BF16, L.BF16, L.BF16, L.FLAG_HAS_RESIDUAL, 1e-6, 0.0, 0, 0, 0, 0,
            x.data_ptr(), 0, r.data_ptr(), 0, 0, w.data_ptr(), 0, out.data_ptr(), 0, 0, 0, 0, 0, 0)
    block = L.call_buffer()
    L.pack_fwd(block[0], 0, *args)
    ws = ctypes.c_size_t(0)
    ws_addr = ctypes.addressof(ws)
    fwd_c, fwd_ws, f = ops._fwd_c, L._fwd_ws, L.F
    scratch = L.call_buffer()

    def patch(**kw):
        """(setup, teardown) for one timing: darn.ops globals replaced by kw, then put back."""
        saved = {k: getattr(ops, k) for k in kw}

        def setup():
            for k, v in kw.items():
                setattr(ops, k, v)

        def teardown():
            for k, v in saved.items():
                setattr(ops, k, v)
        return setup, teardown

    with torch.no_grad():
        call = lambda: darn.rms_norm_fn(x, w, None, r)  # noqa: E731
        s, t = patch(_fwd_c=lambda *a: 0)
        b.time("part.wrapper_no_c_call", call, s, t)
        s, t = patch(_fwd_c=lambda *a: 0, _empty_like=lambda *a, **k: out)
        b.time("part.wrapper_no_c_call_no_alloc", call, s, t)
    b.time("part.c_fwd_prebuilt_block", lambda: fwd_c(block[1], block[2], None, 0, backend, stream))
    b.time("part.c_desc_checks_only", lambda: fwd_ws(block[1], backend, ws_addr))
    b.time("part.ctypes_trivial_call", lambda: f["mask_row_bytes"](n))
    b.time("part.pack_into", lambda: L.pack_fwd(scratch[0], 0, *args))
    b.time("part.torch_empty_like", lambda: torch.empty_like(x))
    b.time("part.backend_and_stream", lambda: ops._backend(x))
    b.time("part.is_compiling", ops._is_compiling)
    if b.cuda:
        b.time("part.current_stream_object", lambda: torch.cuda.current_stream(x.get_device()).cuda_stream)
        b.time("part.draw_rng_from_generator", lambda: ops._draw_rng(x, None, 0, False))
    L.release_buffer(block)
    L.release_buffer(scratch)
    us = b.res["us"]
    if "part.wrapper_no_c_call" in us and "part.c_fwd_prebuilt_block" in us:
        b.res["explained"] = {"wrapper_no_c_call+c_fwd_prebuilt_block": round(
            us["part.wrapper_no_c_call"] + us["part.c_fwd_prebuilt_block"], 2),
            "darn.fwd_nograd": us.get("darn.fwd_nograd")}


def reference_cases(b, x, r, w, g):
    n = x.shape[-1]
    y = torch.empty_like(x)
    with torch.no_grad():
        b.time("torch.add", lambda: x + r)
        b.time("torch.add_out_no_alloc", lambda: torch.add(x, r, out=y))
        b.device_time("torch.add", lambda: x + r)
        b.time("torch.F.layer_norm", lambda: torch.nn.functional.layer_norm(x, (n,), w, None, 1e-6))
        if hasattr(torch.nn.functional, "rms_norm"):
            b.time("torch.F.rms_norm", lambda: torch.nn.functional.rms_norm(x, (n,), w, 1e-6))


def flash_attn_cases(b, x, r, w, g):
    try:
        from fa_loader import flash_attn_module
        fa = flash_attn_module()
    except Exception as e:
        b.res["errors"]["flash_attn"] = "import: " + repr(e)
        return
    if fa is None:
        b.res["errors"]["flash_attn"] = "not loaded: set DARN_FLASH_ATTN_FILE to flash_attn/ops/triton/layer_norm.py " \
                                        "(needs triton)"
        return
    xg, rg, wg = (t.detach().clone().requires_grad_() for t in (x, r, w))
    with torch.no_grad():
        b.time("flash_attn.fwd_nograd", lambda: fa.rms_norm_fn(x, w, None, r))
        b.time("flash_attn.fwd_nograd_prenorm_rfp32_no_residual",
               lambda: fa.rms_norm_fn(x, w, None, None, prenorm=True, residual_in_fp32=True))
        b.time("flash_attn.fwd_nograd_p0.1", lambda: fa.rms_norm_fn(x, w, None, r, dropout_p=0.1))
    b.time("flash_attn.fwd_bwd", lambda: torch.autograd.grad(fa.rms_norm_fn(xg, wg, None, rg), (xg, wg, rg), g))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args()
    res = {"torch": torch.__version__, "python": sys.version.split()[0], "M": a.m, "N": a.n, "dtype": "bf16"}
    b = Bench(torch.device(a.device))
    try:
        dev = torch.device(a.device)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("torch sees no CUDA/ROCm device (run with --device cpu to check the script)")
            res["device"] = torch.cuda.get_device_name(dev)
        else:
            torch.set_num_threads(1)
            res["device"] = "cpu (darn's CPU backend)"
        gen = torch.Generator().manual_seed(0)
        x, r, g = (torch.randn(a.m, a.n, generator=gen).to(dev, torch.bfloat16) for _ in range(3))
        w = torch.ones(a.n, device=dev, dtype=torch.bfloat16)
        groups = [("reference", reference_cases, (b, x, r, w, g))]
        try:
            import darn
            res.update(darn_library=darn.library_path, darn_version=darn.library_version)
            groups += [("darn", darn_cases, (b, darn, x, r, w, g)), ("darn_parts", darn_parts, (b, darn, x, r, w))]
        except Exception as e:
            b.res["errors"]["darn"] = "import: " + repr(e)
        if dev.type == "cuda":
            groups.append(("flash_attn", flash_attn_cases, (b, x, r, w, g)))
        for name, fn, args in groups:  # a group that breaks off leaves the others to run
            try:
                fn(*args)
            except Exception as e:
                b.res["errors"][name] = repr(e)
    except Exception as e:
        b.res["errors"]["setup"] = repr(e)
    res.update(b.res)
    res["target_us"] = 15.0
    if b.cuda and "darn.fwd_nograd" in res["us"]:
        res["fwd_nograd_meets_target"] = res["us"]["darn.fwd_nograd"] <= 15.0
    res["wall_s"] = round(time.perf_counter() - b.t_start, 1)
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
