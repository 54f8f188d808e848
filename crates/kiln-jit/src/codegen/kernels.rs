//! Kernel generators, one per kind of loop nest. Each takes a spec whose
//! numbers are all compile-time constants (shapes, strides, offsets into the
//! arena and the constant pool) and emits the body of one kernel; `tiles()`
//! says how many independent calls cover the output. No tile shares an output
//! element with another and no reduction is split across tiles, so the result
//! does not depend on how tiles are spread over threads.

use super::{Em, Region};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};

/// Where a tensor lives: element offset `off` in `region`, batch items
/// `bstride` elements apart (elements inside one item are contiguous), and the
/// element range `[lo, hi)` every access to it must stay in (checked mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub region: Region,
    pub off: i64,
    pub bstride: i64,
    pub lo: i64,
    pub hi: i64,
}

impl Loc {
    pub fn range(&self) -> (i64, i64) {
        (self.lo, self.hi)
    }
}

/// Status code for a bad label (above every kernel tag).
pub const BAD_LABEL: u32 = 1 << 30;

fn hsum(em: &mut Em, v: Value) -> Value {
    let l: Vec<Value> = (0..4).map(|i| em.b.ins().extractlane(v, i as u8)).collect();
    let a = em.b.ins().fadd(l[0], l[1]);
    let b = em.b.ins().fadd(l[2], l[3]);
    em.b.ins().fadd(a, b)
}

fn imin(em: &mut Em, a: Value, k: i64) -> Value {
    let kv = em.c(k);
    em.b.ins().smin(a, kv)
}

// ---------------------------------------------------------------- pointwise

/// The per-element operation of a pointwise kernel.
#[derive(Clone, Copy, Debug)]
pub enum Pw {
    Relu,
    /// `x + other`.
    Add(Loc),
    /// `x * scale[row] + shift[row]` (inference BatchNorm), offsets into the constant pool.
    Affine {
        scale: i64,
        shift: i64,
    },
}

/// `y = op(x)` over `[n, rows, len]`; a tile is `rpt` rows of one batch item.
#[derive(Clone, Debug)]
pub struct PwSpec {
    pub n: i64,
    pub rows: i64,
    pub len: i64,
    pub rpt: i64,
    pub x: Loc,
    pub y: Loc,
    pub op: Pw,
}

impl PwSpec {
    pub fn tiles(&self) -> usize {
        (self.n * ((self.rows + self.rpt - 1) / self.rpt)) as usize
    }
    pub fn emit(&self, em: &mut Em) {
        let nrb = (self.rows + self.rpt - 1) / self.rpt;
        let d = em.split(em.tile, &[self.n, nrb]);
        let r0 = em.mul(d[1], self.rpt);
        let r1 = em.add(r0, self.rpt);
        let rend = imin(em, r1, self.rows);
        let (x, y, len) = (self.x, self.y, self.len);
        let op = self.op;
        let xb0 = em.mad(d[0], x.bstride, x.off);
        let yb0 = em.mad(d[0], y.bstride, y.off);
        let zb0 = match op {
            Pw::Add(z) => Some(em.mad(d[0], z.bstride, z.off)),
            _ => None,
        };
        em.for_dyn(r0, rend, 1, |em, r| {
            let roff = em.mul(r, len);
            let xb = em.iadd(xb0, roff);
            let yb = em.iadd(yb0, roff);
            let zb = zb0.map(|z| em.iadd(z, roff));
            let (sc, sh) = match op {
                Pw::Affine { scale, shift } => {
                    let so = em.add(r, scale);
                    let s = em.ld(Region::Const, so, (scale, scale + self.rows));
                    let ho = em.add(r, shift);
                    let h = em.ld(Region::Const, ho, (shift, shift + self.rows));
                    (Some(s), Some(h))
                }
                _ => (None, None),
            };
            let body = |em: &mut Em, i: Value, vector: bool| {
                let xo = em.iadd(xb, i);
                let yo = em.iadd(yb, i);
                let v = if vector {
                    em.ldv(x.region, xo, x.range())
                } else {
                    em.ld(x.region, xo, x.range())
                };
                let out = match op {
                    Pw::Relu => em.relu(v),
                    Pw::Add(z) => {
                        let zo = em.iadd(zb.unwrap(), i);
                        let w = if vector {
                            em.ldv(z.region, zo, z.range())
                        } else {
                            em.ld(z.region, zo, z.range())
                        };
                        em.b.ins().fadd(v, w)
                    }
                    Pw::Affine { .. } => {
                        let (mut s, mut h) = (sc.unwrap(), sh.unwrap());
                        if vector {
                            s = em.b.ins().splat(types::F32X4, s);
                            h = em.b.ins().splat(types::F32X4, h);
                        }
                        em.b.ins().fma(v, s, h)
                    }
                };
                if vector {
                    em.stv(y.region, yo, y.range(), out)
                } else {
                    em.st(y.region, yo, y.range(), out)
                }
            };
            let l4 = len / 4 * 4;
            em.for_c(0, l4, 4, |em, i| body(em, i, true));
            em.for_c(l4, len, 1, |em, i| body(em, i, false));
        });
    }
}

