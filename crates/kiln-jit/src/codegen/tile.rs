//! The portable matmul tile generated in Cranelift: 4 rows x 8 columns of
//! f32x4 accumulators (8 xmm), same contract as the Rust microkernels
//! (`crate::ukernel`). Loads are marked readonly + can_move, which kept the
//! optimizer from hoisting and spilling them (notes/cpu-and-cranelift.md).

use super::{tile_signature, Jit, TileChoice, VF};
use crate::error::JitError;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MemFlagsData, UserFuncName};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{Linkage, Module};

pub const MR: usize = 4;
pub const NR: usize = 8;
pub const NAME: &str = "kiln_cranelift_mmm_f32x4_4x8";

pub fn define(jit: &mut Jit) -> Result<TileChoice, JitError> {
    let (module, ctx, fctx) = jit.raw();
    let err = |e: String| JitError::Codegen { kernel: NAME.into(), message: e };
    let sig = tile_signature(module);
    let id = module.declare_function(NAME, Linkage::Local, &sig).map_err(|e| err(e.to_string()))?;
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    {
        let ld = MemFlagsData::new().with_notrap().with_readonly().with_can_move();
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let p = b.block_params(entry).to_vec();
        let (k, a, bp, c) = (p[0], p[1], p[2], p[3]);
        let zero = b.ins().f32const(0.0);
        let zv = b.ins().splat(types::F32X4, zero);
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        // header params: a pointer, b pointer, remaining k, 8 accumulators
        b.append_block_param(header, types::I64);
        b.append_block_param(header, types::I64);
        b.append_block_param(header, types::I64);
        for _ in 0..MR * 2 {
            b.append_block_param(header, types::F32X4);
            b.append_block_param(exit, types::F32X4);
        }
        let mut args: Vec<BlockArg> = vec![a.into(), bp.into(), k.into()];
        args.extend(std::iter::repeat_n(BlockArg::from(zv), MR * 2));
        b.ins().jump(header, &args);
        b.switch_to_block(header);
        let hp = b.block_params(header).to_vec();
        let go = b.ins().icmp_imm(IntCC::SignedGreaterThan, hp[2], 0);
        let accs: Vec<BlockArg> = hp[3..].iter().map(|v| (*v).into()).collect();
        b.ins().brif(go, body, &[], exit, &accs);
        b.switch_to_block(body);
        let b0 = b.ins().load(types::F32X4, ld, hp[1], 0);
        let b1 = b.ins().load(types::F32X4, ld, hp[1], 16);
        let mut next = Vec::new();
        for r in 0..MR {
            let s = b.ins().load(types::F32, ld, hp[0], (r * 4) as i32);
            let av = b.ins().splat(types::F32X4, s);
            next.push(b.ins().fma(av, b0, hp[3 + 2 * r]));
            next.push(b.ins().fma(av, b1, hp[4 + 2 * r]));
        }
        let an = b.ins().iadd_imm(hp[0], (MR * 4) as i64);
        let bn = b.ins().iadd_imm(hp[1], (NR * 4) as i64);
        let kn = b.ins().iadd_imm(hp[2], -1);
        let mut args: Vec<BlockArg> = vec![an.into(), bn.into(), kn.into()];
        args.extend(next.iter().map(|v| BlockArg::from(*v)));
        b.ins().jump(header, &args);
        b.switch_to_block(exit);
        let res = b.block_params(exit).to_vec();
        for (i, v) in res.iter().enumerate() {
            b.ins().store(VF, *v, c, (i * 16) as i32);
        }
        b.ins().return_(&[]);
        b.seal_all_blocks();
        let tc = module.target_config();
        b.finalize(tc);
    }
    module.define_function(id, ctx).map_err(|e| err(format!("{e:?}")))?;
    module.clear_context(ctx);
    Ok(TileChoice { mr: MR, nr: NR, name: NAME, func: id })
}
