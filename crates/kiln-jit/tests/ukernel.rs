//! Every tile this machine runs (the Rust microkernels, the scalar fallback
//! and the Cranelift-generated tile) and the blocked GEMM driver on top of
//! them, against a naive f64-accumulated matmul: odd sizes, k = 0 and 1,
//! partial tiles, strides, accumulation, epilogues, and bad arguments.

mod common;

use common::values;
use kiln_jit::codegen::isa::OptLevel;
use kiln_jit::codegen::tile::{compile_tile, TileShape};
use kiln_jit::ukernel::pack::{pack_a, pack_b, MatRef};
use kiln_jit::ukernel::{self, Bias, Blocking, Epilogue, Gemm, Isa, Microkernel};
use kiln_jit::JitError;
use proptest::prelude::*;
use std::sync::OnceLock;

/// The kernels under test: every available one (scalar and the default
/// generated tile included) plus two other generated shapes.
fn kernels() -> &'static [Microkernel] {
    static K: OnceLock<Vec<Microkernel>> = OnceLock::new();
    K.get_or_init(|| {
        let mut v = ukernel::available();
        assert!(
            v.iter().any(|u| u.isa() == Isa::Scalar) && v.iter().any(|u| u.isa() == Isa::Cranelift)
        );
        for (s, opt) in [
            (
                TileShape {
                    mr: 10,
                    nv: 1,
                    unroll: 4,
                },
                OptLevel::None,
            ),
            (
                TileShape {
                    mr: 3,
                    nv: 3,
                    unroll: 1,
                },
                OptLevel::Speed,
            ),
        ] {
            v.push(compile_tile(s, opt).unwrap());
        }
        v
    })
}

/// `C = (acc ? C : 0) + A x B` in f64, and per element the sum of |a * b| (the error scale).
fn reference(
    m: usize,
    n: usize,
    k: usize,
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0f64; m * n];
    let mut s = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let x = a(i, p) as f64 * b(p, j) as f64;
                c[i * n + j] += x;
                s[i * n + j] += x.abs();
            }
        }
    }
    (c, s)
}