// ---------------------------------------------------------------- matrix-vector

/// A dense layer on a few batch rows: `y[b, o] = bias[o] + W[o, :] . x[b, :]`
/// with `W` row-major in the constant pool. Reading `W` dominates: each row
/// is streamed once per tile and reused for every batch row from L1. A tile
/// is `rows` output features; four f32x4 accumulators per dot product hide
/// the FMA latency.
#[derive(Clone, Debug)]
pub struct GemvSpec {
    pub batch: i64,
    pub m: i64,
    pub k: i64,
    pub rows: i64,
    pub w_off: i64,
    pub bias: Option<i64>,
    pub x: Loc,
    pub y: Loc,
}

impl GemvSpec {
    pub fn tiles(&self) -> usize {
        ((self.m + self.rows - 1) / self.rows) as usize
    }
    pub fn emit(&self, em: &mut Em) {
        let s = self.clone();
        let o0 = em.mul(em.tile, s.rows);
        let o1 = em.add(o0, s.rows);
        let oend = imin(em, o1, s.m);
        let wr = (s.w_off, s.w_off + s.m * s.k);
        let k16 = s.k / 16 * 16;
        em.for_dyn(o0, oend, 1, |em, o| {
            let wrow = em.mad(o, s.k, s.w_off);
            for b in 0..s.batch {
                let xrow = em.c(s.x.off + b * s.x.bstride);
                let z = em.fv(0.0);
                let mut accs = [z; 4];
                if k16 > 0 {
                    let res = super::loops::fold_range(
                        em,
                        super::loops::Range::new(0, k16, 16),
                        &accs,
                        |em, kk, acc| {
                            (0..4)
                                .map(|u| {
                                    let wo = em.iadd(wrow, kk);
                                    let wo = em.add(wo, 4 * u as i64);
                                    let wv = em.ldv(Region::Const, wo, wr);
                                    let xo = em.iadd(xrow, kk);
                                    let xo = em.add(xo, 4 * u as i64);
                                    let xv = em.ldv(s.x.region, xo, s.x.range());
                                    em.b.ins().fma(wv, xv, acc[u])
                                })
                                .collect()
                        },
                    );
                    accs.copy_from_slice(&res);
                }
                let a01 = em.b.ins().fadd(accs[0], accs[1]);
                let a23 = em.b.ins().fadd(accs[2], accs[3]);
                let a = em.b.ins().fadd(a01, a23);
                let mut sum = hsum(em, a);
                let tail_init = sum;
                sum = em.fold_c(k16, s.k, 1, tail_init, |em, kk, acc| {
                    let wo = em.iadd(wrow, kk);
                    let wv = em.ld(Region::Const, wo, wr);
                    let xo = em.iadd(xrow, kk);
                    let xv = em.ld(s.x.region, xo, s.x.range());
                    em.b.ins().fma(wv, xv, acc)
                });
                if let Some(bo) = s.bias {
                    let bo_v = em.add(o, bo);
                    let bv = em.ld(Region::Const, bo_v, (bo, bo + s.m));
                    sum = em.b.ins().fadd(sum, bv);
                }
                let yo = em.add(o, s.y.off + b * s.y.bstride);
                em.st(s.y.region, yo, s.y.range(), sum);
            }
        });
    }
}

