//! Cranelift plumbing: one JIT module per compiled model, the kernel signature,
#![allow(deprecated)] // the *_imm builders; their sign-extending meaning is what every use here wants
//! and [`Em`], a small emitter with constant-bound loops and (optionally
//! bounds-checked) loads and stores.
//!
//! Every kernel has the signature
//! `extern "C" fn(arena: *mut f32, consts: *const f32, tile: u64, scratch: *mut f32, status: *mut u32)`:
//! all tensor offsets are compile-time constants relative to the arena or the
//! constant pool, `tile` selects the part of the output this call writes, and
//! `scratch` is the calling worker's private buffer.

pub mod gemm;
pub mod isa;
pub mod kernels;
pub mod loops;
pub mod module;
pub mod tile;

use crate::error::JitError;
use crate::ukernel::Microkernel;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, FuncRef, InstBuilder, MemFlagsData, Signature, StackSlot,
    StackSlotData, StackSlotKind, UserFuncName, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

pub type KernelFn = unsafe extern "C" fn(*mut f32, *const f32, u64, *mut f32, *mut u32);

/// Which base pointer an offset is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Arena,
    Const,
    Scratch,
}

extern "C" fn kiln_expf(x: f32) -> f32 {
    x.exp()
}
extern "C" fn kiln_logf(x: f32) -> f32 {
    x.ln()
}
extern "C" fn kiln_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}

/// The tile used by the generated code: a Rust microkernel (imported by
/// symbol) or the Cranelift-generated f32x4 tile (defined in the module).
#[derive(Clone, Copy, Debug)]
pub struct TileChoice {
    pub mr: usize,
    pub nr: usize,
    pub name: &'static str,
    func: FuncId,
    strided: Option<FuncId>,
    out: Option<FuncId>,
}

/// One JIT module: the functions of one compiled model.
pub struct Jit {
    pub module: JITModule,
    ctx: Context,
    fctx: FunctionBuilderContext,
    pub checked: bool,
    pub tile: TileChoice,
    libm: [FuncId; 3],
    kernels: Vec<(String, FuncId)>,
}

fn cg_err(kernel: &str, e: impl std::fmt::Display) -> JitError {
    JitError::Codegen {
        kernel: kernel.to_string(),
        message: e.to_string(),
    }
}