fn close(got: f32, want: f64, scale: f64) -> bool {
    ((got as f64) - want).abs() <= 1e-5 * (1.0 + scale + want.abs())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The tile contract: full window written (or added to), nothing else touched.
    #[test]
    fn tiles_match_the_reference(ki in 0usize..16, k in 0usize..40, extra in 0usize..5, acc in any::<bool>(), seed in any::<u64>()) {
        let ks = kernels();
        let uk = ks[ki % ks.len()];
        let (mr, nr, ldc) = (uk.mr(), uk.nr(), uk.nr() + extra);
        let a = values(k * mr, seed);
        let b = values(k * nr, seed ^ 1);
        let c0 = values(mr * ldc + 7, seed ^ 2);
        let mut c = c0.clone();
        // SAFETY: panels of k * mr and k * nr floats; c holds (mr - 1) * ldc + nr and more.
        unsafe { uk.run(k, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, acc) };
        let (want, scale) = reference(mr, nr, k, |i, p| a[p * mr + i], |p, j| b[p * nr + j]);
        for (idx, (&got, &old)) in c.iter().zip(&c0).enumerate() {
            let (r, j) = (idx / ldc, idx % ldc);
            if r < mr && j < nr {
                let w = want[r * nr + j] + if acc { old as f64 } else { 0.0 };
                prop_assert!(close(got, w, scale[r * nr + j]), "{} k={k} acc={acc} [{r},{j}]: {got} vs {w}", uk.name());
            } else {
                prop_assert!(got.to_bits() == old.to_bits(), "{} wrote outside its tile at {idx}", uk.name());
            }
        }
    }

    /// The blocked driver on odd shapes, strides and tiny cache blocks (so
    /// every MC/KC/NC edge and partial tile is crossed), split into bands.
    #[test]
    fn gemm_matches_the_reference(
        ki in 0usize..16,
        m in 1usize..40,
        n in 1usize..70,
        k in prop_oneof![Just(1usize), 1usize..48],
        pads in (0usize..3, 0usize..3, 0usize..3),
        acc in any::<bool>(),
        tiny in any::<bool>(),
        parts in 1usize..4,
        seed in any::<u64>(),
    ) {
        let ks = kernels();
        let uk = ks[ki % ks.len()];
        let (lda, ldb, ldc) = (k + pads.0, n + pads.1, n + pads.2);
        let a = values((m - 1) * lda + k, seed);
        let b = values((k - 1) * ldb + n, seed ^ 1);
        let c0 = values((m - 1) * ldc + n, seed ^ 2);
        let mut c = c0.clone();
        let mut g = Gemm::new(uk).parts(parts);
        if tiny {
            g = g.blocking(Blocking { mc: uk.mr() + 1, kc: 5, nc: uk.nr() });
        }
        g.run(m, n, k, &a, lda, &b, ldb, &mut c, ldc, acc).unwrap();
        let (want, scale) = reference(m, n, k, |i, p| a[i * lda + p], |p, j| b[p * ldb + j]);
        for i in 0..m {
            for j in 0..ldc {
                let idx = i * ldc + j;
                if idx >= c.len() {
                    continue;
                }
                if j < n {
                    let w = want[i * n + j] + if acc { c0[idx] as f64 } else { 0.0 };
                    prop_assert!(close(c[idx], w, scale[i * n + j]), "{} {m}x{n}x{k} [{i},{j}]: {} vs {w}", uk.name(), c[idx]);
                } else {
                    prop_assert!(c[idx].to_bits() == c0[idx].to_bits(), "{} wrote into the ldc padding", uk.name());
                }
            }
        }
    }

    /// bias (per row or column) + residual + relu, after accumulation.
    #[test]
    fn epilogue_matches_the_reference(
        ki in 0usize..16,
        m in 1usize..30,
        n in 1usize..50,
        k in 1usize..30,
        bias in 0usize..3,
        residual in any::<bool>(),
        relu in any::<bool>(),
        acc in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let ks = kernels();
        let uk = ks[ki % ks.len()];
        let a = values(m * k, seed);
        let b = values(k * n, seed ^ 1);
        let c0 = values(m * n, seed ^ 2);
        let bias_row = values(m, seed ^ 3);
        let bias_col = values(n, seed ^ 4);
        let ldr = n + 2;
        let res = values(m * ldr, seed ^ 5);
        let epi = Epilogue {
            bias: match bias { 1 => Bias::PerRow(&bias_row), 2 => Bias::PerCol(&bias_col), _ => Bias::None },
            residual: residual.then_some((&res[..], ldr)),
            relu,
        };
        let mut c = c0.clone();
        Gemm::new(uk).blocking(Blocking { mc: 2 * uk.mr(), kc: 7, nc: 2 * uk.nr() }).epilogue(epi).run(m, n, k, &a, k, &b, n, &mut c, n, acc).unwrap();
        let (want, scale) = reference(m, n, k, |i, p| a[i * k + p], |p, j| b[p * n + j]);
        for i in 0..m {
            for j in 0..n {
                let mut w = want[i * n + j] + if acc { c0[i * n + j] as f64 } else { 0.0 };
                w += match bias { 1 => bias_row[i] as f64, 2 => bias_col[j] as f64, _ => 0.0 };
                if residual {
                    w += res[i * ldr + j] as f64;
                }
                if relu {
                    w = w.max(0.0);
                }
                prop_assert!(close(c[i * n + j], w, scale[i * n + j] + 2.0), "{} [{i},{j}]: {} vs {w}", uk.name(), c[i * n + j]);
            }
        }
    }
}

#[test]
fn k_zero_zeroes_or_keeps_c_then_applies_the_epilogue() {
    let bias = [1.0f32, -2.0];
    let epi = Epilogue {
        bias: Bias::PerRow(&bias),
        residual: None,
        relu: true,
    };
    for uk in kernels() {
        let mut c = vec![5.0f32; 6];
        Gemm::new(*uk)
            .epilogue(epi)
            .run(2, 3, 0, &[], 0, &[], 3, &mut c, 3, false)
            .unwrap();
        assert_eq!(c, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0], "{}", uk.name());
        let mut c = vec![5.0f32; 6];
        Gemm::new(*uk)
            .run(2, 3, 0, &[], 0, &[], 3, &mut c, 3, true)
            .unwrap();
        assert_eq!(c, [5.0; 6], "{}", uk.name());
    }
}

