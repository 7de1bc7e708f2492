#!/usr/bin/env python3
"""compare_torch.py — darn against torch eager, torch.compile, flash-attn's Triton rms_norm_fn / layer_norm_fn,
Liger-Kernel's fused add + RMSNorm and RMSNorm, and torch's F.rms_norm, in ONE process on one GPU, all timed
the same way, with the device-to-device copy bandwidth measured in the same process and the same way.

Timing (every implementation, darn included; bench/README.md has the method in full). Two columns, each its own
JSON row with a "timing" label:
  do_bench-median     device time with the GPU queue kept ahead of the host: triton.testing.do_bench(fn,
                      return_mode="median"), whose cache-clearing fill runs before every call; rep is sized for
                      >= --reps runs. Where triton is missing on a CUDA machine: "queue-ahead-median", the same
                      loop written here (fill, event, call, event; no synchronisation inside the loop).
                      On --device cpu: "host-median", the host clock around each call (a smoke run).
  sync-per-call       what a latency-bound caller sees: fill, synchronize, event, one call, event, synchronize;
                      host dispatch (Python, autograd, guards) is inside the time. Median of --reps runs.
The copy bandwidth (1 GiB uint8 dst.copy_(src)) is measured with both; each row's pct uses the copy of its own
timing. GB/s and pct use the *minimal* bytes of the config (the same formula as darn-bench), whatever an
implementation moves; peers that do less work than the config say so ("work") and carry their own minimal
bytes too ("peer_bytes", "peer_pct").

Directions: fwd (no autograd: torch.no_grad()), fwd_grad (configs with a backward: autograd recording, the forward
of a training step, saved tensors included), bwd (torch.autograd.grad of the outputs with retain_graph=True on
one graph, so do_bench can repeat it; darn: darn_bwd), bwd_mask (darn, mask config). darn's fwd and fwd_grad are
the same darn_fwd call (it always writes what the backward needs), timed twice.

Peers, what they compute and which configs they cover: PEERS below; printed at the start and stored in the JSON
("peer_info"). flash-attn and Liger-Kernel come from --peers-dir (default: .peers of this repository, if present):
flash_attn/ops/triton/layer_norm.py and liger_kernel/ops/*.py, added to sys.path; never committed.

Before timing, darn and every peer are checked against the eager function with p = 0 at M = 64, N = 1024 (out, h
and the gradients within 2e-2 of the largest reference value, bf16 accuracy): "check" (darn) and "check_peers".

Output: one JSON in darn-bench's schema plus "timing" per row and "contract" (darn_contract_version()), rewritten
after every shape ("complete": false until the end). --time-budget stops starting new shapes after that many
seconds (the skipped shapes are listed), so a run fits a time-limited call. torch.compile: dynamic=False (one
static compile per shape and grad mode), inductor compile_threads up to 16; each compiled row carries
"compile_s" (the first call, compile included) and every row "first_call_s".
Without torch, --dry-run prints the plan and checks the ctypes mirror on libdarn's CPU backend; --device cpu runs
everything on torch CPU tensors and darn's CPU backend (a smoke run, no GPU needed).
"""
import argparse
import datetime
import importlib
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import darn_ctypes as dc  # noqa: E402  (after the path insert)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_N = [256, 512, 768, 1024, 2048, 4096, 5120, 8192, 12288, 16384, 32768, 65536]
EPS = 1e-5  # every implementation; darn_desc_init's default, as in darn-bench
LIGER_CASTING_MODE = "gemma"  # fp32 math after the add, one rounding at the store: closest to darn's contract
TIMING_SYNC = "sync-per-call"
TIMING_DESCRIPTIONS = {
    "do_bench-median": "triton.testing.do_bench(fn, warmup, rep, return_mode='median'): its 256 MB cache-clearing "
                       "fill before every call, events around each call, no host synchronisation between calls "
                       "(the GPU queue stays ahead of the host); rep sized for >= reps runs",
    "queue-ahead-median": "do_bench's loop written in compare_torch.py (triton missing): the same fill before "
                          "every call, events around each call, no synchronisation inside the loop",
    "host-median": "--device cpu: host clock around each call (torch CPU ops and darn's CPU backend are "
                   "synchronous); a smoke run, no GPU meaning",
    TIMING_SYNC: "fill, synchronize, event, one call, event, synchronize: what a latency-bound caller sees, host "
                 "dispatch (Python, autograd, dynamo guards, ctypes) included; on the CPU the host clock",
}

# impl -> configs covered, work ("full" = everything the config computes), what it computes.
NORM_ONLY = ("less: RMSNorm of h only (no dropout, no residual add, h is an input, not written; "
             "bwd gives dh and dweight of y alone, no dresidual_out added)")
