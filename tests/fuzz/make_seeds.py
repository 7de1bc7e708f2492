#!/usr/bin/env python3
"""make_seeds.py — writes the hand-made seeds of tests/fuzz/corpus (seed-*), one per scenario, in the byte
format fuzz_darn.c decodes (keep the two in step). The rest of the corpus (cov-*) is what
`darn_fuzz -merge=1` kept from longer runs. Usage: tests/fuzz/make_seeds.py [DIR] (default: tests/fuzz/corpus).
"""
import os
import struct
import sys

F32, F16, BF16 = 0, 1, 2
RMS, LN = 0, 1
ZC, RES32, RES, BIAS, RS = 1, 2, 4, 8, 16
X1, W1, B1 = 32, 64, 128  # the parallel residual (contract 4)
PAR = X1 | W1 | B1
P_IDX = {0.0: 0, 0.1: 1, 0.5: 2, 0.9: 3, 1.0: 4, 0.25: 14}
ES = {F32: 4, F16: 2, BF16: 2}


def u16(v):
    return struct.pack("<H", v)


def u64(v):
    return struct.pack("<Q", v & (2**64 - 1))


# pointer choices (pick_ptr)
OWN = b"\x00"
NULL = b"\x06"
PARTNER = b"\x09"


def own_plus(k):  # own slot + es * (k % 16)
    return b"\x05" + bytes([k])


def alias(slot, off):  # another slot, element-aligned offset
    return b"\x07" + bytes([slot]) + u16(off)


def misaligned(k=0):
    return b"\x0a" + bytes([k])


def raw_alias(slot, off):
    return b"\x0b" + bytes([slot]) + u16(off)


# strides (pick_stride)
S0, SN, S2N, S4N = b"\x00", b"\x03", b"\x05", b"\x06"  # 4N: N <= 32 only (else 2N)
SBAD, SNEG, SHUGE = b"\x07\x00", b"\x08", b"\x8b"  # 0 < stride < N, -1, INT64_MAX


def s_plus(k):
    return b"\x04" + bytes([k])


SAME = b"\x01"  # out / residual_out / dx / dresidual: the partner's stride
OTHER = b"\x00"  # ... else a stride of their own follows


class Desc:
    """The descriptor bytes, and what the tensor bytes that follow depend on (flags, norm)."""

    def __init__(self, op, norm, m, n, dt, flags=0, dts=None, p=0.0, eps=None, seed=None, offset=None,
                 rng=b"\x00", backend=0, moderate=False):
        self.flags, self.norm = flags, norm
        b = bytes([op | (0x10 if moderate else 0), norm, m, n - 1, dt])
        b += (b"\x01" + bytes(dts)) if dts else b"\x00"
        b += bytes([flags])
        b += (b"\x00" + eps) if eps is not None else b"\x01"
        b += bytes([P_IDX[p]]) if p in P_IDX else b"\xc8" + struct.pack("<d", p)
        b += (b"\x01" + u64(seed)) if seed is not None else b"\x00"
        b += (b"\x01" + u64(offset)) if offset is not None else b"\x00"
        b += rng + b"\x00" + bytes([backend])  # no fp8 scale, dy_dtype = same as out
        self.bytes = b

    def unflagged(self, flags, keep=()):
        """One byte per optional pointer whose flag is off: 0 = drop it, 3 = keep it (DARN_ERR_UNSUPPORTED)."""
        return b"".join(b"\x03" if f in keep else b"\x00" for f in flags if not (self.flags & f))


# out1 / dx1 (pick after a byte: bit 0 = partner is x / dy (else x1 / dy1), bit 1 = the partner's stride)
OUT1_OWN = b"\x00"  # out1 / dx1 pointer follows, then its own stride


def fwd(d, x=OWN, xs=S0, res=OWN, rs_=S0, rowscale=OWN, w=OWN, bias=OWN, out=OWN, outs=SAME, resout=OWN,
        resouts=SAME, mask=OWN, rstd=OWN, mean=OWN, amax=OWN, ws=b"\x07", keep=(), x1=OWN, x1s=S0, w1=OWN, b1=OWN,
        out1=OUT1_OWN + OWN + S0, mask1=OWN):
    opt = d.unflagged((RES, BIAS, RS), keep) + (b"\x00" if d.norm != LN else b"") + b"\x00"  # ..., mean, amax
    par = x1 + x1s + w1 + b1 + out1 + mask1 + d.unflagged((X1, X1, W1, W1, B1), keep)
    return d.bytes + x + xs + res + rs_ + rowscale + w + bias + out + outs + resout + resouts + mask + rstd + \
        mean + amax + opt + ws + par


