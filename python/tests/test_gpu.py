"""GPU tests (CUDA or ROCm PyTorch with libdarn built DARN_GPU=nvidia|amd); skipped without a device.

- every output and gradient of a GPU tensor call equals the CPU tensor call bit for bit (same seed/offset)
- the generator path: (seed, offset) from the default CUDA generator, offset advanced, manual_seed repeatable
- gradcheck on the GPU, non-contiguous inputs, side streams, a second device
- CUDA graph capture + replay of forward and backward: a fresh mask per replay, each replay equal to the CPU
  backend for the (seed, offset) that replay drew
- torch.compile(fullgraph=True) and torch.library.opcheck (torch >= 2.4)
- flash-attn's Triton layer_norm_fn (file given by DARN_FLASH_ATTN_FILE): same outputs within rounding at p = 0,
  same return conventions
- per-call overhead at M = 16, N = 4096 (printed; JSON to $DARN_PY_BENCH_OUT; asserted <= 10 us without and <= 20 us with
  autograd only with DARN_PY_BENCH_STRICT=1)
"""
import json
import os
import time
import warnings

import pytest
import torch

import darn
from conftest import ULP, assert_bitwise, keep_mask
from fa_loader import flash_attn_module

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA/ROCm device visible to torch")

DEV = "cuda"
U64 = (1 << 64) - 1
needs_custom_op = pytest.mark.skipif(not darn.HAS_CUSTOM_OP, reason="needs torch >= 2.4 (torch.library.custom_op)")


def gen_inputs(shape, xd, rd, wd, bd, has_rs, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    x = torch.randn(shape, generator=g).to(xd)
    r = torch.randn(shape, generator=g).to(rd) if rd is not None else None
    w = (torch.randn(n, generator=g) * 0.3 + 1).to(wd)
    b = (torch.randn(n, generator=g) * 0.1).to(bd) if bd is not None else None
    rs = (torch.rand(shape[:-1], generator=g) + 0.5) if has_rs else None
    return x, r, w, b, rs


def run_case(device, inputs, kw, out_dtype, prenorm=True, want_mask=True, grad_seed=1):
    # fresh leaves on `device` (never the caller's tensors: the CPU and GPU runs share `inputs`)
    x, r, w, b, rs = [t.detach().to(device, copy=True) if t is not None else None for t in inputs]
    leaves = [t.requires_grad_(True) for t in (x, r, w, b) if t is not None]
    outs = darn.layer_norm_fn(x, w, b, r, rowscale=rs, prenorm=prenorm, return_dropout_mask=want_mask,
                              out_dtype=out_dtype, **kw)
    outs = outs if isinstance(outs, tuple) else (outs,)
    y = outs[0]
    h = outs[1] if prenorm else None
    g = torch.Generator().manual_seed(grad_seed)
    gy = torch.randn(y.shape, generator=g).to(y.dtype).to(device)
    tensors, grads = [y], [gy]
    if prenorm:
        tensors.append(h)
        grads.append(torch.randn(h.shape, generator=g).to(h.dtype).to(device))
    torch.autograd.backward(tensors, grads)
    mask = outs[-2] if want_mask else None
    res = [y, h, mask] + [t.grad for t in leaves]
    return [t.detach().cpu() if isinstance(t, torch.Tensor) else t for t in res]


CASES = [
    # norm, shape, x, residual, weight, bias, out, rowscale, zero-centered, residual_in_fp32, p
    ("rms", (4, 7, 4096), "bf16", "f32", "bf16", None, None, False, False, False, 0.1),
    ("rms", (16, 1), "f32", None, "f32", None, None, False, False, False, 0.5),
    ("rms", (3, 1000), "f16", "f16", "f32", None, "f32", True, True, False, 0.0),
    ("rms", (2, 3, 8192), "bf16", None, "f32", None, None, False, False, True, 0.25),
    ("layer", (37, 768), "f32", "f32", "f32", "f32", None, False, False, False, 0.0),
    ("layer", (5, 12288), "bf16", "bf16", "bf16", "bf16", None, True, True, False, 0.3),
    ("layer", (64, 33), "f16", None, "f16", "f32", "bf16", False, False, True, 0.9),
    ("layer", (8, 2048), "bf16", "f32", "f32", "f32", "bf16", True, False, False, 1.0),
]
DT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, None: None}


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c))
@pytest.mark.parametrize("variant", ["prenorm+mask", "plain-regenerated-mask"])
def test_gpu_equals_cpu_bitwise(case, variant):
    norm, shape, xd, rd, wd, bd, od, rs, zc, rfp32, p = case
    inputs = gen_inputs(shape, DT[xd], DT[rd], DT[wd], DT[bd], rs)
    kw = dict(eps=1e-5, dropout_p=p, is_rms_norm=norm == "rms", zero_centered_weight=zc, residual_in_fp32=rfp32,
              seed=0xDEADBEEF12345678, offset=12)
    prenorm = want_mask = variant == "prenorm+mask"
    cpu = run_case("cpu", inputs, kw, DT[od], prenorm, want_mask)
    gpu = run_case(DEV, inputs, kw, DT[od], prenorm, want_mask)
    names = ["y", "residual_out", "mask", "dx", "dresidual", "dweight", "dbias"]
    for a, b, what in zip(cpu, gpu, names):
        assert_bitwise(a, b, what)
    if want_mask and p > 0:
        m = shape[-1]
        rows = cpu[2].numel() // m
        if rows * m <= 4096:
            assert torch.equal(cpu[2].reshape(rows, m), keep_mask(rows, m, p, 0xDEADBEEF12345678, 12))