impl Jit {
    /// A module for the host ISA (with its FMA/AVX flags) whose matmul tile is
    /// `uk`: a Rust microkernel or the generated tile, both imported by symbol.
    pub fn new(uk: Microkernel, checked: bool) -> Result<Jit, JitError> {
        let isa = isa::host_isa(isa::OptLevel::Speed, false)?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        jb.symbol("kiln_expf", kiln_expf as *const u8);
        jb.symbol("kiln_logf", kiln_logf as *const u8);
        jb.symbol("kiln_powf", kiln_powf as *const u8);
        jb.symbol(uk.name, uk.func as *const u8);
        if let Some((name, f)) = uk.strided {
            jb.symbol(name, f as *const u8);
        }
        if let Some((name, f)) = uk.out {
            jb.symbol(name, f as *const u8);
        }
        let mut module = JITModule::new(jb);
        let f32sig = |m: &JITModule, n: usize| {
            let mut s = m.make_signature();
            for _ in 0..n {
                s.params.push(AbiParam::new(types::F32));
            }
            s.returns.push(AbiParam::new(types::F32));
            s
        };
        let s1 = f32sig(&module, 1);
        let s2 = f32sig(&module, 2);
        let decl = |m: &mut JITModule, name: &str, s: &Signature| {
            m.declare_function(name, Linkage::Import, s)
                .map_err(|e| cg_err(name, e))
        };
        let libm = [
            decl(&mut module, "kiln_expf", &s1)?,
            decl(&mut module, "kiln_logf", &s1)?,
            decl(&mut module, "kiln_powf", &s2)?,
        ];
        let tsig = tile_signature(&module);
        let func = decl(&mut module, uk.name, &tsig)?;
        let strided = match uk.strided {
            Some((name, _)) => {
                let mut ssig = tsig.clone();
                ssig.params.push(AbiParam::new(types::I64));
                Some(decl(&mut module, name, &ssig)?)
            }
            None => None,
        };
        let out = match uk.out {
            Some((name, _)) => {
                let mut osig = tsig.clone();
                osig.params.pop();
                Some(decl(&mut module, name, &osig)?)
            }
            None => None,
        };
        let ctx = module.make_context();
        Ok(Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            checked,
            tile: TileChoice {
                mr: uk.mr,
                nr: uk.nr,
                name: uk.name,
                func,
                strided,
                out,
            },
            libm,
            kernels: Vec::new(),
        })
    }

    /// Defines one kernel whose body `body` emits; returns its index for [`Jit::finish`].
    pub fn kernel(
        &mut self,
        name: &str,
        tag: u32,
        store_shift: i64,
        body: impl FnOnce(&mut Em) -> Result<(), JitError>,
    ) -> Result<usize, JitError> {
        let mut sig = self.module.make_signature();
        for t in [types::I64, types::I64, types::I64, types::I64, types::I64] {
            sig.params.push(AbiParam::new(t));
        }
        let id = self
            .module
            .declare_function(
                &format!("k{}_{}", self.kernels.len(), name),
                Linkage::Local,
                &sig,
            )
            .map_err(|e| cg_err(name, e))?;
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let p = b.block_params(entry).to_vec();
            let mut refs = Vec::new();
            for f in self.libm.iter().chain(std::iter::once(&self.tile.func)) {
                refs.push(self.module.declare_func_in_func(*f, b.func));
            }
            let strided_fn = self
                .tile
                .strided
                .map(|f| self.module.declare_func_in_func(f, b.func));
            let out_fn = self
                .tile
                .out
                .map(|f| self.module.declare_func_in_func(f, b.func));
            let mut em = Em {
                b,
                arena: p[0],
                consts: p[1],
                tile: p[2],
                scratch: p[3],
                status: p[4],
                checked: self.checked,
                tag,
                store_shift,
                libm: [refs[0], refs[1], refs[2]],
                tile_fn: refs[3],
                strided_fn,
                out_fn,
                out_slot: None,
            };
            body(&mut em)?;
            em.b.ins().return_(&[]);
            em.b.seal_all_blocks();
            em.b.finalize(self.module.target_config());
        }
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| cg_err(name, format!("{e:?}")))?;
        self.module.clear_context(&mut self.ctx);
        self.kernels.push((name.to_string(), id));
        Ok(self.kernels.len() - 1)
    }

    /// Links the module and returns the entry points, in definition order.
    pub fn finish(mut self) -> Result<(JITModule, Vec<KernelFn>), JitError> {
        self.module
            .finalize_definitions()
            .map_err(|e| cg_err("module", e))?;
        let fns = self
            .kernels
            .iter()
            .map(|(_, id)| {
                let p = self.module.get_finalized_function(*id);
                // SAFETY: every kernel was defined with the KernelFn signature.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(p) }
            })
            .collect();
        Ok((self.module, fns))
    }
}

/// [`crate::ukernel::TileFn`]: `(k, a, b, c, ldc, accumulate)`, all i64.
pub fn tile_signature(m: &JITModule) -> Signature {
    let mut s = m.make_signature();
    for _ in 0..6 {
        s.params.push(AbiParam::new(types::I64));
    }
    s
}

/// The emitter of one kernel body.
pub struct Em<'a> {
    pub b: FunctionBuilder<'a>,
    pub arena: Value,
    pub consts: Value,
    pub tile: Value,
    pub scratch: Value,
    pub status: Value,
    checked: bool,
    tag: u32,
    store_shift: i64,
    libm: [FuncRef; 3],
    tile_fn: FuncRef,
    strided_fn: Option<FuncRef>,
    out_fn: Option<FuncRef>,
    /// The kernel's one `TileOut` stack slot, made on first use.
    out_slot: Option<StackSlot>,
}

impl<'a> loops::Builds<'a> for Em<'a> {
    fn fb(&mut self) -> &mut FunctionBuilder<'a> {
        &mut self.b
    }
}

pub const VF: MemFlagsData = MemFlagsData::new().with_notrap();

