"""Per-call cost of darn's PyTorch functions at a launch-bound shape (default M = 16, N = 4096, bf16 with a residual)
on a GPU: the forward without autograd, with autograd, forward + backward, the torch eager equivalent (x + residual,
then F.rms_norm, with autograd), flash-attn's Triton rms_norm_fn, and darn's calls taken apart.

    DARN_LIBRARY=/path/to/libdarn.so [DARN_FLASH_ATTN_FILE=/path/to/flash_attn/ops/triton/layer_norm.py] \\
        python3 python/tools/gpu_overhead.py [--repeats 5] [--out FILE] [--device cuda|cpu] [--m 16] [--n 4096]

Method. Every case is timed as BATCHES batches of back-to-back calls, each batch on the host's wall clock and
closed by a device synchronization (a host-bound call shows its host time, a device-bound one its device time);
a case's value in one repeat is the median over its batches. The whole set of cases runs --repeats times (>= 3)
in this one process, one repeat after the other; "us" is the median over the repeats, "spread" the [min, max]
over the repeats and "per_repeat" every repeat's value. "device_us": the same calls replayed from a CUDA graph
(no host work per call: the kernels' own time), median over replays.

Cases (all on x, residual, weight of [M, N] / [N], bf16; RMSNorm, p = 0 unless named):
- darn.fwd_nograd, ..._prenorm, ..._p0.1, layer_norm: forward calls under torch.no_grad();
- darn.fwd_grad: the forward with autograd (x, weight, residual require grad; prenorm as in a transformer block);
- darn.fwd_bwd.backward_xw: forward + y.backward(g) into the leaf grads of x and weight (residual not a leaf), as
  in python/tests/test_gpu.py (the issue's 173 us); ..._xwr: x, weight and residual leaves; ...set_to_none: the
  same with .grad reset to None before each step (no accumulation kernels); .autograd_grad: torch.autograd.grad
  (no .grad at all);
- torch.step.*: the same four with torch eager (h = x + residual; y = F.rms_norm(h, (N,), w); manual fp32 math on
  torch < 2.4) for comparison: the targets are darn.fwd_nograd <= 10 us, darn.fwd_grad <= 20 us and
  darn.fwd_bwd.backward_xw <= torch.step.fwd_bwd.backward_xw;
- bwd.*: the backward taken apart: bwd.ws_alloc (darn_bwd's workspace from the caching allocator), bwd.grad_alloc
  (dx, dweight, dresidual), bwd.c_call (darn_bwd on a prebuilt argument block, workspace and outputs preallocated: darn's
  checks + launch), bwd.run (darn.ops._bwd_run: the Python backward without autograd: allocations + packing + the
  call), bwd.node_apply (the autograd.Function's backward called directly, grad mode off as in the engine: +
  saved-tensor unpacking), bwd.engine
  (torch.autograd.grad over a retained graph: + the autograd engine, its device thread and the grad handoff, no
  forward or graph teardown), autograd.noop.* (a no-op autograd.Function with darn's inputs and outputs:
  bookkeeping alone);
- part.*: darn.fwd_nograd taken apart (the Python wrapper without the C call, the C call on a prebuilt block,
  darn's checks alone, allocation, packing, stream query).
"breakdown" subtracts medians to split darn.fwd_bwd.backward_xw into forward, engine, backward body, darn_bwd and
allocations; "targets" compares with the goals. Fails soft: what cannot run is listed under "errors" and the rest
is still measured. `--device cpu` runs everything that does not need CUDA on CPU tensors (darn's CPU backend), to
check the script without a GPU (the numbers then mean nothing for the GPU). Budget: cases starting after --budget
seconds are skipped (flash-attn's first calls compile and autotune Triton kernels).
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
sys.path.insert(0, os.path.join(PYROOT, "tests"))  # fa_loader
if os.environ.get("DARN_TEST_INSTALLED") != "1":  # the checkout's darn, unless told to use the installed one
    sys.path.insert(0, PYROOT)

import torch  # noqa: E402

BATCH_S = 0.02  # target wall time of one batch
BATCHES = 7
EPS = 1e-6


class Bench:
    def __init__(self, device, budget_s):
        self.cuda = device.type == "cuda"
        self.t_start = T_PROCESS
        self.budget_s = budget_s
        self.cur = None  # this repeat's {"us": {}, "us_min": {}, "device_us": {}}
        self.repeats = []
        self.errors = {}

    def new_repeat(self):
        self.cur = {"us": {}, "us_min": {}, "device_us": {}}
        self.repeats.append(self.cur)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def _left(self, name):
        if time.perf_counter() - self.t_start > self.budget_s:
            self.errors.setdefault(name, "skipped: time budget of %g s spent" % self.budget_s)
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
            self.errors[name] = repr(e)
            return None
        self.cur["us"][name] = round(statistics.median(per), 2)
        self.cur["us_min"][name] = round(min(per), 2)
        return self.cur["us"][name]

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
            self.cur["device_us"][name] = round(statistics.median(per), 2)
        except Exception as e:
            self.errors["device:" + name] = repr(e)


def leaves(*ts):
    return [t.detach().clone().requires_grad_() for t in ts]


def backward_cases(b, prefix, fwd, x, r, w, g):
    """prefix.fwd_grad and the four forward + backward variants, for fwd(x, residual, w) -> y."""
    xg, rg, wg = leaves(x, r, w)
    b.time(prefix + ".fwd_grad", lambda: fwd(xg, rg, wg))
    b.time(prefix + ".fwd_bwd.backward_xw", lambda: fwd(xg, r, wg).backward(g))
    b.time(prefix + ".fwd_bwd.backward_xwr", lambda: fwd(xg, rg, wg).backward(g))

    def step_to_none():
        xg.grad = wg.grad = rg.grad = None
        fwd(xg, rg, wg).backward(g)
    b.time(prefix + ".fwd_bwd.backward_xwr_set_to_none", step_to_none)
    b.time(prefix + ".fwd_bwd.autograd_grad", lambda: torch.autograd.grad(fwd(xg, rg, wg), (xg, wg, rg), g))


def darn_cases(b, darn, x, r, w, g):
    with torch.no_grad():
        b.time("darn.fwd_nograd", lambda: darn.rms_norm_fn(x, w, None, r))
        b.time("darn.fwd_nograd_prenorm", lambda: darn.rms_norm_fn(x, w, None, r, prenorm=True))
        # first layer of a pre-norm stack: no residual yet, residual_out in fp32
        b.time("darn.fwd_nograd_prenorm_rfp32_no_residual",
               lambda: darn.rms_norm_fn(x, w, None, None, prenorm=True, residual_in_fp32=True))
        b.time("darn.fwd_nograd_p0.1", lambda: darn.rms_norm_fn(x, w, None, r, dropout_p=0.1))
        b.time("darn.layer_norm_fwd_nograd", lambda: darn.layer_norm_fn(x, w, w, r))
        b.device_time("darn.fwd_nograd", lambda: darn.rms_norm_fn(x, w, None, r))
        # preallocated outputs (out= / residual_out=): no allocation, like torch.add_out_no_alloc
        out, ro = torch.empty_like(x), torch.empty_like(r)
        both = torch.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype, device=x.device)
        n = x.shape[-1]
        b.time("darn.fwd_nograd_out", lambda: darn.rms_norm_fn(x, w, None, r, out=out))
        b.time("darn.fwd_nograd_prenorm_out_residual_out",
               lambda: darn.rms_norm_fn(x, w, None, r, prenorm=True, out=out, residual_out=ro))
        lo, hi = both[..., :n], both[..., n:]  # views made once: their slicing is the caller's cost
        b.time("darn.fwd_nograd_prenorm_out_residual_out_halves",
               lambda: darn.rms_norm_fn(x, w, None, r, prenorm=True, out=lo, residual_out=hi))
    backward_cases(b, "darn", lambda xx, rr, ww: darn.rms_norm_fn(xx, ww, None, rr, eps=EPS), x, r, w, g)
    xg, rg, wg = leaves(x, r, w)
    out = torch.empty_like(x)
    b.time("darn.fwd_grad_out", lambda: darn.rms_norm_fn(xg, wg, None, rg, prenorm=True, out=out))
    b.time("darn.fwd_bwd_out.backward_xw", lambda: darn.rms_norm_fn(xg, wg, None, r, out=out).backward(g))
    b.time("darn.fwd_grad_p0.1", lambda: darn.rms_norm_fn(xg, wg, None, rg, dropout_p=0.1))
    b.time("darn.fwd_bwd_p0.1.autograd_grad",
           lambda: torch.autograd.grad(darn.rms_norm_fn(xg, wg, None, rg, dropout_p=0.1), (xg, wg, rg), g))


def torch_step(x, r, w):
    h = x + r
    if hasattr(torch.nn.functional, "rms_norm"):
        return torch.nn.functional.rms_norm(h, (h.shape[-1],), w, EPS)
    hf = h.float()  # torch < 2.4: the same math by hand
    return (hf * torch.rsqrt(hf.square().mean(-1, keepdim=True) + EPS)).to(h.dtype) * w


def reference_cases(b, x, r, w, g):
    n = x.shape[-1]
    y = torch.empty_like(x)
    with torch.no_grad():
        b.time("torch.add", lambda: x + r)
        b.time("torch.add_out_no_alloc", lambda: torch.add(x, r, out=y))
        b.device_time("torch.add", lambda: x + r)
        b.time("torch.F.layer_norm", lambda: torch.nn.functional.layer_norm(x, (n,), w, None, EPS))
        if hasattr(torch.nn.functional, "rms_norm"):
            b.time("torch.F.rms_norm", lambda: torch.nn.functional.rms_norm(x, (n,), w, EPS))
        b.time("torch.step.fwd_nograd", lambda: torch_step(x, r, w))
    backward_cases(b, "torch.step", torch_step, x, r, w, g)


class _Noop(torch.autograd.Function):
    """darn's autograd.Function shape (inputs x, weight, bias, residual, rowscale, cfg, plan; outputs out, residual_out,
    mask) with no work: forward allocates out, backward returns preallocated grads."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, rowscale, cfg, plan):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight, None, None, None, None, None)
        ctx.plan = plan
        return torch.empty_like(x), None, None

    @staticmethod
    def backward(ctx, dout, dresout, dmask):
        x, weight = ctx.saved_tensors[:2]
        grads = ctx.plan
        return grads[0], grads[1], None, grads[2], None, None, None


