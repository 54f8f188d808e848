//! Shared helpers of the kiln-jit tests.
#![allow(dead_code)]

use kiln_ir::{Graph, ParamStore, Tensor};
use kiln_jit::{compile, Options, Ukernels};

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn inputs_for(g: &Graph, seed: u64) -> Vec<Tensor> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, (_, _, ty))| Tensor {
            shape: ty.shape.clone(),
            data: values(ty.elements(), seed + i as u64),
        })
        .collect()
}

pub fn named(g: &Graph, inputs: &[Tensor]) -> Vec<(String, Tensor)> {
    g.inputs()
        .iter()
        .zip(inputs)
        .map(|((_, n, _), t)| (n.to_string(), t.clone()))
        .collect()
}

/// Largest |a - b| over the largest |b| (relative to the reference's magnitude).
pub fn rel_err(found: &[Tensor], want: &[Tensor]) -> f32 {
    assert_eq!(found.len(), want.len(), "output count");
    let mut worst = 0.0f32;
    for (f, w) in found.iter().zip(want) {
        assert_eq!(f.shape, w.shape, "output shape");
        // an absolute floor: a loss of exactly 0 (one class) is only rounding
        // noise, one ulp of 1.0 (1.2e-7) in a log-sum-exp
        let scale = w.max_abs().max(1e-2);
        let d = f
            .data
            .iter()
            .zip(&w.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            !f.data.iter().any(|x| x.is_nan()) || w.data.iter().any(|x| x.is_nan()),
            "NaN in the JIT output"
        );
        worst = worst.max(d / scale);
    }
    worst
}

/// Compiles `g` with both tile paths and compares each against the interpreter.
pub fn check_graph(g: &Graph, params: &ParamStore, tol: f32, what: &str) {
    let inputs = inputs_for(g, 7);
    let want = kiln_interp::run(g, params, &named(g, &inputs)[..]).expect("interpreter");
    for uk in [Ukernels::Auto, Ukernels::Off] {
        let m = compile(
            g,
            params,
            &Options {
                threads: 2,
                ukernels: uk,
                checked: false,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{what}: compile ({uk:?}): {e}"));
        let got = m
            .run(&inputs)
            .unwrap_or_else(|e| panic!("{what}: run ({uk:?}): {e}"));
        let e = rel_err(&got, &want);
        assert!(e <= tol, "{what} ({uk:?}): relative error {e:e} > {tol:e}");
    }
}
