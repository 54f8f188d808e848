//! The compiled model and its executor.

use crate::codegen::kernels::{Loc, BAD_LABEL};
use crate::codegen::{KernelFn, Region};
use crate::error::JitError;
use kiln_ir::{Tensor, TensorType};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// Owns the JIT'd code. `JITModule` holds raw pointers, so it is neither Send
/// nor Sync; the code is immutable after `finalize_definitions` and only
/// freed on drop, which makes sharing it across threads sound.
pub(crate) struct Code(pub Option<cranelift_jit::JITModule>);
// SAFETY: see above; no method of the module is called after construction but free_memory in drop.
unsafe impl Send for Code {}
unsafe impl Sync for Code {}
impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: no kernel of this module can be running: the model is being dropped.
            unsafe { m.free_memory() };
        }
    }
}

pub(crate) struct Launch {
    pub f: KernelFn,
    pub tiles: usize,
    pub node: String,
}

/// A graph compiled to native kernels. `Send + Sync`: `run` may be called from
/// many threads at once (each call has its own arena and scratch).
pub struct CompiledModel {
    pub(crate) launches: Vec<Launch>,
    /// `(label, multiply-adds)` of every node of the compiled graph.
    pub(crate) node_macs: Vec<(String, u64)>,
    pub(crate) consts: Vec<f32>,
    pub(crate) arena_len: usize,
    pub(crate) scratch_len: usize,
    pub(crate) inputs: Vec<(String, TensorType, Loc)>,
    pub(crate) outputs: Vec<(TensorType, Loc)>,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) threads: usize,
    pub(crate) compile_time: Duration,
    pub(crate) tile_name: &'static str,
    /// Arenas and scratch buffers of finished runs, reused so that a run does
    /// not page-fault tens of MB of fresh memory (every kernel writes what it
    /// reads later, so a reused buffer needs no clearing).
    pub(crate) buffers: std::sync::Mutex<Vec<(Vec<f32>, Vec<f32>)>>,
    /// `Options::flush_denormals`.
    pub(crate) flush_denormals: bool,
    pub(crate) _code: Code,
}

#[derive(Clone, Copy)]
struct Ptrs {
    arena: *mut f32,
    consts: *const f32,
    scratch: *mut f32,
    status: *mut u32,
}
// SAFETY: tiles write disjoint parts of the arena; each worker has its own scratch.
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

/// The calling thread's floating-point control word (x86-64 MXCSR), and the
/// bits that flush subnormals: flush-to-zero (15) and denormals-are-zero (6).
/// Elsewhere a word of 0 that nothing reads.
#[cfg(target_arch = "x86_64")]
mod fp_mode {
    pub const FLUSH: u32 = 0x8040;
    #[allow(deprecated)]
    pub fn get() -> u32 {
        // SAFETY: SSE is part of x86-64; reading MXCSR has no effect.
        unsafe { std::arch::x86_64::_mm_getcsr() }
    }
    #[allow(deprecated)]
    pub fn set(word: u32) {
        // SAFETY: a word read by `get` with only FLUSH added or restored: it
        // changes how subnormal floats are read and produced, nothing else.
        unsafe { std::arch::x86_64::_mm_setcsr(word) }
    }
}
#[cfg(not(target_arch = "x86_64"))]
mod fp_mode {
    pub const FLUSH: u32 = 0;
    pub fn get() -> u32 {
        0
    }
    pub fn set(_: u32) {}
}

/// Flushes subnormals on the current thread (a worker of a model's own pool).
pub(crate) fn flush_denormals_on_this_thread() {
    fp_mode::set(fp_mode::get() | fp_mode::FLUSH);
}

/// Flushes subnormals on the calling thread until dropped, then restores the
/// caller's floating-point mode.
struct FlushGuard(Option<u32>);

impl FlushGuard {
    fn new(on: bool) -> FlushGuard {
        let saved = on.then(fp_mode::get);
        if on {
            flush_denormals_on_this_thread();
        }
        FlushGuard(saved)
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            fp_mode::set(saved);
        }
    }
}

fn copy_in(arena: &mut [f32], loc: &Loc, shape: &[usize], data: &[f32]) {
    let n = shape.first().copied().unwrap_or(1).max(1);
    let it = data.len() / n.max(1);
    for i in 0..n {
        let o = loc.off as usize + i * loc.bstride as usize;
        arena[o..o + it].copy_from_slice(&data[i * it..(i + 1) * it]);
    }
}

