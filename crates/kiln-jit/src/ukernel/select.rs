//! Which microkernels this CPU runs, and picking one: the best by default, or
//! a forced ISA (for tests and for benchmarking each path).

use super::{scalar::scalar_4x8, Microkernel};
use crate::error::JitError;
use std::fmt;
use std::str::FromStr;

/// An instruction set a microkernel is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, no intrinsics: 4x8.
    Scalar,
    /// x86-64 AVX2 + FMA: 6x16 (12 ymm accumulators).
    Avx2,
    /// x86-64 AVX-512F: 14x32 (28 zmm accumulators).
    Avx512,
    /// aarch64 NEON: 8x8 (16 q-register accumulators).
    Neon,
    /// The f32x4 tile generated in Cranelift IR (`codegen::tile`): portable
    /// to every Cranelift target, the `--ukernels off` path.
    Cranelift,
}

impl Isa {
    /// Fastest first: the order [`best`] picks in.
    pub const ALL: [Isa; 5] = [
        Isa::Avx512,
        Isa::Avx2,
        Isa::Neon,
        Isa::Cranelift,
        Isa::Scalar,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::Cranelift => "cranelift",
        }
    }

    /// Whether this CPU (and this build's target) can run the ISA's kernel.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar | Isa::Cranelift => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = JitError;
    fn from_str(s: &str) -> Result<Isa, JitError> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| JitError::InvalidArgument(format!("unknown microkernel ISA \"{s}\" (expected scalar, avx2, avx512, neon or cranelift)")))
    }
}

/// The kernel of `isa`, or `JitError::IsaUnavailable` if this CPU lacks it.
pub fn kernel(isa: Isa) -> Result<Microkernel, JitError> {
    if !isa.is_available() {
        return Err(JitError::IsaUnavailable(isa.name()));
    }
    // Each arm is only reachable once `is_available` confirmed the features
    // its `target_feature` function needs: that is what makes `func` sound to call.
    match isa {
        Isa::Scalar => Ok(scalar()),
        Isa::Cranelift => crate::codegen::tile::generated(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Ok(Microkernel {
            name: "kiln_avx2_mmm_f32_6x16",
            isa,
            mr: 6,
            nr: 16,
            func: super::avx2::avx2_6x16,
            strided: Some(("kiln_avx2_mmm_f32_6x16_ldb", super::avx2::avx2_6x16_ldb)),
            out: None,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Ok(Microkernel {
            name: "kiln_avx512_mmm_f32_14x32",
            isa,
            mr: 14,
            nr: 32,
            func: super::avx512::avx512_14x32,
            strided: Some((
                "kiln_avx512_mmm_f32_14x32_ldb",
                super::avx512::avx512_14x32_ldb,
            )),
            out: Some((
                "kiln_avx512_mmm_f32_14x32_out",
                super::avx512::avx512_14x32_out,
            )),
        }),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Ok(Microkernel {
            name: "kiln_neon_mmm_f32_8x8",
            isa,
            mr: 8,
            nr: 8,
            func: super::neon::neon_8x8,
            strided: None,
            out: None,
        }),
        #[allow(unreachable_patterns)]
        _ => Err(JitError::IsaUnavailable(isa.name())),
    }
}

/// The portable scalar tile (4x8), the fallback of every other.
pub fn scalar() -> Microkernel {
    Microkernel {
        name: "kiln_scalar_mmm_f32_4x8",
        isa: Isa::Scalar,
        mr: 4,
        nr: 8,
        func: scalar_4x8,
        strided: None,
        out: None,
    }
}

/// Every kernel this CPU runs, best first (scalar always last; the generated
/// tile is compiled on first use and left out if that fails).
pub fn available() -> Vec<Microkernel> {
    Isa::ALL
        .into_iter()
        .filter_map(|i| kernel(i).ok())
        .collect()
}

/// The best kernel this CPU runs: AVX-512F, AVX2+FMA, NEON, the generated
/// f32x4 tile, else scalar.
pub fn best() -> Microkernel {
    available().into_iter().next().unwrap_or_else(scalar)
}