class _NoopAlloc(torch.autograd.Function):
    """_Noop with darn's allocations: forward out, h, rstd; backward dx, dweight (no darn call)."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, rowscale, cfg, plan):
        ctx.set_materialize_grads(False)
        h = torch.empty_like(x)
        rstd = x.new_empty((x.shape[0],), dtype=torch.float32)
        ctx.save_for_backward(h, weight, None)
        ctx.st = (rstd, None, None, None, plan)
        return torch.empty_like(x), None, None

    @staticmethod
    def backward(ctx, dout, dresout, dmask):
        h, weight, _ = ctx.saved_tensors
        return torch.empty_like(h), torch.empty_like(weight), None, None, None, None, None


def darn_backward_parts(b, darn, x, r, w, g):
    """darn.fwd_bwd taken apart: see the module docstring (bwd.*, autograd.noop.*)."""
    from darn import _lib as L
    from darn import ops
    n = x.shape[-1]
    xg, rg, wg = leaves(x, r, w)
    y = darn.rms_norm_fn(xg, wg, None, rg, eps=EPS)  # the graph the retained-graph cases reuse
    node = y.grad_fn
    if hasattr(ops, "_saved"):
        h, weight, rstd, mean, rowscale, mask, rng, (fwd, bcfg) = ops._saved(node)
    else:  # an older darn (before/after comparisons with this script): everything in saved_tensors
        h, weight, rstd, mean, rowscale, mask, rng = node.saved_tensors
        fwd, bcfg = node.plan
    dv, ws_bytes, backend = fwd[0], fwd[8], fwd[7]
    b.cur.setdefault("info", {})["bwd_workspace_bytes"] = ws_bytes
    b.time("bwd.ws_alloc", lambda: x.new_empty((ws_bytes,), dtype=torch.uint8))
    b.time("bwd.grad_alloc", lambda: (torch.empty_like(g, dtype=x.dtype), g.new_empty((n,), dtype=w.dtype),
                                      torch.empty_like(g, dtype=r.dtype)))
    # darn_bwd on a prebuilt block: the same arguments _bwd_run packs, workspace and outputs allocated once
    ws = x.new_empty((max(ws_bytes, 1),), dtype=torch.uint8)
    dx, dw, dres = torch.empty_like(x), torch.empty_like(w), torch.empty_like(r)
    block = L.call_buffer()
    L.pack_bwd(block[0], 0, *dv, 0, 0, 0, 0, *L.DESC_TAIL, g.data_ptr(), 0, h.data_ptr(), 0, weight.data_ptr(), rstd.data_ptr(), 0,
               0, 0, 0, 0, dx.data_ptr(), 0, dres.data_ptr(), 0, dw.data_ptr(), 0,
               0, 0, 0, 0, 0, 0, 0, 0)  # no parallel residual (dy1 ... dbias1)
    bwd_c = ops._bwd_c
    wsp = ws.data_ptr() if ws_bytes else None
    if b.cuda:
        idx = x.get_device()
        stream = ops._raw_stream
        call = lambda: bwd_c(block[1], block[2], wsp, ws_bytes, backend, stream(idx))  # noqa: E731
    else:
        call = lambda: bwd_c(block[1], block[2], wsp, ws_bytes, backend, None)  # noqa: E731
    st = call()
    if st:
        b.errors["bwd.c_call"] = "darn_bwd returned %d: %s" % (st, L.F["last_error"]().decode())
    else:
        b.time("bwd.c_call", call)
        b.device_time("bwd.c_call", call)
    b.time("bwd.run", lambda: ops._bwd_run(dv, ws_bytes, backend, g, h, weight, rstd, mean, rowscale, None, mask, None,
                                           True))
    with torch.no_grad():  # as the engine runs it (grad mode on would take the create_graph path)
        b.time("bwd.node_apply", lambda: node.apply(g, None, None))
    b.time("bwd.engine", lambda: torch.autograd.grad(y, (xg, wg, rg), g, retain_graph=True))
    # the no-op Function: autograd's own per-step cost with darn's argument and output shape
    grads = (torch.empty_like(x), torch.empty_like(w), torch.empty_like(r))
    cfg = (EPS, 0.0, True, False, False, 2, False, False, False, None, 0)

    def noop(xx, rr, ww):
        return _Noop.apply(xx, ww, None, rr, None, cfg, grads)[0]
    yn = noop(xg, rg, wg)
    b.time("autograd.noop.fwd", lambda: noop(xg, rg, wg))
    # the same through the C entry point darn calls (torch 2.x: without Function.apply's Python wrapper)
    c_apply = torch._C._FunctionBase.__dict__["apply"].__get__(None, _Noop)
    b.time("autograd.noop.fwd_c_apply", lambda: c_apply(xg, wg, None, rg, None, cfg, grads)[0])
    # the no-op with darn's allocations (out, h, rstd; dx, dweight) and no darn call: autograd + allocator alone
    b.time("autograd.noop_alloc.fwd_bwd.backward_xw",
           lambda: _NoopAlloc.apply(xg, wg, None, r, None, cfg, None)[0].backward(g))
    if ops.HAS_CUSTOM_OP:  # the registered custom op, eagerly (what torch.compile traces): its dispatcher + autograd
        op_args = (EPS, 0.0, True, False, False, L.BF16, True, False, True, None, 0)
        b.time("darn.custom_op.fwd_grad", lambda: torch.ops.darn.fwd(xg, wg, None, rg, None, *op_args)[0])
        b.time("darn.custom_op.fwd_bwd.backward_xw",
               lambda: torch.ops.darn.fwd(xg, wg, None, r, None, *op_args)[0].backward(g))
    b.time("autograd.noop.engine", lambda: torch.autograd.grad(yn, (xg, wg, rg), g, retain_graph=True))
    b.time("autograd.noop.fwd_bwd.backward_xw", lambda: noop(xg, r, wg).backward(g))
    b.time("autograd.noop.fwd_bwd.autograd_grad", lambda: torch.autograd.grad(noop(xg, rg, wg), (xg, wg, rg), g))
    L.release_buffer(block)


def darn_parts(b, darn, x, r, w):
    """darn.fwd_nograd taken apart."""
    from darn import _lib as L
    from darn import ops
    n = x.shape[-1]
    m = x.numel() // n
    out = torch.empty_like(x)
    backend, stream, _ = ops._backend(x)
    # rms_norm_fn(x, w, None, r)'s darn_fwd arguments (darn_desc fields, then darn_fwd_tensors), packed once
    args = (L.RMSNORM, m, n, L.BF16, L.BF16, L.BF16, L.BF16, L.BF16, L.FLAG_HAS_RESIDUAL, EPS, 0.0, 0, 0, 0, 0,
            *L.DESC_TAIL, x.data_ptr(), 0, r.data_ptr(), 0, 0, w.data_ptr(), 0, out.data_ptr(), 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0)  # no parallel residual (x1 ... mask1)
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
    if hasattr(L, "pack_fwd_tensors"):  # what the package packs per call: the plan's darn_desc bytes, the tensors
        nd = len(L.Desc._fields_)
        desc, targs = L.desc_bytes(*args[:nd]), args[nd:]
        sbuf, sview = scratch[0], memoryview(scratch[0]).cast("B")

        def pack_split():
            sview[:L.DESC_BYTES] = desc
            L.pack_fwd_tensors(sbuf, L.DESC_BYTES, *targs)
        b.time("part.pack_desc_copy_and_tensors", pack_split)
    b.time("part.torch_empty_like", lambda: torch.empty_like(x))
    b.time("part.backend_and_stream", lambda: ops._backend(x))
    b.time("part.is_compiling", ops._is_compiling)
    if b.cuda:
        b.time("part.current_stream_object", lambda: torch.cuda.current_stream(x.get_device()).cuda_stream)
        b.time("part.draw_rng_from_generator", lambda: ops._draw_rng(x, None, 0, False))
    L.release_buffer(block)
    L.release_buffer(scratch)


def flash_attn_cases(b, x, r, w, g):
    try:
        from fa_loader import flash_attn_module
        fa = flash_attn_module()
    except Exception as e:
        b.errors["flash_attn"] = "import: " + repr(e)
        return
    if fa is None:
        b.errors["flash_attn"] = "not loaded: set DARN_FLASH_ATTN_FILE to flash_attn/ops/triton/layer_norm.py " \
                                 "(needs triton)"
        return
    with torch.no_grad():
        b.time("flash_attn.fwd_nograd", lambda: fa.rms_norm_fn(x, w, None, r))
        b.time("flash_attn.fwd_nograd_prenorm_rfp32_no_residual",
               lambda: fa.rms_norm_fn(x, w, None, None, prenorm=True, residual_in_fp32=True))
        b.time("flash_attn.fwd_nograd_p0.1", lambda: fa.rms_norm_fn(x, w, None, r, dropout_p=0.1))
    backward_cases(b, "flash_attn", lambda xx, rr, ww: fa.rms_norm_fn(xx, ww, None, rr, eps=EPS), x, r, w, g)


def summarize(b):
    """Medians over the repeats, their spread, and every repeat's value, per kind of number."""
    out = {}
    for kind in ("us", "us_min", "device_us"):
        names = []
        for rep in b.repeats:
            names += [k for k in rep[kind] if k not in names]
        vals = {k: [rep[kind][k] for rep in b.repeats if k in rep[kind]] for k in names}
        out[kind] = {k: round(statistics.median(v), 2) for k, v in vals.items()}
        if kind != "us_min":
            out[kind + "_spread"] = {k: [min(v), max(v)] for k, v in vals.items()}
            out[kind + "_per_repeat"] = vals
    return out


