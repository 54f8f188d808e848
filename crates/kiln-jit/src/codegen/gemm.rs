//! The GEMM kernel of convs and dense layers: `Y = A x B (+ bias)
//! (+ residual) (relu)`, `A` the weights pre-packed in the constant pool
//! (`mr`-row panels, `k`-major, per group), `B` gathered from the input
//! (im2col for a conv, a transpose for a dense layer) a K block at a time.
//!
//! A tile (one parallel call) is one image, one group, a block of `nq * nr`
//! output pixels and a block of `mb * mr` output rows. Its loop nest is the
//! BLIS one, with the packing of B replaced by the gather:
//!
//! ```text
//! for each K block (kc rows, a whole number of input channels):
//!     gather B[kc x nq*nr] into nq panels of kc x nr       (scratch, L2)
//!     for each of the nq panels:                           (kc x nr in L1)
//!         for each mr-row panel of A:                      (streams from L2)
//!             tile(kc, A, B panel, C, ldc, accumulate = not the first K block)
//! epilogue: C + bias (+ residual), ReLU, stored into Y
//! ```
//!
//! C lives in scratch (`mb * mr x nq * nr`); the K blocks depend only on the
//! shape, never on threads, so the sum order of every output is fixed.

use super::kernels::Loc;
use super::{Em, Region};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

/// How `B` is gathered from the input.
#[derive(Clone, Debug)]
pub enum Gather {
    /// im2col of a conv: column = output pixel, row = (input channel, kh, kw).
    Conv {
        h: i64,
        w: i64,
        cg: i64,
        kh: i64,
        kw: i64,
        sh: i64,
        sw: i64,
        pt: i64,
        pl: i64,
        dh: i64,
        dw: i64,
        ow: i64,
    },
    /// A stride-1 unpadded conv computed on the input's own pixel grid: output
    /// column `p = oh * w + ow` for `ow < w` (the columns `ow >= ow_out` are
    /// computed and dropped), so that tap `(i, j)` of every column is the input
    /// shifted by `i * dh * w + j * dw`: each row of B is one contiguous copy.
    /// Padded convs get here through an explicit `pad` (see `lib.rs`).
    Shifted {
        h: i64,
        w: i64,
        cg: i64,
        kh: i64,
        kw: i64,
        dh: i64,
        dw: i64,
        ow: i64,
    },
    /// Dense: column = batch row, row = input feature.
    Dense,
}

impl Gather {
    /// Rows of B per reduction unit (an input channel of a conv, a feature of a dense layer).
    fn unit_rows(&self) -> i64 {
        match self {
            Gather::Conv { kh, kw, .. } | Gather::Shifted { kh, kw, .. } => kh * kw,
            Gather::Dense => 1,
        }
    }
    fn units(&self, k: i64) -> i64 {
        k / self.unit_rows()
    }
    /// Whether the reduction runs tap by tap with B read in place (see `GemmSpec::tap_major`).
    pub fn is_tap_major(&self) -> bool {
        self.pointwise() || matches!(self, Gather::Shifted { .. })
    }
    /// A 1x1, stride-1, unpadded conv: B is the input itself, row-major.
    fn pointwise(&self) -> bool {
        matches!(self, Gather::Conv { kh: 1, kw: 1, sh: 1, sw: 1, pt: 0, pl: 0, ow, w, .. } if ow == w)
    }
}

/// Cache blocking of one GEMM kernel, from the tile shape and the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmBlocking {
    /// `nr`-column panels per tile.
    pub nq: i64,
    /// `mr`-row panels per tile.
    pub mb: i64,
    /// Reduction units (input channels / features) per K block.
    pub ku: i64,
}

impl GemmBlocking {
    /// The `kc x nr` B panel in about half of a 32 KiB L1 (the smallest L1d of
    /// the CPUs kiln targets), about 128 pixels and 128 output rows a tile so
    /// that the gathered B block, A block and C block sit in L2 together.
    pub fn choose(
        mr: i64,
        nr: i64,
        mg: i64,
        p: i64,
        unit_rows: i64,
        units: i64,
        items: i64,
    ) -> Self {
        let kc = (4096 / nr).max(unit_rows);
        let panels = (mg + mr - 1) / mr;
        let mut b = GemmBlocking {
            nq: ((p + nr - 1) / nr).clamp(1, (128 / nr).max(1)),
            // up to 512 rows share one gathered B block (the gather is the cost
            // a GEMM on packed operands does not have)
            mb: panels.clamp(1, (512 + mr - 1) / mr),
            ku: (kc / unit_rows).clamp(1, units.max(1)),
        };
        // at least 16 tiles where the problem allows, so that two to four
        // threads stay busy and balanced: fewer rows a tile first, then fewer pixels
        let tiles = |b: &GemmBlocking| {
            items * ((p + b.nq * nr - 1) / (b.nq * nr)) * ((panels + b.mb - 1) / b.mb)
        };
        while tiles(&b) < 16 && (b.mb > 2 || b.nq > 1) {
            if b.mb > 2 {
                b.mb = (b.mb + 1) / 2;
            } else {
                b.nq = (b.nq + 1) / 2;
            }
        }
        b
    }
}