PEERS = {
    "darn": dict(configs=tuple(dc.CONFIGS), work="full",
                 computes="darn_fwd / darn_bwd through ctypes (libdarn), on torch's current stream; all buffers and "
                          "the workspace allocated once per shape"),
    "torch_eager": dict(configs=("train", "infer", "f32", "layernorm", "parallel"), work="full",
                        computes="the config's math as torch ops: h = (F.dropout(x.float()) [+ F.dropout(x1.float())] + "
                                 "residual.float()) stored as h's dtype; y = h * rsqrt(mean(h^2) + eps) (or "
                                 "F.layer_norm) * w (+ b), cast to out's dtype [and y1 the same with w1 (+ b1)]; "
                                 "returns (y, h) [parallel: (y, y1, h)]"),
    "torch_compile": dict(configs=("train", "infer", "f32", "layernorm", "parallel"), work="full",
                          computes="torch.compile of torch_eager's function, dynamic=False: one static compile per "
                                   "shape and grad mode (compile_s in its rows)"),
    "flash_triton": dict(configs=("train", "infer", "f32", "layernorm", "parallel"), work="full",
                         computes="flash_attn.ops.triton.layer_norm.rms_norm_fn / layer_norm_fn(x, w, b, residual, "
                                  "[x1, weight1, bias1,] eps, dropout_p, prenorm=True, residual_in_fp32): returns "
                                  "(y, h) [parallel: (y, y1, h)]; fails when a row of x is >= 64 KB (bf16 x: "
                                  "N = 65536)"),
    "liger_fused_add_rms_norm": dict(configs=("infer",), work="full",
                                     computes="liger_kernel.ops.fused_add_rms_norm.LigerFusedAddRMSNormFunction.apply("
                                              "x, residual, w, eps, 0.0, %r, False): h = x + residual (bf16), "
                                              "y = RMSNorm(h) * w in fp32, rounded once to bf16; also writes rstd "
                                              "(fp32). No dropout and no fp32 residual stream: infer only"
                                              % LIGER_CASTING_MODE),
    "liger_rms_norm": dict(configs=("train", "infer"), work=NORM_ONLY,
                           computes="liger_kernel.ops.rms_norm.LigerRMSNormFunction.apply(h, w, eps, 0.0, %r, "
                                    "False): y in h's dtype (train: f32 h, so an f32 y; infer: bf16)"
                                    % LIGER_CASTING_MODE),
    "torch_rms_norm": dict(configs=("train", "infer"), work=NORM_ONLY,
                           computes="torch.nn.functional.rms_norm(h, (N,), w in h's dtype, eps): y in h's dtype "
                                    "(torch >= 2.4)"),
}
IMPLS = list(PEERS)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", help="libdarn.so (default: $DARN_LIBRARY, build/nvidia/libdarn.so, .devbundle/lib/libdarn.so.0)")
    ap.add_argument("--config", default="train,infer",
                    help="configs: train,infer,f32,layernorm,mask,parallel (default train,infer)")
    ap.add_argument("--n", default=",".join(map(str, DEFAULT_N)), help="row lengths N")
    ap.add_argument("--elems", type=int, default=64 << 20, help="M * N of every shape (default 64Mi)")
    ap.add_argument("--reps", type=int, default=50, help="runs per measurement, median reported: do_bench's rep is "
                    "sized for at least this many, sync-per-call runs exactly this many (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls after the first (compiling) one (default 3)")
    ap.add_argument("--rep-ms", type=float, default=100.0, help="do_bench's rep at least (ms, default 100)")
    ap.add_argument("--warmup-ms", type=float, default=25.0, help="do_bench's warmup (ms, default 25)")
    ap.add_argument("--impl", default=",".join(IMPLS), help="implementations (default: all): " + ",".join(IMPLS))
    ap.add_argument("--peers-dir", help="folder holding flash_attn/ and liger_kernel/ (added to sys.path; default: "
                    "<repo>/.peers when it exists)")
    ap.add_argument("--flash-attn-file", help="flash_attn/ops/triton/layer_norm.py imported by path instead "
                    "(stand-ins for flash_attn.utils where it is not importable)")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: torch's default)")
    ap.add_argument("--compile-threads", type=int, default=0, help="inductor compile_threads (default: min(16, cores))")
    ap.add_argument("--copy-mib", type=int, default=0, help="reference copy size in MiB (default 1024; --device cpu: 64)")
    ap.add_argument("--commit", help="commit recorded in the JSON (default: git rev-parse HEAD of this tree)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--time-budget", type=float, default=0.0, help="seconds: start no new shape after this "
                    "(0 = no limit); what was skipped is listed in the JSON")
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
    a.copy_mib = a.copy_mib or (64 if a.device == "cpu" else 1024)
    if a.peers_dir is None and os.path.isdir(os.path.join(REPO, ".peers")):
        a.peers_dir = os.path.join(REPO, ".peers")
    if a.reps < 50:
        print("note: --reps %d < 50: fine for a smoke run, not for results" % a.reps, file=sys.stderr)
    return a


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def directions(cfg, impl):
    """Directions timed for impl: fwd, fwd_grad and bwd where the config has a backward; darn adds bwd_mask."""
    dirs = ["fwd"] + (["fwd_grad"] if cfg["backward"] else [])
    if impl == "darn":
        return dirs + dc.directions(cfg)[1:]
    return dirs + (["bwd"] if cfg["backward"] else [])


def covers(impl, name):
    return name in PEERS[impl]["configs"]


def norm_only(impl):
    return PEERS[impl]["work"] != "full"


def peer_bytes(cfg, m, n, direction):
    """Minimal bytes of what a norm-only peer computes: fwd reads h, w and writes y (h's dtype); bwd reads dy, h, w
    and writes dh, dw."""
    sh, sw = dc.DTYPE_SIZE[dc.h_dtype(cfg)], dc.DTYPE_SIZE[cfg["w"]]
    if direction in ("fwd", "fwd_grad"):
        return m * n * 2 * sh + n * sw
    return m * n * 3 * sh + 2 * n * sw


def dry_run(args):
    print("plan: configs %s, impls %s, elems %d, reps >= %d (+%d warm-up), copy %d MiB"
          % (",".join(args.configs), ",".join(args.impls), args.elems, args.reps, args.warmup, args.copy_mib))
    for name in args.configs:
        cfg = dc.CONFIGS[name]
        peers = [i for i in args.impls if covers(i, name)]
        print("  %-10s impls %s" % (name, ",".join(peers)))
        for n in args.ns:
            m = args.elems // n
            print("  %-10s M=%-8d N=%-6d %s" % (name, m, n, "  ".join(
                "%s %.1f MB" % (d, dc.min_bytes(cfg, m, n, d) / 1e6) for d in directions(cfg, "darn"))))
    print("peers dir: %s" % (args.peers_dir or "none (flash_triton / liger_* rows will be errors)"))
    path = dc.find_library(args.lib)
    try:
        darn = dc.Darn(path)
    except (OSError, dc.DarnError) as e:
        print("libdarn: cannot load %s: %s" % (path, e))
        return 1
    print("libdarn: %s (version %s, contract %d): struct layout ok"
          % (path, darn.version_string().decode(), darn.contract_version()))
    print("CPU self-test of the ctypes mirror: %s ok" % ", ".join(dc.cpu_selftest(darn)))
    return 0


