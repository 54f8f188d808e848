//! The cache-blocked SGEMM driver (the BLIS loop nest) on top of any tile:
//! `C (+)= A x B`, then the epilogue on each tile after its last K block.
//!
//! Loops, outermost first: NC columns of B (packed once per K block, L3),
//! KC of the reduction, MC rows of A (packed, L2), then `nr` columns and
//! `mr` rows: the `kc x nr` B micro-panel stays in L1 while the A
//! micro-panels stream past it. The reduction order of every element of C
//! depends on KC alone, never on threads, so results are bitwise identical
//! for any number of parts.

use super::pack::{pack_a, pack_b, packed_a_len, packed_b_len, MatRef};
use super::{best, Epilogue, Microkernel};
use crate::error::JitError;
use rayon::prelude::*;

/// Cache-block sizes, in rows (`mc`), reduction depth (`kc`) and columns (`nc`).
/// `mc` and `nc` are rounded up to whole tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
}

impl Blocking {
    /// Sizes for this machine class (48 KiB L1d, 2 MiB L2, 32 MiB L3): the
    /// `kc x nr` B micro-panel in about 2/3 of L1, the `mc x kc` A block in
    /// about a quarter of L2, the `kc x nc` B block well inside L3.
    pub fn for_kernel(uk: &Microkernel) -> Blocking {
        let kc = (32 * 1024 / (4 * uk.nr)).clamp(64, 512);
        let mc = (512 * 1024 / (4 * kc)).div_ceil(uk.mr) * uk.mr;
        let nc = (8 << 20) / (4 * kc) / uk.nr * uk.nr;
        Blocking {
            mc,
            kc,
            nc: nc.max(uk.nr),
        }
    }
}

/// A GEMM with a chosen tile, blocking and epilogue.
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    kernel: Microkernel,
    blocking: Blocking,
    epilogue: Epilogue<'a>,
    parts: usize,
}