// ---------------------------------------------------------------- pooling

/// Max or average pooling of one `(n, c)` plane a tile.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    pub n: i64,
    pub c: i64,
    pub h: i64,
    pub w: i64,
    pub oh: i64,
    pub ow: i64,
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    /// `[top, left, bottom, right]`.
    pub pad: [i64; 4],
    pub max: bool,
    pub count_include_pad: bool,
    pub x: Loc,
    pub y: Loc,
}

impl PoolSpec {
    pub fn tiles(&self) -> usize {
        (self.n * self.c) as usize
    }

    /// Output columns `[lo, hi)` computed four at a time: all taps of all four
    /// inside the input (stride 1 or 2; a stride-2 vector reads one float more).
    fn vector_columns(&self) -> (i64, i64) {
        let (sw, kw, pl) = (self.stride[1], self.kernel[1], self.pad[1]);
        if sw > 2 {
            return (0, 0);
        }
        let lo = ((pl + sw - 1) / sw).min(self.ow);
        let reach = |ow: i64| ow * sw - pl + 3 * sw + kw - 1 + (sw == 2) as i64;
        let mut hi = lo;
        while hi + 4 <= self.ow && reach(hi) < self.w {
            hi += 4;
        }
        (lo, hi)
    }

    /// Output rows whose every tap row is inside the input.
    fn inner_rows(&self) -> (i64, i64) {
        let (sh, kh, pt) = (self.stride[0], self.kernel[0], self.pad[0]);
        let lo = ((pt + sh - 1) / sh).min(self.oh);
        let mut hi = lo;
        while hi < self.oh && hi * sh - pt + kh - 1 < self.h {
            hi += 1;
        }
        (lo, hi)
    }

    pub fn emit(&self, em: &mut Em) {
        let s = self.clone();
        let d = em.split(em.tile, &[s.n, s.c]);
        let xb0 = em.mad(d[0], s.x.bstride, s.x.off);
        let xc = em.mul(d[1], s.h * s.w);
        let xb = em.iadd(xb0, xc);
        let yb0 = em.mad(d[0], s.y.bstride, s.y.off);
        let yc = em.mul(d[1], s.oh * s.ow);
        let yb = em.iadd(yb0, yc);
        let (c0, c1) = self.vector_columns();
        let (r0, r1) = self.inner_rows();
        let row = |em: &mut Em, oh: Value, inner: bool| {
            let (v0, v1) = if inner { (c0, c1) } else { (s.ow, s.ow) };
            em.for_c(0, v0, 1, |em, ow| self.one(em, xb, yb, oh, ow));
            em.for_c(v0, v1, 4, |em, ow| self.four(em, xb, yb, oh, ow));
            em.for_c(v1.max(v0), s.ow, 1, |em, ow| self.one(em, xb, yb, oh, ow));
        };
        em.for_c(0, r0, 1, |em, oh| row(em, oh, false));
        em.for_c(r0, r1, 1, |em, oh| row(em, oh, true));
        em.for_c(r1, s.oh, 1, |em, oh| row(em, oh, false));
    }

    /// The running max or sum `acc` (f32 or f32x4) with tap `v`; a NaN tap
    /// never replaces the running max.
    fn combine(&self, em: &mut Em, acc: Value, v: Value) -> Value {
        if !self.max {
            return em.b.ins().fadd(acc, v);
        }
        let gt = em.b.ins().fcmp(FloatCC::GreaterThan, v, acc);
        if em.b.func.dfg.value_type(v) == types::F32X4 {
            em.b.ins().bitselect(gt, v, acc)
        } else {
            em.b.ins().select(gt, v, acc)
        }
    }