def breakdown(us, dev):
    """darn.fwd_bwd.backward_xw split by subtracting medians (approximate: the parts overlap where the device
    works while the host goes on, and each part was timed on its own)."""
    g = us.get
    need = ["darn.fwd_bwd.backward_xw", "darn.fwd_grad", "bwd.engine", "bwd.node_apply", "bwd.run", "bwd.c_call",
            "bwd.ws_alloc", "bwd.grad_alloc"]
    if any(k not in us for k in need):
        return {"missing": [k for k in need if k not in us]}
    step = g("darn.fwd_bwd.backward_xw")
    bd = {
        "step (fwd + .backward(), leaves x, w)": step,
        "forward with autograd (darn.fwd_grad)": g("darn.fwd_grad"),
        "backward, the rest of the step": round(step - g("darn.fwd_grad"), 2),
        "  autograd engine, device thread, grad handoff (bwd.engine - bwd.node_apply)":
            round(g("bwd.engine") - g("bwd.node_apply"), 2),
        "  Function.backward outside _bwd_run (bwd.node_apply - bwd.run)": round(g("bwd.node_apply") - g("bwd.run"), 2),
        "  _bwd_run outside darn_bwd and allocations (bwd.run - bwd.c_call - bwd.ws_alloc - bwd.grad_alloc)":
            round(g("bwd.run") - g("bwd.c_call") - g("bwd.ws_alloc") - g("bwd.grad_alloc"), 2),
        "  darn_bwd call, prebuilt (bwd.c_call)": g("bwd.c_call"),
        "  workspace allocation (bwd.ws_alloc)": g("bwd.ws_alloc"),
        "  dx / dweight / dresidual allocation (bwd.grad_alloc)": g("bwd.grad_alloc"),
        "  rest: leaf-grad accumulation, graph teardown (step - fwd_grad - bwd.engine)":
            round(step - g("darn.fwd_grad") - g("bwd.engine"), 2),
    }
    if "darn.fwd_bwd.backward_xwr" in us and "darn.fwd_bwd.backward_xwr_set_to_none" in us:
        bd["accumulation into existing .grad, x/w/residual (backward_xwr - backward_xwr_set_to_none)"] = round(
            g("darn.fwd_bwd.backward_xwr") - g("darn.fwd_bwd.backward_xwr_set_to_none"), 2)
    if "autograd.noop.fwd_bwd.backward_xw" in us:
        bd["a no-op autograd.Function's step, same shape (autograd.noop.fwd_bwd.backward_xw)"] = g(
            "autograd.noop.fwd_bwd.backward_xw")
    if "bwd.c_call" in dev:
        bd["darn_bwd device time (device_us bwd.c_call)"] = dev["bwd.c_call"]
    return bd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the whole set of cases (default 5, >= 3)")
    ap.add_argument("--budget", type=float, default=400.0, help="seconds after which cases are skipped")
    ap.add_argument("--no-flash-attn", action="store_true", help="skip flash-attn's cases")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args()
    if a.repeats < 3:
        ap.error("--repeats must be >= 3 (the spread needs them)")
    res = {"torch": torch.__version__, "python": sys.version.split()[0], "M": a.m, "N": a.n, "dtype": "bf16",
           "repeats": a.repeats}
    dev = torch.device(a.device)
    b = Bench(dev, a.budget)
    groups = []
    try:
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
            res.update(darn_library=darn.library_path, darn_version=darn.library_version,
                       darn_contract=darn.contract_version, darn_package=os.path.dirname(darn.__file__))
            groups += [("darn", darn_cases, (b, darn, x, r, w, g)),
                       ("darn_backward_parts", darn_backward_parts, (b, darn, x, r, w, g)),
                       ("darn_parts", darn_parts, (b, darn, x, r, w))]
        except Exception as e:
            b.errors["darn"] = "import: " + repr(e)
        if dev.type == "cuda" and not a.no_flash_attn:
            groups.append(("flash_attn", flash_attn_cases, (b, x, r, w, g)))
    except Exception as e:
        b.errors["setup"] = repr(e)
    for rep in range(a.repeats if groups else 0):
        b.new_repeat()
        for name, fn, args in groups:  # a group that breaks off leaves the others to run
            try:
                fn(*args)
            except Exception as e:
                b.errors["%s (repeat %d)" % (name, rep)] = repr(e)
    res.update(summarize(b))
    info = {}
    for rep in b.repeats:
        info.update(rep.get("info", {}))
    res["info"] = info
    res["breakdown"] = breakdown(res.get("us", {}), res.get("device_us", {}))
    us = res.get("us", {})
    res["targets"] = {k: v for k, v in {
        "darn.fwd_nograd <= 10 us": us["darn.fwd_nograd"] <= 10.0 if "darn.fwd_nograd" in us else None,
        "darn.fwd_grad <= 20 us": us["darn.fwd_grad"] <= 20.0 if "darn.fwd_grad" in us else None,
        "darn.fwd_bwd.backward_xw <= torch.step.fwd_bwd.backward_xw": (
            us["darn.fwd_bwd.backward_xw"] <= us["torch.step.fwd_bwd.backward_xw"]
            if "darn.fwd_bwd.backward_xw" in us and "torch.step.fwd_bwd.backward_xw" in us else None),
    }.items()}
    if not b.cuda:
        res["targets_note"] = "CPU run: the targets are for the GPU; these numbers only check the script"
    res["errors"] = b.errors
    res["wall_s"] = round(time.perf_counter() - b.t_start, 1)
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