#[test]
fn results_do_not_depend_on_the_number_of_parts() {
    let (m, n, k) = (61, 45, 300);
    let a = values(m * k, 1);
    let b = values(k * n, 2);
    for uk in kernels() {
        let run = |parts| {
            let mut c = vec![0.0f32; m * n];
            Gemm::new(*uk)
                .parts(parts)
                .run(m, n, k, &a, k, &b, n, &mut c, n, false)
                .unwrap();
            c
        };
        let one = run(1);
        for parts in [2, 3, 7] {
            assert!(
                run(parts)
                    .iter()
                    .zip(&one)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{} parts={parts}",
                uk.name()
            );
        }
    }
}

#[test]
fn transposed_views_and_the_default_entry_point() {
    let (m, n, k) = (9, 13, 17);
    let at = values(k * m, 7); // A stored k x m: element (i, p) at p * m + i
    let b = values(k * n, 8);
    let mut c = vec![0.0f32; m * n];
    let a = MatRef::new(&at, m, k, 1, m).unwrap();
    Gemm::new(ukernel::best())
        .run_views(a, MatRef::row_major(&b, k, n, n).unwrap(), &mut c, n, false)
        .unwrap();
    let (want, scale) = reference(m, n, k, |i, p| at[p * m + i], |p, j| b[p * n + j]);
    assert!(c
        .iter()
        .zip(&want)
        .zip(&scale)
        .all(|((g, w), s)| close(*g, *w, *s)));

    let a_rm: Vec<f32> = (0..m * k).map(|x| at[(x % k) * m + x / k]).collect();
    let mut c2 = vec![0.0f32; m * n];
    ukernel::sgemm(m, n, k, &a_rm, k, &b, n, &mut c2, n, false).unwrap();
    assert!(c2
        .iter()
        .zip(&want)
        .zip(&scale)
        .all(|((g, w), s)| close(*g, *w, *s)));
}

