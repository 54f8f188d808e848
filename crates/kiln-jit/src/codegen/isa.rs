//! The host target ISA for every JIT module: `cranelift_native::builder()`
//! (which turns on the CPU's avx/avx2/fma/avx512 flags; without `has_fma` an
//! f32x4 `fma` becomes four libcalls) plus the shared flags.

use crate::error::JitError;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};

/// Cranelift's `opt_level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OptLevel {
    /// No mid-end optimisation: instructions stay in the order emitted (what
    /// hand-scheduled kernels want; the notes' fastest generated tile).
    None,
    /// The egraph optimiser (GVN, LICM, ...): the default for generated loop nests.
    #[default]
    Speed,
    SpeedAndSize,
}

impl OptLevel {
    fn flag(self) -> &'static str {
        match self {
            OptLevel::None => "none",
            OptLevel::Speed => "speed",
            OptLevel::SpeedAndSize => "speed_and_size",
        }
    }
}

fn isa_err(e: impl std::fmt::Display) -> JitError {
    JitError::Codegen {
        kernel: "isa".into(),
        message: e.to_string(),
    }
}

/// The host ISA at `opt`. The IR verifier (25-50% of compile time) runs only
/// when `verify` is set; the JIT's own IR is tested with it on.
pub fn host_isa(opt: OptLevel, verify: bool) -> Result<OwnedTargetIsa, JitError> {
    let mut flags = settings::builder();
    flags.set("opt_level", opt.flag()).map_err(isa_err)?;
    flags
        .set("enable_verifier", if verify { "true" } else { "false" })
        .map_err(isa_err)?;
    // JIT code lives anywhere in the address space: calls and libcalls need
    // absolute (not colocated, PC-relative) relocations.
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(isa_err)?;
    flags.set("is_pic", "false").map_err(isa_err)?;
    cranelift_native::builder()
        .map_err(isa_err)?
        .finish(settings::Flags::new(flags))
        .map_err(isa_err)
}