impl Em<'_> {
    pub fn c(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }
    pub fn f(&mut self, v: f32) -> Value {
        self.b.ins().f32const(v)
    }
    pub fn fv(&mut self, v: f32) -> Value {
        let s = self.f(v);
        self.b.ins().splat(types::F32X4, s)
    }
    pub fn add(&mut self, a: Value, k: i64) -> Value {
        if k == 0 {
            a
        } else {
            self.b.ins().iadd_imm(a, k)
        }
    }
    pub fn mul(&mut self, a: Value, k: i64) -> Value {
        match k {
            0 => self.c(0),
            1 => a,
            _ => self.b.ins().imul_imm(a, k),
        }
    }
    /// `a * k + c`.
    pub fn mad(&mut self, a: Value, k: i64, c: i64) -> Value {
        let m = self.mul(a, k);
        self.add(m, c)
    }
    pub fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().iadd(a, b)
    }
    pub fn udiv(&mut self, a: Value, k: i64) -> Value {
        if k == 1 {
            return a;
        }
        let kc = self.c(k);
        self.b.ins().udiv(a, kc)
    }
    pub fn urem(&mut self, a: Value, k: i64) -> Value {
        if k == 1 {
            return self.c(0);
        }
        let kc = self.c(k);
        self.b.ins().urem(a, kc)
    }
    /// Splits `t` into mixed-radix digits, most significant first (`dims[0]` is not needed).
    pub fn split(&mut self, mut t: Value, dims: &[i64]) -> Vec<Value> {
        let mut out = vec![t; dims.len()];
        for i in (0..dims.len()).rev() {
            if i == 0 {
                out[0] = t;
            } else {
                out[i] = self.urem(t, dims[i]);
                t = self.udiv(t, dims[i]);
            }
        }
        out
    }

    /// `for iv in start..end (step)`, `end` a runtime value.
    pub fn for_dyn(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        body: impl FnMut(&mut Self, Value),
    ) {
        loops::for_dyn(self, start, end, step, body);
    }
    /// `for iv in start..end (step)` with constant bounds; empty ranges emit
    /// nothing, one-trip ranges the body alone.
    pub fn for_c(&mut self, start: i64, end: i64, step: i64, body: impl FnMut(&mut Self, Value)) {
        loops::for_range(self, loops::Range::new(start, end, step), body);
    }
    /// A loop carrying one f32 or f32x4 accumulator.
    pub fn fold_c(
        &mut self,
        start: i64,
        end: i64,
        step: i64,
        init: Value,
        mut body: impl FnMut(&mut Self, Value, Value) -> Value,
    ) -> Value {
        loops::fold_range(
            self,
            loops::Range::new(start, end, step),
            &[init],
            |em, iv, acc| vec![body(em, iv, acc[0])],
        )[0]
    }
    /// `if cond { then }`.
    pub fn when(&mut self, cond: Value, then: impl FnOnce(&mut Self)) {
        let t = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(cond, t, &[], done, &[]);
        self.b.switch_to_block(t);
        then(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }
    /// `if cond { a } else { b }`.
    pub fn if_else(&mut self, cond: Value, a: impl FnOnce(&mut Self), b: impl FnOnce(&mut Self)) {
        let t = self.b.create_block();
        let e = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(cond, t, &[], e, &[]);
        self.b.switch_to_block(t);
        a(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(e);
        b(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    fn base(&self, r: Region) -> Value {
        match r {
            Region::Arena => self.arena,
            Region::Const => self.consts,
            Region::Scratch => self.scratch,
        }
    }

    /// The address of element `off` of region `r`, for an access of `width`
    /// elements that must stay inside `[lo, hi)`. In checked mode an access
    /// outside records this kernel's tag in the status word and is redirected to `lo`.
    pub fn ptr(&mut self, r: Region, off: Value, range: (i64, i64), width: i64) -> Value {
        let off = if self.checked {
            let (lo, hi) = range;
            let rel = self.b.ins().iadd_imm(off, -lo);
            let ok = self
                .b
                .ins()
                .icmp_imm(IntCC::UnsignedLessThanOrEqual, rel, hi - lo - width);
            self.checked_off(off, lo, ok)
        } else {
            off
        };
        self.addr(r, off)
    }
    /// As [`Em::ptr`] for an access of a run-time `width` (`0 <= width`) elements.
    pub fn ptr_dyn(&mut self, r: Region, off: Value, range: (i64, i64), width: Value) -> Value {
        let off = if self.checked {
            let (lo, hi) = range;
            let rel = self.b.ins().iadd_imm(off, -lo);
            let end = self.b.ins().iadd(rel, width);
            // rel <= rel + width <= hi - lo, unsigned (neither wraps)
            let a = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, rel, end);
            let b = self
                .b
                .ins()
                .icmp_imm(IntCC::UnsignedLessThanOrEqual, end, hi - lo);
            let ok = self.b.ins().band(a, b);
            self.checked_off(off, lo, ok)
        } else {
            off
        };
        self.addr(r, off)
    }
    /// Checked mode: `off` if `ok`, else `lo`, with this kernel's tag recorded in the status word.
    fn checked_off(&mut self, off: Value, lo: i64, ok: Value) -> Value {
        let tag = self.b.ins().iconst(types::I32, self.tag as i64);
        let bad = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(ok, cont, &[], bad, &[]);
        self.b.switch_to_block(bad);
        self.b
            .ins()
            .store(MemFlagsData::trusted(), tag, self.status, 0);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
        let lo_v = self.c(lo);
        self.b.ins().select(ok, off, lo_v)
    }
    fn addr(&mut self, r: Region, off: Value) -> Value {
        let bytes = self.b.ins().ishl_imm(off, 2);
        let base = self.base(r);
        self.b.ins().iadd(base, bytes)
    }
    pub fn ld(&mut self, r: Region, off: Value, range: (i64, i64)) -> Value {
        let p = self.ptr(r, off, range, 1);
        self.b.ins().load(types::F32, VF, p, 0)
    }
    pub fn ldv(&mut self, r: Region, off: Value, range: (i64, i64)) -> Value {
        let p = self.ptr(r, off, range, 4);
        self.b.ins().load(types::F32X4, VF, p, 0)
    }
    /// The offset a store to `off` uses: arena stores are shifted in
    /// fault-injection builds, stores handed to a tile included.
    pub fn store_off(&mut self, r: Region, off: Value) -> Value {
        if r == Region::Arena {
            self.add(off, self.store_shift)
        } else {
            off
        }
    }
    pub fn st(&mut self, r: Region, off: Value, range: (i64, i64), v: Value) {
        let off = self.store_off(r, off);
        let p = self.ptr(r, off, range, 1);
        self.b.ins().store(VF, v, p, 0);
    }
    pub fn stv(&mut self, r: Region, off: Value, range: (i64, i64), v: Value) {
        let off = self.store_off(r, off);
        let p = self.ptr(r, off, range, 4);
        self.b.ins().store(VF, v, p, 0);
    }
    /// Checks a whole `[off, off + width)` block (before handing it to a tile) and returns its address.
    pub fn block_ptr(&mut self, r: Region, off: Value, range: (i64, i64), width: i64) -> Value {
        self.ptr(r, off, range, width)
    }
    pub fn expf(&mut self, x: Value) -> Value {
        let call = self.b.ins().call(self.libm[0], &[x]);
        self.b.inst_results(call)[0]
    }
    pub fn logf(&mut self, x: Value) -> Value {
        let call = self.b.ins().call(self.libm[1], &[x]);
        self.b.inst_results(call)[0]
    }
    pub fn powf(&mut self, x: Value, y: Value) -> Value {
        let call = self.b.ins().call(self.libm[2], &[x, y]);
        self.b.inst_results(call)[0]
    }
    /// Calls the matmul tile: `C (+)= A x B` for a `k`-deep panel pair, B's
    /// rows `ldb` floats apart, `C` with row stride `ldc`, accumulating when
    /// `acc` is non-zero (all i64 values). A packed B panel has `ldb = nr`; any
    /// other stride needs the tile's strided variant ([`Em::has_strided_tile`]),
    /// which the packed entry point of every Rust tile is itself a call of.
    #[allow(clippy::too_many_arguments)]
    pub fn call_tile(
        &mut self,
        k: Value,
        a: Value,
        b: Value,
        ldb: Value,
        c: Value,
        ldc: Value,
        acc: Value,
    ) {
        match self.strided_fn {
            Some(f) => self.b.ins().call(f, &[k, a, b, ldb, c, ldc, acc]),
            None => self.b.ins().call(self.tile_fn, &[k, a, b, c, ldc, acc]),
        };
    }
    /// Whether the tile has a variant applying the epilogue itself ([`Em::call_tile_out`]).
    pub fn has_out_tile(&self) -> bool {
        self.out_fn.is_some()
    }
    /// Calls the epilogue-fused tile (`k`, `a`, `b`, `ldb` as [`Em::call_tile`])
    /// with `out`, the fields of a [`crate::ukernel::TileOut`] in order, stored
    /// into the kernel's stack slot. Only when [`Em::has_out_tile`].
    pub fn call_tile_out(&mut self, k: Value, a: Value, b: Value, ldb: Value, out: [Value; 9]) {
        use crate::ukernel::TileOut;
        let slot = match self.out_slot {
            Some(s) => s,
            None => {
                let data = StackSlotData::new(StackSlotKind::ExplicitSlot, TileOut::SIZE, 3);
                let s = self.b.create_sized_stack_slot(data);
                self.out_slot = Some(s);
                s
            }
        };
        for (i, v) in out.into_iter().enumerate() {
            self.b.ins().stack_store(types::I64, v, slot, 8 * i as i32);
        }
        let p = self.b.ins().stack_addr(types::I64, slot, 0);
        let f = self.out_fn.expect("call_tile_out without an out tile");
        self.b.ins().call(f, &[k, a, b, ldb, p]);
    }
    /// Whether the tile reads B rows at any stride.
    pub fn has_strided_tile(&self) -> bool {
        self.strided_fn.is_some()
    }
    /// Four floats at stride 2 from `off`: two vector loads (the second
    /// reading one float past the fourth) and a shuffle.
    pub fn ldv_stride2(&mut self, r: Region, off: Value, range: (i64, i64)) -> Value {
        let lo = self.ldv(r, off, range);
        let off4 = self.add(off, 4);
        let hi = self.ldv(r, off4, range);
        self.even_lanes(lo, hi)
    }
    /// Lanes 0 and 2 of `lo` and of `hi` (f32x4): four stride-2 elements from eight.
    fn even_lanes(&mut self, lo: Value, hi: Value) -> Value {
        let le = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);
        let a = self.b.ins().bitcast(types::I8X16, le, lo);
        let b = self.b.ins().bitcast(types::I8X16, le, hi);
        let bytes: Vec<u8> = [0u8, 2, 4, 6]
            .iter()
            .flat_map(|&lane| (0..4).map(move |i| lane * 4 + i))
            .collect();
        let mask = self
            .b
            .func
            .dfg
            .immediates
            .push(cranelift_codegen::ir::ConstantData::from(bytes.as_slice()));
        let s = self.b.ins().shuffle(a, b, mask);
        self.b.ins().bitcast(types::F32X4, le, s)
    }
    /// Sets the status word to `code` (a non-bounds failure such as a bad label).
    pub fn fail(&mut self, code: u32) {
        let v = self.b.ins().iconst(types::I32, code as i64);
        self.b
            .ins()
            .store(MemFlagsData::trusted(), v, self.status, 0);
    }
    /// `x < 0 ? 0 : x` (NaN passes through, as in the interpreter): a compare
    /// and a select, which lower to far fewer instructions than `fmax`.
    pub fn relu(&mut self, v: Value) -> Value {
        let ty = self.b.func.dfg.value_type(v);
        let z = if ty == types::F32X4 {
            self.fv(0.0)
        } else {
            self.f(0.0)
        };
        let neg = self.b.ins().fcmp(FloatCC::LessThan, v, z);
        if ty == types::F32X4 {
            self.b.ins().bitselect(neg, z, v)
        } else {
            self.b.ins().select(neg, z, v)
        }
    }
    pub fn block(&mut self) -> Block {
        self.b.create_block()
    }
}