def bwd(d, dy=OWN, dys=S0, h=OWN, hs=S0, w=OWN, rstd=OWN, mean=OWN, rowscale=OWN, dro=OWN, dros=S0, mask=OWN,
        dx=OWN, dxs=SAME, dres=OWN, dress=SAME, dw=OWN, db=OWN, dro_null=False, mask_null=False, ws=b"\x07",
        dy1=OWN, dy1s=S0, w1=OWN, mask1=OWN, dx1=OUT1_OWN + OWN + S0, dw1=OWN, db1=OWN, mask1_null=False):
    par = dy1 + dy1s + w1 + mask1 + dx1 + dw1 + db1 + d.unflagged((X1,))
    par += bytes([mask1_null]) if d.flags & X1 else b"\x00"  # mask1: optional with X1, else dropped
    par += d.unflagged((W1, W1, W1, B1)) + (b"\x00" if d.norm != LN else b"")  # ..., no mean with RMSNorm
    return d.bytes + dy + dys + h + hs + w + rstd + mean + rowscale + dro + dros + mask + dx + dxs + dres + \
        dress + dw + db + d.unflagged((RES, BIAS, RS)) + bytes([dro_null, mask_null]) + ws + par


def query(d, bytes_ptr=True):
    return d.bytes + (b"\x01" if bytes_ptr else b"\x00")


