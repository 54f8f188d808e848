//! The executor's guarantees: bitwise determinism across thread counts,
//! concurrent runs, checked mode (clean runs, and a deliberate out-of-range
//! store caught as an error), input validation, and conformance with PyTorch.

mod common;

use kiln_ir::npy::read_npy;
use kiln_ir::{Graph, ParamStore, Tensor};
use kiln_jit::{compile, compile_with_fault, JitError, Options, Ukernels};
use kiln_models::{build, find, init_params, randomize_bn_stats, Config};
use std::path::PathBuf;

fn model(name: &str, size: usize, batch: usize) -> (Graph, ParamStore) {
    let g = build(
        name,
        &Config::default_for(name)
            .unwrap()
            .with_input(size)
            .with_batch(batch),
    )
    .unwrap();
    let mut p = init_params(&g, 3);
    randomize_bn_stats(&g, &mut p, 4);
    (g, p)
}

fn bits(ts: &[Tensor]) -> Vec<u32> {
    ts.iter()
        .flat_map(|t| t.data.iter().map(|x| x.to_bits()))
        .collect()
}

#[test]
fn outputs_are_bitwise_identical_for_any_thread_count() {
    for (name, size) in [("resnet18", 32), ("googlenet", 32)] {
        let (g, p) = model(name, size, 2);
        let inputs = common::inputs_for(&g, 11);
        for uk in [Ukernels::Auto, Ukernels::Off] {
            let runs: Vec<Vec<u32>> = [1, 2, 3]
                .iter()
                .map(|&t| {
                    let m = compile(
                        &g,
                        &p,
                        &Options {
                            threads: t,
                            ukernels: uk,
                            checked: false,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    assert_eq!(m.threads(), t);
                    bits(&m.run(&inputs).unwrap())
                })
                .collect();
            assert!(
                runs[0] == runs[1] && runs[1] == runs[2],
                "{name} {uk:?}: outputs differ between 1, 2 and 3 threads"
            );
        }
    }
}

#[test]
fn concurrent_runs_from_several_threads_agree() {
    let (g, p) = model("resnet18", 32, 1);
    let m = compile(
        &g,
        &p,
        &Options {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let inputs: Vec<Vec<Tensor>> = (0..4).map(|i| common::inputs_for(&g, 20 + i)).collect();
    let serial: Vec<Vec<u32>> = inputs.iter().map(|x| bits(&m.run(x).unwrap())).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = inputs
            .iter()
            .map(|x| {
                let m = &m;
                s.spawn(move || (0..3).map(|_| bits(&m.run(x).unwrap())).collect::<Vec<_>>())
            })
            .collect();
        for (h, want) in hs.into_iter().zip(&serial) {
            for got in h.join().unwrap() {
                assert!(&got == want, "a concurrent run differs from the serial one");
            }
        }
    });
}

#[test]
fn checked_mode_runs_small_graphs_cleanly_and_agrees() {
    for (name, size) in [
        ("resnet20-cifar", 16),
        ("googlenet", 15),
        ("bn-inception", 31),
    ] {
        let (g, p) = model(name, size, 2);
        let inputs = common::inputs_for(&g, 5);
        let want = kiln_interp::run(&g, &p, &common::named(&g, &inputs)[..]).unwrap();
        for uk in [Ukernels::Auto, Ukernels::Off] {
            let m = compile(
                &g,
                &p,
                &Options {
                    threads: 2,
                    ukernels: uk,
                    checked: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let got = m
                .run(&inputs)
                .unwrap_or_else(|e| panic!("{name} checked: {e}"));
            assert!(
                common::rel_err(&got, &want) <= 1e-4,
                "{name} checked {uk:?}"
            );
        }
    }
}

#[test]
fn checked_mode_turns_an_out_of_range_store_into_an_error() {
    let (g, p) = model("resnet20-cifar", 8, 1);
    let inputs = common::inputs_for(&g, 5);
    // every kind of kernel: a conv, a batch norm/add/relu, the pool, the dense layer
    // (flatten is a view of its operand: it has no kernel to corrupt)
    let targets: Vec<_> = g
        .topo_order()
        .unwrap()
        .into_iter()
        .filter(|id| {
            !matches!(
                g.op(*id),
                kiln_ir::Op::Input(_) | kiln_ir::Op::Param(_) | kiln_ir::Op::Flatten(_)
            )
        })
        .collect();
    let mut kinds = std::collections::BTreeSet::new();
    for id in targets {
        if !kinds.insert(g.op(id).kind()) {
            continue;
        }
        let opts = Options {
            threads: 2,
            ukernels: Ukernels::Auto,
            checked: true,
            ..Default::default()
        };
        let m = compile_with_fault(&g, &p, &opts, id).unwrap();
        match m.run(&inputs) {
            Err(JitError::OutOfBounds { node }) => assert_eq!(node, g.describe(id)),
            other => panic!("{}: expected OutOfBounds, got {other:?}", g.describe(id)),
        }
    }
    assert!(
        kinds.contains("conv2d") && kinds.contains("dense"),
        "{kinds:?}"
    );
    let unchecked = Options {
        checked: false,
        ..Default::default()
    };
    assert!(compile_with_fault(&g, &p, &unchecked, g.topo_order().unwrap()[1]).is_err());
}

#[test]
fn wrong_inputs_are_typed_errors() {
    let (g, p) = model("resnet20-cifar", 8, 1);
    let m = compile(&g, &p, &Options::default()).unwrap();
    assert!(matches!(
        m.run(&[]),
        Err(JitError::InputCount {
            expected: 1,
            found: 0
        })
    ));
    let bad = Tensor {
        shape: vec![1, 3, 8, 9],
        data: vec![0.0; 216],
    };
    assert!(matches!(m.run(&[bad]), Err(JitError::InputShape { .. })));
    let x = common::inputs_for(&g, 1).remove(0);
    assert!(matches!(
        m.run_named(&[("nope".into(), x.clone())]),
        Err(JitError::InputName { .. })
    ));
    let by_name = m.run_named(&[("input".into(), x.clone())]).unwrap();
    assert_eq!(bits(&by_name), bits(&m.run(&[x]).unwrap()));
    assert!(m.arena_bytes() > 0 && m.compile_time().as_nanos() > 0);
}

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

#[test]
fn conformance_resnet18_and_googlenet_match_pytorch() {
    for name in ["resnet18", "googlenet"] {
        let dir = conformance_dir().join(name);
        let file = |f: &str| {
            let p = dir.join(f);
            assert!(p.is_file(), "conformance file {} is missing", p.display());
            p
        };
        let x = read_npy(file("input.npy")).unwrap();
        let want = read_npy(file("output.npy")).unwrap();
        let weights = ParamStore::load(file("weights.safetensors")).unwrap();
        let m = find(name).unwrap();
        let cfg = Config {
            batch: x.shape[0],
            height: x.shape[2],
            width: x.shape[3],
            num_classes: want.shape[1],
            ..m.default_config()
        };
        let g = m.build(&cfg).unwrap();
        for uk in [Ukernels::Auto, Ukernels::Off] {
            let cm = compile(
                &g,
                &weights,
                &Options {
                    threads: 2,
                    ukernels: uk,
                    checked: false,
                    ..Default::default()
                },
            )
            .unwrap();
            let got = cm.run(&[x.clone()]).unwrap();
            let diff = got[0].max_abs_diff(&want).unwrap();
            let scale = want.max_abs();
            println!("{name} {uk:?}: max |jit - torch| = {diff:.3e} (max |torch| {scale:.3e})");
            assert!(
                diff <= 1e-4 * scale,
                "{name} {uk:?}: {diff:e} beyond 1e-4 of {scale:e}"
            );
        }
    }
}

/// `flush_denormals` flushes subnormal results on every thread count and
/// leaves the caller's floating-point mode as it was; without it subnormals
/// pass through exactly.
#[test]
fn subnormals_are_flushed_only_when_asked_and_the_callers_mode_is_restored() {
    use kiln_ir::ops::Add;
    use kiln_ir::TensorType;
    let mut g = Graph::new("subnormal");
    let x = g.add_input("x", TensorType::f32([1, 4, 3, 3]));
    let y = g.add(Add {}, &[x, x]).unwrap();
    g.set_outputs(vec![y]);
    let tiny = f32::from_bits(1); // the smallest subnormal
    let input = Tensor {
        shape: vec![1, 4, 3, 3],
        data: vec![tiny; 36],
    };
    for threads in [1, 2] {
        for flush in [false, true] {
            let m = compile(
                &g,
                &ParamStore::default(),
                &Options {
                    threads,
                    flush_denormals: flush,
                    ..Default::default()
                },
            )
            .unwrap();
            let out = m.run(std::slice::from_ref(&input)).unwrap();
            let flushes = flush && cfg!(target_arch = "x86_64");
            let expect = if flushes { 0.0 } else { tiny + tiny };
            assert!(
                out[0].data.iter().all(|v| v.to_bits() == expect.to_bits()),
                "threads {threads}, flush {flush}: {:?}",
                &out[0].data[..4]
            );
            // the caller's thread computes subnormals again after the run
            let again = std::hint::black_box(tiny) + std::hint::black_box(tiny);
            assert_eq!(again.to_bits(), 2, "the run leaked its floating-point mode");
        }
    }
}

/// The backend's phase split of a strided conv adds no multiply-add: the
/// compiled graph's `node_macs` sum to the user graph's; the space-to-depth
/// stem adds exactly its zero taps (64 for 49 at 7x7 stride 2).
#[test]
fn legalization_keeps_the_work_of_phase_splits_and_counts_the_stems_zero_taps() {
    use kiln_ir::ops::Conv2d;
    use kiln_ir::TensorType;
    for (c, k, pad, num, den) in [(32usize, 3usize, 1usize, 1u64, 1u64), (3, 7, 3, 64, 49)] {
        let mut g = Graph::new("strided");
        let x = g.add_input("x", TensorType::f32([1, c, 32, 32]));
        let w = g.add_param("w", TensorType::f32([16, c, k, k]));
        let y = g.add(Conv2d::new(k, 2, pad), &[x, w]).unwrap();
        g.set_outputs(vec![y]);
        let p = init_params(&g, 1);
        let m = compile(&g, &p, &Options::default()).unwrap();
        let compiled: u64 = m.node_macs().iter().map(|(_, n)| n).sum();
        let user = kiln_ir::cost::cost(&g).macs;
        assert_eq!(compiled * den, user * num, "{k}x{k}/2 on {c} channels");
        assert!(m.node_macs().len() > 1, "the conv was rewritten");
    }
}