    /// Four outputs of an inner row from `ow` on, every tap inside the input.
    fn four(&self, em: &mut Em, xb: Value, yb: Value, oh: Value, ow: Value) {
        let s = self;
        let hs = em.mad(oh, s.stride[0], -s.pad[0]);
        let ws = em.mad(ow, s.stride[1], -s.pad[1]);
        // as the scalar path, tap by tap from -inf (max) or 0 (average), so a
        // NaN tap never replaces the running max and the sums match bit for bit
        let mut acc = em.fv(if s.max { f32::NEG_INFINITY } else { 0.0 });
        for i in 0..s.kernel[0] {
            for j in 0..s.kernel[1] {
                let ih = em.add(hs, i);
                let iw = em.add(ws, j);
                let r = em.mul(ih, s.w);
                let o = em.iadd(r, iw);
                let o = em.iadd(xb, o);
                let v = if s.stride[1] == 1 {
                    em.ldv(s.x.region, o, s.x.range())
                } else {
                    em.ldv_stride2(s.x.region, o, s.x.range())
                };
                acc = s.combine(em, acc, v);
            }
        }
        if !s.max {
            let cnt = em.fv((s.kernel[0] * s.kernel[1]) as f32);
            acc = em.b.ins().fdiv(acc, cnt);
        }
        let r = em.mul(oh, s.ow);
        let o = em.iadd(r, ow);
        let o = em.iadd(yb, o);
        em.stv(s.y.region, o, s.y.range(), acc);
    }

    /// One output, taps outside the input skipped.
    fn one(&self, em: &mut Em, xb: Value, yb: Value, oh: Value, ow: Value) {
        let s = self;
        let hs = em.mad(oh, s.stride[0], -s.pad[0]);
        let ws = em.mad(ow, s.stride[1], -s.pad[1]);
        let init = em.f(if s.max { f32::NEG_INFINITY } else { 0.0 });
        let mut acc = init;
        for i in 0..s.kernel[0] {
            for j in 0..s.kernel[1] {
                let ih = em.add(hs, i);
                let iw = em.add(ws, j);
                let okh = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, ih, s.h);
                let okw = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, iw, s.w);
                let ok = em.b.ins().band(okh, okw);
                let r = em.mul(ih, s.w);
                let o = em.iadd(r, iw);
                let o = em.iadd(xb, o);
                let o = em.b.ins().select(ok, o, xb);
                let v = em.ld(s.x.region, o, s.x.range());
                let v = em.b.ins().select(ok, v, init);
                acc = s.combine(em, acc, v);
            }
        }
        if !s.max {
            // PyTorch: the window clipped to the padded input, then (without
            // count_include_pad) to the input itself.
            let he = em.add(hs, s.kernel[0]);
            let he = imin(em, he, s.h + s.pad[2]);
            let we = em.add(ws, s.kernel[1]);
            let we = imin(em, we, s.w + s.pad[3]);
            let cnt = if s.count_include_pad {
                let a = em.b.ins().isub(he, hs);
                let b = em.b.ins().isub(we, ws);
                em.b.ins().imul(a, b)
            } else {
                let z = em.c(0);
                let hs2 = em.b.ins().smax(hs, z);
                let ws2 = em.b.ins().smax(ws, z);
                let he2 = imin(em, he, s.h);
                let we2 = imin(em, we, s.w);
                let a = em.b.ins().isub(he2, hs2);
                let b = em.b.ins().isub(we2, ws2);
                em.b.ins().imul(a, b)
            };
            let one = em.c(1);
            let cnt = em.b.ins().smax(cnt, one);
            let cf = em.b.ins().fcvt_from_sint(types::F32, cnt);
            acc = em.b.ins().fdiv(acc, cf);
        }
        let r = em.mul(oh, s.ow);
        let o = em.iadd(r, ow);
        let o = em.iadd(yb, o);
        em.st(s.y.region, o, s.y.range(), acc);
    }
}

/// Mean over each `(n, c)` plane; a tile is `cpt` channels.
#[derive(Clone, Debug)]
pub struct GapSpec {
    pub n: i64,
    pub c: i64,
    pub hw: i64,
    pub cpt: i64,
    pub x: Loc,
    pub y: Loc,
}

