//! Hand-written SGEMM microkernels in Rust `std::arch`, their packing
//! routines, a cache-blocked GEMM driver with a fused epilogue, and the peak
//! measurement that `kiln bench` compares against.
//!
//! Every tile, the Cranelift-generated one included (`codegen::tile`), has one
//! contract, [`TileFn`]:
//!
//! ```text
//! tile(k, a, b, c, ldc, accumulate):
//!     for r < MR, j < NR:
//!         c[r * ldc + j] = (accumulate != 0 ? c[r * ldc + j] : 0) + sum_{p < k} a[p * MR + r] * b[p * NR + j]
//! ```
//!
//! `a` is an `MR`-row panel packed `k`-major, `b` an `NR`-column panel packed
//! `k`-major (see [`pack`]), `c` row-major with row stride `ldc >= NR`. A tile
//! touches no element of `c` outside that `MR x NR` window, and `k = 0` is legal.
//! Partial tiles (fewer than `MR` rows or `NR` columns) go through a stack
//! buffer: [`Microkernel::run_partial`].

mod epilogue;
mod gemm;
pub mod pack;
mod peak;
mod scalar;
mod select;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

pub use epilogue::{Bias, Epilogue};
pub use gemm::{sgemm, Blocking, Gemm};
pub use peak::{fma_peak_gflops, measure_gflops, measure_peak_gflops};
pub use select::{available, best, kernel, scalar, Isa};

/// A tile function: `(k, a, b, c, ldc, accumulate)`, see the module docs.
pub type TileFn = unsafe extern "C" fn(usize, *const f32, *const f32, *mut f32, usize, usize);

/// A tile reading B in place: `(k, a, b, ldb, c, ldc, accumulate)`, row `p`
/// of B being the `NR` floats at `b + p * ldb`; otherwise as [`TileFn`].
pub type StridedTileFn =
    unsafe extern "C" fn(usize, *const f32, *const f32, usize, *mut f32, usize, usize);

/// Where the last K block of a tile goes when the tile applies the epilogue
/// itself ([`OutTileFn`]): `Y = (acc (+ C)) + bias (+ residual)`, ReLU, for
/// the first `rows` rows and the columns set in `mask`, those kept columns
/// stored one after another (a shifted conv drops the columns its output
/// grid does not have; its kept columns are consecutive outputs).
///
/// Rows are `ldc` floats apart in `c`, `ldy` in `y` and `residual`. A null
/// `c` means there is nothing to accumulate (the tile's only K block), a
/// null `bias` adds 0, a null `residual` adds nothing. `#[repr(C)]`: the
/// generated code fills it in a stack slot, field by field (8 bytes each).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TileOut {
    pub c: *const f32,
    pub ldc: usize,
    pub y: *mut f32,
    pub ldy: usize,
    pub residual: *const f32,
    pub bias: *const f32,
    pub rows: usize,
    pub mask: u64,
    pub relu: usize,
}

impl TileOut {
    /// Its size in bytes: nine 8-byte fields, which the generated code stores
    /// at `8 * i` in declaration order (`Em::call_tile_out`).
    pub const SIZE: u32 = std::mem::size_of::<TileOut>() as u32;
}
const _: () = assert!(TileOut::SIZE == 9 * 8);

/// A strided tile that finishes the output itself: `(k, a, b, ldb, out)`,
/// see [`TileOut`]; the tile's accumulators never go through a C buffer.
pub type OutTileFn = unsafe extern "C" fn(usize, *const f32, *const f32, usize, *const TileOut);

/// The largest `MR * NR` of any tile (AVX-512 14x32 = 448): the size of the
/// stack buffer partial tiles are computed in.
pub const MAX_TILE: usize = 512;

/// One microkernel: its symbol name (what generated code imports it as), ISA,
/// tile shape and entry point. Only this crate makes them ([`kernel`],
/// [`available`], `codegen::tile`), after checking the CPU runs the ISA, and
/// their code lives for the whole process: that is what lets the safe
/// [`Gemm`] driver call `func`.
#[derive(Clone, Copy, Debug)]
pub struct Microkernel {
    pub(crate) name: &'static str,
    pub(crate) isa: Isa,
    pub(crate) mr: usize,
    pub(crate) nr: usize,
    pub(crate) func: TileFn,
    /// The same tile reading B in place, where the ISA has one: its symbol and entry.
    pub(crate) strided: Option<(&'static str, StridedTileFn)>,
    /// The strided tile with the epilogue inside, where the ISA has one.
    pub(crate) out: Option<(&'static str, OutTileFn)>,
}

/// A 64-byte aligned tile buffer (one zmm row per cache line).
#[repr(C, align(64))]
struct TileBuf([f32; MAX_TILE]);

impl Microkernel {
    /// The symbol generated code imports the tile as.
    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn isa(&self) -> Isa {
        self.isa
    }
    /// Rows of the tile.
    pub fn mr(&self) -> usize {
        self.mr
    }
    /// Columns of the tile.
    pub fn nr(&self) -> usize {
        self.nr
    }
    /// The entry point, for registering with a JIT module or calling directly.
    pub fn func(&self) -> TileFn {
        self.func
    }
    /// The strided-B variant's symbol and entry point, if this tile has one.
    pub fn strided(&self) -> Option<(&'static str, StridedTileFn)> {
        self.strided
    }
    /// The epilogue-fused variant's symbol and entry point, if this tile has one.
    pub fn out(&self) -> Option<(&'static str, OutTileFn)> {
        self.out
    }

    /// Runs the full tile.
    ///
    /// # Safety
    /// `a` holds `k * mr` floats, `b` `k * nr`, and `c` is valid for reads and
    /// writes of `(mr - 1) * ldc + nr` floats, with `ldc >= nr`; the CPU has
    /// this kernel's ISA (guaranteed for kernels from [`kernel`] / [`available`]).
    #[inline]
    pub unsafe fn run(
        &self,
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        // SAFETY: forwarded from this function's contract.
        unsafe { (self.func)(k, a, b, c, ldc, accumulate as usize) }
    }

    /// Runs the tile on full (zero-padded) panels but stores only the top-left
    /// `m x n` corner (`m <= mr`, `n <= nr`): the edge of a matrix.
    ///
    /// # Safety
    /// As [`Microkernel::run`], except that `c` need only be valid for
    /// `(m - 1) * ldc + n` floats (`m, n > 0`).
    pub unsafe fn run_partial(
        &self,
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        m: usize,
        n: usize,
        accumulate: bool,
    ) {
        debug_assert!(m <= self.mr && n <= self.nr && self.mr * self.nr <= MAX_TILE);
        let mut buf = TileBuf([0.0; MAX_TILE]);
        // SAFETY: buf holds mr * nr <= MAX_TILE floats, the row stride is nr;
        // a and b are full panels by this function's contract.
        unsafe { (self.func)(k, a, b, buf.0.as_mut_ptr(), self.nr, 0) };
        for r in 0..m {
            let src = &buf.0[r * self.nr..r * self.nr + n];
            // SAFETY: r < m and n <= ldc, so row r's n floats are inside the
            // (m - 1) * ldc + n floats the caller vouches for.
            let dst = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), n) };
            if accumulate {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            } else {
                dst.copy_from_slice(src);
            }
        }
    }
}