#[test]
fn packing_layout_and_zero_padding() {
    // A 3x2 = [[1,2],[3,4],[5,6]] in panels of 2 rows: [1,3, 2,4] [5,0, 6,0].
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut out = vec![9.0f32; 8];
    pack_a(2, MatRef::row_major(&a, 3, 2, 2).unwrap(), &mut out).unwrap();
    assert_eq!(out, [1.0, 3.0, 2.0, 4.0, 5.0, 0.0, 6.0, 0.0]);
    // B 2x3 = [[1,2,3],[4,5,6]] in panels of 2 columns: [1,2, 4,5] [3,0, 6,0].
    let mut out = vec![9.0f32; 8];
    pack_b(2, MatRef::row_major(&a, 2, 3, 3).unwrap(), &mut out).unwrap();
    assert_eq!(out, [1.0, 2.0, 4.0, 5.0, 3.0, 0.0, 6.0, 0.0]);
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let z = vec![0.0f32; 64];
    let mut c = vec![0.0f32; 64];
    let bad =
        |r: Result<(), JitError>| assert!(matches!(r, Err(JitError::InvalidArgument(_))), "{r:?}");
    bad(ukernel::sgemm(
        4,
        4,
        4,
        &z[..15],
        4,
        &z,
        4,
        &mut c,
        4,
        false,
    )); // A too short
    bad(ukernel::sgemm(4, 4, 4, &z, 3, &z, 4, &mut c, 4, false)); // lda < k
    bad(ukernel::sgemm(4, 4, 4, &z, 4, &z, 4, &mut c, 3, false)); // ldc < n
    bad(ukernel::sgemm(9, 8, 1, &z, 1, &z, 8, &mut c, 8, false)); // C too short
    bad(ukernel::sgemm(
        usize::MAX,
        2,
        2,
        &z,
        2,
        &z,
        2,
        &mut c,
        2,
        false,
    )); // overflow
    let short = [1.0f32; 3];
    let g = Gemm::new(ukernel::scalar()).epilogue(Epilogue {
        bias: Bias::PerRow(&short),
        ..Epilogue::default()
    });
    bad(g.run(4, 4, 4, &z, 4, &z, 4, &mut c, 4, false));
    let g = Gemm::new(ukernel::scalar()).epilogue(Epilogue {
        residual: Some((&short, 4)),
        ..Epilogue::default()
    });
    bad(g.run(4, 4, 4, &z, 4, &z, 4, &mut c, 4, false));
    bad(Gemm::new(ukernel::scalar())
        .blocking(Blocking {
            mc: 0,
            kc: 4,
            nc: 4,
        })
        .run(4, 4, 4, &z, 4, &z, 4, &mut c, 4, false));
    bad(pack_a(
        4,
        MatRef::row_major(&z, 4, 4, 4).unwrap(),
        &mut c[..15],
    ));
    assert!("avx1024".parse::<Isa>().is_err());
    assert!(
        "auto".parse::<kiln_jit::Ukernels>().is_ok()
            && "AVX2".parse::<kiln_jit::Ukernels>().is_ok()
    );
    #[cfg(target_arch = "x86_64")]
    assert!(matches!(
        ukernel::kernel(Isa::Neon),
        Err(JitError::IsaUnavailable("neon"))
    ));
    assert!(compile_tile(
        TileShape {
            mr: 5,
            nv: 4,
            unroll: 1
        },
        OptLevel::Speed
    )
    .is_err()); // 20 accumulators
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The epilogue-fused tiles (`TileOut`) give the same bits as the plain
    /// strided tile followed by the separate epilogue's order of operations,
    /// store only the kept columns of the first `rows` rows, consecutively,
    /// and touch nothing else.
    #[test]
    fn out_tiles_equal_tile_then_epilogue(
        k in 0usize..40,
        rows_minus in 0usize..14,
        mask_bits in any::<u64>(),
        acc in any::<bool>(),
        bias in any::<bool>(),
        residual in any::<bool>(),
        relu in any::<bool>(),
        extra in 0usize..5,
        seed in any::<u64>(),
    ) {
        for uk in ukernel::available() {
            let (Some((_, strided)), Some((name, out))) = (uk.strided(), uk.out()) else { continue };
            let (mr, nr) = (uk.mr(), uk.nr());
            let rows = mr - rows_minus % mr;
            let mask = mask_bits & ((1u64 << nr) - 1);
            let kept: Vec<usize> = (0..nr).filter(|j| mask >> j & 1 == 1).collect();
            let (ldc, ldy) = (nr + extra, kept.len() + extra);
            let a = values(k * mr, seed);
            let b = values(k * nr, seed ^ 1);
            let c0 = values(mr * ldc, seed ^ 2);
            let bias_v = values(rows, seed ^ 3);
            let res_v = values(rows * ldy + 1, seed ^ 4);
            let y0 = values(mr * ldy + 1, seed ^ 5);
            let mut c = c0.clone();
            // SAFETY: panels of k * mr and k * nr floats, B rows nr apart; c holds mr * ldc.
            unsafe { strided(k, a.as_ptr(), b.as_ptr(), nr, c.as_mut_ptr(), ldc, acc as usize) };
            let mut y = y0.clone();
            let o = ukernel::TileOut {
                c: if acc { c0.as_ptr() } else { std::ptr::null() },
                ldc,
                y: y.as_mut_ptr(),
                ldy,
                residual: if residual { res_v.as_ptr() } else { std::ptr::null() },
                bias: if bias { bias_v.as_ptr() } else { std::ptr::null() },
                rows,
                mask,
                relu: relu as usize,
            };
            // SAFETY: as above; y and the residual hold (rows - 1) * ldy + kept floats, the bias rows.
            unsafe { out(k, a.as_ptr(), b.as_ptr(), nr, &o) };
            for (idx, (&got, &old)) in y.iter().zip(&y0).enumerate() {
                let (r, jj) = (idx / ldy, idx % ldy);
                let want = if r < rows && jj < kept.len() {
                    let mut v = c[r * ldc + kept[jj]] + if bias { bias_v[r] } else { 0.0 };
                    if residual {
                        v += res_v[r * ldy + jj];
                    }
                    if relu && v < 0.0 { 0.0 } else { v }
                } else {
                    old
                };
                prop_assert!(got.to_bits() == want.to_bits(), "{name} k={k} rows={rows} mask={mask:#x} at [{r},{jj}]: {got} vs {want}");
            }
        }
    }
}
