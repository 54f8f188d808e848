//! Loop nests for generated kernels. Bounds and steps are compile-time
//! constants (kernels are specialised to exact shapes), so the builder can
//! drop empty loops, emit one-trip loops straight-line, and unroll with a tail
//! whose length is known while emitting.
//!
//! The helpers work on anything that holds a `FunctionBuilder` ([`Builds`]),
//! so a lowering's emitter passes itself into the loop bodies.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// Access to the function builder of an emitter.
pub trait Builds<'f> {
    fn fb(&mut self) -> &mut FunctionBuilder<'f>;
}

impl<'f> Builds<'f> for FunctionBuilder<'f> {
    fn fb(&mut self) -> &mut FunctionBuilder<'f> {
        self
    }
}

/// `start..end` by `step` (`step > 0`), all constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Range {
    pub fn new(start: i64, end: i64, step: i64) -> Range {
        assert!(step > 0, "loop step must be positive");
        Range { start, end, step }
    }
    /// `0..n` by 1.
    pub fn upto(n: i64) -> Range {
        Range::new(0, n, 1)
    }
    pub fn trips(&self) -> i64 {
        if self.end <= self.start {
            0
        } else {
            (self.end - self.start + self.step - 1) / self.step
        }
    }
}

/// `for iv in start..end (step)` with a runtime `end`; the body sees `iv` as an i64.
pub fn for_dyn<'f, C: Builds<'f>>(
    cx: &mut C,
    start: Value,
    end: Value,
    step: i64,
    mut body: impl FnMut(&mut C, Value),
) {
    let b = cx.fb();
    let header = b.create_block();
    let bodyb = b.create_block();
    let exit = b.create_block();
    b.append_block_param(header, types::I64);
    b.ins().jump(header, &[start.into()]);
    b.switch_to_block(header);
    let iv = b.block_params(header)[0];
    let go = b.ins().icmp(IntCC::SignedLessThan, iv, end);
    b.ins().brif(go, bodyb, &[], exit, &[]);
    b.switch_to_block(bodyb);
    body(cx, iv);
    let b = cx.fb();
    let next = b.ins().iadd_imm_s(iv, step);
    b.ins().jump(header, &[next.into()]);
    b.switch_to_block(exit);
}

/// A constant-bound loop: nothing for zero trips, the body once with a
/// constant `iv` for one trip, otherwise a counted loop.
pub fn for_range<'f, C: Builds<'f>>(cx: &mut C, r: Range, mut body: impl FnMut(&mut C, Value)) {
    match r.trips() {
        0 => {}
        1 => {
            let iv = cx.fb().ins().iconst(types::I64, r.start);
            body(cx, iv);
        }
        _ => {
            let b = cx.fb();
            let s = b.ins().iconst(types::I64, r.start);
            let e = b.ins().iconst(types::I64, r.end);
            for_dyn(cx, s, e, r.step, body);
        }
    }
}

