//! The pass manager on a real block with weights: the IR printed after each
//! pass reads back and verifies, the run's timing table and JSON, the weight
//! check before the first pass, and a failing pass named. (Printing
//! choices, unknown print-after names, input verification and pipeline
//! round trips are unit tests in src/manager.rs.)

use kiln_ir::ops::{BatchNorm, Conv2d, Relu};
use kiln_ir::{Graph, ParamStore, Tensor, TensorType};
use kiln_passes::{Context, PassError, PassManager, Registry, RunError};

/// conv -> BN -> relu, with PyTorch-default weights and random BN statistics.
fn block() -> (Graph, ParamStore) {
    let mut g = Graph::new("block");
    let x = g.add_input("x", TensorType::f32([1, 2, 6, 6]));
    let w = g.add_param("conv.weight", TensorType::f32([3, 2, 3, 3]));
    let y = g.add(Conv2d::new(3, 1, 1), &[x, w]).unwrap();
    let mut operands = vec![y];
    for leaf in ["weight", "bias", "running_mean", "running_var"] {
        operands.push(g.add_param(format!("bn.{leaf}"), TensorType::f32([3])));
    }
    let y = g.add(BatchNorm::inference(1e-5), &operands).unwrap();
    let y = g.add(Relu {}, &[y]).unwrap();
    g.set_outputs(vec![y]);
    let mut p = kiln_models::init_params_with(&g, 3, &kiln_models::InitScheme::TORCH_DEFAULT);
    kiln_models::randomize_bn_stats(&g, &mut p, 3);
    (g, p)
}

#[test]
fn the_ir_printed_after_every_pass_parses_and_verifies() {
    let (mut g, p) = block();
    let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &Registry::builtin())
        .unwrap()
        .print_after_all();
    let run = pm.run(&mut g, &mut Context::new(p)).unwrap();
    assert_eq!(run.passes.len(), 3);
    for pass in &run.passes {
        let text = pass
            .ir
            .as_deref()
            .unwrap_or_else(|| panic!("no IR after {}", pass.name));
        let parsed = kiln_ir::text::parse(text).unwrap();
        kiln_ir::verify(&parsed).unwrap();
    }
    assert!(!run.passes[0].ir.as_ref().unwrap().contains("batch_norm"));
    assert!(run.passes[0].ir.as_ref().unwrap().contains("relu("));
    assert!(!run.passes[1].ir.as_ref().unwrap().contains("relu("));
    assert_eq!(
        run.passes[2].ir.as_deref(),
        Some(kiln_ir::text::print(&g).as_str())
    );
}

#[test]
fn every_pass_is_timed_and_the_run_reads_as_a_table_and_json() {
    let (mut g, p) = block();
    let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &Registry::builtin()).unwrap();
    let run = pm.run(&mut g, &mut Context::new(p)).unwrap();
    assert!(run.pass_time() >= run.passes[0].elapsed);
    let table = run.to_string();
    assert!(table.starts_with("pass"), "{table}");
    assert!(table.contains("folded 1 batch norm"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    let json: serde_json::Value = serde_json::to_value(&run).unwrap();
    assert_eq!(json["passes"][0]["name"], "fold-bn");
    assert!(json["passes"][0]["elapsed"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["passes"][0]["report"]["counters"][0]["count"], 1);
}

#[test]
fn the_weights_are_checked_before_the_first_pass() {
    let (mut g, p) = block();
    let mut short = p;
    short.insert("conv.weight", Tensor::zeros(&[3, 2, 1, 1]));
    let mut pm = PassManager::parse("dce", &Registry::builtin()).unwrap();
    let e = pm.run(&mut g, &mut Context::new(short)).unwrap_err();
    assert!(matches!(e, RunError::InvalidWeights(_)), "{e:?}");
    assert_eq!(e.pass(), None, "no pass is blamed for its input");
    assert!(e.to_string().contains("@conv.weight"), "{e}");
}

#[test]
fn a_failing_pass_is_named() {
    // fold-bn must compute with the weights; there are none.
    let (mut g, _) = block();
    let mut pm = PassManager::parse("dce,fold-bn", &Registry::builtin()).unwrap();
    let e = pm.run(&mut g, &mut Context::default()).unwrap_err();
    let RunError::Pass {
        pass,
        index,
        source,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((pass.as_str(), *index), ("fold-bn", 1));
    assert!(
        matches!(source, PassError::MissingParam { .. }),
        "{source:?}"
    );
    assert!(e.to_string().contains("pass `fold-bn`"), "{e}");
    assert!(e.to_string().contains("is not in the weights"), "{e}");
}