impl GapSpec {
    pub fn tiles(&self) -> usize {
        (self.n * ((self.c + self.cpt - 1) / self.cpt)) as usize
    }
    pub fn emit(&self, em: &mut Em) {
        let s = self.clone();
        let ncb = (s.c + s.cpt - 1) / s.cpt;
        let d = em.split(em.tile, &[s.n, ncb]);
        let c0 = em.mul(d[1], s.cpt);
        let c1 = em.add(c0, s.cpt);
        let cend = imin(em, c1, s.c);
        let xb0 = em.mad(d[0], s.x.bstride, s.x.off);
        let yb0 = em.mad(d[0], s.y.bstride, s.y.off);
        em.for_dyn(c0, cend, 1, |em, c| {
            let xo = em.mul(c, s.hw);
            let xb = em.iadd(xb0, xo);
            let l4 = s.hw / 4 * 4;
            let z = em.fv(0.0);
            let vacc = em.fold_c(0, l4, 4, z, |em, i, acc| {
                let o = em.iadd(xb, i);
                let v = em.ldv(s.x.region, o, s.x.range());
                em.b.ins().fadd(acc, v)
            });
            let h = hsum(em, vacc);
            let acc = em.fold_c(l4, s.hw, 1, h, |em, i, acc| {
                let o = em.iadd(xb, i);
                let v = em.ld(s.x.region, o, s.x.range());
                em.b.ins().fadd(acc, v)
            });
            let inv = em.f(1.0 / s.hw as f32);
            let m = em.b.ins().fmul(acc, inv);
            let yo = em.iadd(yb0, c);
            em.st(s.y.region, yo, s.y.range(), m);
        });
    }
}

/// Local response normalisation across channels, one `(n, c)` plane a tile.
#[derive(Clone, Debug)]
pub struct LrnSpec {
    pub n: i64,
    pub c: i64,
    pub plane: i64,
    pub size: i64,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
    pub x: Loc,
    pub y: Loc,
}

impl LrnSpec {
    pub fn tiles(&self) -> usize {
        (self.n * self.c) as usize
    }
    pub fn emit(&self, em: &mut Em) {
        let s = self.clone();
        let d = em.split(em.tile, &[s.n, s.c]);
        let xb = em.mad(d[0], s.x.bstride, s.x.off);
        let yb0 = em.mad(d[0], s.y.bstride, s.y.off);
        let ch = d[1];
        em.for_c(0, s.plane, 1, |em, p| {
            let xp = em.iadd(xb, p);
            let z = em.f(0.0);
            let sum = em.fold_c(0, s.size, 1, z, |em, j, acc| {
                let cc0 = em.iadd(ch, j);
                let cc = em.add(cc0, -(s.size / 2));
                let ok = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, cc, s.c);
                let co = em.mul(cc, s.plane);
                let o = em.iadd(xp, co);
                let o = em.b.ins().select(ok, o, xb);
                let v = em.ld(s.x.region, o, s.x.range());
                let zz = em.f(0.0);
                let v = em.b.ins().select(ok, v, zz);
                em.b.ins().fma(v, v, acc)
            });
            let scale = em.f(s.alpha / s.size as f32);
            let kk = em.f(s.k);
            let dnm = em.b.ins().fma(sum, scale, kk);
            let beta = em.f(s.beta);
            let pw = em.powf(dnm, beta);
            let co = em.mul(ch, s.plane);
            let o = em.iadd(xp, co);
            let v = em.ld(s.x.region, o, s.x.range());
            let out = em.b.ins().fdiv(v, pw);
            let yo = em.iadd(yb0, co);
            let yo = em.iadd(yo, p);
            em.st(s.y.region, yo, s.y.range(), out);
        });
    }
}

/// Softmax along one axis: `[outer, len, inner]`, one outer index a tile.
/// `outer_per_item` outer indices make one batch item (0 when the axis is the batch axis).
#[derive(Clone, Debug)]
pub struct SoftmaxSpec {
    pub outer: i64,
    pub outer_per_item: i64,
    pub len: i64,
    pub inner: i64,
    pub x: Loc,
    pub y: Loc,
}