def test_noncontiguous_and_side_stream_bitwise():
    n = 1024
    big = torch.randn(6, 2 * n + 8)
    x = big[:, 8:8 + n]
    w = torch.randn(n) * 0.1 + 1
    r = torch.randn(1, n).expand(6, n)
    cpu = darn.rms_norm_fn(x, w, None, r, dropout_p=0.2, prenorm=True, seed=9)
    xg = big.to(DEV)[:, 8:8 + n]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        gpu = darn.rms_norm_fn(xg, w.to(DEV), None, r.to(DEV), dropout_p=0.2, prenorm=True, seed=9)
    s.synchronize()
    assert_bitwise(cpu[0], gpu[0].cpu(), "y")
    assert_bitwise(cpu[1], gpu[1].cpu(), "h")
    xt = torch.randn(n, 6).t()
    assert_bitwise(darn.rms_norm_fn(xt, w, None), darn.rms_norm_fn(xt.to(DEV), w.to(DEV), None).cpu(), "transposed")


def test_preallocated_outputs_and_cached_workspace_bitwise():
    """out= / residual_out= as the two halves of one [M, 2N] buffer on the GPU: the CPU's bits, forward and
    backward; the backward's workspace (one per device and stream) reused across calls and streams."""
    m, n = 24, 1024
    g = torch.Generator().manual_seed(5)
    x = torch.randn(m, n, generator=g).bfloat16()
    r = torch.randn(m, n, generator=g).bfloat16()
    w = (torch.randn(n, generator=g) * 0.1 + 1).bfloat16()
    gy = torch.randn(m, n, generator=g).bfloat16()

    def run(dev, stream=None):
        # detach: x.to("cpu") is x itself, so the CPU run makes x require grad, and x.to(DEV) would then be a
        # non-leaf copy (no .grad): run 9 read that as a lost gradient
        xx, ww = x.detach().to(dev).requires_grad_(), w.detach().to(dev).requires_grad_()
        buf = torch.empty(m, 2 * n, dtype=torch.bfloat16, device=dev)
        y, h = darn.rms_norm_fn(xx, ww, None, r.to(dev), prenorm=True, dropout_p=0.1, seed=3,
                                out=buf[:, :n], residual_out=buf[:, n:])
        assert y.data_ptr() == buf.data_ptr()
        y.backward(gy.to(dev))
        return [t.detach().cpu() for t in (buf, xx.grad, ww.grad)]

    want = run("cpu")
    for _ in range(2):
        for got in (run(DEV), run(DEV)):
            for u, v in zip(got, want):
                assert_bitwise(u, v)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        got = run(DEV)
    s.synchronize()
    for u, v in zip(got, want):
        assert_bitwise(u, v)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_second_device():
    x = torch.randn(8, 256)
    w = torch.randn(256)
    cpu = darn.layer_norm_fn(x, w, None, dropout_p=0.1, seed=1)
    with torch.cuda.device(0):
        gpu = darn.layer_norm_fn(x.to("cuda:1"), w.to("cuda:1"), None, dropout_p=0.1, seed=1)
    assert gpu.device == torch.device("cuda:1")
    assert_bitwise(cpu, gpu.cpu())


