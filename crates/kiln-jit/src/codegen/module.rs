//! A small owner of one Cranelift JIT module: declare imports (host symbols
//! such as the Rust microkernels), define functions with a `FunctionBuilder`,
//! finalize, and get the entry points from a [`JitCode`] that keeps the code
//! mapped and can be shared across threads.

use super::isa::{host_isa, OptLevel};
use crate::error::JitError;
use crate::ukernel;
use cranelift_codegen::ir::{types, AbiParam, FuncRef, Signature, Type, UserFuncName, Value};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

/// A module being built.
pub struct JitModule {
    module: JITModule,
    ctx: Context,
    fctx: FunctionBuilderContext,
    defined: Vec<FuncId>,
}

fn cg(kernel: &str, e: impl std::fmt::Display) -> JitError {
    JitError::Codegen {
        kernel: kernel.to_string(),
        message: e.to_string(),
    }
}

impl JitModule {
    /// A module for `isa` that resolves imports of `symbols` (name, address) first.
    pub fn new(isa: OwnedTargetIsa, symbols: &[(&str, *const u8)]) -> JitModule {
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        for (name, ptr) in symbols {
            jb.symbol(*name, *ptr);
        }
        let module = JITModule::new(jb);
        let ctx = module.make_context();
        JitModule {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            defined: Vec::new(),
        }
    }

    /// A module for the host with every Rust microkernel this CPU runs
    /// registered under its `Microkernel::name`.
    pub fn host(opt: OptLevel) -> Result<JitModule, JitError> {
        let syms: Vec<(&str, *const u8)> = ukernel::available()
            .iter()
            .filter(|u| u.isa != ukernel::Isa::Cranelift)
            .map(|u| (u.name, u.func as *const u8))
            .collect();
        Ok(JitModule::new(host_isa(opt, false)?, &syms))
    }

    /// A signature in the module's calling convention.
    pub fn signature(&self, params: &[Type], returns: &[Type]) -> Signature {
        let mut s = self.module.make_signature();
        s.params.extend(params.iter().map(|t| AbiParam::new(*t)));
        s.returns.extend(returns.iter().map(|t| AbiParam::new(*t)));
        s
    }

    /// The signature of every tile, [`ukernel::TileFn`]: six pointer-sized integers.
    pub fn tile_signature(&self) -> Signature {
        self.signature(&[types::I64; 6], &[])
    }

    /// Declares a function that a registered symbol (or the process) provides.
    pub fn import(&mut self, name: &str, sig: &Signature) -> Result<FuncId, JitError> {
        self.module
            .declare_function(name, Linkage::Import, sig)
            .map_err(|e| cg(name, e))
    }

    /// Defines `name`: `body` gets a builder positioned in the entry block, the
    /// function's parameters and a `FuncRef` for each of `imports`, and must
    /// end every path with a return. Blocks are sealed here.
    pub fn define(
        &mut self,
        name: &str,
        sig: Signature,
        imports: &[FuncId],
        body: impl FnOnce(&mut FunctionBuilder, &[Value], &[FuncRef]) -> Result<(), JitError>,
    ) -> Result<FuncId, JitError> {
        let id = self
            .module
            .declare_function(name, Linkage::Local, &sig)
            .map_err(|e| cg(name, e))?;
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let refs: Vec<FuncRef> = imports
                .iter()
                .map(|f| self.module.declare_func_in_func(*f, b.func))
                .collect();
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let params = b.block_params(entry).to_vec();
            if let Err(e) = body(&mut b, &params, &refs) {
                // A half-built function cannot be finalized: drop it and start
                // the next definition from fresh contexts.
                drop(b);
                self.fctx = FunctionBuilderContext::new();
                self.module.clear_context(&mut self.ctx);
                return Err(e);
            }
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        let r = self
            .module
            .define_function(id, &mut self.ctx)
            .map_err(|e| cg(name, format!("{e:?}")));
        self.module.clear_context(&mut self.ctx);
        r?;
        self.defined.push(id);
        Ok(id)
    }

    /// Links everything defined and returns the code.
    pub fn finish(mut self) -> Result<JitCode, JitError> {
        self.module
            .finalize_definitions()
            .map_err(|e| cg("module", e))?;
        let fns = self
            .defined
            .iter()
            .map(|id| (*id, self.module.get_finalized_function(*id)))
            .collect();
        Ok(JitCode {
            fns,
            module: Some(self.module),
        })
    }
}

/// Finalized, immutable machine code and its entry points. The pointers stay
/// valid as long as this value lives.
pub struct JitCode {
    fns: Vec<(FuncId, *const u8)>,
    module: Option<JITModule>,
}

// SAFETY: `JITModule` is neither Send nor Sync because it holds raw pointers
// and interior-mutable symbol tables. After `finish` nothing calls into it
// (entry points were read out into `fns`) until `free_memory` in drop, which
// takes it by value; the mapped code is read-only and executable, so sharing
// pointers to it across threads is sound.
unsafe impl Send for JitCode {}
unsafe impl Sync for JitCode {}

impl JitCode {
    /// The address of a function defined in the module.
    pub fn ptr(&self, id: FuncId) -> Option<*const u8> {
        self.fns.iter().find(|(f, _)| *f == id).map(|(_, p)| *p)
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: dropping the owner means no caller can still hold a
            // usable entry point (the pointers' validity is tied to `self`).
            unsafe { m.free_memory() };
        }
    }
}
