//! The portable matmul tile generated in Cranelift IR: `mr` rows x `nv`
//! f32x4 vectors of accumulators, the K loop unrolled, with the same
//! [`TileFn`](crate::ukernel::TileFn) contract as the Rust microkernels, so a
//! GEMM driver or generated loop nest can call either.
//!
//! Cranelift's x86-64 backend allocates only xmm0-15 and never emits the
//! accumulator-destination FMA form, so accumulators + B vectors + one
//! broadcast (+ a copy) must fit 16 registers. A/B loads are marked readonly +
//! can_move: at opt_level speed, unmarked loads of an unrolled body were
//! hoisted above the FMAs and spilled (notes/cpu-and-cranelift.md).
//!
//! The tile is compiled once per process in its own module (so it can use its
//! own opt level) and reaches model modules as a registered symbol, exactly
//! like a Rust microkernel.

use super::isa::{host_isa, OptLevel};
use super::module::JitModule;
use crate::error::JitError;
use crate::ukernel::{Isa, Microkernel, TileFn};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;
use std::sync::OnceLock;

/// The shape of a generated tile: `mr x 4 * nv`, K unrolled `unroll` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileShape {
    pub mr: usize,
    pub nv: usize,
    pub unroll: usize,
}

/// The shape and opt level the process-wide tile uses: the fastest of the
/// sweep in `examples/ukernel_peak.rs` on this machine (see UKERNEL_NOTES.md).
pub const DEFAULT: (TileShape, OptLevel) = (
    TileShape {
        mr: 4,
        nv: 2,
        unroll: 4,
    },
    OptLevel::None,
);

const F32X4: types::Type = types::F32X4;

/// The process-wide generated tile (compiled on first use).
pub fn generated() -> Result<Microkernel, JitError> {
    static TILE: OnceLock<Result<Microkernel, String>> = OnceLock::new();
    TILE.get_or_init(|| compile_tile(DEFAULT.0, DEFAULT.1).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| JitError::Codegen {
            kernel: "cranelift tile".into(),
            message: e,
        })
}

fn tile_name(s: TileShape) -> &'static str {
    // The default shape has a literal name; other shapes (sweeps, tests) are
    // compiled a handful of times per process, so leaking their name is fine.
    if s == DEFAULT.0 {
        "kiln_cranelift_mmm_f32x4_4x8"
    } else {
        Box::leak(
            format!(
                "kiln_cranelift_mmm_f32x4_{}x{}_u{}",
                s.mr,
                4 * s.nv,
                s.unroll
            )
            .into_boxed_str(),
        )
    }
}

/// Compiles a tile of shape `s` at `opt` into its own module, which stays
/// mapped for the rest of the process (a `Microkernel` is `'static`, like the
/// Rust ones): call it a handful of times (default tile, sweeps, tests), not per model.
pub fn compile_tile(s: TileShape, opt: OptLevel) -> Result<Microkernel, JitError> {
    if s.mr == 0
        || s.nv == 0
        || s.unroll == 0
        || s.mr * s.nv > 16
        || 4 * s.mr * s.nv > crate::ukernel::MAX_TILE
    {
        return Err(JitError::InvalidArgument(format!(
            "generated tile shape {s:?}"
        )));
    }
    let name = tile_name(s);
    let mut m = JitModule::new(host_isa(opt, cfg!(debug_assertions))?, &[]);
    let sig = m.tile_signature();
    let id = m.define(name, sig, &[], |b, p, _| {
        emit(b, s, p);
        Ok(())
    })?;
    let code = m.finish()?;
    let ptr = code.ptr(id).ok_or_else(|| JitError::Codegen {
        kernel: name.into(),
        message: "no entry point".into(),
    })?;
    // SAFETY: the function was defined with `tile_signature`, six i64 params
    // and no return in the host calling convention, which is TileFn's ABI.
    let func = unsafe { std::mem::transmute::<*const u8, TileFn>(ptr) };
    // Never freed: `func` must stay valid for as long as a Microkernel can be copied around.
    std::mem::forget(code);
    Ok(Microkernel {
        name,
        isa: Isa::Cranelift,
        mr: s.mr,
        nr: 4 * s.nv,
        func,
        strided: None,
        out: None,
    })
}