@pytest.mark.parametrize("is_rms", [True, False])
def test_gradcheck_gpu(is_rms):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 40, generator=g).to(DEV).requires_grad_()
    r = torch.randn(4, 40, generator=g).to(DEV).requires_grad_()
    w = (torch.randn(40, generator=g) * 0.3 + 1).to(DEV).requires_grad_()
    b = (torch.randn(40, generator=g) * 0.1).to(DEV).requires_grad_()

    def f(x, r, w, b):
        return darn.layer_norm_fn(x, w, b, r, dropout_p=0.3, prenorm=True, is_rms_norm=is_rms, seed=5)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.autograd.gradcheck(f, (x, r, w, b), eps=1e-2, atol=2e-2, rtol=2e-2)


def test_generator_path_advances_offset_and_repeats():
    gen = torch.cuda.default_generators[torch.cuda.current_device()]
    if not hasattr(gen, "get_offset"):
        pytest.skip("torch < 2.1: no Generator.get_offset (darn draws a device (seed, offset) tensor instead)")
    m, n = 6, 1000
    x = torch.randn(m, n, device=DEV)
    w = torch.ones(n, device=DEV)
    torch.manual_seed(1234)
    s0, o0 = gen.initial_seed(), gen.get_offset()
    y1, h1, m1, _ = darn.rms_norm_fn(x, w, None, dropout_p=0.3, prenorm=True, return_dropout_mask=True)
    o1 = gen.get_offset()
    assert o1 == o0 + (m * n + 3) // 4 * 4
    y2, h2, m2, _ = darn.rms_norm_fn(x, w, None, dropout_p=0.3, prenorm=True, return_dropout_mask=True)
    assert not torch.equal(m1, m2)
    # the CPU backend with the (seed, offset) the generator gave: same bits
    yc, hc, mc, _ = darn.rms_norm_fn(x.cpu(), w.cpu(), None, dropout_p=0.3, prenorm=True, return_dropout_mask=True,
                                     seed=s0 & U64, offset=o0)
    assert_bitwise(yc, y1.cpu(), "y")
    assert_bitwise(hc, h1.cpu(), "h")
    assert_bitwise(mc, m1.cpu(), "mask")
    torch.manual_seed(1234)
    y1b = darn.rms_norm_fn(x, w, None, dropout_p=0.3)
    y2b = darn.rms_norm_fn(x, w, None, dropout_p=0.3)
    assert_bitwise(y1, y1b, "repeat 1")
    assert_bitwise(y2, y2b, "repeat 2")
    # modules in train mode draw from the generator too
    mod = darn.DropoutAddRMSNorm(n, p=0.3, device=DEV)
    torch.manual_seed(5)
    a = mod(x)
    torch.manual_seed(5)
    assert_bitwise(a, mod(x), "module repeat")