impl SoftmaxSpec {
    pub fn tiles(&self) -> usize {
        self.outer as usize
    }
    pub fn emit(&self, em: &mut Em) {
        let s = self.clone();
        let base = |em: &mut Em, l: Loc| -> (Value, i64) {
            if s.outer_per_item == 0 {
                (em.c(l.off), l.bstride)
            } else {
                let i0 = em.udiv(em.tile, s.outer_per_item);
                let rest = em.urem(em.tile, s.outer_per_item);
                let b = em.mad(i0, l.bstride, l.off);
                let r = em.mul(rest, s.len * s.inner);
                (em.iadd(b, r), s.inner)
            }
        };
        let (xb, xs) = base(em, s.x);
        let (yb, ys) = base(em, s.y);
        em.for_c(0, s.inner, 1, |em, i| {
            let xi = em.iadd(xb, i);
            let yi = em.iadd(yb, i);
            let ninf = em.f(f32::NEG_INFINITY);
            let m = em.fold_c(0, s.len, 1, ninf, |em, j, acc| {
                let o = em.mad(j, xs, 0);
                let o = em.iadd(xi, o);
                let v = em.ld(s.x.region, o, s.x.range());
                let gt = em.b.ins().fcmp(FloatCC::GreaterThan, v, acc);
                em.b.ins().select(gt, v, acc)
            });
            let z = em.f(0.0);
            let sum = em.fold_c(0, s.len, 1, z, |em, j, acc| {
                let o = em.mul(j, xs);
                let o = em.iadd(xi, o);
                let v = em.ld(s.x.region, o, s.x.range());
                let dlt = em.b.ins().fsub(v, m);
                let e = em.expf(dlt);
                let yo = em.mul(j, ys);
                let yo = em.iadd(yi, yo);
                em.st(s.y.region, yo, s.y.range(), e);
                em.b.ins().fadd(acc, e)
            });
            let one = em.f(1.0);
            let inv = em.b.ins().fdiv(one, sum);
            em.for_c(0, s.len, 1, |em, j| {
                let yo = em.mul(j, ys);
                let yo = em.iadd(yi, yo);
                let v = em.ld(s.y.region, yo, s.y.range());
                let v = em.b.ins().fmul(v, inv);
                em.st(s.y.region, yo, s.y.range(), v);
            });
        });
    }
}

/// Mean softmax cross-entropy with label smoothing; one tile (the result is one scalar).
#[derive(Clone, Debug)]
pub struct SceSpec {
    pub n: i64,
    pub c: i64,
    pub smoothing: f32,
    pub logits: Loc,
    pub labels: Loc,
    pub y: Loc,
}