def seeds():
    s = {}
    full = RES | BIAS | RS
    for dt, name in ((F32, "f32"), (F16, "f16"), (BF16, "bf16")):
        for norm, nn in ((RMS, "rms"), (LN, "ln")):
            s["fwd-%s-%s-full" % (nn, name)] = fwd(Desc(0, norm, 7, 40, dt, full, p=0.25, seed=42, moderate=True))
            s["bwd-%s-%s-full" % (nn, name)] = bwd(Desc(1, norm, 7, 40, dt, full, p=0.25, seed=42, moderate=True))
    mixed = dict(flags=full | RES32 | ZC, dts=[F32, BF16, F16, F32], p=0.1, moderate=True)
    s["fwd-mixed-dtypes"] = fwd(Desc(0, LN, 64, 64, BF16, **mixed))
    s["bwd-mixed-dtypes-mask-regenerated"] = bwd(Desc(1, LN, 64, 64, BF16, **mixed), mask_null=True)
    s["fwd-plain"] = fwd(Desc(0, RMS, 3, 5, F32))
    s["fwd-p1"] = fwd(Desc(0, RMS, 5, 33, F16, RES, p=1.0))
    s["fwd-p-just-below-1"] = fwd(Desc(0, RMS, 5, 33, F16, RES, p=1.0 - 2**-53))
    s["fwd-m0"] = fwd(Desc(0, LN, 0, 9, F32, full))
    s["bwd-m0"] = bwd(Desc(1, LN, 0, 9, F32, full))
    # interleaved views: x = buf[:, :N], out = buf[:, N:] (row stride 2N); residual / residual_out likewise
    n = 24
    s["fwd-interleaved"] = fwd(Desc(0, RMS, 9, n, F16, RES, p=0.1, moderate=True),
                               xs=S2N, out=alias(0, 2 * n), rs_=S2N, resout=alias(1, 2 * n))
    s["fwd-interleaved-near-miss"] = fwd(Desc(0, RMS, 9, n, F16, RES, p=0.1),
                                         xs=S2N, out=alias(0, 2 * (n - 1)), rs_=S2N, resout=alias(1, 2 * n))
    # x f32 with row stride 2N (8N bytes), out bf16 in the gaps with row stride 4N (8N bytes)
    s["fwd-interleaved-mixed-dtypes"] = fwd(Desc(0, LN, 9, n, F32, 0, dts=[F32, F32, F32, BF16], moderate=True),
                                            xs=S2N, out=alias(0, 4 * n), outs=OTHER + S4N)
    s["bwd-interleaved"] = bwd(Desc(1, LN, 9, n, BF16, RES, p=0.1, moderate=True),
                               dys=S2N, dx=alias(0, 2 * n), dros=S2N, dres=alias(2, 2 * n))
    s["bwd-interleaved-near-miss"] = bwd(Desc(1, LN, 9, n, BF16, RES, p=0.1),
                                         dys=S2N, dx=alias(0, 2 * n - 2), dros=S2N, dres=alias(2, 2 * n))
    # in-place pairs
    s["fwd-in-place"] = fwd(Desc(0, RMS, 6, 50, BF16, RES, p=0.5, moderate=True), out=PARTNER, resout=PARTNER)
    s["fwd-in-place-other-stride"] = fwd(Desc(0, RMS, 6, 50, BF16, RES), out=PARTNER, outs=OTHER + s_plus(3))
    s["bwd-in-place"] = bwd(Desc(1, RMS, 6, 50, BF16, RES, p=0.5, moderate=True), dx=PARTNER, dres=PARTNER)
    # rng pointers: own slot, misaligned, into an output or an input, only one of the two
    rng = dict(flags=0, p=0.5, offset=5)
    s["fwd-rng-own"] = fwd(Desc(0, RMS, 4, 64, F32, rng=b"\x04\x01", **rng))
    s["bwd-rng-own"] = bwd(Desc(1, RMS, 4, 64, F32, rng=b"\x04\x01", **rng))
    s["fwd-rng-misaligned"] = fwd(Desc(0, RMS, 4, 64, F32, rng=b"\x05\x04\x00", **rng))
    s["bwd-rng-misaligned"] = bwd(Desc(1, RMS, 4, 64, F32, rng=b"\x05\x00\x02", **rng))
    s["fwd-rng-into-out"] = fwd(Desc(0, RMS, 4, 64, F32, rng=b"\x06\x05" + u16(64) + b"\x0a" + u16(0), **rng))
    s["fwd-rng-into-x"] = fwd(Desc(0, RMS, 4, 64, F32, rng=b"\x06\x00" + u16(64) + b"\x03" + u16(8), **rng))
    s["bwd-rng-into-dx"] = bwd(Desc(1, RMS, 4, 64, F32, rng=b"\x06\x05" + u16(8) + b"\x0a" + u16(0), **rng))
    s["fwd-rng-only-seed"] = fwd(Desc(0, RMS, 4, 64, F32, rng=b"\x87", **rng))
    # strides, pointers, workspace
    s["fwd-strides"] = fwd(Desc(0, LN, 11, 37, F16, RES | BIAS), xs=s_plus(5), rs_=SN, outs=OTHER + s_plus(16))
    s["fwd-stride-below-n"] = fwd(Desc(0, LN, 11, 37, F16, RES), xs=SBAD)
    s["fwd-stride-huge-one-row"] = fwd(Desc(0, LN, 1, 37, F16, RES), xs=SHUGE)
    s["fwd-stride-huge"] = fwd(Desc(0, LN, 3, 37, F16, RES), xs=SHUGE)
    s["fwd-misaligned-x"] = fwd(Desc(0, RMS, 3, 8, F16), x=misaligned())
    s["fwd-null-x"] = fwd(Desc(0, RMS, 3, 8, F16), x=NULL)
    s["fwd-rstd-into-out"] = fwd(Desc(0, RMS, 3, 8, F32), rstd=alias(5, 4))
    s["fwd-rstd-raw-offset"] = fwd(Desc(0, RMS, 3, 8, F32), rstd=raw_alias(9, 3))
    s["fwd-bias-unflagged"] = fwd(Desc(0, RMS, 3, 8, F32), keep=(BIAS,))
    s["bwd-ws-short"] = bwd(Desc(1, LN, 30, 60, F32, BIAS), ws=b"\x01")
    s["bwd-ws-misaligned"] = bwd(Desc(1, LN, 30, 60, F32, BIAS), ws=b"\x04\x00")
    s["bwd-ws-into-dy"] = bwd(Desc(1, LN, 30, 60, F32, BIAS), ws=b"\x05\x00" + u16(0))
    s["bwd-ws-null"] = bwd(Desc(1, LN, 30, 60, F32, BIAS), ws=b"\x00")
    # bad descriptors
    s["bad-norm"] = fwd(Desc(0, 255, 3, 8, F32))
    s["bad-dtype"] = fwd(Desc(0, RMS, 3, 8, 251))
    s["bad-flags"] = fwd(Desc(0, RMS, 3, 8, F32, 0xA1))  # 101xxxxx: an unknown bit, 0x200
    s["bad-flags-bias1-without-weight1"] = fwd(Desc(0, RMS, 3, 8, F32, B1))
    s["bad-eps-nan"] = fwd(Desc(0, RMS, 3, 8, F32, eps=b"\x0a"))
    s["bad-eps-raw"] = fwd(Desc(0, RMS, 3, 8, F32, eps=b"\xc8" + struct.pack("<f", -1e-7)))
    s["bad-p"] = fwd(Desc(0, RMS, 3, 8, F32, p=1.0000000000000002))
    s["bad-shape-overflow"] = fwd(Desc(0, RMS, 253, 8, F32))
    s["bad-shape-m-negative"] = bwd(Desc(1, RMS, 248, 8, F32))
    s["bad-backend"] = fwd(Desc(0, RMS, 3, 8, F32, backend=255))
    s["gpu-backend"] = bwd(Desc(1, RMS, 3, 8, F32, backend=250))
    # the parallel residual (flash-attn's x1 / weight1 / bias1)
    for norm, nn in ((RMS, "rms"), (LN, "ln")):
        s["fwd-%s-parallel" % nn] = fwd(Desc(0, norm, 7, 40, BF16, full | PAR, p=0.25, seed=42, moderate=True))
        s["bwd-%s-parallel" % nn] = bwd(Desc(1, norm, 7, 40, BF16, full | PAR, p=0.25, seed=42, moderate=True))
    s["fwd-x1-only"] = fwd(Desc(0, LN, 5, 33, F16, X1, p=0.1, moderate=True))
    s["bwd-x1-only-mask1-regenerated"] = bwd(Desc(1, LN, 5, 33, F16, X1, p=0.1, moderate=True), mask1_null=True)
    s["fwd-weight1-only"] = fwd(Desc(0, RMS, 5, 64, F32, W1 | B1, moderate=True))
    s["bwd-weight1-only"] = bwd(Desc(1, RMS, 5, 64, F32, W1 | B1, moderate=True))
    s["fwd-parallel-mixed-dtypes"] = fwd(Desc(0, LN, 64, 64, BF16, flags=full | RES32 | ZC | PAR,
                                              dts=[F32, BF16, F16, F32], p=0.1, moderate=True))
    s["bwd-parallel-mixed-dtypes"] = bwd(Desc(1, LN, 64, 64, BF16, flags=full | RES32 | ZC | PAR,
                                              dts=[F32, BF16, F16, F32], p=0.1, moderate=True), mask_null=True)
    n = 24  # x1 = buf[:, :N], out1 = buf[:, N:] (row stride 2N): element-disjoint, allowed
    s["fwd-parallel-interleaved"] = fwd(Desc(0, RMS, 9, n, F16, X1 | W1, p=0.1, moderate=True),
                                        x1s=S2N, out1=OUT1_OWN + alias(14, 2 * n) + S2N)
    s["bwd-parallel-interleaved"] = bwd(Desc(1, RMS, 9, n, F16, X1 | W1, p=0.1, moderate=True),
                                        dy1s=S2N, dx1=OUT1_OWN + alias(14, 2 * n) + S2N)
    # out1 == x1 / dx1 == dy1 (and out1 == x): no in-place pair exists for them (DARN_ERR_ALIASING)
    s["fwd-out1-in-place"] = fwd(Desc(0, RMS, 6, 50, BF16, X1 | W1), out1=b"\x02" + PARTNER)
    s["fwd-out1-on-x"] = fwd(Desc(0, RMS, 6, 50, BF16, X1 | W1), out1=b"\x03" + PARTNER)
    s["bwd-dx1-in-place"] = bwd(Desc(1, RMS, 6, 50, BF16, X1 | W1), dx1=b"\x02" + PARTNER)
    s["fwd-x1-unflagged"] = fwd(Desc(0, RMS, 3, 8, F32), keep=(X1,))
    s["fwd-parallel-m0"] = fwd(Desc(0, LN, 0, 9, F32, full | PAR))
    s["bwd-parallel-m0"] = bwd(Desc(1, LN, 0, 9, F32, full | PAR))
    s["query-fwd"] = query(Desc(2, LN, 64, 64, F16, full))
    s["query-bwd"] = query(Desc(3, LN, 64, 64, F16, full))
    s["query-bwd-null-bytes"] = query(Desc(3, LN, 64, 64, F16, full), bytes_ptr=False)
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds()), out))


if __name__ == "__main__":
    main()