def _darn_node(t):
    stack, seen = [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "DarnFn" in node.name():
            return node
        stack.extend(f for f, _ in node.next_functions)
    raise AssertionError("no darn autograd node under %s" % t.grad_fn)


def test_cuda_graph_capture_and_replay():
    m, n = 8, 2048
    g = torch.Generator().manual_seed(11)
    x = torch.randn(m, n, generator=g).bfloat16().to(DEV).requires_grad_()
    r = torch.randn(m, n, generator=g).to(DEV).requires_grad_()
    w = (torch.randn(n, generator=g) * 0.2 + 1).bfloat16().to(DEV).requires_grad_()
    gy = torch.randn(m, n, generator=g).bfloat16().to(DEV)
    gh = torch.randn(m, n, generator=g).to(DEV)

    def step():
        y, h, mask, _ = darn.rms_norm_fn(x, w, None, r, dropout_p=0.3, prenorm=True, return_dropout_mask=True)
        rng = darn.ops._saved(_darn_node(y))[6]  # the (seed, offset) device tensor darn read
        torch.autograd.backward([y, h], [gy, gh])
        return y, h, mask, rng

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            step()
            x.grad = r.grad = w.grad = None
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y, h, mask, rng = step()
    assert rng.is_cuda, "under capture darn must read (seed, offset) from device memory"
    masks = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        seed, off = rng.cpu().tolist()
        xc, rc, wc = (t.detach().cpu().requires_grad_() for t in (x, r, w))
        yc, hc, mc, _ = darn.rms_norm_fn(xc, wc, None, rc, dropout_p=0.3, prenorm=True, return_dropout_mask=True,
                                         seed=seed & U64, offset=off)
        torch.autograd.backward([yc, hc], [gy.cpu(), gh.cpu()])
        for a, b, what in ((yc, y, "y"), (hc, h, "h"), (mc, mask, "mask"), (xc.grad, x.grad, "dx"),
                           (rc.grad, r.grad, "dresidual"), (wc.grad, w.grad, "dweight")):
            assert_bitwise(a.detach(), b.detach().cpu(), what)
        masks.append(mask.cpu().clone())
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])


@needs_custom_op
def test_torch_compile_fullgraph_gpu():
    def f(x, w, b, r):
        y, h = darn.layer_norm_fn(x, w, b, r, dropout_p=0.2, prenorm=True, seed=3)
        return y * 2, h

    def f_gen(x, w, b, r):
        return darn.rms_norm_fn(x, w, None, r, dropout_p=0.2, residual_in_fp32=True)

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 1024, generator=g).bfloat16().to(DEV).requires_grad_()
    w = torch.ones(1024, device=DEV, requires_grad=True)
    b = torch.zeros(1024, device=DEV, requires_grad=True)
    r = torch.randn(2, 5, 1024, generator=g).to(DEV).requires_grad_()
    cf = torch.compile(f, fullgraph=True)
    ya, ha = f(x, w, b, r)
    yb, hb = cf(x, w, b, r)
    assert_bitwise(ya, yb, "y")
    assert_bitwise(ha, hb, "h")
    ga = torch.autograd.grad((ya.float().sum(), ha.sum()), (x, w, b, r))
    gb = torch.autograd.grad((yb.float().sum(), hb.sum()), (x, w, b, r))
    for u, v, what in zip(ga, gb, ("dx", "dw", "db", "dr")):
        assert_bitwise(u, v, what)
    cg = torch.compile(f_gen, fullgraph=True)
    torch.manual_seed(8)
    y1 = cg(x, w, b, r)
    y2 = cg(x, w, b, r)
    torch.manual_seed(8)
    y1b = cg(x, w, b, r)
    assert_bitwise(y1, y1b, "compiled repeat")
    assert not torch.equal(y1, y2)
    y1.float().sum().backward()