impl SceSpec {
    pub fn emit(&self, em: &mut Em, tag: u32) {
        let s = self.clone();
        let z = em.f(0.0);
        let total = em.fold_c(0, s.n, 1, z, |em, i, total| {
            let xb = em.mad(i, s.logits.bstride, s.logits.off);
            let ninf = em.f(f32::NEG_INFINITY);
            let m = em.fold_c(0, s.c, 1, ninf, |em, j, acc| {
                let o = em.iadd(xb, j);
                let v = em.ld(s.logits.region, o, s.logits.range());
                let gt = em.b.ins().fcmp(FloatCC::GreaterThan, v, acc);
                em.b.ins().select(gt, v, acc)
            });
            let z = em.f(0.0);
            let se = em.fold_c(0, s.c, 1, z, |em, j, acc| {
                let o = em.iadd(xb, j);
                let v = em.ld(s.logits.region, o, s.logits.range());
                let dlt = em.b.ins().fsub(v, m);
                let e = em.expf(dlt);
                em.b.ins().fadd(acc, e)
            });
            let z = em.f(0.0);
            let sx = em.fold_c(0, s.c, 1, z, |em, j, acc| {
                let o = em.iadd(xb, j);
                let v = em.ld(s.logits.region, o, s.logits.range());
                em.b.ins().fadd(acc, v)
            });
            let lse = em.logf(se);
            let lse = em.b.ins().fadd(lse, m);
            let lo = em.mad(i, s.labels.bstride.max(1), s.labels.off);
            let lab = em.ld(s.labels.region, lo, s.labels.range());
            let li = em.b.ins().fcvt_to_sint_sat(types::I64, lab);
            let back = em.b.ins().fcvt_from_sint(types::F32, li);
            let exact = em.b.ins().fcmp(FloatCC::Equal, back, lab);
            let inr = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, li, s.c);
            let ok = em.b.ins().band(exact, inr);
            let bad = em.b.ins().bxor_imm(ok, 1); // bnot would turn 1 into 0xfe, still true
            em.when(bad, |em| em.fail(BAD_LABEL + tag));
            let zero = em.c(0);
            let li = em.b.ins().select(ok, li, zero);
            let o = em.iadd(xb, li);
            let xl = em.ld(s.logits.region, o, s.logits.range());
            let a = em.f(1.0 - s.smoothing);
            let b = em.f(s.smoothing / s.c as f32);
            let t1 = em.b.ins().fmul(a, xl);
            let t2 = em.b.ins().fmul(b, sx);
            let l = em.b.ins().fsub(lse, t1);
            let l = em.b.ins().fsub(l, t2);
            em.b.ins().fadd(total, l)
        });
        let inv = em.f(1.0 / s.n as f32);
        let v = em.b.ins().fmul(total, inv);
        let o = em.c(s.y.off);
        em.st(s.y.region, o, s.y.range(), v);
    }
}

// ---------------------------------------------------------------- affine copy

/// One axis of an affine copy: output index `o` reads input index `a * o + b`,
/// and positions outside `[0, in_dim)` take the pad value.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    pub out_dim: i64,
    pub a: i64,
    pub b: i64,
    pub in_dim: i64,
    pub in_stride: i64,
    pub out_stride: i64,
}

/// `y[o] = x[a*o + b]` per axis (pad, slice, concat and layout copies), one
/// index of the first two axes a tile (a batch item and a channel of NCHW).
#[derive(Clone, Debug)]
pub struct CopySpec {
    pub axes: Vec<Axis>,
    pub pad: f32,
    pub x: Loc,
    pub y: Loc,
}