# ---- everything below needs torch -----------------------------------------------------------------------
class Timer:
    """The two timing methods of one process (see the module docstring)."""

    def __init__(self, args, torch):
        self.args, self.torch = args, torch
        self.cuda = args.device == "cuda"
        self.do_bench, self.cache, self._clear = None, None, None
        self.method = "host-median"
        if not self.cuda:
            return
        try:
            import triton.testing
            self.do_bench = triton.testing.do_bench
            self.method = "do_bench-median"
        except Exception as e:  # noqa: BLE001 — no triton (or a broken one)
            print("note: triton.testing.do_bench unavailable (%s: %s): timing with compare_torch.py's copy of its "
                  "loop" % (type(e).__name__, e), file=sys.stderr)
            self.method = "queue-ahead-median"
        try:  # the fill do_bench runs before every call, for the other loops too
            drv = sys.modules["triton"].runtime.driver.active
            self.cache = drv.get_empty_cache_for_benchmark()
            self._clear = lambda: drv.clear_cache(self.cache)
        except Exception:  # noqa: BLE001 — no triton, or one without these entry points: the same 256 MB fill
            self.cache = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
            self._clear = self.cache.zero_
        self.clear_ms = self._estimate(lambda: None)

    def clear(self):
        if self._clear is not None:
            self._clear()

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def _estimate(self, fn, calls=3):
        """Host-synchronised ms per (fill + call)."""
        self.sync()
        t0 = time.perf_counter()
        for _ in range(calls):
            self.clear()
            fn()
        self.sync()
        return (time.perf_counter() - t0) * 1e3 / calls

    def device_ms(self, fn):
        """(median ms, runs) with the device method; runs is do_bench's count as its own formula gives it
        (rep / estimate), or the exact count of the other loops."""
        a = self.args
        if not self.cuda:
            return self._host_loop(fn), a.reps
        est = max(self._estimate(fn), 1e-3)
        rep = max(a.rep_ms, 1.5 * a.reps * est)
        if self.do_bench is not None:
            try:
                ms = self.do_bench(fn, warmup=a.warmup_ms, rep=rep, return_mode="median")
            except TypeError:  # a triton without return_mode: quantiles=[0.5] is the median
                ms = self.do_bench(fn, warmup=a.warmup_ms, rep=rep, quantiles=[0.5])
            return float(ms if not isinstance(ms, (list, tuple)) else ms[0]), max(1, int(rep / est))
        return self._queue_ahead(fn, max(a.reps, int(rep / est)), max(1, int(a.warmup_ms / est)))

    def _queue_ahead(self, fn, runs, warmup):
        torch = self.torch
        for _ in range(warmup):
            self.clear()
            fn()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
        for start, stop in ev:
            self.clear()
            start.record()
            fn()
            stop.record()
        self.sync()
        return statistics.median(s.elapsed_time(e) for s, e in ev), runs

    def _host_loop(self, fn):
        times = []
        for _ in range(self.args.reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def sync_ms(self, fn):
        """(median ms, runs) of sync-per-call."""
        if not self.cuda:
            return self._host_loop(fn), self.args.reps
        torch = self.torch
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(self.args.reps):
            self.clear()
            torch.cuda.synchronize()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        return statistics.median(times), self.args.reps


class Bench:
    def __init__(self, args, torch):
        self.args, self.torch = args, torch
        self.cuda = args.device == "cuda"
        self.dev = torch.device(args.device)
        self.backend = dc.BACKEND_GPU if self.cuda else dc.BACKEND_CPU
        self.gpu = torch.cuda.get_device_name(0) if self.cuda else "cpu"
        self.dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
        self.timer = Timer(args, torch)

    def empty_cache(self):
        if self.cuda:
            self.torch.cuda.empty_cache()

    def copy_gbps(self):
        """{timing: GB/s} of a 1 GiB (--copy-mib) device-to-device copy, timed with both methods."""
        torch = self.torch
        nbytes = self.args.copy_mib << 20
        src = torch.empty(nbytes, dtype=torch.uint8, device=self.dev).fill_(0x5A)
        dst = torch.empty_like(src).fill_(0xA5)
        fn = lambda: dst.copy_(src)  # noqa: E731
        fn()
        self.timer.sync()
        out = {}
        for timing, (ms, _) in ((self.timer.method, self.timer.device_ms(fn)), (TIMING_SYNC, self.timer.sync_ms(fn))):
            out[timing] = 2.0 * nbytes / (ms * 1e6)
        return out

    def inputs(self, cfg, m, n, grad):
        """Random inputs of one shape (torch.randn on the device, seeded), requires_grad when grad: [x, res, w, b],
        and for a parallel-residual config [x, res, w, b, x1, w1, b1] (None where the config has no such tensor), the
        arguments of torch_function's function and of darn_runner."""
        torch, dt = self.torch, self.dtypes
        g = torch.Generator(device=self.dev).manual_seed(1)

        def rnd(shape, dtype):
            return torch.randn(shape, generator=g, device=self.dev, dtype=torch.float32).to(dt[dtype]).requires_grad_(grad)

        def weight():
            return (1.0 + 0.1 * torch.randn(n, generator=g, device=self.dev)).to(dt[cfg["w"]]).requires_grad_(grad)
        x, res = rnd((m, n), cfg["x"]), rnd((m, n), cfg["res"])
        w = weight()
        b = rnd((n,), cfg["b"]) if cfg["b"] else None
        if not dc.is_parallel(cfg):
            return [x, res, w, b]
        x1 = rnd((m, n), cfg["x"]) if cfg.get("x1") else None
        w1 = weight() if cfg.get("w1") else None
        b1 = rnd((n,), cfg["b"] or cfg["w"]) if cfg.get("b1") else None
        return [x, res, w, b, x1, w1, b1]


def torch_function(torch, cfg, dtypes):
    """The reference math of one config as a plain function (what eager runs and torch.compile compiles)."""
    F = torch.nn.functional
    p, rms = cfg["p"], cfg["norm"] == "rms"
    hd, od = dtypes[dc.h_dtype(cfg)], dtypes[cfg["out"]]

    def fn(x, residual, weight, bias, x1=None, weight1=None, bias1=None):
        xf = x.float()
        if p > 0:
            xf = F.dropout(xf, p=p, training=True)
        if x1 is not None:  # parallel residual: x1 with its own dropout mask, added before the residual
            x1f = x1.float()
            xf = xf + (F.dropout(x1f, p=p, training=True) if p > 0 else x1f)
        h = (xf + residual.float()).to(hd)
        hf = h.float()
        if rms:
            xhat = hf * torch.rsqrt(hf.square().mean(-1, keepdim=True) + EPS)
        else:
            xhat = F.layer_norm(hf, hf.shape[-1:], eps=EPS)
        y = xhat * weight.float()
        if bias is not None:
            y = y + bias.float()
        if weight1 is None:
            return y.to(od), h
        y1 = xhat * weight1.float()
        if bias1 is not None:
            y1 = y1 + bias1.float()
        return y.to(od), y1.to(od), h  # flash-attn's order with weight1 and prenorm
    return fn


def norm_reference(torch):
    """RMSNorm of h times w in fp32, in h's dtype: what the norm-only peers compute (their check)."""
    def fn(h, w):
        hf = h.float()
        return (hf * torch.rsqrt(hf.square().mean(-1, keepdim=True) + EPS) * w.float()).to(h.dtype)
    return fn


# ---- peers from --peers-dir / --flash-attn-file ----------------------------------------------------------
def _module(name):
    if name not in sys.modules:
        sys.modules[name] = types.ModuleType(name)
    return sys.modules[name]


def _have(name):
    try:
        importlib.import_module(name)
        return True
    except Exception:  # noqa: BLE001 — ImportError, or a package whose extension fails to load
        return False


def register_packaging_stand_in():
    """liger_kernel/ops/utils.py needs packaging.version.Version (compare_version). Where packaging is not
    installed, a minimal Version (numeric release parts, compared as tuples) stands in. Returns whether it did."""
    if _have("packaging.version"):
        return False

    class Version:
        def __init__(self, text):
            self.text = str(text)
            m = re.match(r"\s*v?(\d+(?:\.\d+)*)", self.text)
            self.key = tuple(int(p) for p in m.group(1).split(".")) if m else (0,)
            while len(self.key) > 1 and self.key[-1] == 0:
                self.key = self.key[:-1]

        def __lt__(self, o): return self.key < o.key
        def __le__(self, o): return self.key <= o.key
        def __gt__(self, o): return self.key > o.key
        def __ge__(self, o): return self.key >= o.key
        def __eq__(self, o): return self.key == o.key
        def __hash__(self): return hash(self.key)
        def __repr__(self): return "<Version %r (compare_torch.py stand-in)>" % self.text

    _module("packaging")
    ver = _module("packaging.version")
    ver.Version, ver.parse = Version, Version
    sys.modules["packaging"].version = ver
    return True


def _register_flash_stand_ins(torch):
    """For --flash-attn-file without the flash_attn package: flash_attn.utils.torch (custom_fwd/custom_bwd)
    and flash_attn.utils.library (triton_op) stand-ins."""
    if not _have("flash_attn.utils.torch"):
        new_amp = hasattr(torch.amp, "custom_fwd")  # torch >= 2.4 wants device_type

        def amp(dec):
            def wrap(*a, **k):
                if new_amp:
                    k["device_type"] = "cuda"
                return dec(*a, **k)
            return wrap
        src = torch.amp if new_amp else torch.cuda.amp
        for name in ("flash_attn", "flash_attn.utils"):
            _module(name)
        shim = _module("flash_attn.utils.torch")
        shim.custom_fwd, shim.custom_bwd = amp(src.custom_fwd), amp(src.custom_bwd)
    if not _have("flash_attn.utils.library"):
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
        _module("flash_attn.utils.library").triton_op = triton_op


def peer_commits(peers_dir):
    """{project: commit} from the peers folder's README.txt ("<project>  github.com/..." then "commit <hex>")."""
    out, project = {}, None
    try:
        with open(os.path.join(peers_dir, "README.txt")) as f:
            for line in f:
                m = re.match(r"^(\S+)\s+github\.com/(\S+)", line)
                if m:
                    project = m.group(2)
                m = re.match(r"^\s+commit ([0-9a-f]{7,40})", line)
                if m and project:
                    out[project] = m.group(1)
    except OSError:
        pass
    return out


def load_peers(args, torch):
    """{impl: object or None}, {impl: import error}, stand-ins used."""
    objs, errs, stand_ins = {}, {}, []
    if args.peers_dir and args.peers_dir not in sys.path:
        sys.path.insert(0, os.path.abspath(args.peers_dir))

    def need(impl, loader):
        if impl not in args.impls:
            return
        try:
            objs[impl] = loader()
        except Exception as e:  # noqa: BLE001 — any import failure is the peer's error, not a crash
            errs[impl] = "import failed: %s: %s" % (type(e).__name__, e)
            print("%s: %s" % (impl, errs[impl]), file=sys.stderr)

    def flash():
        if args.flash_attn_file:
            _register_flash_stand_ins(torch)
            spec = importlib.util.spec_from_file_location("flash_layer_norm", args.flash_attn_file)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        else:
            if not args.peers_dir:
                raise ImportError("no --peers-dir (or .peers) and no --flash-attn-file")
            mod = importlib.import_module("flash_attn.ops.triton.layer_norm")
        return mod.rms_norm_fn, mod.layer_norm_fn

    def liger(module, name):
        def load():
            if not args.peers_dir:
                raise ImportError("no --peers-dir (or .peers)")
            if register_packaging_stand_in():
                stand_ins.append("packaging.version")
            return getattr(importlib.import_module(module), name)
        return load

    def torch_rms():
        if not hasattr(torch.nn.functional, "rms_norm"):
            raise ImportError("torch.nn.functional.rms_norm is not in torch %s (>= 2.4)" % torch.__version__)
        return torch.nn.functional.rms_norm

    need("flash_triton", flash)
    need("liger_fused_add_rms_norm", liger("liger_kernel.ops.fused_add_rms_norm", "LigerFusedAddRMSNormFunction"))
    need("liger_rms_norm", liger("liger_kernel.ops.rms_norm", "LigerRMSNormFunction"))
    need("torch_rms_norm", torch_rms)
    return objs, errs, stand_ins


def setup_compile(args, torch):
    """Dynamo/inductor settings: many recompiles allowed (one per shape and grad mode), compile_threads."""
    info = {"mode": args.compile_mode, "dynamic": False}
    try:
        import torch._dynamo
        for key in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                    "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, key):
                setattr(torch._dynamo.config, key, 4096)
    except ImportError:
        return dict(info, error="no torch._dynamo in torch %s" % torch.__version__)
    try:
        import torch._inductor.config as ic
        threads = args.compile_threads or min(16, os.cpu_count() or 1)
        ic.compile_threads = threads
        info.update(compile_threads=threads, cache_dir=os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
                    fx_graph_cache=getattr(ic, "fx_graph_cache", None))
    except ImportError as e:
        info["error"] = "torch._inductor: %s" % e
    return info


def peer_callables(torch, args, cfg, dtypes, objs, errs):
    """{impl: (function(x, res, w, b) or None, error)} for the full-work peers, and {impl: (function(h, w), error)}
    for the norm-only ones, of one config."""
    fn = torch_function(torch, cfg, dtypes)
    full, norm = {"torch_eager": (fn, None)}, {}
    if not hasattr(torch, "compile"):
        full["torch_compile"] = (None, "torch.compile is not in torch %s" % torch.__version__)
    elif "torch_compile" in args.impls:
        full["torch_compile"] = (torch.compile(fn, mode=args.compile_mode, dynamic=False), None)
    rms = cfg["norm"] == "rms"
    if "flash_triton" in objs:
        rms_fn, ln_fn = objs["flash_triton"]
        f = rms_fn if rms else ln_fn
        if dc.is_parallel(cfg):  # returns (y, y1, h) with weight1, as torch_function's
            full["flash_triton"] = (lambda x, res, w, b, x1, w1, b1: f(
                x, w, b, residual=res, x1=x1, weight1=w1, bias1=b1, eps=EPS, dropout_p=cfg["p"], prenorm=True,
                residual_in_fp32=cfg["rif32"]), None)
        else:
            full["flash_triton"] = (lambda x, res, w, b: f(
                x, w, b, residual=res, eps=EPS, dropout_p=cfg["p"], prenorm=True, residual_in_fp32=cfg["rif32"]), None)
    else:
        full["flash_triton"] = (None, errs.get("flash_triton", "not loaded"))
    if "liger_fused_add_rms_norm" in objs:
        L = objs["liger_fused_add_rms_norm"]
        full["liger_fused_add_rms_norm"] = (lambda x, res, w, b: L.apply(x, res, w, EPS, 0.0, LIGER_CASTING_MODE, False), None)
    else:
        full["liger_fused_add_rms_norm"] = (None, errs.get("liger_fused_add_rms_norm", "not loaded"))
    if "liger_rms_norm" in objs:
        R = objs["liger_rms_norm"]
        norm["liger_rms_norm"] = (lambda h, w: R.apply(h, w, EPS, 0.0, LIGER_CASTING_MODE, False), None)
    else:
        norm["liger_rms_norm"] = (None, errs.get("liger_rms_norm", "not loaded"))
    if "torch_rms_norm" in objs:
        T = objs["torch_rms_norm"]
        norm["torch_rms_norm"] = (lambda h, w: T(h, (h.shape[-1],), w, EPS), None)
    else:
        norm["torch_rms_norm"] = (None, errs.get("torch_rms_norm", "not loaded"))
    return full, norm


def darn_runner(bench, darn, cfg, m, n, x, res, w, b, x1=None, w1=None, b1=None):
    """({dir: callable}, buffers) calling libdarn on torch tensors, every buffer allocated once; the forward has
    run once on return (h, rstd, mean, mask hold this shape's values). x1, w1, b1: the parallel residual's inputs
    (bench.inputs gives them for such a config); then out1, dy1, dx1, dw1 (db1, mask1) are buffers too."""
    torch = bench.torch
    dt = bench.dtypes
    d = darn.desc(cfg, m, n, eps=EPS)
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
    if x1 is not None:
        f.x1 = x1.data_ptr()
        if cfg["mask"]:
            bufs["mask1"] = e((m * dc.mask_row_bytes(n),), torch.uint8)
            f.mask1 = bufs["mask1"].data_ptr()
    if w1 is not None:
        bufs["out1"] = e((m, n), dt[cfg["out"]])
        f.weight1, f.out1 = w1.data_ptr(), bufs["out1"].data_ptr()
    if b1 is not None:
        f.bias1 = b1.data_ptr()
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
    fwd.buffers = bufs  # libdarn holds raw pointers: the tensors live as long as the callables
    calls = {"fwd": fwd, "fwd_grad": fwd}
    if cfg["backward"]:
        dy, dh = torch.randn_like(out), torch.randn_like(h)
        dx, dres, dw = torch.empty_like(x), torch.empty_like(res), torch.empty_like(w)
        db = torch.empty_like(b) if b is not None else None
        bufs.update(dy=dy, dh=dh, dx=dx, dres=dres, dw=dw, db=db)
        if x1 is not None:
            bufs["dx1"] = torch.empty_like(x1)
        if w1 is not None:
            bufs["dy1"], bufs["dw1"] = torch.randn_like(bufs["out1"]), torch.empty_like(w1)
        if b1 is not None:
            bufs["db1"] = torch.empty_like(b1)
        for direction in dc.directions(cfg)[1:]:
            t = dc.BwdTensors()
            t.dy, t.h, t.weight, t.rstd, t.mean = dy.data_ptr(), f.residual_out, f.weight, f.rstd, f.mean
            t.dresidual_out = dh.data_ptr()
            t.mask = f.mask if direction == "bwd_mask" else None
            t.dx, t.dresidual, t.dweight = dx.data_ptr(), dres.data_ptr(), dw.data_ptr()
            t.dbias = db.data_ptr() if db is not None else None
            if x1 is not None:
                t.mask1 = f.mask1 if direction == "bwd_mask" else None
                t.dx1 = bufs["dx1"].data_ptr()
            if w1 is not None:
                t.dy1, t.weight1, t.dweight1 = bufs["dy1"].data_ptr(), f.weight1, bufs["dw1"].data_ptr()
            if b1 is not None:
                t.dbias1 = bufs["db1"].data_ptr()
            calls[direction] = (lambda t=t, keep=bufs: darn.bwd(d, t, ws.data_ptr(), ws_bytes, backend, stream))
    fwd()  # h, rstd, mean and the mask for the backward
    return calls, bufs


def make_bwd(torch, fn, inputs):
    """The bwd callable of a torch-level implementation: one graph (fn with autograd recording), then
    torch.autograd.grad of all its outputs with random output gradients, retain_graph=True so that it repeats."""
    outs = fn(*inputs)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    grads = [torch.randn_like(o) for o in outs]
    wrt = [t for t in inputs if t is not None and t.requires_grad]
    return lambda: torch.autograd.grad(outs, wrt, grads, retain_graph=True)


class PeerCalls(dict):
    """{dir: callable} of a torch-level implementation: fwd under torch.no_grad(); with a backward, fwd_grad (autograd
    recording; the graph is dropped with the outputs) and bwd (make_bwd), whose graph is built only when bwd is
    first asked for, after fwd and fwd_grad have compiled, so a failing bwd is that direction's error."""

    def __init__(self, torch, fn, inputs, backward):
        super().__init__()
        self._args = (torch, fn, inputs, backward)

        def fwd():
            with torch.no_grad():
                return fn(*inputs)
        self["fwd"] = fwd
        if backward:
            self["fwd_grad"] = lambda: fn(*inputs)

    def __missing__(self, key):
        torch, fn, inputs, backward = self._args
        if key != "bwd" or not backward:
            raise KeyError(key)
        self[key] = make_bwd(torch, fn, inputs)
        return self[key]


def _rel(got, ref):
    ref = ref.detach().float()
    return float((got.detach().float() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def check_darn(bench, darn, name, m=64, n=1024, tol=2e-2):
    """darn against the eager function with p = 0 (same math, no random mask) at one small shape: the
    ctypes mirror and dtype mapping are right when every output agrees to bf16 accuracy. Returns
    {tensor: max |diff| / max |reference|} and whether all are within tol."""
    torch = bench.torch
    cfg = dict(dc.CONFIGS[name], p=0.0)
    raw = bench.inputs(cfg, m, n, grad=False)
    calls, bufs = darn_runner(bench, darn, cfg, m, n, *raw)
    ins = [t.detach().clone().requires_grad_(cfg["backward"]) if t is not None else None for t in raw]
    with torch.set_grad_enabled(cfg["backward"]):
        outs = torch_function(torch, cfg, bench.dtypes)(*ins)
    onames = ("out", "out1", "h") if len(outs) == 3 else ("out", "h")
    errs = {k: _rel(bufs[k], o) for k, o in zip(onames, outs)}
    if cfg["backward"]:
        calls["bwd"]()
        bench.timer.sync()
        keyed = [(k, t) for k, t in zip(("dx", "dres", "dw", "db", "dx1", "dw1", "db1"), ins) if t is not None]
        ograds = [bufs[{"out": "dy", "out1": "dy1", "h": "dh"}[k]] for k in onames]
        grads = torch.autograd.grad(list(outs), [t for _, t in keyed], ograds)
        for (key, _), g in zip(keyed, grads):
            errs[key] = _rel(bufs[key], g)
    return errs, all(v <= tol for v in errs.values())


def check_peer(bench, name, impl, fn, norm, m=64, n=1024, tol=2e-2):
    """A peer against the eager reference at p = 0 (norm-only peers: against RMSNorm of h), outputs and
    gradients. Returns ({tensor: rel err}, ok)."""
    torch = bench.torch
    cfg = dict(dc.CONFIGS[name], p=0.0)
    grad = cfg["backward"]
    raw = bench.inputs(cfg, m, n, grad=False)
    x, w = raw[0], raw[2]
    if norm:
        h = x.float().to(bench.dtypes[dc.h_dtype(cfg)])
        wp = w.to(h.dtype) if impl == "torch_rms_norm" else w
        mine = [h.clone().requires_grad_(grad), wp.clone().requires_grad_(grad)]
        ref = [h.clone().requires_grad_(grad), wp.clone().requires_grad_(grad)]
        ref_fn, names = norm_reference(torch), ("out",)
        gnames = ("dh", "dw")
    else:
        mine = [t.clone().requires_grad_(grad) if t is not None else None for t in raw]
        ref = [t.clone().requires_grad_(grad) if t is not None else None for t in raw]
        ref_fn = torch_function(torch, cfg, bench.dtypes)
        names = ("out", "out1", "h") if cfg.get("w1") else ("out", "h")
        gnames = [k for k, t in zip(("dx", "dres", "dw", "db", "dx1", "dw1", "db1"), raw) if t is not None]
    with torch.set_grad_enabled(grad):
        got = fn(*mine)
        exp = ref_fn(*ref)
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    exp = list(exp) if isinstance(exp, (tuple, list)) else [exp]
    errs = {k: _rel(g, e) for k, g, e in zip(names, got, exp)}
    if grad:
        outs_g = [torch.randn_like(e.float()) for e in exp]
        g_mine = torch.autograd.grad(got[:len(exp)], [t for t in mine if t is not None],
                                     [g.to(o.dtype) for g, o in zip(outs_g, got)])
        g_ref = torch.autograd.grad(exp, [t for t in ref if t is not None], [g.to(e.dtype) for g, e in zip(outs_g, exp)])
        for k, gm, gr in zip(gnames, g_mine, g_ref):
            errs[k] = _rel(gm, gr)
    return errs, all(v <= tol for v in errs.values())


def run(args):
    import torch
    t_start = time.perf_counter()
    bench = Bench(args, torch)
    compile_info = setup_compile(args, torch) if "torch_compile" in args.impls else None
    darn = dc.Darn(dc.find_library(args.lib)) if "darn" in args.impls else None
    objs, errs, stand_ins = load_peers(args, torch)
    checks, peer_checks = {}, {}
    for name in args.configs:
        if darn is not None:
            try:
                e, ok = check_darn(bench, darn, name)
            except Exception as ex:  # noqa: BLE001
                e, ok = {"error": short_error(ex)}, False
            checks[name] = dict(e, ok=ok)
            print_check("darn", name, e, ok)
        if name == "mask":
            continue
        full, norm = peer_callables(torch, args, dict(dc.CONFIGS[name], p=0.0), bench.dtypes, objs, errs)
        for impl in args.impls:
            if impl in ("darn", "torch_eager", "torch_compile") or not covers(impl, name):
                continue  # eager is the reference; compile is checked by its own first call against nothing
            fn, err = (norm if norm_only(impl) else full)[impl]
            if fn is None:
                continue
            try:
                e, ok = check_peer(bench, name, impl, fn, norm_only(impl))
            except Exception as ex:  # noqa: BLE001
                e, ok = {"error": short_error(ex)}, False
            peer_checks.setdefault(impl, {})[name] = dict(e, ok=ok)
            print_check(impl, name, e, ok)
    copy = bench.copy_gbps()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "gpu": bench.gpu, "commit": args.commit or git_commit(), "backend": "gpu" if bench.cuda else "cpu",
              "copy_GBps": copy[bench.timer.method], "copy_GBps_by_timing": copy, "copy_bytes": args.copy_mib << 20,
              "elems": args.elems, "reps": args.reps, "warmup": args.warmup, "eps": EPS,
              "timing": {"device": bench.timer.method, "sync": TIMING_SYNC,
                         "descriptions": {k: TIMING_DESCRIPTIONS[k] for k in (bench.timer.method, TIMING_SYNC)},
                         "rep_ms_min": args.rep_ms, "warmup_ms": args.warmup_ms,
                         "fill_ms": getattr(bench.timer, "clear_ms", None)},
              "tool": "compare_torch.py", "torch": torch.__version__,
              "darn": darn.version_string().decode() if darn else None,
              "contract": darn.contract_version() if darn else None,
              "peers_dir": args.peers_dir, "peer_commits": peer_commits(args.peers_dir) if args.peers_dir else {},
              "flash_attn_file": args.flash_attn_file, "stand_ins": stand_ins,
              "liger_casting_mode": LIGER_CASTING_MODE,
              "peer_info": {i: dict(PEERS[i], configs=list(PEERS[i]["configs"])) for i in args.impls},
              "compile": compile_info, "check": checks, "check_peers": peer_checks,
              "rows": [], "latency": [], "peers": [], "skipped": []}
    print("%s, copy bandwidth %s ((read + written) bytes / time, %d MiB)" % (
        bench.gpu, ", ".join("%.1f GB/s (%s)" % (v, k) for k, v in copy.items()), args.copy_mib))
    print_peer_info(args)
    print("%-25s %-9s %7s %6s %-8s | %-18s %9s %7s | %-13s %9s %7s | %s" % (
        "impl", "config", "M", "N", "dir", "timing", "ms", "%copy", "timing", "ms", "%copy", "first call s"))
    for name in args.configs:
        cfg = dc.CONFIGS[name]
        full, norm = peer_callables(torch, args, cfg, bench.dtypes, objs, errs)
        for n in args.ns:
            m = args.elems // n
            if args.time_budget and time.perf_counter() - t_start > args.time_budget:
                result["skipped"].append({"config": name, "N": n, "why": "--time-budget %g s" % args.time_budget})
                print("skipped %s N=%d: --time-budget %g s reached" % (name, n, args.time_budget))
                continue
            t_shape = time.perf_counter()
            for impl in args.impls:
                if not covers(impl, name):
                    continue
                peer = None if impl == "darn" else (norm if norm_only(impl) else full)[impl]
                rows = run_one(bench, impl, cfg, name, m, n, darn, peer, copy)
                for r in rows:
                    (result["rows"] if impl == "darn" else result["peers"]).append(r)
                print_rows(rows)
                bench.empty_cache()
            print("  (%s N=%d: %.1f s)" % (name, n, time.perf_counter() - t_shape))
            result["wall_s"] = time.perf_counter() - t_start
            save(args.json, result)  # after every shape: a run cut short still leaves its results
    result["wall_s"] = time.perf_counter() - t_start
    save(args.json, result, final=True)
    print("total %.1f s" % result["wall_s"])
    return 0


def print_check(impl, name, errs, ok):
    print("check %s vs torch eager (p = 0, M = 64, N = 1024), %s: %s%s" % (
        impl, name, ", ".join("%s %.2g" % kv if not isinstance(kv[1], str) else "%s %s" % kv for kv in errs.items()),
        "" if ok else "   <-- MISMATCH: its numbers below are suspect"))


def print_peer_info(args):
    print("implementations (configs covered; work):")
    for impl in args.impls:
        p = PEERS[impl]
        print("  %-25s %-28s %s" % (impl, ",".join(p["configs"]), "full" if p["work"] == "full" else p["work"]))
        print("  %-25s %s" % ("", p["computes"]))


def save(path, result, final=False):
    if not path:
        return
    result["triton"] = getattr(sys.modules.get("triton"), "__version__", None)
    result["complete"] = final and not result.get("skipped")  # False: cut short, or shapes skipped by --time-budget
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    if final:
        print("wrote " + path)


def run_one(bench, impl, cfg, name, m, n, darn, peer, copy):
    """Rows of one implementation at one shape: per direction one row per timing method, or error rows.
    peer: (function, error) of a torch-level implementation (None for darn)."""
    torch, timer = bench.torch, bench.timer
    dirs = directions(cfg, impl)
    norm = impl != "darn" and norm_only(impl)
    info = {} if impl == "darn" else {"impl": impl, "work": "full" if not norm else "less"}
    base = lambda d: dict(info, config=name, M=m, N=n, dir=d)  # noqa: E731
    if peer is not None and peer[0] is None:
        return [dict(base(d), error=peer[1]) for d in dirs]
    if m < 1:
        return [dict(base(d), error="elems < N") for d in dirs]
    try:
        if impl == "darn":
            calls = darn_runner(bench, darn, cfg, m, n, *bench.inputs(cfg, m, n, grad=False))[0]  # fwd.buffers keeps them alive
        elif norm:
            w = bench.inputs(cfg, 1, n, grad=False)[2]
            hd = bench.dtypes[dc.h_dtype(cfg)]
            g = torch.Generator(device=bench.dev).manual_seed(2)
            h = torch.randn((m, n), generator=g, device=bench.dev).to(hd).requires_grad_(cfg["backward"])
            w = (w.to(hd) if impl == "torch_rms_norm" else w).detach().requires_grad_(cfg["backward"])
            calls = PeerCalls(torch, peer[0], (h, w), cfg["backward"])
        else:
            calls = PeerCalls(torch, peer[0], tuple(bench.inputs(cfg, m, n, grad=cfg["backward"])), cfg["backward"])
    except Exception as e:  # noqa: BLE001 — a failing peer is a result, not a crash
        return [dict(base(d), error=short_error(e)) for d in dirs]
    rows = []
    for d in dirs:
        nbytes = dc.min_bytes(cfg, m, n, d)
        try:
            call = calls[d]
            t0 = time.perf_counter()
            call()  # the first call: compiles (torch.compile, Triton JIT and autotuning)
            timer.sync()
            first_s = time.perf_counter() - t0
            for _ in range(bench.args.warmup):
                call()
            timer.sync()
            extra = {"first_call_s": round(first_s, 4)}
            if impl == "torch_compile":
                extra["compile_s"] = round(first_s, 3)
            if d == "fwd_grad" and impl == "darn":
                extra["same_call_as"] = "fwd"
            if norm:
                extra["peer_bytes"] = peer_bytes(cfg, m, n, d)
            for timing, (ms, runs) in ((timer.method, timer.device_ms(call)), (TIMING_SYNC, timer.sync_ms(call))):
                gbps = nbytes / (ms * 1e6)
                r = dict(base(d), timing=timing, ms=ms, GBps=gbps, pct=100.0 * gbps / copy[timing], bytes=nbytes,
                         runs=runs, copy_GBps=copy[timing], **extra)
                if norm:
                    r["peer_pct"] = 100.0 * extra["peer_bytes"] / (ms * 1e6) / copy[timing]
                rows.append(r)
        except Exception as e:  # noqa: BLE001
            rows.append(dict(base(d), error=short_error(e)))
            try:
                timer.sync()
            except Exception:  # noqa: BLE001 — a dead context fails every later call; they say so
                pass
    return rows


def short_error(e):
    text = "%s: %s" % (type(e).__name__, e)
    return text if len(text) < 400 else text[:400] + "..."


def print_rows(rows):
    """One line per direction: the device-time row and the sync-per-call row side by side."""
    by_dir = {}
    for r in rows:
        by_dir.setdefault(r["dir"], []).append(r)
    for d, rs in by_dir.items():
        r0 = rs[0]
        head = "%-25s %-9s %7d %6d %-8s | " % (r0.get("impl", "darn"), r0["config"], r0["M"], r0["N"], d)
        if "error" in r0:
            print(head + "error: " + r0["error"].splitlines()[0][:150])
            continue
        cols = ["%-18s %9.4f %6.1f%%" % (r["timing"], r["ms"], r["pct"]) for r in rs]
        note = "%.2f" % r0["first_call_s"]
        if r0.get("work") == "less":
            note += "  less work: %.1f%% of copy on its own bytes" % r0["peer_pct"]
        print(head + " | ".join(cols) + " | " + note)
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