/// Emits the body: `p` = (k, a, b, c, ldc, accumulate).
fn emit(b: &mut FunctionBuilder, s: TileShape, p: &[Value]) {
    let (mr, nv, u) = (s.mr, s.nv, s.unroll);
    let nr = 4 * nv;
    let nacc = mr * nv;
    let (k, a, bp, c, ldc, accumulate) = (p[0], p[1], p[2], p[3], p[4], p[5]);
    let ld = MemFlagsData::new()
        .with_notrap()
        .with_readonly()
        .with_can_move();
    let zero = b.ins().f32const(0.0);
    let zv = b.ins().splat(F32X4, zero);

    // One K step at element offset `step` of the current panel pointers.
    let step = |b: &mut FunctionBuilder, ap: Value, bq: Value, step: usize, acc: &mut [Value]| {
        let bv: Vec<Value> = (0..nv)
            .map(|v| {
                b.ins()
                    .load(F32X4, ld, bq, ((step * nr + 4 * v) * 4) as i32)
            })
            .collect();
        for r in 0..mr {
            let x = b
                .ins()
                .load(types::F32, ld, ap, ((step * mr + r) * 4) as i32);
            let xs = b.ins().splat(F32X4, x);
            for v in 0..nv {
                acc[r * nv + v] = b.ins().fma(xs, bv[v], acc[r * nv + v]);
            }
        }
    };
    // A counted loop over (a, b, n, accumulators...), advancing the panels by `per` steps.
    let counted = |b: &mut FunctionBuilder, init: Vec<Value>, n: Value, per: usize| -> Vec<Value> {
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        for _ in 0..3 {
            b.append_block_param(header, types::I64);
        }
        for _ in 0..nacc {
            b.append_block_param(header, F32X4);
        }
        b.append_block_param(exit, types::I64);
        b.append_block_param(exit, types::I64);
        for _ in 0..nacc {
            b.append_block_param(exit, F32X4);
        }
        let args: Vec<BlockArg> = [init[0], init[1], n]
            .into_iter()
            .chain(init[2..].iter().copied())
            .map(BlockArg::from)
            .collect();
        b.ins().jump(header, &args);
        b.switch_to_block(header);
        let hp = b.block_params(header).to_vec();
        let exit_args: Vec<BlockArg> = [hp[0], hp[1]]
            .into_iter()
            .chain(hp[3..].iter().copied())
            .map(BlockArg::from)
            .collect();
        b.ins().brif(hp[2], body, &[], exit, &exit_args);
        b.switch_to_block(body);
        let mut acc = hp[3..].to_vec();
        for i in 0..per {
            step(b, hp[0], hp[1], i, &mut acc);
        }
        let an = b.ins().iadd_imm_s(hp[0], (per * mr * 4) as i64);
        let bn = b.ins().iadd_imm_s(hp[1], (per * nr * 4) as i64);
        let kn = b.ins().iadd_imm_s(hp[2], -1);
        let args: Vec<BlockArg> = [an, bn, kn]
            .into_iter()
            .chain(acc)
            .map(BlockArg::from)
            .collect();
        b.ins().jump(header, &args);
        b.switch_to_block(exit);
        b.block_params(exit).to_vec()
    };

    let init: Vec<Value> = [a, bp]
        .into_iter()
        .chain(std::iter::repeat_n(zv, nacc))
        .collect();
    let mut state = init;
    if u > 1 {
        // k = u * main + rest: the unrolled loop, then single steps.
        let main = b.ins().udiv_imm_u(k, u as i64);
        let done = b.ins().imul_imm_s(main, u as i64);
        let rest = b.ins().isub(k, done);
        state = counted(b, state, main, u);
        state = counted(b, state, rest, 1);
    } else {
        state = counted(b, state, k, 1);
    }
    let acc = &state[2..];

    // Store: C = acc, or C += acc when `accumulate` is non-zero.
    let ldc4 = b.ins().ishl_imm_s(ldc, 2);
    let add = b.create_block();
    let plain = b.create_block();
    let is_acc = b.ins().icmp_imm_s(IntCC::NotEqual, accumulate, 0);
    b.ins().brif(is_acc, add, &[], plain, &[]);
    let cf = MemFlagsData::new().with_notrap();
    for (blk, adding) in [(add, true), (plain, false)] {
        b.switch_to_block(blk);
        let mut row = c;
        for r in 0..mr {
            if r > 0 {
                row = b.ins().iadd(row, ldc4);
            }
            for v in 0..nv {
                let off = (16 * v) as i32;
                let mut x = acc[r * nv + v];
                if adding {
                    let old = b.ins().load(F32X4, cf, row, off);
                    x = b.ins().fadd(x, old);
                }
                b.ins().store(cf, x, row, off);
            }
        }
        b.ins().return_(&[]);
    }
}