impl CopySpec {
    /// Axes the tile index covers.
    fn tiled(&self) -> usize {
        if self.axes.len() >= 3 {
            2
        } else {
            1
        }
    }
    pub fn tiles(&self) -> usize {
        self.axes[..self.tiled()]
            .iter()
            .map(|a| a.out_dim as usize)
            .product()
    }
    pub fn emit(&self, em: &mut Em) {
        let xo = em.c(self.x.off);
        let yo = em.c(self.y.off);
        if self.axes.is_empty() {
            let v = em.ld(self.x.region, xo, self.x.range());
            em.st(self.y.region, yo, self.y.range(), v);
            return;
        }
        let dims: Vec<i64> = self.axes[..self.tiled()]
            .iter()
            .map(|a| a.out_dim)
            .collect();
        let idx = em.split(em.tile, &dims);
        self.axis(em, 0, &idx, xo, yo, None);
    }
    /// Axis `d` at output index `o`; `tile_idx` holds the indices of the tiled axes.
    fn axis(
        &self,
        em: &mut Em,
        d: usize,
        tile_idx: &[Value],
        xo: Value,
        yo: Value,
        ok: Option<Value>,
    ) {
        if d + 1 == self.axes.len() && d >= self.tiled() && self.axes[d].a >= 1 {
            return self.inner(em, xo, yo, ok);
        }
        let at = |em: &mut Em, o: Value, xo: Value, yo: Value, ok: Option<Value>| {
            let ax = self.axes[d];
            let i = em.mad(o, ax.a, ax.b);
            let needs = !(ax.b >= 0 && ax.a * (ax.out_dim - 1) + ax.b < ax.in_dim);
            let ok = if needs {
                let c = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, i, ax.in_dim);
                Some(match ok {
                    Some(p) => em.b.ins().band(p, c),
                    None => c,
                })
            } else {
                ok
            };
            let xs = em.mul(i, ax.in_stride);
            let xo = em.iadd(xo, xs);
            let ys = em.mul(o, ax.out_stride);
            let yo = em.iadd(yo, ys);
            (xo, yo, ok)
        };
        if d < self.tiled() {
            let (xo, yo, ok) = at(em, tile_idx[d], xo, yo, ok);
            if d + 1 == self.axes.len() {
                self.element(em, xo, yo, ok);
            } else {
                self.axis(em, d + 1, tile_idx, xo, yo, ok);
            }
        } else {
            em.for_c(0, self.axes[d].out_dim, 1, |em, o| {
                let (xo, yo, ok) = at(em, o, xo, yo, ok);
                self.axis(em, d + 1, tile_idx, xo, yo, ok)
            });
        }
    }
    /// One element, `ok` saying whether its source exists (else it is padding).
    fn element(&self, em: &mut Em, xo: Value, yo: Value, ok: Option<Value>) {
        let v = match ok {
            Some(ok) => {
                let base = em.c(self.x.off);
                let a = em.b.ins().select(ok, xo, base);
                let v = em.ld(self.x.region, a, self.x.range());
                let p = em.f(self.pad);
                em.b.ins().select(ok, v, p)
            }
            None => em.ld(self.x.region, xo, self.x.range()),
        };
        em.st(self.y.region, yo, self.y.range(), v);
    }
    /// The innermost axis, split into the padding before, the range that
    /// reads the input (vector copies when both sides are contiguous, no
    /// bounds checks) and the padding after.
    fn inner(&self, em: &mut Em, xo: Value, yo: Value, ok: Option<Value>) {
        let ax = *self.axes.last().expect("an inner axis");
        // outputs o with 0 <= a*o + b < in_dim
        let first = if ax.b >= 0 {
            0
        } else {
            (-ax.b + ax.a - 1) / ax.a
        }
        .min(ax.out_dim);
        let last = ((ax.in_dim - 1 - ax.b).div_euclid(ax.a) + 1).clamp(first, ax.out_dim);
        let pad_run = |em: &mut Em, from: i64, to: i64| {
            em.for_c(from, to, 1, |em, o| {
                let p = em.f(self.pad);
                let ys = em.mul(o, ax.out_stride);
                let y = em.iadd(yo, ys);
                em.st(self.y.region, y, self.y.range(), p);
            });
        };
        let copy_run = |em: &mut Em| {
            let x0 = em.add(xo, ax.b * ax.in_stride);
            let step = ax.a * ax.in_stride;
            let n4 = match (step, ax.out_stride) {
                (1, 1) => (last - first) / 4 * 4,
                // stride 2: a vector reads one float past its last element,
                // which must still be inside the axis
                (2, 1) if ax.a == 2 => {
                    let mut n = (last - first) / 4 * 4;
                    while n > 0 && ax.b + 2 * (first + n - 1) + 1 >= ax.in_dim {
                        n -= 4;
                    }
                    n
                }
                _ => 0,
            };
            em.for_c(first, first + n4, 4, |em, o| {
                let x = em.mul(o, step);
                let x = em.iadd(x0, x);
                let v = if step == 1 {
                    em.ldv(self.x.region, x, self.x.range())
                } else {
                    em.ldv_stride2(self.x.region, x, self.x.range())
                };
                let y = em.iadd(yo, o);
                em.stv(self.y.region, y, self.y.range(), v);
            });
            em.for_c(first + n4, last, 1, |em, o| {
                let xs = em.mul(o, ax.a * ax.in_stride);
                let x = em.iadd(x0, xs);
                let v = em.ld(self.x.region, x, self.x.range());
                let ys = em.mul(o, ax.out_stride);
                let y = em.iadd(yo, ys);
                em.st(self.y.region, y, self.y.range(), v);
            });
        };
        pad_run(em, 0, first);
        match ok {
            Some(ok) => em.if_else(ok, copy_run, |em| pad_run(em, first, last)),
            None => copy_run(em),
        }
        pad_run(em, last, ax.out_dim);
    }
}