@needs_custom_op
@pytest.mark.parametrize("device", ["cpu", DEV])
def test_opcheck(device):
    from darn import ops
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 64, generator=g).to(device).requires_grad_()
    r = torch.randn(6, 64, generator=g).to(device).requires_grad_()
    w = torch.randn(64, generator=g).to(device).requires_grad_()
    b = torch.randn(64, generator=g).to(device).requires_grad_()
    args = (x, w, b, r, None, 1e-5, 0.2, False, False, False, ops._CODE[torch.float32], True, True, True, 77, 0)
    torch.library.opcheck(torch.ops.darn.fwd.default, args)


def test_overhead_small_batch():
    """Per-call wall time of the forward at M = 16, N = 4096 (launch-bound: this is the Python + darn overhead)."""
    m, n = 16, 4096
    x = torch.randn(m, n, device=DEV, dtype=torch.bfloat16)
    r = torch.randn(m, n, device=DEV, dtype=torch.bfloat16)
    w = torch.ones(n, device=DEV, dtype=torch.bfloat16)
    xg = x.clone().requires_grad_()
    wg = w.clone().requires_grad_()

    def per_call(fn, iters=3000):
        for _ in range(200):
            fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - t0) / iters * 1e6)
        return best

    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "M": m, "N": n, "dtype": "bf16"}
    with torch.no_grad():
        res["fwd_no_grad_us"] = per_call(lambda: darn.rms_norm_fn(x, w, None, r))
        res["fwd_prenorm_no_grad_us"] = per_call(lambda: darn.rms_norm_fn(x, w, None, r, prenorm=True))
        res["fwd_dropout_no_grad_us"] = per_call(lambda: darn.rms_norm_fn(x, w, None, r, dropout_p=0.1))
        out = torch.empty_like(x)
        res["fwd_no_grad_out_us"] = per_call(lambda: darn.rms_norm_fn(x, w, None, r, out=out))
        res["torch_add_us"] = per_call(lambda: x + r)
        res["torch_add_out_us"] = per_call(lambda: torch.add(x, r, out=out))
        if hasattr(torch.nn.functional, "rms_norm"):
            res["torch_F_rms_norm_us"] = per_call(lambda: torch.nn.functional.rms_norm(x, (n,), w, 1e-6))
    res["fwd_autograd_us"] = per_call(lambda: darn.rms_norm_fn(xg, wg, None, r, prenorm=True))
    res["fwd_bwd_autograd_us"] = per_call(lambda: darn.rms_norm_fn(xg, wg, None, r).backward(x), iters=1000)
    try:
        fa = flash_attn_module()
    except Exception as e:  # the comparison tests report it; the timing goes on without it
        fa, res["flash_attn_import_error"] = None, repr(e)
    if fa is not None:
        with torch.no_grad():
            res["flash_attn_triton_fwd_no_grad_us"] = per_call(lambda: fa.rms_norm_fn(x, w, None, r))
    print("\ndarn per-call overhead (M=16, N=4096):", json.dumps(res, indent=1))
    out = os.environ.get("DARN_PY_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
    if os.environ.get("DARN_PY_BENCH_STRICT") == "1":  # issue 13's targets
        assert res["fwd_no_grad_us"] <= 10.0 and res["fwd_autograd_us"] <= 20.0, res


# ---- flash-attn's Triton layer_norm_fn ----------------------------------------------------------------------
def _fa_or_skip():
    fa = flash_attn_module()
    if fa is None:
        pytest.skip("set DARN_FLASH_ATTN_FILE to flash-attn's flash_attn/ops/triton/layer_norm.py (needs triton)")
    return fa


FA_CASES = [
    # is_rms, x, residual, weight, bias, prenorm, residual_in_fp32, out, zero_centered
    (True, "bf16", None, "bf16", None, False, False, None, False),
    (True, "bf16", "f32", "f32", None, True, False, None, False),
    (True, "f16", None, "f32", None, True, True, None, True),
    (False, "f32", "f32", "f32", "f32", True, False, None, False),
    (False, "bf16", "bf16", "bf16", "bf16", True, False, "f32", False),
    (False, "f16", None, "f16", "f16", False, True, None, True),
]


@pytest.mark.parametrize("case", FA_CASES, ids=lambda c: "-".join(str(v) for v in c))
@pytest.mark.parametrize("n", [768, 4096])
def test_matches_flash_attn_at_p0(case, n):
    fa = _fa_or_skip()
    is_rms, xd, rd, wd, bd, prenorm, rfp32, od, zc = case
    inputs = gen_inputs((3, 11, n), DT[xd], DT[rd], DT[wd], DT[bd], False, seed=n)
    results = []
    for fn in (darn.layer_norm_fn, fa.layer_norm_fn):
        x, r, w, b, _ = [t.detach().to(DEV, copy=True).requires_grad_() if t is not None else None for t in inputs]
        kw = dict(eps=1e-5, prenorm=prenorm, residual_in_fp32=rfp32, is_rms_norm=is_rms, out_dtype=DT[od])
        if zc:
            kw["zero_centered_weight"] = True
        outs = fn(x, w, b, r, **kw)
        outs = outs if isinstance(outs, tuple) else (outs,)
        y = outs[0]
        g = torch.Generator().manual_seed(7)
        grads = [torch.randn(y.shape, generator=g).to(y.dtype).to(DEV)]
        if prenorm:
            grads.append(torch.randn(outs[1].shape, generator=g).to(outs[1].dtype).to(DEV))
        torch.autograd.backward(list(outs[:len(grads)]), grads)
        results.append([t.detach() for t in outs] + [t.grad for t in (x, r, w, b) if t is not None])
    d, f = results
    assert len(d) == len(f)
    for i, (a, b) in enumerate(zip(d, f)):
        assert a.shape == b.shape and a.dtype == b.dtype, (i, a.dtype, b.dtype)
        if prenorm and i == 1 and rd is not None:  # h = x + residual: one rounding in both
            assert_bitwise(a, b, "residual_out")
            continue
        # fp32 math in both, different summation orders, and flash-attn norms the unrounded h while darn norms
        # h as stored: a few ulps of the coarser of the output's and h's dtypes, relative to the tensor's scale
        hd = DT[rd] if rd is not None else (torch.float32 if rfp32 else DT[xd])
        u = max(ULP[a.dtype], ULP[hd])
        scale = b.double().abs().max().item() + 1e-6
        err = (a.double() - b.double()).abs().max().item()
        assert err <= 8 * u * scale + 2e-5 * scale, ("output %d" % i, err, scale)


def test_return_conventions_match_flash_attn():
    fa = _fa_or_skip()
    x = torch.randn(2, 3, 256, device=DEV)
    w = torch.ones(256, device=DEV)
    r = torch.randn(2, 3, 256, device=DEV)
    for kw in (dict(), dict(prenorm=True), dict(residual=r, prenorm=True), dict(dropout_p=0.1),
               dict(dropout_p=0.1, return_dropout_mask=True), dict(prenorm=True, return_dropout_mask=True),
               dict(residual=r, prenorm=True, dropout_p=0.2, return_dropout_mask=True),
               dict(residual_in_fp32=True, prenorm=True)):
        a = darn.layer_norm_fn(x, w, None, **kw)
        b = fa.layer_norm_fn(x, w, None, **kw)
        a = a if isinstance(a, tuple) else (a,)
        b = b if isinstance(b, tuple) else (b,)
        assert len(a) == len(b), kw
        for u, v in zip(a, b):
            assert (u is None) == (v is None), kw
            if u is not None:
                assert u.shape == v.shape and u.dtype == v.dtype, (kw, u.shape, v.shape, u.dtype, v.dtype)


_FP8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
        if hasattr(torch, n)]