/// A constant-bound loop carrying values (accumulators of any type): `body`
/// gets `iv` and the current values and returns the next ones; the result is
/// the values after the last trip (`init` for zero trips).
pub fn fold_range<'f, C: Builds<'f>>(
    cx: &mut C,
    r: Range,
    init: &[Value],
    mut body: impl FnMut(&mut C, Value, &[Value]) -> Vec<Value>,
) -> Vec<Value> {
    match r.trips() {
        0 => return init.to_vec(),
        1 => {
            let iv = cx.fb().ins().iconst(types::I64, r.start);
            return body(cx, iv, init);
        }
        _ => {}
    }
    let b = cx.fb();
    let header = b.create_block();
    let bodyb = b.create_block();
    let exit = b.create_block();
    b.append_block_param(header, types::I64);
    for v in init {
        let ty = b.func.dfg.value_type(*v);
        b.append_block_param(header, ty);
        b.append_block_param(exit, ty);
    }
    let s = b.ins().iconst(types::I64, r.start);
    let args: Vec<BlockArg> = std::iter::once(s)
        .chain(init.iter().copied())
        .map(BlockArg::from)
        .collect();
    b.ins().jump(header, &args);
    b.switch_to_block(header);
    let hp = b.block_params(header).to_vec();
    let go = b.ins().icmp_imm_s(IntCC::SignedLessThan, hp[0], r.end);
    let carried: Vec<BlockArg> = hp[1..].iter().copied().map(BlockArg::from).collect();
    b.ins().brif(go, bodyb, &[], exit, &carried);
    b.switch_to_block(bodyb);
    let next_vals = body(cx, hp[0], &hp[1..]);
    let b = cx.fb();
    let next = b.ins().iadd_imm_s(hp[0], r.step);
    let args: Vec<BlockArg> = std::iter::once(next)
        .chain(next_vals)
        .map(BlockArg::from)
        .collect();
    b.ins().jump(header, &args);
    b.switch_to_block(exit);
    b.block_params(exit).to_vec()
}

/// `for_range` unrolled `u` times: a loop whose body is emitted for `iv`,
/// `iv + step`, ..., then the `trips % u` remaining iterations straight-line.
pub fn for_unrolled<'f, C: Builds<'f>>(
    cx: &mut C,
    r: Range,
    u: usize,
    mut body: impl FnMut(&mut C, Value),
) {
    let u = u.max(1) as i64;
    let trips = r.trips();
    let main = trips / u * u;
    let wide = Range::new(r.start, r.start + main * r.step, r.step * u);
    for_range(cx, wide, |cx, iv| {
        for i in 0..u {
            let ivi = if i == 0 {
                iv
            } else {
                cx.fb().ins().iadd_imm_s(iv, i * r.step)
            };
            body(cx, ivi);
        }
    });
    for t in main..trips {
        let iv = cx.fb().ins().iconst(types::I64, r.start + t * r.step);
        body(cx, iv);
    }
}

/// A perfect nest of constant-bound loops, outermost first, with the
/// innermost optionally unrolled.
#[derive(Clone, Debug, Default)]
pub struct LoopNest {
    dims: Vec<Range>,
    unroll: usize,
}

impl LoopNest {
    pub fn new() -> LoopNest {
        LoopNest {
            dims: Vec::new(),
            unroll: 1,
        }
    }
    /// Adds a loop inside the ones added before.
    pub fn dim(mut self, r: Range) -> Self {
        self.dims.push(r);
        self
    }
    /// Unrolls the innermost loop `u` times.
    pub fn unroll_inner(mut self, u: usize) -> Self {
        self.unroll = u.max(1);
        self
    }
    /// Emits the nest; `body` gets the induction variables, outermost first.
    pub fn emit<'f, C: Builds<'f>>(&self, cx: &mut C, mut body: impl FnMut(&mut C, &[Value])) {
        let mut ivs = Vec::with_capacity(self.dims.len());
        nest(cx, &self.dims, self.unroll, &mut ivs, &mut body);
    }
}