/// `C[m x n] (+)= A[m x k] * B[k x n]`, row-major with leading dimensions
/// `lda`, `ldb`, `ldc`, on the best microkernel of this CPU, one thread.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) -> Result<(), JitError> {
    Gemm::new(best()).run(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

impl<'a> Gemm<'a> {
    pub fn new(kernel: Microkernel) -> Gemm<'a> {
        Gemm {
            kernel,
            blocking: Blocking::for_kernel(&kernel),
            epilogue: Epilogue::default(),
            parts: 1,
        }
    }
    pub fn blocking(mut self, b: Blocking) -> Self {
        self.blocking = b;
        self
    }
    pub fn epilogue(mut self, e: Epilogue<'a>) -> Self {
        self.epilogue = e;
        self
    }
    /// Splits the rows of C into up to `parts` bands run on the current rayon
    /// pool (each packs its own panels). The result does not depend on `parts`.
    pub fn parts(mut self, parts: usize) -> Self {
        self.parts = parts.max(1);
        self
    }

    /// Row-major operands, as [`sgemm`].
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) -> Result<(), JitError> {
        let a = MatRef::row_major(a, m, k, lda)?;
        let b = MatRef::row_major(b, k, n, ldb)?;
        self.run_views(a, b, c, ldc, accumulate)
    }

    /// Strided operands (a transposed A or B is a view with swapped strides);
    /// C is row-major with leading dimension `ldc`.
    pub fn run_views(
        &self,
        a: MatRef<'_>,
        b: MatRef<'_>,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) -> Result<(), JitError> {
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        if b.rows() != k {
            return Err(JitError::InvalidArgument(format!(
                "A is {m}x{k} but B has {} rows",
                b.rows()
            )));
        }
        let uk = &self.kernel;
        let Blocking { mc, kc, nc } = self.blocking;
        if uk.mr == 0
            || uk.nr == 0
            || uk.mr * uk.nr > super::MAX_TILE
            || mc == 0
            || kc == 0
            || nc == 0
        {
            return Err(JitError::InvalidArgument(format!(
                "tile {}x{} with blocking {:?}",
                uk.mr, uk.nr, self.blocking
            )));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        if ldc < n {
            return Err(JitError::InvalidArgument(format!(
                "ldc {ldc} < {n} columns"
            )));
        }
        let need = (m - 1).checked_mul(ldc).and_then(|x| x.checked_add(n));
        if need.is_none_or(|need| c.len() < need) {
            return Err(JitError::InvalidArgument(format!(
                "C has {} floats, a {m}x{n} matrix with ldc {ldc} needs more",
                c.len()
            )));
        }
        self.epilogue.check(m, n)?;
        let band = m.div_ceil(self.parts).div_ceil(uk.mr) * uk.mr;
        if band >= m {
            return self.serial(a, b, c, ldc, 0, accumulate);
        }
        c.par_chunks_mut(band * ldc)
            .zip((0..m).step_by(band).collect::<Vec<_>>())
            .try_for_each(|(cb, i0)| {
                self.serial(a.block(i0, 0, band, k), b, cb, ldc, i0, accumulate)
            })
    }

    /// The blocked loop nest over `a` (rows `i_base..` of the whole C) and `c`
    /// (starting at that band's first row); all operands were checked by `run_views`.
    fn serial(
        &self,
        a: MatRef<'_>,
        b: MatRef<'_>,
        c: &mut [f32],
        ldc: usize,
        i_base: usize,
        accumulate: bool,
    ) -> Result<(), JitError> {
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        let uk = &self.kernel;
        let (mr, nr) = (uk.mr, uk.nr);
        let mc = self.blocking.mc.div_ceil(mr) * mr;
        let nc = self.blocking.nc.div_ceil(nr) * nr;
        let kc = self.blocking.kc;
        if k == 0 {
            // No reduction: C is 0 (or kept), then the epilogue.
            for i in 0..m {
                let row = &mut c[i * ldc..i * ldc + n];
                if !accumulate {
                    row.fill(0.0);
                }
            }
            self.epilogue.apply(c, ldc, i_base, 0, m, n);
            return Ok(());
        }
        let alen = packed_a_len(mr, m.min(mc), k.min(kc));
        let blen = packed_b_len(nr, k.min(kc), n.min(nc));
        with_pack_buffer(alen + blen, |buf| {
            let (apack, bpack) = buf.split_at_mut(alen);
            self.blocked(a, b, c, ldc, i_base, accumulate, apack, bpack)
        })
    }

    /// The loop nest proper, with packing buffers of the sizes `serial` computed.
    #[allow(clippy::too_many_arguments)]
    fn blocked(
        &self,
        a: MatRef<'_>,
        b: MatRef<'_>,
        c: &mut [f32],
        ldc: usize,
        i_base: usize,
        accumulate: bool,
        apack: &mut [f32],
        bpack: &mut [f32],
    ) -> Result<(), JitError> {
        let (m, k, n) = (a.rows(), a.cols(), b.cols());
        let uk = &self.kernel;
        let (mr, nr) = (uk.mr, uk.nr);
        let mc = self.blocking.mc.div_ceil(mr) * mr;
        let nc = self.blocking.nc.div_ceil(nr) * nr;
        let kc = self.blocking.kc;
        for jc in (0..n).step_by(nc) {
            let nb = nc.min(n - jc);
            for pc in (0..k).step_by(kc) {
                let kb = kc.min(k - pc);
                let acc = accumulate || pc > 0;
                let last = pc + kb == k;
                pack_b(nr, b.block(pc, jc, kb, nb), bpack)?;
                for ic in (0..m).step_by(mc) {
                    let mb = mc.min(m - ic);
                    pack_a(mr, a.block(ic, pc, mb, kb), apack)?;
                    for jr in (0..nb).step_by(nr) {
                        let nn = nr.min(nb - jr);
                        let bp = &bpack[jr * kb..(jr + nr) * kb];
                        for ir in (0..mb).step_by(mr) {
                            let mm = mr.min(mb - ir);
                            let ap = &apack[ir * kb..(ir + mr) * kb];
                            let (i, j) = (ic + ir, jc + jr);
                            let win = &mut c[i * ldc + j..i * ldc + j + (mm - 1) * ldc + nn];
                            if mm == mr && nn == nr {
                                // SAFETY: ap and bp are whole kb-deep panels (sliced above), and
                                // win covers exactly the (mr - 1) * ldc + nr floats the tile
                                // writes, ldc >= n >= nr; the kernel's ISA was checked when it was made.
                                unsafe {
                                    uk.run(kb, ap.as_ptr(), bp.as_ptr(), win.as_mut_ptr(), ldc, acc)
                                };
                            } else {
                                // SAFETY: as above, with win covering the (mm - 1) * ldc + nn
                                // floats of the partial tile.
                                unsafe {
                                    uk.run_partial(
                                        kb,
                                        ap.as_ptr(),
                                        bp.as_ptr(),
                                        win.as_mut_ptr(),
                                        ldc,
                                        mm,
                                        nn,
                                        acc,
                                    )
                                };
                            }
                            if last {
                                self.epilogue.apply(win, ldc, i_base + i, j, mm, nn);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs `f` on a packing buffer of `len` floats, reused per thread: a fresh
/// multi-megabyte allocation per call costs page faults comparable to a whole
/// small GEMM. Contents are unspecified (packing overwrites what it reads).
fn with_pack_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        // Re-entered on this thread (not done by this module): a private buffer.
        Err(_) => f(&mut vec![0.0; len]),
    })
}
