//! The pass manager: IR printing after all or named passes (collected or
//! through a callback), pipeline text round trips, timing, the checks
//! before the first pass, and errors that name the pass.

use kiln_ir::ops::{BatchNorm, Conv2d, Relu};
use kiln_ir::{Graph, ParamStore, Tensor, TensorType};
use kiln_passes::{Context, PassError, PassManager, Registry, RunError};
use std::cell::RefCell;
use std::rc::Rc;

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
fn print_after_all_collects_the_ir_of_every_pass() {
    let (mut g, p) = block();
    let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &Registry::builtin()).unwrap().print_after_all();
    let run = pm.run(&mut g, &mut Context::new(p)).unwrap();
    assert_eq!(run.passes.len(), 3);
    for pass in &run.passes {
        let text = pass.ir.as_deref().unwrap_or_else(|| panic!("no IR after {}", pass.name));
        let parsed = kiln_ir::text::parse(text).unwrap();
        kiln_ir::verify(&parsed).unwrap();
    }
    assert!(!run.passes[0].ir.as_ref().unwrap().contains("batch_norm"));
    assert!(run.passes[0].ir.as_ref().unwrap().contains("relu("));
    assert!(!run.passes[1].ir.as_ref().unwrap().contains("relu("));
    assert_eq!(run.passes[2].ir.as_deref(), Some(kiln_ir::text::print(&g).as_str()));
}

#[test]
fn print_after_named_passes_only_and_through_a_callback() {
    let (mut g, p) = block();
    let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &Registry::builtin()).unwrap().print_after(["fold-bn"]);
    let run = pm.run(&mut g, &mut Context::new(p.clone())).unwrap();
    let printed: Vec<bool> = run.passes.iter().map(|r| r.ir.is_some()).collect();
    assert_eq!(printed, [true, false, false]);

    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let (mut g, _) = block();
    let mut pm = PassManager::parse("fold-bn,fuse-residual,dce", &Registry::builtin())
        .unwrap()
        .print_after_all()
        .on_print(move |pass, g| sink.borrow_mut().push((pass.to_string(), g.node_count())));
    let run = pm.run(&mut g, &mut Context::new(p)).unwrap();
    assert!(run.passes.iter().all(|r| r.ir.is_none()), "the callback takes the IR instead");
    let seen = seen.borrow();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fold-bn", "fuse-residual", "dce"]);
    assert!(seen[1].1 < seen[0].1, "fusion removed the relu: {seen:?}");
}

#[test]
fn print_after_a_pass_not_in_the_pipeline_is_refused() {
    let (mut g, p) = block();
    let mut pm = PassManager::parse("dce", &Registry::builtin()).unwrap().print_after(["fold-bn"]);
    let e = pm.run(&mut g, &mut Context::new(p)).unwrap_err();
    assert!(matches!(&e, RunError::NoSuchPass { name, .. } if name == "fold-bn"), "{e:?}");
    assert_eq!(e.to_string(), "--print-after fold-bn: no such pass in the pipeline `dce`");
}

#[test]
fn the_pipeline_prints_back_as_text_that_parses_to_itself() {
    let registry = Registry::builtin();
    let cases = [
        ("fold-bn,fuse-residual,dce", 3),
        ("factorize{mode=fit,width=0.5},cse", 2),
        ("factorize{mode=exact},canonicalize,const-fold", 3),
    ];
    for (text, passes) in cases {
        let pm = PassManager::parse(text, &registry).unwrap();
        assert_eq!(pm.len(), passes);
        let printed = pm.pipeline();
        assert_eq!(PassManager::parse(&printed, &registry).unwrap().pipeline(), printed, "{text}");
    }
    assert_eq!(PassManager::parse("fold-bn,dce", &registry).unwrap().pipeline(), "fold-bn,dce");
    assert!(PassManager::parse("", &registry).unwrap().is_empty());
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
fn the_input_is_checked_before_the_first_pass() {
    let (g, p) = block();
    let mut broken = g.clone();
    broken.set_outputs(Vec::new());
    let mut pm = PassManager::parse("dce", &Registry::builtin()).unwrap();
    let e = pm.run(&mut broken, &mut Context::new(p.clone())).unwrap_err();
    assert!(matches!(e, RunError::InvalidInput(_)), "{e:?}");
    assert_eq!(e.pass(), None, "no pass is blamed for its input");

    let mut short = p.clone();
    short.insert("conv.weight", Tensor::zeros(&[3, 2, 1, 1]));
    let e = pm.run(&mut g.clone(), &mut Context::new(short)).unwrap_err();
    assert!(matches!(e, RunError::InvalidWeights(_)), "{e:?}");
    assert!(e.to_string().contains("@conv.weight"), "{e}");

    // Without verification nothing is checked, and dce runs on the broken graph.
    let mut pm = PassManager::parse("dce", &Registry::builtin()).unwrap().verify_each(false);
    assert!(pm.run(&mut broken, &mut Context::new(p)).is_ok());
}

#[test]
fn a_failing_pass_is_named() {
    // fold-bn must compute with the weights; there are none.
    let (mut g, _) = block();
    let mut pm = PassManager::parse("dce,fold-bn", &Registry::builtin()).unwrap();
    let e = pm.run(&mut g, &mut Context::default()).unwrap_err();
    let RunError::Pass { pass, index, source } = &e else { panic!("{e:?}") };
    assert_eq!((pass.as_str(), *index), ("fold-bn", 1));
    assert!(matches!(source, PassError::MissingParam { .. }), "{source:?}");
    assert!(e.to_string().contains("pass `fold-bn`"), "{e}");
    assert!(e.to_string().contains("is not in the weights"), "{e}");
}