fn nest<'f, C: Builds<'f>>(
    cx: &mut C,
    dims: &[Range],
    u: usize,
    ivs: &mut Vec<Value>,
    body: &mut dyn FnMut(&mut C, &[Value]),
) {
    match dims {
        [] => body(cx, ivs),
        [d] => for_unrolled(cx, *d, u, |cx, iv| {
            ivs.push(iv);
            body(cx, ivs);
            ivs.pop();
        }),
        [d, rest @ ..] => for_range(cx, *d, |cx, iv| {
            ivs.push(iv);
            nest(cx, rest, u, ivs, body);
            ivs.pop();
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::isa::{host_isa, OptLevel};
    use super::super::module::JitModule;
    use super::*;
    use cranelift_codegen::ir::MemFlagsData;

    /// Compiles `fn(out: *mut f32)` whose body `emit` writes, runs it on `n` floats.
    fn run(n: usize, emit: impl FnOnce(&mut FunctionBuilder, Value)) -> Vec<f32> {
        let mut m = JitModule::new(host_isa(OptLevel::Speed, true).unwrap(), &[]);
        let sig = m.signature(&[types::I64], &[]);
        let id = m
            .define("t", sig, &[], |b, p, _| {
                emit(b, p[0]);
                b.ins().return_(&[]);
                Ok(())
            })
            .unwrap();
        let code = m.finish().unwrap();
        let f: extern "C" fn(*mut f32) = unsafe { std::mem::transmute(code.ptr(id).unwrap()) };
        let mut out = vec![-1.0f32; n];
        f(out.as_mut_ptr());
        out
    }

    fn store_at(b: &mut FunctionBuilder, out: Value, idx: Value, v: Value) {
        let off = b.ins().ishl_imm_s(idx, 2);
        let p = b.ins().iadd(out, off);
        b.ins().store(MemFlagsData::trusted(), v, p, 0);
    }

    #[test]
    fn nest_with_unrolled_tail_visits_every_point_once() {
        let (i_n, j_n, k_n) = (3i64, 1i64, 7i64);
        let out = run((i_n * j_n * k_n) as usize, |b, out| {
            LoopNest::new()
                .dim(Range::upto(i_n))
                .dim(Range::upto(j_n))
                .dim(Range::upto(k_n))
                .unroll_inner(3)
                .emit(b, |b, iv| {
                    let ij = b.ins().imul_imm_s(iv[0], j_n);
                    let ij = b.ins().iadd(ij, iv[1]);
                    let idx = b.ins().imul_imm_s(ij, k_n);
                    let idx = b.ins().iadd(idx, iv[2]);
                    let hundred = b.ins().imul_imm_s(iv[0], 100);
                    let ten = b.ins().imul_imm_s(iv[1], 10);
                    let v = b.ins().iadd(hundred, ten);
                    let v = b.ins().iadd(v, iv[2]);
                    let f = b.ins().fcvt_from_sint(types::F32, v);
                    store_at(b, out, idx, f);
                });
        });
        let want: Vec<f32> = (0..i_n)
            .flat_map(|i| (0..k_n).map(move |k| (i * 100 + k) as f32))
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn stepped_and_empty_loops() {
        let out = run(10, |b, out| {
            for_unrolled(b, Range::new(1, 10, 2), 2, |b, iv| {
                let one = b.ins().f32const(1.0);
                store_at(b, out, iv, one);
            });
            for_range(b, Range::new(5, 5, 1), |b, iv| {
                let bad = b.ins().f32const(9.0);
                store_at(b, out, iv, bad);
            });
        });
        let want: Vec<f32> = (0..10)
            .map(|i| if i % 2 == 1 { 1.0 } else { -1.0 })
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn fold_carries_values() {
        for (r, want) in [
            (Range::upto(0), 0.0f32),
            (Range::upto(1), 0.0),
            (Range::new(0, 101, 1), 5050.0),
            (Range::new(3, 20, 4), 3.0 + 7.0 + 11.0 + 15.0 + 19.0),
        ] {
            let out = run(2, |b, out| {
                let z = b.ins().f32const(0.0);
                let c = b.ins().f32const(0.0);
                let res = fold_range(b, r, &[z, c], |b, iv, acc| {
                    let f = b.ins().fcvt_from_sint(types::F32, iv);
                    let one = b.ins().f32const(1.0);
                    vec![b.ins().fadd(acc[0], f), b.ins().fadd(acc[1], one)]
                });
                let zero = b.ins().iconst(types::I64, 0);
                let one = b.ins().iconst(types::I64, 1);
                store_at(b, out, zero, res[0]);
                store_at(b, out, one, res[1]);
            });
            assert_eq!(out, vec![want, r.trips() as f32], "{r:?}");
        }
    }
}