impl CompiledModel {
    /// Runs the model on `inputs`, given in `Graph::inputs()` order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, JitError> {
        self.run_profiled(inputs, None)
    }

    /// `run`, adding each launch's wall time to `times` (one entry per kernel launch,
    /// labelled with its node) when given: for finding where time goes.
    #[doc(hidden)]
    pub fn run_profiled(
        &self,
        inputs: &[Tensor],
        mut times: Option<&mut Vec<(String, Duration)>>,
    ) -> Result<Vec<Tensor>, JitError> {
        if inputs.len() != self.inputs.len() {
            return Err(JitError::InputCount {
                expected: self.inputs.len(),
                found: inputs.len(),
            });
        }
        for ((name, ty, _), t) in self.inputs.iter().zip(inputs) {
            if t.shape != ty.shape || t.data.len() != ty.elements() {
                return Err(JitError::InputShape {
                    name: name.clone(),
                    expected: ty.clone(),
                    found: t.shape.clone(),
                    len: t.data.len(),
                });
            }
        }
        let reused = self.buffers.lock().ok().and_then(|mut b| b.pop());
        let (mut arena, mut scratch) = reused.unwrap_or_else(|| {
            (
                vec![0.0f32; self.arena_len.max(1)],
                vec![0.0f32; (self.threads + 1) * self.scratch_len],
            )
        });
        for ((_, ty, loc), t) in self.inputs.iter().zip(inputs) {
            copy_in(&mut arena, loc, &ty.shape, &t.data);
        }
        let status = AtomicU32::new(0);
        let base = Ptrs {
            arena: arena.as_mut_ptr(),
            consts: self.consts.as_ptr(),
            scratch: scratch.as_mut_ptr(),
            status: status.as_ptr(),
        };
        let sl = self.scratch_len;
        let _mode = FlushGuard::new(self.flush_denormals);
        // The whole schedule runs inside the pool (one hand-over per run, not
        // one per launch); single-tile launches run on whichever worker has it.
        let schedule = |times: &mut Option<&mut Vec<(String, Duration)>>| {
            for l in &self.launches {
                let started = std::time::Instant::now();
                let f = l.f;
                let call = move |p: Ptrs, slot: usize, t: usize| {
                    // SAFETY: the kernel only touches the arena and constant ranges the
                    // plan gave it (checked mode verifies that) and its worker's scratch.
                    unsafe {
                        f(
                            p.arena,
                            p.consts,
                            t as u64,
                            p.scratch.add(slot * sl),
                            p.status,
                        )
                    }
                };
                let slot = || {
                    rayon::current_thread_index()
                        .unwrap_or(self.threads)
                        .min(self.threads)
                };
                if l.tiles <= 1 || self.threads == 1 {
                    let s = slot();
                    for t in 0..l.tiles {
                        call(base, s, t);
                    }
                } else {
                    // Tiles are handed out one at a time from a shared counter, so
                    // a worker that finishes early takes the next tile instead of
                    // waiting for a half split in advance (tiles differ in cost:
                    // the last pixel block is shorter). Each tile's result does
                    // not depend on which worker ran it.
                    let next = AtomicUsize::new(0);
                    let work = || {
                        let s = slot();
                        loop {
                            let t = next.fetch_add(1, Ordering::Relaxed);
                            if t >= l.tiles {
                                break;
                            }
                            call(base, s, t);
                        }
                    };
                    rayon::scope(|sc| {
                        for _ in 1..self.threads.min(l.tiles) {
                            sc.spawn(|_| work());
                        }
                        work();
                    });
                }
                if let Some(t) = times.as_deref_mut() {
                    t.push((l.node.clone(), started.elapsed()));
                }
            }
        };
        if self.threads > 1 {
            self.pool.install(|| schedule(&mut times));
        } else {
            schedule(&mut times);
        }
        let code = status.load(Ordering::SeqCst);
        if code != 0 {
            let step = |i: u32| {
                self.launches
                    .get(i as usize - 1)
                    .map(|l| l.node.clone())
                    .unwrap_or_default()
            };
            return Err(if code >= BAD_LABEL {
                JitError::BadLabel {
                    node: step(code - BAD_LABEL),
                    classes: 0,
                }
            } else {
                JitError::OutOfBounds { node: step(code) }
            });
        }
        let outputs = self
            .outputs
            .iter()
            .map(|(ty, loc)| {
                let src: &[f32] = if loc.region == Region::Arena {
                    &arena
                } else {
                    &self.consts
                };
                let n = ty.shape.first().copied().unwrap_or(1).max(1);
                let it = ty.elements() / n;
                let mut data = Vec::with_capacity(ty.elements());
                for i in 0..n {
                    let o = loc.off as usize + i * loc.bstride as usize;
                    data.extend_from_slice(&src[o..o + it]);
                }
                Tensor {
                    shape: ty.shape.clone(),
                    data,
                }
            })
            .collect();
        if let Ok(mut b) = self.buffers.lock() {
            b.push((arena, scratch));
        }
        Ok(outputs)
    }

    /// Runs with inputs given by name (any order; every input exactly once).
    pub fn run_named(&self, inputs: &[(String, Tensor)]) -> Result<Vec<Tensor>, JitError> {
        for (name, _) in inputs {
            if !self.inputs.iter().any(|(n, _, _)| n == name) {
                let known: Vec<&str> = self.inputs.iter().map(|(n, _, _)| n.as_str()).collect();
                return Err(JitError::InputName {
                    name: name.clone(),
                    problem: format!(
                        "the graph has no input of that name (its inputs: {})",
                        known.join(", ")
                    ),
                });
            }
            if inputs.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(JitError::InputName {
                    name: name.clone(),
                    problem: "given twice".into(),
                });
            }
        }
        let mut ordered = Vec::with_capacity(self.inputs.len());
        for (name, _, _) in &self.inputs {
            let t = inputs
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| JitError::InputName {
                    name: name.clone(),
                    problem: "was not given".into(),
                })?;
            ordered.push(t.1.clone());
        }
        self.run(&ordered)
    }

    /// Wall time of `compile` (planning, lowering, Cranelift, linking, weight packing).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Bytes of the per-run activation arena.
    pub fn arena_bytes(&self) -> usize {
        self.arena_len * 4
    }

    /// Worker threads of this model's pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The matmul tile the generated code calls.
    pub fn tile_name(&self) -> &'static str {
        self.tile_name
    }

    /// `(label, multiply-adds)` of every node of the graph as compiled, after
    /// the backend's own rewrites (phase convs, explicit pads, ...): the labels
    /// `run_profiled` reports times under.
    pub fn node_macs(&self) -> &[(String, u64)] {
        &self.node_macs
    }

    /// Kernel launches a run makes.
    pub fn kernel_count(&self) -> usize {
        self.launches.len()
    }
}