/// One conv or dense layer as a GEMM; see the module docs.
#[derive(Clone, Debug)]
pub struct GemmSpec {
    pub n: i64,
    pub groups: i64,
    /// Output rows (channels / features) per group.
    pub mg: i64,
    /// Reduction length per group.
    pub k: i64,
    /// Output columns (pixels / batch rows).
    pub p: i64,
    pub mr: i64,
    pub nr: i64,
    pub blocking: GemmBlocking,
    pub a_off: i64,
    pub a_len: i64,
    pub bias: Option<i64>,
    pub relu: bool,
    pub x: Loc,
    pub y: Loc,
    pub res: Option<Loc>,
    /// Output strides of a row (output channel / feature) and a column (pixel / batch row).
    pub cm: i64,
    pub cp: i64,
    pub gather: Gather,
}

impl GemmSpec {
    fn nmp(&self) -> i64 {
        (self.mg + self.mr - 1) / self.mr
    }
    fn nmb(&self) -> i64 {
        (self.nmp() + self.blocking.mb - 1) / self.blocking.mb
    }
    /// Pixels of a tile.
    fn nb(&self) -> i64 {
        self.blocking.nq * self.nr
    }
    fn npb(&self) -> i64 {
        (self.p + self.nb() - 1) / self.nb()
    }
    fn kc_max(&self) -> i64 {
        if self.gather.is_tap_major() {
            return self.blocking.ku;
        }
        self.blocking.ku * self.gather.unit_rows()
    }
    // scratch layout: [B kc_max x nb][C mb*mr x nb][2 x nb pixel bases (i32)]
    fn c_base(&self) -> i64 {
        self.kc_max() * self.nb()
    }
    fn int_base(&self) -> i64 {
        self.c_base() + self.blocking.mb * self.mr * self.nb()
    }
    pub fn tiles(&self) -> usize {
        (self.n * self.groups * self.npb() * self.nmb()) as usize
    }
    /// Scratch floats a tile needs.
    pub fn scratch(&self) -> usize {
        (self.int_base() + 2 * self.nb()) as usize
    }

    pub fn emit(&self, em: &mut Em) {
        let d = em.split(em.tile, &[self.n, self.groups, self.npb(), self.nmb()]);
        let mp0 = em.mul(d[3], self.blocking.mb);
        let mp1 = em.add(mp0, self.blocking.mb);
        let nmp = em.c(self.nmp());
        let t = TileVars {
            ni: d[0],
            g: d[1],
            pb: d[2],
            p0: em.mul(d[2], self.nb()),
            mp0,
            mpend: em.b.ins().smin(mp1, nmp),
        };
        match self.gather {
            Gather::Conv { .. } if !self.gather.pointwise() => self.pixel_bases(em, &t),
            Gather::Shifted { .. } => self.output_index(em, &t),
            _ => {}
        }
        let ku = self.blocking.ku;
        let fused = self.fused(em);
        // K blocks of `ku` units from `u0`, the first overwriting C; with the
        // fused tile, the conv's very last block is emitted apart (it stores Y)
        let blocks = |em: &mut Em,
                      units: i64,
                      first_block: bool,
                      last_tap: bool,
                      block: &dyn Fn(&mut Em, Value, i64, Value, bool)| {
            let (full, rem) = (units / ku, units % ku);
            let peel = fused && last_tap && rem == 0;
            em.for_c(0, full - peel as i64, 1, |em, kb| {
                let u0 = em.mul(kb, ku);
                let acc = if first_block {
                    let later = em.b.ins().icmp_imm(IntCC::NotEqual, kb, 0);
                    em.b.ins().uextend(types::I64, later)
                } else {
                    em.c(1)
                };
                block(em, u0, ku, acc, false);
            });
            if peel {
                let u0 = em.c((full - 1) * ku);
                let acc = em.c((full > 1 || !first_block) as i64);
                block(em, u0, ku, acc, true);
            }
            if rem > 0 {
                let u0 = em.c(full * ku);
                let acc = em.c((full > 0 || !first_block) as i64);
                block(em, u0, rem, acc, fused && last_tap);
            }
        };
        match self.tap_major() {
            Some(taps) => {
                let n = taps.len();
                for (ti, &(shift, hw, cg)) in taps.iter().enumerate() {
                    blocks(em, cg, ti == 0, ti + 1 == n, &|em, u0, nu, acc, last| {
                        let tap = Tap {
                            index: ti as i64,
                            shift,
                            hw,
                            cg,
                        };
                        self.tap_block(em, &t, tap, u0, nu, acc, last)
                    });
                }
            }
            None => blocks(
                em,
                self.gather.units(self.k),
                true,
                true,
                &|em, u0, nu, acc, last| self.k_block(em, &t, u0, nu, acc, last),
            ),
        }
        if !fused {
            self.epilogue(em, &t);
        }
    }