@pytest.mark.skipif(not _FP8, reason="this torch has no float8 dtypes")
@pytest.mark.parametrize("fp8", _FP8, ids=str)
@pytest.mark.parametrize("n", [300, 4096, 20000])  # a partial last group; the 8-byte store; re-read rows
def test_fp8_out_gpu_equals_cpu_bitwise(fp8, n):
    """An fp8 out on the GPU (the run-time-dtype kernels' fp8 store) has the CPU's codes, with dropout."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(9, n, generator=g, dtype=torch.bfloat16)
    r = torch.randn(9, n, generator=g)
    w = torch.randn(n, generator=g) * 200  # some |y| past every format's max
    with torch.no_grad():
        want = darn.rms_norm_fn(x, w, None, r, out_dtype=fp8, dropout_p=0.2, seed=5)
        got = darn.rms_norm_fn(x.to(DEV), w.to(DEV), None, r.to(DEV), out_dtype=fp8, dropout_p=0.2, seed=5)
    assert got.dtype is fp8 and got.device.type == "cuda"
    assert torch.equal(got.cpu().view(torch.uint8), want.view(torch.uint8))


# ---- flash-attn's parallel residual (x1, weight1, bias1) -------------------------------------------------------
PAR_CASES = [
    # is_rms, x, residual, weight, bias, rowscale, p, x1?, weight1?, bias1?
    (True, torch.bfloat16, torch.float32, torch.float32, None, False, 0.1, True, True, False),
    (True, torch.float16, None, torch.float16, None, False, 0.0, True, True, False),
    (False, torch.bfloat16, torch.bfloat16, torch.bfloat16, torch.bfloat16, False, 0.2, True, True, True),
    (False, torch.float32, torch.float32, torch.float32, torch.float32, True, 0.3, True, False, False),
    (False, torch.float32, None, torch.float32, torch.float32, False, 0.0, False, True, True),
]


def _run_par(device, inputs, case, n):
    is_rms, xd, rd, wd, bd, has_rs, p, has_x1, has_w1, has_b1 = case
    x, r, w, b, rs, x1, w1, b1 = [t.detach().to(device, copy=True) if t is not None else None for t in inputs]
    leaves = [t.requires_grad_(True) for t in (x, r, w, b, x1, w1, b1) if t is not None]
    outs = darn.layer_norm_fn(x, w, b, r, x1, w1, b1, eps=1e-5, dropout_p=p, rowscale=rs, prenorm=True,
                              is_rms_norm=is_rms, return_dropout_mask=True, seed=77, offset=3)
    diff = [o for o in outs[:3 if has_w1 else 2]]
    g = torch.Generator().manual_seed(5)
    grads = [torch.randn(o.shape, generator=g).to(o.dtype).to(device) for o in diff]
    torch.autograd.backward(diff, grads)
    return [o.detach() if o is not None else None for o in outs] + [t.grad for t in leaves]


@pytest.mark.parametrize("case", PAR_CASES, ids=lambda c: "-".join(str(v) for v in c))
@pytest.mark.parametrize("n", [512, 4096])
def test_parallel_residual_gpu_equals_cpu_bitwise(case, n):
    is_rms, xd, rd, wd, bd, has_rs, p, has_x1, has_w1, has_b1 = case
    x, r, w, b, rs = gen_inputs((6, 5, n), xd, rd, wd, bd, has_rs, seed=n)
    g = torch.Generator().manual_seed(n + 1)
    x1 = torch.randn(x.shape, generator=g).to(xd) if has_x1 else None
    w1 = (torch.randn(n, generator=g) * 0.3 + 1).to(wd) if has_w1 else None
    b1 = (torch.randn(n, generator=g) * 0.1).to(bd or wd) if has_b1 else None
    inputs = (x, r, w, b, rs, x1, w1, b1)
    cpu = _run_par("cpu", inputs, case, n)
    gpu = _run_par(DEV, inputs, case, n)
    assert len(cpu) == len(gpu)
    for i, (u, v) in enumerate(zip(cpu, gpu)):
        assert_bitwise(u, v, "output/gradient %d" % i)
