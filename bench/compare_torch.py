#!/usr/bin/env python3
"""compare_torch.py — darn against PyTorch eager, torch.compile and flash-attn's Triton layer_norm_fn, in ONE
process on one GPU, with the device-to-device copy bandwidth measured in the same run.

Every implementation runs the same math per config (bench/README.md): h = dropout(x) + residual in fp32
(stored as h's dtype), y = norm(h) * weight (+ bias), cast to the output dtype; prenorm, so h is an
output too. Timing: torch.cuda.Event around one call, warm-up first, median of --reps (>= 20) runs;
calls whose minimal bytes would fit in 3x the last-level cache get a cache flush before each run
(outside the timed region). GB/s and % of copy bandwidth use the *minimal* bytes of the operation
(the same formula as darn-bench), whatever an implementation actually moves.

What is timed per direction:
  darn           darn_fwd / darn_bwd through ctypes (libdarn.so), on torch's current stream.
  torch_eager    fwd: the function (autograd recording on when the config has a backward);
                 bwd: torch.autograd.grad([y, h], [x, residual, weight(, bias)], [dy, dh]) on a fresh
                 graph each run: the forward runs untimed first, then the cache is flushed, then the
                 backward alone is timed (no .grad accumulation, no retain_graph).
  torch_compile  the same function through torch.compile (one compile per shape, outside timing); bwd as
                 eager, which runs the compiled backward.
  flash_triton   flash_attn.ops.triton.layer_norm.layer_norm_fn(..., prenorm=True), loaded from
                 --flash-attn-file; bwd as eager (its autograd.Function backward).
A peer that fails at a shape (OOM, unsupported N, compile error) gets {"impl", ..., "error"}.

Before timing, darn is checked against the eager function with p = 0 at M = 64, N = 1024 for every
config (all outputs and gradients within 2e-2 of the max, i.e. bf16 accuracy): the "check" entry of the
JSON; a mismatch is printed loudly (the ctypes mirror or the kernels are then wrong).

Output: one JSON in darn-bench's schema: {"date","gpu","commit","copy_GBps","check","rows":[darn],
"peers":[...]}, rewritten after every shape ("complete": false until the end).
Without torch, --dry-run prints the plan and checks the ctypes mirror on libdarn's CPU backend;
--device cpu runs everything on torch CPU tensors and darn's CPU backend (a smoke run, no GPU needed).
"""
import argparse
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import darn_ctypes as dc  # noqa: E402  (after the path insert)