    /// Whether the last K block goes through the tile that stores Y itself
    /// (see `ukernel::TileOut`): where the tile has one and Y's columns are
    /// its pixels (a conv; a dense layer's columns are strided batch rows).
    fn fused(&self, em: &Em) -> bool {
        em.has_out_tile() && self.cp == 1 && !matches!(self.gather, Gather::Dense)
    }

    /// Pixels the last pixel block holds (all others hold `nb`).
    fn last_valid(&self) -> i64 {
        self.p - (self.npb() - 1) * self.nb()
    }

    /// Emits `body(valid)` for the tile's pixel count: `nb`, or the last
    /// block's, both compile-time constants.
    fn per_valid(&self, em: &mut Em, t: &TileVars, body: impl Fn(&mut Em, i64)) {
        let last = self.last_valid();
        if last == self.nb() {
            body(em, last);
        } else {
            let is_last = em.b.ins().icmp_imm(IntCC::Equal, t.pb, self.npb() - 1);
            em.if_else(is_last, |em| body(em, last), |em| body(em, self.nb()));
        }
    }

    fn srange(&self) -> (i64, i64) {
        (0, self.scratch() as i64)
    }

    /// A 1x1 or shifted conv reduces tap by tap (`(shift, hw, channels)` each,
    /// A packed tap-major): every row of one tap's B block is an input channel
    /// from `shift` on, `hw` floats after the previous one.
    fn tap_major(&self) -> Option<Vec<(i64, i64, i64)>> {
        match self.gather {
            Gather::Conv { h, w, cg, .. } if self.gather.pointwise() => Some(vec![(0, h * w, cg)]),
            Gather::Shifted {
                h,
                w,
                cg,
                kh,
                kw,
                dh,
                dw,
                ..
            } => Some(
                (0..kh)
                    .flat_map(|i| (0..kw).map(move |j| (i * dh * w + j * dw, h * w, cg)))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// One K block of tap `tap`: channels `u0 .. u0 + nu`. A full pixel block
    /// is read in place by the strided tile where there is one; otherwise
    /// (and for the last, partial block) each row is copied into a B panel.
    #[allow(clippy::too_many_arguments)]
    fn tap_block(
        &self,
        em: &mut Em,
        t: &TileVars,
        tap: Tap,
        u0: Value,
        nu: i64,
        acc: Value,
        last: bool,
    ) {
        let Tap {
            index: tap,
            shift,
            hw,
            cg,
        } = tap;
        let (x, nr, nb) = (self.x, self.nr, self.nb());
        let xb0 = em.mad(t.ni, x.bstride, x.off + shift);
        let goff = em.mul(t.g, cg * hw);
        let xb = em.iadd(xb0, goff);
        let xb = em.iadd(xb, t.p0);
        let cu = em.mul(u0, hw);
        let src0 = em.iadd(xb, cu);
        let a_unit = em.add(u0, tap * cg);
        self.per_valid(em, t, |em, valid| {
            // The last tile row reads `overrun` floats past the input's last
            // channel (columns the epilogue drops): fine up to the allocation's slack.
            let overrun = shift + (self.npb() - 1) * nb + (valid + nr - 1) / nr * nr - hw;
            let slack = crate::plan::READ_SLACK as i64;
            if em.has_strided_tile() && (valid == nb || overrun <= slack) {
                let ldb = em.c(hw);
                let range = (x.lo, x.hi + slack);
                self.tile_calls(em, t, a_unit, nu, acc, valid, last, &|em, q| {
                    let at = em.add(src0, q * nr);
                    let b = em.block_ptr(x.region, at, range, (nu - 1) * hw + nr);
                    (b, ldb)
                });
                return;
            }
            for q in 0..self.blocking.nq {
                let vq = (valid - q * nr).clamp(0, nr);
                em.for_c(0, nu, 1, |em, cc| {
                    let row = em.mul(cc, hw);
                    let src = em.iadd(src0, row);
                    let src = em.add(src, q * nr);
                    let dst = em.mad(cc, nr, q * nu * nr);
                    self.copy_row(em, src, dst, vq);
                });
            }
            self.packed_tile_calls(em, t, a_unit, nu, acc, valid, last);
        });
    }

    /// One K block: `nu` units from `u0`, gathered, then every tile call.
    fn k_block(&self, em: &mut Em, t: &TileVars, u0: Value, nu: i64, acc: Value, last: bool) {
        match &self.gather {
            Gather::Dense => self.gather_dense(em, t, u0, nu),
            _ => self.gather_conv(em, t, u0, nu),
        }
        let a_unit = em.mul(u0, self.gather.unit_rows());
        let kcl = nu * self.gather.unit_rows();
        self.per_valid(em, t, |em, valid| {
            self.packed_tile_calls(em, t, a_unit, kcl, acc, valid, last)
        });
    }

    /// The tile calls of a K block whose B panels were packed into scratch.
    #[allow(clippy::too_many_arguments)]
    fn packed_tile_calls(
        &self,
        em: &mut Em,
        t: &TileVars,
        a_row: Value,
        kcl: i64,
        acc: Value,
        valid: i64,
        last: bool,
    ) {
        let (nr, srange) = (self.nr, self.srange());
        let ldb = em.c(nr);
        self.tile_calls(em, t, a_row, kcl, acc, valid, last, &|em, q| {
            let boff = em.c(q * kcl * nr);
            (em.block_ptr(Region::Scratch, boff, srange, kcl * nr), ldb)
        });
    }

    /// For each B panel holding some of the `valid` pixels (`b_of(q)`: its
    /// address and row stride) and each A panel of the tile:
    /// `C (+)= A[.., a_row .. a_row + kcl] x B`; for the `last` block of a
    /// fused conv, `Y = epilogue(C + A x B)` by the out tile instead.
    #[allow(clippy::too_many_arguments)]
    fn tile_calls(
        &self,
        em: &mut Em,
        t: &TileVars,
        a_row: Value,
        kcl: i64,
        acc: Value,
        valid: i64,
        last: bool,
        b_of: &dyn Fn(&mut Em, i64) -> (Value, Value),
    ) {
        let (mr, nr, nb, k) = (self.mr, self.nr, self.nb(), self.k);
        let srange = self.srange();
        let nmp = self.nmp();
        let ldc = em.c(nb);
        let kv = em.c(kcl);
        let ua = em.mul(a_row, mr);
        for q in 0..(valid + nr - 1) / nr {
            let (b, ldb) = b_of(em, q);
            em.for_dyn(t.mp0, t.mpend, 1, |em, mp| {
                let gp = em.mul(t.g, nmp);
                let panel = em.iadd(gp, mp);
                let pa = em.mad(panel, k * mr, self.a_off);
                let aoff = em.iadd(pa, ua);
                let a = em.block_ptr(
                    Region::Const,
                    aoff,
                    (self.a_off, self.a_off + self.a_len),
                    kcl * mr,
                );
                let lm = em.b.ins().isub(mp, t.mp0);
                let coff = em.mad(lm, mr * nb, self.c_base() + q * nr);
                let c = em.block_ptr(Region::Scratch, coff, srange, (mr - 1) * nb + nr);
                if last {
                    let out = self.tile_out(em, t, mp, q, valid, c, ldc, acc);
                    em.call_tile_out(kv, a, b, ldb, out);
                } else {
                    em.call_tile(kv, a, b, ldb, c, ldc, acc);
                }
            });
        }
    }

    /// The `TileOut` fields of A panel `mp` and B panel `q` (C at `c`): Y and
    /// the residual from the panel's first output row and kept column, the
    /// bias of its rows, and which of its columns are kept (the first
    /// `valid - q * nr`, or for a shifted conv the mask `output_index` made).
    #[allow(clippy::too_many_arguments)]
    fn tile_out(
        &self,
        em: &mut Em,
        t: &TileVars,
        mp: Value,
        q: i64,
        valid: i64,
        c: Value,
        ldc: Value,
        acc: Value,
    ) -> [Value; 9] {
        let (mr, nr, mg, cm) = (self.mr, self.nr, self.mg, self.cm);
        let zero = em.c(0);
        let c = em.b.ins().select(acc, c, zero);
        let m = em.mul(mp, mr);
        let mgv = em.c(mg);
        let left = em.b.ins().isub(mgv, m);
        let mrv = em.c(mr);
        let rows = em.b.ins().smin(left, mrv);
        let g0 = em.mul(t.g, mg);
        let row = em.iadd(g0, m);
        let (o0, mask, kept) = match self.gather {
            Gather::Shifted { .. } => {
                let at = em.c(self.int_base() + self.nb() + 2 * q);
                let mask = self.ld_i32(em, at, 1);
                let mask = em.b.ins().band_imm(mask, (1i64 << 32) - 1);
                let at1 = em.add(at, 1);
                let o0 = self.ld_i32(em, at1, 1);
                let kept = em.b.ins().popcnt(mask);
                (o0, mask, kept)
            }
            _ => {
                let vq = (valid - q * nr).clamp(0, nr);
                let o0 = em.add(t.p0, q * nr);
                (o0, em.c(((1u64 << vq) - 1) as i64), em.c(vq))
            }
        };
        // the floats a panel's Y (and residual) rows span: (rows - 1) * cm + kept
        let rows1 = em.add(rows, -1);
        let span = em.mad(rows1, cm, 0);
        let span = em.iadd(span, kept);
        let yr = em.mul(row, cm);
        let yr = em.iadd(yr, o0);
        let (y, res) = (self.y, self.res);
        let yo = em.mad(t.ni, y.bstride, y.off);
        let yo = em.iadd(yo, yr);
        let yo = em.store_off(y.region, yo);
        let yp = em.ptr_dyn(y.region, yo, y.range(), span);
        let rp = match res {
            Some(rl) => {
                let ro = em.mad(t.ni, rl.bstride, rl.off);
                let ro = em.iadd(ro, yr);
                em.ptr_dyn(rl.region, ro, rl.range(), span)
            }
            None => zero,
        };
        let bp = match self.bias {
            Some(bo) => {
                let o = em.add(row, bo);
                em.ptr_dyn(Region::Const, o, (bo, bo + mg * self.groups), rows)
            }
            None => zero,
        };
        let ldy = em.c(cm);
        let relu = em.c(self.relu as i64);
        [c, ldc, yp, ldy, rp, bp, rows, mask, relu]
    }

    fn gather_dense(&self, em: &mut Em, t: &TileVars, u0: Value, nu: i64) {
        let (x, nr, pp, srange) = (self.x, self.nr, self.p, self.srange());
        for q in 0..self.blocking.nq {
            em.for_c(0, nr, 1, |em, col| {
                let pq = em.add(t.p0, q * nr);
                let p = em.iadd(pq, col);
                let ok = em.b.ins().icmp_imm(IntCC::SignedLessThan, p, pp);
                let dst0 = em.add(col, q * nu * nr);
                em.if_else(
                    ok,
                    |em| {
                        let xr = em.mad(p, x.bstride, x.off);
                        let xr = em.iadd(xr, u0);
                        em.for_c(0, nu, 1, |em, kk| {
                            let so = em.iadd(xr, kk);
                            let v = em.ld(x.region, so, x.range());
                            let ko = em.mul(kk, nr);
                            let dof = em.iadd(dst0, ko);
                            em.st(Region::Scratch, dof, srange, v);
                        });
                    },
                    |em| {
                        em.for_c(0, nu, 1, |em, kk| {
                            let z = em.f(0.0);
                            let ko = em.mul(kk, nr);
                            let dof = em.iadd(dst0, ko);
                            em.st(Region::Scratch, dof, srange, z);
                        });
                    },
                );
            });
        }
    }

    /// Shifted conv: the output element (`oh * ow_out + ow`) of every column of
    /// the tile, or -1 for the dropped columns (`ow >= ow_out`) and those past the end.
    fn output_index(&self, em: &mut Em, t: &TileVars) {
        let Gather::Shifted { w, ow, .. } = self.gather else {
            return;
        };
        let ib = self.int_base();
        em.for_c(0, self.nb(), 1, |em, u| {
            let (inside, oh, owi) = self.pixel(em, t, u, w);
            let kept = em.b.ins().icmp_imm(IntCC::SignedLessThan, owi, ow);
            let ok = em.b.ins().band(inside, kept);
            let idx = em.mad(oh, ow, 0);
            let idx = em.iadd(idx, owi);
            let none = em.c(-1);
            let idx = em.b.ins().select(ok, idx, none);
            let a = em.add(u, ib);
            self.st_i32(em, a, idx);
        });
        if !self.fused(em) {
            return;
        }
        // per B panel, for the out tile: the mask of kept columns and the
        // output index of the first (0 if none); kept columns are consecutive outputs
        let nr = self.nr;
        for q in 0..self.blocking.nq {
            let init = [em.c(0), em.c(-1)];
            let r = super::loops::fold_range(
                em,
                super::loops::Range::new(0, nr, 1),
                &init,
                |em, j, acc| {
                    let a = em.add(j, ib + q * nr);
                    let idx = self.ld_i32(em, a, 1);
                    let kept = em.b.ins().icmp_imm(IntCC::SignedGreaterThanOrEqual, idx, 0);
                    let bit = em.b.ins().uextend(types::I64, kept);
                    let bit = em.b.ins().ishl(bit, j);
                    let mask = em.b.ins().bor(acc[0], bit);
                    let none = em.b.ins().icmp_imm(IntCC::SignedLessThan, acc[1], 0);
                    let take = em.b.ins().band(kept, none);
                    let first = em.b.ins().select(take, idx, acc[1]);
                    vec![mask, first]
                },
            );
            let zero = em.c(0);
            let none = em.b.ins().icmp_imm(IntCC::SignedLessThan, r[1], 0);
            let first = em.b.ins().select(none, zero, r[1]);
            let at = em.c(ib + self.nb() + 2 * q);
            self.st_i32(em, at, r[0]);
            let at1 = em.c(ib + self.nb() + 2 * q + 1);
            self.st_i32(em, at1, first);
        }
    }

    /// Stores the i64 `v` as the i32 at scratch element `at` (the pixel tables).
    fn st_i32(&self, em: &mut Em, at: Value, v: Value) {
        let v = em.b.ins().ireduce(types::I32, v);
        let p = em.ptr(Region::Scratch, at, self.srange(), 1);
        em.b.ins().store(super::VF, v, p, 0);
    }
    /// The i32 at scratch element `at`, sign-extended; `width` elements from
    /// there must be in range (checked mode).
    fn ld_i32(&self, em: &mut Em, at: Value, width: i64) -> Value {
        let p = em.ptr(Region::Scratch, at, self.srange(), width);
        em.b.ins().sload32(super::VF, p, 0)
    }
    /// Pixel `u` of the tile: its column `p`, whether `p < P`, and `p`'s row and
    /// column in a grid `width` wide.
    fn pixel(&self, em: &mut Em, t: &TileVars, u: Value, width: i64) -> (Value, Value, Value) {
        let p = em.iadd(t.p0, u);
        let inside = em.b.ins().icmp_imm(IntCC::SignedLessThan, p, self.p);
        (inside, em.udiv(p, width), em.urem(p, width))
    }

    /// One row of a B panel: `valid` input floats from `src`, zeros up to `nr`.
    fn copy_row(&self, em: &mut Em, src: Value, dst: Value, valid: i64) {
        let (x, nr, srange) = (self.x, self.nr, self.srange());
        let v4 = valid / 4 * 4;
        em.for_c(0, v4, 4, |em, col| {
            let so = em.iadd(src, col);
            let v = em.ldv(x.region, so, x.range());
            let dof = em.iadd(dst, col);
            em.stv(Region::Scratch, dof, srange, v);
        });
        em.for_c(v4, valid, 1, |em, col| {
            let so = em.iadd(src, col);
            let v = em.ld(x.region, so, x.range());
            let dof = em.iadd(dst, col);
            em.st(Region::Scratch, dof, srange, v);
        });
        em.for_c(valid, nr, 1, |em, col| {
            let z = em.f(0.0);
            let dof = em.iadd(dst, col);
            em.st(Region::Scratch, dof, srange, z);
        });
    }

    /// The top-left input coordinate of every pixel of the tile (i32 pairs in
    /// scratch); pixels past the end get a row far outside, so every tap of
    /// theirs reads as padding (zero).
    fn pixel_bases(&self, em: &mut Em, t: &TileVars) {
        let Gather::Conv {
            sh, sw, pt, pl, ow, ..
        } = self.gather
        else {
            return;
        };
        let (nb, ib) = (self.nb(), self.int_base());
        em.for_c(0, nb, 1, |em, u| {
            let (ok, oh, owi) = self.pixel(em, t, u, ow);
            let ihb = em.mad(oh, sh, -pt);
            let iwb = em.mad(owi, sw, -pl);
            let far = em.c(-(1 << 30));
            let ihb = em.b.ins().select(ok, ihb, far);
            let a = em.add(u, ib);
            self.st_i32(em, a, ihb);
            let a2 = em.add(u, ib + nb);
            self.st_i32(em, a2, iwb);
        });
    }

    /// im2col of `nu` input channels from `u0`: for each tap (channel, i, j)
    /// and each pixel, the input element or zero (padding). Four pixels of
    /// one output row that read inside the input are one vector load at
    /// stride 1, two loads and a shuffle at stride 2.
    fn gather_conv(&self, em: &mut Em, t: &TileVars, u0: Value, nu: i64) {
        let Gather::Conv {
            h,
            w,
            cg,
            kh,
            kw,
            sw,
            dh,
            dw,
            ..
        } = self.gather
        else {
            return;
        };
        let (x, nr, nb, ib, srange) = (self.x, self.nr, self.nb(), self.int_base(), self.srange());
        let kcl = nu * kh * kw;
        let xb0 = em.mad(t.ni, x.bstride, x.off);
        let goff = em.mul(t.g, cg * h * w);
        let xb = em.iadd(xb0, goff);
        let ld_i32 = |em: &mut Em, at: Value, width: i64| self.ld_i32(em, at, width);
        em.for_c(0, self.blocking.nq, 1, |em, q| {
            em.for_c(0, nu, 1, |em, cc| {
                let c = em.iadd(u0, cc);
                let cb = em.mul(c, h * w);
                let xc = em.iadd(xb, cb);
                for i in 0..kh {
                    for j in 0..kw {
                        let row0 = em.mul(cc, kh * kw);
                        let row = em.add(row0, i * kw + j);
                        let qo = em.mul(q, kcl * nr);
                        let ro = em.mul(row, nr);
                        let dst = em.iadd(qo, ro);
                        let u0p = em.mul(q, nr);
                        // one element: the general path (padding, strides, dilation)
                        let one = |em: &mut Em, col: Value| {
                            let u = em.iadd(u0p, col);
                            let a = em.add(u, ib);
                            let ihb = ld_i32(em, a, 1);
                            let a2 = em.add(u, ib + nb);
                            let iwb = ld_i32(em, a2, 1);
                            let ih = em.add(ihb, i * dh);
                            let iw = em.add(iwb, j * dw);
                            let okh = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, ih, h);
                            let okw = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, iw, w);
                            let ok = em.b.ins().band(okh, okw);
                            let ro = em.mul(ih, w);
                            let o = em.iadd(ro, iw);
                            let o = em.iadd(xc, o);
                            let o = em.b.ins().select(ok, o, xb);
                            let v = em.ld(x.region, o, x.range());
                            let z = em.f(0.0);
                            let v = em.b.ins().select(ok, v, z);
                            let dof = em.iadd(dst, col);
                            em.st(Region::Scratch, dof, srange, v);
                        };
                        let vector = dw == 1 && (sw == 1 || sw == 2) && nr % 4 == 0;
                        if !vector {
                            em.for_c(0, nr, 1, |em, col| one(em, col));
                            continue;
                        }
                        // the input floats four pixels read span: 4 at stride 1, 7 (two loads: 8) at 2
                        let span = if sw == 1 { 4 } else { 8 };
                        em.for_c(0, nr, 4, |em, col| {
                            let u = em.iadd(u0p, col);
                            let a = em.add(u, ib);
                            let ih0 = ld_i32(em, a, 4);
                            let a3 = em.add(u, ib + 3);
                            let ih3 = ld_i32(em, a3, 1);
                            let a2 = em.add(u, ib + nb);
                            let iw0 = ld_i32(em, a2, 1);
                            let ih = em.add(ih0, i * dh);
                            let iw = em.add(iw0, j);
                            let iwe = em.add(iw, span - 1);
                            let same = em.b.ins().icmp(IntCC::Equal, ih0, ih3);
                            let okh = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, ih, h);
                            let okw = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, iw, w);
                            let oke = em.b.ins().icmp_imm(IntCC::UnsignedLessThan, iwe, w);
                            let ok = em.b.ins().band(same, okh);
                            let ok2 = em.b.ins().band(okw, oke);
                            let fast = em.b.ins().band(ok, ok2);
                            em.if_else(
                                fast,
                                |em| {
                                    let ro = em.mul(ih, w);
                                    let o = em.iadd(ro, iw);
                                    let o = em.iadd(xc, o);
                                    let v = if sw == 1 {
                                        em.ldv(x.region, o, x.range())
                                    } else {
                                        em.ldv_stride2(x.region, o, x.range())
                                    };
                                    let dof = em.iadd(dst, col);
                                    em.stv(Region::Scratch, dof, srange, v);
                                },
                                |em| {
                                    for l in 0..4 {
                                        let cl = em.add(col, l);
                                        one(em, cl);
                                    }
                                },
                            );
                        });
                    }
                }
            });
        });
    }

    /// `Y = C + bias (+ residual)`, ReLU, for the tile's valid rows and pixels.
    fn epilogue(&self, em: &mut Em, t: &TileVars) {
        let (mr, nb, mg, cm, cp) = (self.mr, self.nb(), self.mg, self.cm, self.cp);
        let (y, res, srange, ib) = (self.y, self.res, self.srange(), self.int_base());
        let shifted = matches!(self.gather, Gather::Shifted { .. });
        self.per_valid(em, t, |em, valid| {
            em.for_dyn(t.mp0, t.mpend, 1, |em, mp| {
                em.for_c(0, mr, 1, |em, r| {
                    let m0 = em.mul(mp, mr);
                    let m = em.iadd(m0, r);
                    let inside = em.b.ins().icmp_imm(IntCC::SignedLessThan, m, mg);
                    em.when(inside, |em| {
                        let g0 = em.mul(t.g, mg);
                        let row = em.iadd(g0, m);
                        let bias = match self.bias {
                            Some(bo) => {
                                let o = em.add(row, bo);
                                em.ld(Region::Const, o, (bo, bo + mg * self.groups))
                            }
                            None => em.f(0.0),
                        };
                        let bias4 = em.b.ins().splat(types::F32X4, bias);
                        let yr = em.mul(row, cm);
                        // element offsets of column 0 of this row in Y and the residual
                        let col0 = if shifted { em.c(0) } else { em.mul(t.p0, cp) };
                        let yb0 = em.mad(t.ni, y.bstride, y.off);
                        let yb = em.iadd(yb0, yr);
                        let yb = em.iadd(yb, col0);
                        let rb = res.map(|rl| {
                            let b0 = em.mad(t.ni, rl.bstride, rl.off);
                            let b1 = em.iadd(b0, yr);
                            em.iadd(b1, col0)
                        });
                        let lm = em.b.ins().isub(mp, t.mp0);
                        let lr = em.mad(lm, mr * nb, self.c_base());
                        let crow = em.mad(r, nb, 0);
                        let crow = em.iadd(lr, crow);
                        // C column `col` to output element `yb + po` (+ `rb + po`)
                        let store = |em: &mut Em, col: Value, po: Value, vector: bool| {
                            let co = em.iadd(crow, col);
                            let (mut v, b) = if vector {
                                (em.ldv(Region::Scratch, co, srange), bias4)
                            } else {
                                (em.ld(Region::Scratch, co, srange), bias)
                            };
                            v = em.b.ins().fadd(v, b);
                            if let (Some(rl), Some(rb)) = (res, rb) {
                                let ro = em.iadd(rb, po);
                                let w = if vector {
                                    em.ldv(rl.region, ro, rl.range())
                                } else {
                                    em.ld(rl.region, ro, rl.range())
                                };
                                v = em.b.ins().fadd(v, w);
                            }
                            if self.relu {
                                v = em.relu(v);
                            }
                            let yo = em.iadd(yb, po);
                            if vector {
                                em.stv(y.region, yo, y.range(), v);
                            } else {
                                em.st(y.region, yo, y.range(), v);
                            }
                        };
                        if !shifted {
                            let v4 = if cp == 1 { valid / 4 * 4 } else { 0 };
                            em.for_c(0, v4, 4, |em, col| store(em, col, col, true));
                            em.for_c(v4, valid, 1, |em, col| {
                                let po = em.mul(col, cp);
                                store(em, col, po, false)
                            });
                            return;
                        }
                        let index = |em: &mut Em, col: Value, lane: i64| {
                            let a = em.add(col, ib + lane);
                            self.ld_i32(em, a, 1)
                        };
                        let one = |em: &mut Em, col: Value| {
                            let po = index(em, col, 0);
                            let kept = em.b.ins().icmp_imm(IntCC::SignedGreaterThanOrEqual, po, 0);
                            em.when(kept, |em| store(em, col, po, false));
                        };
                        let v4 = valid / 4 * 4;
                        em.for_c(0, v4, 4, |em, col| {
                            // four columns of one output row: one vector
                            let i0 = index(em, col, 0);
                            let i3 = index(em, col, 3);
                            let e = em.add(i0, 3);
                            let run = em.b.ins().icmp(IntCC::Equal, i3, e);
                            let kept = em.b.ins().icmp_imm(IntCC::SignedGreaterThanOrEqual, i0, 0);
                            let fast = em.b.ins().band(run, kept);
                            em.if_else(
                                fast,
                                |em| store(em, col, i0, true),
                                |em| {
                                    for l in 0..4 {
                                        let cl = em.add(col, l);
                                        one(em, cl);
                                    }
                                },
                            );
                        });
                        em.for_c(v4, valid, 1, |em, col| one(em, col));
                    });
                });
            });
        });
    }
}

/// One tap of a tap-major reduction: its index, its input shift, the input
/// channel stride and the channels a group.
#[derive(Clone, Copy)]
struct Tap {
    index: i64,
    shift: i64,
    hw: i64,
    cg: i64,
}

/// The values every part of a tile's loop nest shares.
struct TileVars {
    ni: Value,
    g: Value,
    pb: Value,
    p0: Value,
    mp0: Value,
    mpend: Value,
}