DEFAULT_N = [256, 512, 768, 1024, 2048, 4096, 5120, 8192, 12288, 16384, 32768, 65536]
IMPLS = ["darn", "torch_eager", "torch_compile", "flash_triton"]
PEER_CONFIGS = ("train", "infer", "f32", "layernorm")  # mask: darn only (peers have no packed mask)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", help="libdarn.so (default: $DARN_LIBRARY, build/nvidia/libdarn.so, .devbundle/lib/libdarn.so.0)")
    ap.add_argument("--config", default="train,infer", help="configs: train,infer,f32,layernorm,mask (default train,infer)")
    ap.add_argument("--n", default=",".join(map(str, DEFAULT_N)), help="row lengths N")
    ap.add_argument("--elems", type=int, default=64 << 20, help="M * N of every shape (default 64Mi)")
    ap.add_argument("--reps", type=int, default=30, help="timed runs, median reported (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    ap.add_argument("--impl", default=",".join(IMPLS), help="implementations (default: all)")
    ap.add_argument("--flash-attn-file", help="path of flash_attn/ops/triton/layer_norm.py")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: torch's default)")
    ap.add_argument("--copy-mib", type=int, default=1024, help="reference copy size in MiB (default 1024)")
    ap.add_argument("--cache-mib", type=int, default=0, help="last-level cache MiB for flushing (default: from the GPU name)")
    ap.add_argument("--commit", help="commit recorded in the JSON (default: git rev-parse HEAD of this tree)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                    help="cuda (default), or cpu: torch CPU tensors, darn's CPU backend, host clock (smoke runs)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and self-test libdarn on the CPU; needs no torch")
    a = ap.parse_args(argv)
    a.configs = [c for c in a.config.split(",") if c]
    for c in a.configs:
        if c not in dc.CONFIGS:
            ap.error("unknown config %r" % c)
    a.ns = [int(v) for v in a.n.split(",") if v]
    a.impls = [i for i in a.impl.split(",") if i]
    for i in a.impls:
        if i not in IMPLS:
            ap.error("unknown impl %r (%s)" % (i, ", ".join(IMPLS)))
    if a.reps < 20:
        print("note: --reps %d < 20: fine for a smoke run, not for results" % a.reps, file=sys.stderr)
    return a


def git_commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cache_mib_for(name):
    for key, mib in (("H100", 50), ("H200", 50), ("H800", 50), ("A100", 40), ("MI300", 256)):
        if key in name:
            return mib
    return 128


def dry_run(args):
    print("plan: configs %s, impls %s, elems %d, reps %d (+%d warm-up), copy %d MiB"
          % (",".join(args.configs), ",".join(args.impls), args.elems, args.reps, args.warmup, args.copy_mib))
    for name in args.configs:
        cfg = dc.CONFIGS[name]
        for n in args.ns:
            m = args.elems // n
            print("  %-10s M=%-8d N=%-6d %s" % (name, m, n, "  ".join(
                "%s %.1f MB" % (d, dc.min_bytes(cfg, m, n, d) / 1e6) for d in dc.directions(cfg))))
    path = dc.find_library(args.lib)
    try:
        darn = dc.Darn(path)
    except (OSError, dc.DarnError) as e:
        print("libdarn: cannot load %s: %s" % (path, e))
        return 1
    print("libdarn: %s (version %s): struct layout ok" % (path, darn.version_string().decode()))
    print("CPU self-test of the ctypes mirror: %s ok" % ", ".join(dc.cpu_selftest(darn)))
    return 0


# ---- everything below needs torch -----------------------------------------------------------------------
class Bench:
    def __init__(self, args, torch):
        self.args, self.torch = args, torch
        self.cuda = args.device == "cuda"
        self.dev = torch.device(args.device)
        self.backend = dc.BACKEND_GPU if self.cuda else dc.BACKEND_CPU
        self.gpu = torch.cuda.get_device_name(0) if self.cuda else "cpu"
        cache = (args.cache_mib or cache_mib_for(self.gpu)) << 20
        self.flush_below = 3 * cache
        self.flush_buf = torch.empty(2 * cache, dtype=torch.uint8, device=self.dev)
        self.dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}

    def time_ms(self, fn, nbytes, setup=None):
        """Median ms of fn() over reps, after warm-up; flushes the cache before each run when nbytes is small.
        With setup: state = setup() runs untimed before every run, then the cache is flushed (so nothing
        setup wrote is still cached) and fn(state) is timed."""
        a = self.args
        flush = setup is not None or nbytes < self.flush_below
        for _ in range(a.warmup):
            fn(setup()) if setup else fn()
        times = []
        state = None
        for i in range(a.reps):
            if setup:
                state = None  # free the previous run's state before making the next
                state = setup()
            if flush:
                self.flush_buf.fill_(i & 0xFF)
            times.append(self.time_one((lambda: fn(state)) if setup else fn))
        return statistics.median(times)

    def time_one(self, fn):
        """Milliseconds of one fn(): CUDA events on the current stream, or the host clock on the CPU."""
        torch = self.torch
        if not self.cuda:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def empty_cache(self):
        if self.cuda:
            self.torch.cuda.empty_cache()

    def copy_gbps(self):
        torch = self.torch
        nbytes = self.args.copy_mib << 20
        src = torch.empty(nbytes, dtype=torch.uint8, device=self.dev).fill_(0x5A)
        dst = torch.empty_like(src).fill_(0xA5)
        ms = self.time_ms(lambda: dst.copy_(src), float("inf"))
        return 2.0 * nbytes / (ms * 1e6)

    def inputs(self, cfg, m, n, grad):
        """Random inputs of one shape (torch.randn on the device, seeded), requires_grad when grad."""
        torch, dt = self.torch, self.dtypes
        g = torch.Generator(device=self.dev).manual_seed(1)

        def rnd(shape, dtype):
            return torch.randn(shape, generator=g, device=self.dev, dtype=torch.float32).to(dt[dtype]).requires_grad_(grad)
        x, res = rnd((m, n), cfg["x"]), rnd((m, n), cfg["res"])
        w = (1.0 + 0.1 * torch.randn(n, generator=g, device=self.dev)).to(dt[cfg["w"]]).requires_grad_(grad)
        b = rnd((n,), cfg["b"]) if cfg["b"] else None
        return x, res, w, b


def torch_function(torch, cfg, dtypes):
    """The reference math of one config as a plain function (what eager runs and torch.compile compiles)."""
    F = torch.nn.functional
    p, eps, rms = cfg["p"], (1e-5 if cfg["norm"] == "layer" else 1e-6), cfg["norm"] == "rms"
    hd, od = dtypes[dc.h_dtype(cfg)], dtypes[cfg["out"]]

    def fn(x, residual, weight, bias):
        xf = x.float()
        if p > 0:
            xf = F.dropout(xf, p=p, training=True)
        h = (xf + residual.float()).to(hd)
        hf = h.float()
        if rms:
            y = hf * torch.rsqrt(hf.square().mean(-1, keepdim=True) + eps)
        else:
            y = F.layer_norm(hf, hf.shape[-1:], eps=eps)
        y = y * weight.float()
        if bias is not None:
            y = y + bias.float()
        return y.to(od), h
    return fn


def load_flash(path):
    """layer_norm_fn from flash-attn's Triton file, imported by path. The file imports helpers from the
    flash_attn package (flash_attn.utils.torch: custom_fwd/custom_bwd; newer versions also
    flash_attn.utils.library: triton_op); where flash_attn is not installed, small stand-ins are registered."""
    import torch
    _register_flash_stand_ins(torch)
    spec = importlib.util.spec_from_file_location("flash_layer_norm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.layer_norm_fn


def _register_flash_stand_ins(torch):
    def have(name):
        try:
            importlib.import_module(name)
            return True
        except Exception:  # noqa: BLE001 — ImportError, or a flash_attn whose CUDA extension fails to load
            return False

    def module(name):
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
        return sys.modules[name]

    if not have("flash_attn.utils.torch"):
        new_amp = hasattr(torch.amp, "custom_fwd")  # torch >= 2.4 wants device_type

        def amp(dec):
            def wrap(*a, **k):
                if new_amp:
                    k["device_type"] = "cuda"
                return dec(*a, **k)
            return wrap
        src = torch.amp if new_amp else torch.cuda.amp
        for name in ("flash_attn", "flash_attn.utils"):
            module(name)
        shim = module("flash_attn.utils.torch")
        shim.custom_fwd, shim.custom_bwd = amp(src.custom_fwd), amp(src.custom_bwd)
    if not have("flash_attn.utils.library"):
        try:
            from torch._library.triton import set_wrap_triton_enabled
        except ImportError:
            set_wrap_triton_enabled = None

        def triton_op(name, fn=None, *, mutates_args, schema=None, allow_decomposition=True):
            """Eager stand-in of flash_attn.utils.library.triton_op: a torch.library custom op with the
            given schema whose body launches the Triton kernels directly (no tracing support needed)."""
            def dec(f):
                def backend_fn(*a, **k):
                    if set_wrap_triton_enabled is None:
                        return f(*a, **k)
                    with set_wrap_triton_enabled(False):
                        return f(*a, **k)
                op = torch.library.custom_op(name, backend_fn, mutates_args=mutates_args, schema=schema)
                op.register_fake(f)
                return op
            return dec if fn is None else dec(fn)
        module("flash_attn.utils.library").triton_op = triton_op


def darn_runner(bench, darn, cfg, m, n, x, res, w, b):
    """(fwd, {dir: bwd}, buffers) closures calling libdarn on torch tensors, with every buffer allocated
    once; the forward has run once on return (h, rstd, mean, mask hold this shape's values)."""
    torch = bench.torch
    dt = bench.dtypes
    d = darn.desc(cfg, m, n)
    e = lambda shape, dtype: torch.empty(shape, dtype=dtype, device=bench.dev)  # noqa: E731
    out, h = e((m, n), dt[cfg["out"]]), e((m, n), dt[dc.h_dtype(cfg)])
    f = dc.FwdTensors()
    f.x, f.residual, f.weight = x.data_ptr(), res.data_ptr(), w.data_ptr()
    f.bias = b.data_ptr() if b is not None else None
    f.out, f.residual_out = out.data_ptr(), h.data_ptr()
    bufs = {"out": out, "h": h}
    if cfg["mask"]:
        bufs["mask"] = e((m * dc.mask_row_bytes(n),), torch.uint8)
        f.mask = bufs["mask"].data_ptr()
    if cfg["backward"]:
        bufs["rstd"] = e((m,), torch.float32)
        f.rstd = bufs["rstd"].data_ptr()
        if cfg["norm"] == "layer":
            bufs["mean"] = e((m,), torch.float32)
            f.mean = bufs["mean"].data_ptr()
    ws_bytes = darn.workspace_bytes(d, bench.backend)
    ws = bufs["ws"] = e((max(ws_bytes, 256),), torch.uint8)
    stream = (torch.cuda.current_stream().cuda_stream or None) if bench.cuda else None
    backend = bench.backend

    def fwd():
        darn.fwd(d, f, ws.data_ptr(), ws_bytes, backend, stream)
    bwds = {}
    if cfg["backward"]:
        dy, dh = torch.randn_like(out), torch.randn_like(h)
        dx, dres, dw = torch.empty_like(x), torch.empty_like(res), torch.empty_like(w)
        db = torch.empty_like(b) if b is not None else None
        bufs.update(dy=dy, dh=dh, dx=dx, dres=dres, dw=dw, db=db)
        for direction in dc.directions(cfg)[1:]:
            t = dc.BwdTensors()
            t.dy, t.h, t.weight, t.rstd, t.mean = dy.data_ptr(), f.residual_out, f.weight, f.rstd, f.mean
            t.dresidual_out = dh.data_ptr()
            t.mask = f.mask if direction == "bwd_mask" else None
            t.dx, t.dresidual, t.dweight = dx.data_ptr(), dres.data_ptr(), dw.data_ptr()
            t.dbias = db.data_ptr() if db is not None else None
            bwds[direction] = (lambda t=t: darn.bwd(d, t, ws.data_ptr(), ws_bytes, backend, stream))
    fwd()  # h, rstd, mean and the mask for the backward
    return fwd, bwds, bufs


def peer_runner(bench, fn, cfg, x, res, w, b):
    """(fwd, {"bwd": (setup, bwd)}) closures for a torch-level implementation. The backward is timed on a
    fresh graph each run: setup() runs the forward untimed, bwd((y, h)) is torch.autograd.grad of both
    outputs (h is the prenorm output, whose gradient is dresidual_out)."""
    torch = bench.torch
    args = (x, res, w, b)

    def fwd():
        if cfg["backward"]:
            return fn(*args)
        with torch.no_grad():
            return fn(*args)
    bwds = {}
    if cfg["backward"]:
        y, h = fn(*args)
        dy, dh = torch.randn_like(y), torch.randn_like(h)
        del y, h
        wrt = [t for t in args if t is not None]
        bwds["bwd"] = (lambda: fn(*args), lambda yh: torch.autograd.grad(list(yh), wrt, [dy, dh]))
    return fwd, bwds


def check_darn(bench, darn, name, m=64, n=1024, tol=2e-2):
    """darn against the eager function with p = 0 (same math, no random mask) at one small shape: the
    ctypes mirror and dtype mapping are right when every output agrees to bf16 accuracy. Returns
    {tensor: max |diff| / max |reference|} and whether all are within tol."""
    torch = bench.torch
    cfg = dict(dc.CONFIGS[name], p=0.0)
    x, res, w, b = bench.inputs(cfg, m, n, grad=False)
    _, bwds, bufs = darn_runner(bench, darn, cfg, m, n, x, res, w, b)
    ins = [t.detach().clone().requires_grad_(cfg["backward"]) if t is not None else None for t in (x, res, w, b)]
    with torch.set_grad_enabled(cfg["backward"]):
        y, h = torch_function(torch, cfg, bench.dtypes)(*ins)

    def rel(got, ref):
        ref = ref.detach().float()
        return float((got.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
    errs = {"out": rel(bufs["out"], y), "h": rel(bufs["h"], h)}
    if cfg["backward"]:
        bwds["bwd"]()
        bench.sync()
        wrt = [t for t in ins if t is not None]
        grads = torch.autograd.grad([y, h], wrt, [bufs["dy"], bufs["dh"]])
        for key, g in zip(("dx", "dres", "dw", "db"), grads):
            errs[key] = rel(bufs[key], g)
    return errs, all(v <= tol for v in errs.values())


def run(args):
    import torch
    bench = Bench(args, torch)
    try:
        import torch._dynamo
        for key in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit"):
            if hasattr(torch._dynamo.config, key):  # one compile per shape and config must not hit the limit
                setattr(torch._dynamo.config, key, 4096)
    except ImportError:
        pass  # torch < 2: no torch.compile; its rows say so
    darn = dc.Darn(dc.find_library(args.lib)) if "darn" in args.impls else None
    flash, flash_err = None, None
    if "flash_triton" in args.impls:
        try:
            if not args.flash_attn_file:
                raise ImportError("no --flash-attn-file given")
            flash = load_flash(args.flash_attn_file)
        except Exception as e:  # noqa: BLE001 — any import failure is reported as the peer's error
            flash_err = "import failed: %s: %s" % (type(e).__name__, e)
            print("flash_triton: " + flash_err, file=sys.stderr)
    checks = {}
    if darn is not None:
        for name in args.configs:
            try:
                errs, ok = check_darn(bench, darn, name)
            except Exception as e:  # noqa: BLE001
                errs, ok = {"error": short_error(e)}, False
            checks[name] = dict(errs, ok=ok)
            print("check darn vs torch eager (p = 0, M = 64, N = 1024), %s: %s%s" % (
                name, ", ".join("%s %.2g" % kv if not isinstance(kv[1], str) else "%s %s" % kv for kv in errs.items()),
                "" if ok else "   <-- MISMATCH: darn's numbers below are suspect"))
    copy = bench.copy_gbps()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "gpu": bench.gpu, "commit": args.commit or git_commit(), "copy_GBps": copy,
              "copy_bytes": args.copy_mib << 20, "elems": args.elems, "reps": args.reps, "warmup": args.warmup,
              "tool": "compare_torch.py", "torch": torch.__version__, "flash_attn_file": args.flash_attn_file,
              "darn": darn.version_string().decode() if darn else None, "check": checks, "rows": [], "peers": []}
    print("%s, copy bandwidth %.1f GB/s ((read + written) bytes / time, %d MiB)" % (bench.gpu, copy, args.copy_mib))
    print("%-14s %-10s %8s %6s %-8s %10s %9s %7s" % ("impl", "config", "M", "N", "dir", "ms", "GB/s", "%copy"))
    for name in args.configs:
        cfg = dc.CONFIGS[name]
        peers = peer_functions(torch, args, cfg, bench.dtypes, flash, flash_err)
        for n in args.ns:
            m = args.elems // n
            for impl in args.impls:
                if impl != "darn" and name not in PEER_CONFIGS:
                    continue
                rows = run_one(bench, impl, cfg, name, m, n, darn, peers.get(impl), copy)
                for r in rows:
                    (result["rows"] if impl == "darn" else result["peers"]).append(r)
                    print_row(r)
                bench.empty_cache()
            save(args.json, result)  # after every shape: a run cut short still leaves its results
    save(args.json, result, final=True)
    return 0


def save(path, result, final=False):
    if not path:
        return
    result["triton"] = getattr(sys.modules.get("triton"), "__version__", None)
    result["complete"] = final
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    if final:
        print("wrote " + path)


def peer_functions(torch, args, cfg, dtypes, flash, flash_err):
    """{impl: (function, None) or (None, error)} of the torch-level implementations of one config."""
    fn = torch_function(torch, cfg, dtypes)
    out = {"torch_eager": (fn, None)}
    if not hasattr(torch, "compile"):
        out["torch_compile"] = (None, "torch.compile is not in torch %s" % torch.__version__)
    elif "torch_compile" in args.impls:
        # dynamic=False: one specialised compile per shape (as a model with a fixed shape gets), in the warm-up.
        out["torch_compile"] = (torch.compile(fn, mode=args.compile_mode, dynamic=False), None)
    if flash is None:
        out["flash_triton"] = (None, flash_err)
    else:
        eps = 1e-5 if cfg["norm"] == "layer" else 1e-6
        out["flash_triton"] = (lambda x, res, w, b: flash(
            x, w, b, residual=res, eps=eps, dropout_p=cfg["p"], prenorm=True, residual_in_fp32=cfg["rif32"],
            is_rms_norm=cfg["norm"] == "rms"), None)
    return out


def run_one(bench, impl, cfg, name, m, n, darn, peer, copy):
    """Rows of one implementation at one shape: one per direction, or error rows. peer: (function, error)
    of a torch-level implementation (None for darn)."""
    dirs = dc.directions(cfg) if impl == "darn" else [d for d in dc.directions(cfg) if d != "bwd_mask"]
    base = lambda d: dict(({"impl": impl} if impl != "darn" else {}), config=name, M=m, N=n, dir=d)  # noqa: E731
    if peer is not None and peer[0] is None:
        return [dict(base(d), error=peer[1]) for d in dirs]
    if m < 1:
        return [dict(base(d), error="elems < N") for d in dirs]
    try:
        x, res, w, b = bench.inputs(cfg, m, n, grad=cfg["backward"] and impl != "darn")
        if impl == "darn":
            fwd, bwds, _ = darn_runner(bench, darn, cfg, m, n, x, res, w, b)
        else:
            fwd, bwds = peer_runner(bench, peer[0], cfg, x, res, w, b)
    except Exception as e:  # noqa: BLE001 — a failing peer is a result, not a crash
        return [dict(base(d), error=short_error(e)) for d in dirs]
    rows = []
    for d in dirs:
        call = fwd if d == "fwd" else bwds.get(d)
        setup, call = call if isinstance(call, tuple) else (None, call)
        nbytes = dc.min_bytes(cfg, m, n, d)
        try:
            ms = bench.time_ms(call, nbytes, setup)
            gbps = nbytes / (ms * 1e6)
            rows.append(dict(base(d), ms=ms, GBps=gbps, pct=100.0 * gbps / copy, bytes=nbytes))
        except Exception as e:  # noqa: BLE001
            rows.append(dict(base(d), error=short_error(e)))
            try:
                bench.sync()
            except Exception:  # noqa: BLE001 — a dead context fails every later call; they say so
                pass
    return rows


def short_error(e):
    text = "%s: %s" % (type(e).__name__, e)
    return text if len(text) < 400 else text[:400] + "..."


def print_row(r):
    head = "%-14s %-10s %8d %6d %-8s " % (r.get("impl", "darn"), r["config"], r["M"], r["N"], r["dir"])
    if "error" in r:
        print(head + "error: " + r["error"].splitlines()[0][:120])
    else:
        print(head + "%10.4f %9.1f %6.1f%%" % (r["ms"], r["GBps"], r["pct"]))
    sys.stdout.flush()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.dry_run:
        return dry_run(args)
    try:
        import torch
    except ImportError:
        print("compare_torch.py: torch is not installed (use --dry-run to check the setup without it)", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("compare_torch.py: torch sees no CUDA device", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
