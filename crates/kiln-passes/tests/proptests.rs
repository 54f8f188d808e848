//! Every rewrite proven by the interpreter: random graphs containing each
//! pattern (random shapes, strides, paddings, dilations, groups, biases, BN
//! statistics), run before and after the pipeline on random weights and
//! inputs, agree to 1e-5 relative (to the largest output magnitude). The
//! tests also check the pattern was rewritten where it must be, and left
//! where it must be. Last, a deliberately broken pass is stopped by the
//! verifier with an error naming it.
//!
//! (Factorization has its own proptests in tests/factorize.rs.)

use kiln_ir::ops::{
    Add, BatchNorm, Conv2d, Dense, Dropout, Epilogue, Flatten, GlobalAvgPool, Relu, Reshape,
};
use kiln_ir::{Graph, Op, ParamStore, Tensor, TensorType, Value};
use kiln_models::{init_params_with, randomize_bn_stats, InitScheme};
use kiln_passes::{Context, Pass, PassError, PassManager, Registry, Report, RunError, RunReport};
use proptest::prelude::*;
use std::collections::BTreeMap;

const TOLERANCE: f32 = 1e-5;

/// A deterministic input for every graph input (xorshift, values in [-1, 1)).
fn inputs(g: &Graph, seed: u64) -> Vec<(String, Tensor)> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    g.inputs()
        .into_iter()
        .map(|(_, name, ty)| {
            let data = (0..ty.elements())
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect();
            (
                name.to_string(),
                Tensor {
                    shape: ty.shape.clone(),
                    data,
                },
            )
        })
        .collect()
}

/// PyTorch-default weights and randomized BatchNorm statistics.
fn weights(g: &Graph, seed: u64) -> ParamStore {
    let mut p = init_params_with(g, seed, &InitScheme::TORCH_DEFAULT);
    randomize_bn_stats(g, &mut p, seed);
    p
}

fn ops(g: &Graph) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for id in g.node_ids() {
        *m.entry(g.op(id).kind()).or_insert(0) += 1;
    }
    m
}

fn count(g: &Graph, kind: &str) -> usize {
    ops(g).get(kind).copied().unwrap_or(0)
}

/// Runs `pipeline` on a copy of the graph and weights; asserts the outputs
/// agree with the original's to [`TOLERANCE`]; returns the new graph and report.
fn optimize_and_compare(
    g: &Graph,
    seed: u64,
    pipeline: &str,
) -> Result<(Graph, RunReport), TestCaseError> {
    optimize_and_compare_with(g, weights(g, seed), seed, pipeline)
}

fn optimize_and_compare_with(
    g: &Graph,
    p: ParamStore,
    seed: u64,
    pipeline: &str,
) -> Result<(Graph, RunReport), TestCaseError> {
    let x = inputs(g, seed);
    let before =
        kiln_interp::run(g, &p, &x).map_err(|e| TestCaseError::fail(format!("before: {e}")))?;
    let mut g2 = g.clone();
    let mut cx = Context::new(p);
    let mut pm = PassManager::parse(pipeline, &Registry::builtin()).expect("a valid pipeline");
    let report = pm
        .run(&mut g2, &mut cx)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let after = kiln_interp::run(&g2, &cx.params, &x)
        .map_err(|e| TestCaseError::fail(format!("after: {e}")))?;
    prop_assert_eq!(before.len(), after.len());
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let diff = b.max_abs_diff(a).expect("same shapes");
        let scale = b.max_abs().max(1e-6);
        prop_assert!(
            diff <= TOLERANCE * scale,
            "output {i}: max difference {diff:e} against magnitude {scale:e}\n{}\n{report}",
            kiln_ir::text::print(&g2)
        );
    }
    Ok((g2, report))
}

/// A random conv's attributes and widths.
#[derive(Clone, Debug)]
struct ConvCase {
    groups: usize,
    cin_per_group: usize,
    cout_per_group: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 4],
    bias: bool,
}

impl ConvCase {
    fn cin(&self) -> usize {
        self.groups * self.cin_per_group
    }
    fn cout(&self) -> usize {
        self.groups * self.cout_per_group
    }
    fn op(&self) -> Conv2d {
        Conv2d {
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            dilation: self.dilation,
            groups: self.groups,
            bias: self.bias,
            epilogue: Epilogue::default(),
        }
    }
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..=2,
        1usize..=3,
        1usize..=3,
        [1usize..=3, 1usize..=3],
        [1usize..=2, 1usize..=2],
        [1usize..=2, 1usize..=2],
        any::<bool>(),
    )
        .prop_flat_map(|(groups, ci, co, kernel, stride, dilation, bias)| {
            let extent = [
                dilation[0] * (kernel[0] - 1) + 1,
                dilation[1] * (kernel[1] - 1) + 1,
            ];
            let pads = [0..extent[0], 0..extent[1], 0..extent[0], 0..extent[1]];
            pads.prop_map(move |pad| ConvCase {
                groups,
                cin_per_group: ci,
                cout_per_group: co,
                kernel,
                stride,
                dilation,
                pad,
                bias,
            })
        })
}

fn conv(g: &mut Graph, name: &str, x: Value, c: &ConvCase) -> Value {
    let w = g.add_param(
        format!("{name}.weight"),
        TensorType::f32([c.cout(), c.cin_per_group, c.kernel[0], c.kernel[1]]),
    );
    let mut operands = vec![x, w];
    if c.bias {
        operands.push(g.add_param(format!("{name}.bias"), TensorType::f32([c.cout()])));
    }
    g.add(c.op(), &operands).expect("a valid conv")
}

fn bn(g: &mut Graph, name: &str, x: Value) -> Value {
    let c = g.value_type(x).unwrap().shape[1];
    let mut operands = vec![x];
    for leaf in ["weight", "bias", "running_mean", "running_var"] {
        operands.push(g.add_param(format!("{name}.{leaf}"), TensorType::f32([c])));
    }
    g.add(BatchNorm::inference(1e-5), &operands)
        .expect("a valid batch norm")
}

fn relu(g: &mut Graph, x: Value) -> Value {
    g.add(Relu {}, &[x]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// conv -> BN (-> relu), with the conv read by nothing else, folds; a
    /// conv whose output is also read elsewhere keeps its BN; a dense -> BN
    /// on the pooled features folds.
    #[test]
    fn fold_bn_keeps_the_outputs(
        c in conv_case(), n in 1usize..=2, h in 5usize..=8, w in 5usize..=8,
        with_relu in any::<bool>(), shared in any::<bool>(), dense_bias in any::<bool>(), classes in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let mut g = Graph::new("fold_bn_case");
        let x = g.add_input("x", TensorType::f32([n, c.cin(), h, w]));
        let y = conv(&mut g, "conv", x, &c);
        let mut z = bn(&mut g, "bn", y);
        if with_relu {
            z = relu(&mut g, z);
        }
        let pooled = g.add(GlobalAvgPool {}, &[z]).unwrap();
        let flat = g.add(Flatten { axis: 1 }, &[pooled]).unwrap();
        let fw = g.add_param("fc.weight", TensorType::f32([classes, c.cout()]));
        let mut fc_operands = vec![flat, fw];
        if dense_bias {
            fc_operands.push(g.add_param("fc.bias", TensorType::f32([classes])));
        }
        let logits = g.add(Dense { bias: dense_bias }, &fc_operands).unwrap();
        let out = bn(&mut g, "fc_bn", logits);
        let mut outputs = vec![out];
        if shared {
            outputs.push(y);
        }
        g.set_outputs(outputs);

        let (g2, run) = optimize_and_compare(&g, seed, "fold-bn,dce")?;
        let report = &run.get("fold-bn").unwrap().report;
        let expected = if shared { 1 } else { 2 };
        prop_assert_eq!(report.counter("folded", "batch norm"), expected as u64, "{}", report);
        prop_assert_eq!(count(&g2, "batch_norm"), 2 - expected);
        prop_assert_eq!(report.details.len(), 2, "one detail per BatchNorm, folded or left");
    }

    /// BN -> conv: folds into the conv when the conv does not pad (or the
    /// shift is zero), is left with a reason naming the padding when it pads;
    /// BN -> dense always folds. Cases from helper A's tests/rewrites.rs.
    #[test]
    fn fold_bn_into_the_layer_after_it_is_exact_or_refused(
        c in conv_case(), padded in any::<bool>(), zero_shift in any::<bool>(), n in 1usize..=2, h in 5usize..=8,
        w in 5usize..=8, features in 1usize..=5, classes in 1usize..=4, dense_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let c = if padded { c } else { ConvCase { pad: [0; 4], ..c } };
        let padded = c.pad.iter().any(|&p| p > 0);
        let mut g = Graph::new("bn_before_case");
        let x = g.add_input("x", TensorType::f32([n, c.cin(), h, w]));
        let y = bn(&mut g, "bn", x);
        let y = conv(&mut g, "conv", y, &c);
        let v = g.add_input("v", TensorType::f32([n, features]));
        let z = bn(&mut g, "fc_bn", v);
        let fw = g.add_param("fc.weight", TensorType::f32([classes, features]));
        let mut fc_operands = vec![z, fw];
        if dense_bias {
            fc_operands.push(g.add_param("fc.bias", TensorType::f32([classes])));
        }
        let z = g.add(Dense { bias: dense_bias }, &fc_operands).unwrap();
        g.set_outputs(vec![y, z]);

        let mut p = weights(&g, seed);
        if zero_shift {
            // Zero mean and beta: the BN only scales, and even a padded conv takes it.
            p.insert("bn.running_mean", Tensor::zeros(&[c.cin()]));
            p.insert("bn.bias", Tensor::zeros(&[c.cin()]));
        }
        let (g2, run) = optimize_and_compare_with(&g, p, seed, "fold-bn,dce")?;
        let report = &run.get("fold-bn").unwrap().report;
        let conv_takes_it = !padded || zero_shift;
        prop_assert_eq!(report.counter("folded", "batch norm"), 1 + conv_takes_it as u64, "{:?}", report.details);
        prop_assert_eq!(count(&g2, "batch_norm"), !conv_takes_it as usize);
        if !conv_takes_it {
            let left = report.details.iter().find(|d| d.outcome == kiln_passes::Outcome::Left).unwrap();
            prop_assert!(left.message.contains("pads"), "{}", left.message);
        }
    }

    /// Pre-activation, BN -> ReLU -> conv, is left, with a reason naming the ReLU.
    #[test]
    fn fold_bn_leaves_pre_activation_blocks(c in conv_case(), h in 5usize..=7, seed in any::<u64>()) {
        let mut g = Graph::new("preact_case");
        let x = g.add_input("x", TensorType::f32([1, c.cin(), h, h]));
        let y = bn(&mut g, "bn", x);
        let y = relu(&mut g, y);
        let y = conv(&mut g, "conv", y, &c);
        g.set_outputs(vec![y]);
        let (g2, run) = optimize_and_compare(&g, seed, "fold-bn,dce")?;
        let report = &run.get("fold-bn").unwrap().report;
        prop_assert_eq!(report.counter("folded", "batch norm"), 0);
        prop_assert_eq!(count(&g2, "batch_norm"), 1);
        prop_assert!(report.details[0].message.contains("pre-activation"), "{}", report.details[0].message);
    }

    /// conv (+ BN) + add (+ relu), the shortcut the input itself or a strided
    /// 1x1 conv (+ BN), in either operand order, then conv + relu: all fuse
    /// into convs with epilogues, unless the conv's output is read elsewhere.
    #[test]
    fn fuse_residual_keeps_the_outputs(
        groups in 1usize..=2, width in 1usize..=3, k in prop::sample::select(vec![1usize, 3]), stride in 1usize..=2,
        n in 1usize..=2, h in 3usize..=7, w in 3usize..=7,
        main_bn in any::<bool>(), projection in any::<bool>(), shortcut_bn in any::<bool>(),
        swapped in any::<bool>(), with_relu in any::<bool>(), shared in any::<bool>(), bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let channels = groups * width;
        // An identity shortcut needs the main conv to keep the shape.
        let projection = projection || stride > 1;
        let mut g = Graph::new("residual_case");
        let x = g.add_input("x", TensorType::f32([n, channels, h, w]));
        let p = (k - 1) / 2;
        let main = ConvCase {
            groups, cin_per_group: width, cout_per_group: width, kernel: [k, k], stride: [stride; 2],
            dilation: [1, 1], pad: [p; 4], bias,
        };
        let mut y = conv(&mut g, "main", x, &main);
        if main_bn {
            y = bn(&mut g, "main_bn", y);
        }
        let mut shortcut = x;
        if projection {
            let proj = ConvCase {
                groups: 1, cin_per_group: channels, cout_per_group: channels, kernel: [1, 1], stride: [stride; 2],
                dilation: [1, 1], pad: [0; 4], bias: false,
            };
            shortcut = conv(&mut g, "proj", x, &proj);
            if shortcut_bn {
                shortcut = bn(&mut g, "proj_bn", shortcut);
            }
        }
        let sum = if swapped { g.add(Add {}, &[shortcut, y]) } else { g.add(Add {}, &[y, shortcut]) }.unwrap();
        let mut z = sum;
        if with_relu {
            z = relu(&mut g, z);
        }
        let tail = ConvCase {
            groups: 1, cin_per_group: channels, cout_per_group: 2, kernel: [3, 3], stride: [1, 1],
            dilation: [1, 1], pad: [1; 4], bias,
        };
        let t = conv(&mut g, "tail", z, &tail);
        let t = relu(&mut g, t);
        let mut outputs = vec![t];
        if shared {
            outputs.push(y);
        }
        g.set_outputs(outputs);

        let (g2, _) = optimize_and_compare(&g, seed, "fold-bn,fuse-residual,dce")?;
        prop_assert_eq!(count(&g2, "batch_norm"), 0);
        // The shared main conv cannot take the add; a projection conv can instead.
        let add_left = shared && !projection;
        prop_assert_eq!(count(&g2, "add"), add_left as usize, "{}", kiln_ir::text::print(&g2));
        let fused_residual = g2.node_ids().filter(|&id| matches!(g2.op(id), Op::Conv2d(c) if c.epilogue.residual)).count();
        prop_assert_eq!(fused_residual, !add_left as usize);
        // The tail's relu always fuses; the block's relu fuses with its add.
        let relus_left = if add_left { with_relu as usize } else { 0 };
        prop_assert_eq!(count(&g2, "relu"), relus_left);
    }

    /// Dropout, identity reshapes and flattens, repeated subexpressions, a
    /// dead branch and parameter-only subgraphs (a computed weight and bias)
    /// all go, and the outputs stay.
    #[test]
    fn cleanups_keep_the_outputs(
        n in 1usize..=2, c in 1usize..=3, o in 1usize..=3, h in 2usize..=5, w in 2usize..=5,
        dropout in any::<bool>(), identity_reshape in any::<bool>(), repeated in any::<bool>(),
        dead in any::<bool>(), computed_weight in any::<bool>(), computed_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut g = Graph::new("cleanup_case");
        let x = g.add_input("x", TensorType::f32([n, c, h, w]));
        let mut v = x;
        if dropout {
            v = g.add(Dropout { p: 0.3 }, &[v]).unwrap();
        }
        if identity_reshape {
            v = g.add(Reshape { shape: vec![n, c, h, w] }, &[v]).unwrap();
        }
        let mut weight = g.add_param("w", TensorType::f32([o, c, 3, 3]));
        if computed_weight {
            weight = relu(&mut g, weight);
        }
        let mut operands = vec![v, weight];
        if computed_bias {
            let b1 = g.add_param("b1", TensorType::f32([o]));
            let b2 = g.add_param("b2", TensorType::f32([o]));
            operands.push(g.add(Add {}, &[b1, b2]).unwrap());
        }
        let y = g.add(Conv2d { bias: computed_bias, ..Conv2d::new(3, 1, 1) }, &operands).unwrap();
        let r1 = relu(&mut g, y);
        let out = if repeated {
            let r2 = relu(&mut g, y);
            g.add(Add {}, &[r1, r2]).unwrap()
        } else {
            r1
        };
        let flat = g.add(Flatten { axis: 1 }, &[out]).unwrap();
        let flat = g.add(Reshape { shape: vec![n, o * h * w] }, &[flat]).unwrap();
        if dead {
            let unused = g.add_param("unused.weight", TensorType::f32([o, c, 1, 1]));
            g.add(Conv2d::new(1, 1, 0), &[x, unused]).unwrap();
        }
        g.set_outputs(vec![flat]);

        let (g2, _) = optimize_and_compare(&g, seed, "canonicalize,cse,const-fold,dce")?;
        let left = ops(&g2);
        prop_assert_eq!(left.get("dropout"), None);
        prop_assert_eq!(left.get("reshape"), None, "{:?}", left);
        prop_assert_eq!(left.get("conv2d"), Some(&1));
        prop_assert_eq!(left.get("relu"), Some(&1), "const-fold takes the weight's relu, cse the repeat");
        prop_assert_eq!(left.get("add").copied().unwrap_or(0), repeated as usize, "the bias add is folded");
        // One input, one flatten, the conv, relu, weight (+ bias) (+ add).
        let params = 1 + computed_bias as usize;
        prop_assert_eq!(g2.params().len(), params);
    }
}

/// A pass that gives the first relu a wrong declared type, as a buggy rewrite might.
struct MistypeRelu;

impl Pass for MistypeRelu {
    fn name(&self) -> &str {
        "mistype-relu"
    }
    fn run(&self, g: &mut Graph, _: &mut Context) -> Result<Report, PassError> {
        let id = g
            .node_ids()
            .find(|&id| matches!(g.op(id), Op::Relu(_)))
            .expect("a relu");
        g.node_mut(id).unwrap().outputs[0].shape[1] += 1;
        let mut r = Report::new();
        r.changed(g.describe(id), "made its type wrong");
        Ok(r)
    }
}

/// A pass that forgets to store the weight it creates.
struct ForgetWeight;

impl Pass for ForgetWeight {
    fn name(&self) -> &str {
        "forget-weight"
    }
    fn run(&self, g: &mut Graph, cx: &mut Context) -> Result<Report, PassError> {
        let (_, name, _) = g.params()[0];
        let name = name.to_string();
        cx.params.remove(&name);
        Ok(Report::new())
    }
}

fn small_net() -> (Graph, ParamStore) {
    let mut g = Graph::new("small");
    let x = g.add_input("x", TensorType::f32([1, 2, 4, 4]));
    let c = ConvCase {
        groups: 1,
        cin_per_group: 2,
        cout_per_group: 3,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1; 4],
        bias: true,
    };
    let y = conv(&mut g, "conv", x, &c);
    let y = relu(&mut g, y);
    g.set_outputs(vec![y]);
    let p = weights(&g, 0);
    (g, p)
}

#[test]
fn the_verifier_stops_a_pass_that_breaks_the_graph_and_names_it() {
    let mut registry = Registry::builtin();
    registry
        .register_simple("mistype-relu", "a broken pass", || Box::new(MistypeRelu))
        .unwrap();
    let (mut g, p) = small_net();
    let mut pm = PassManager::parse("canonicalize,mistype-relu,dce", &registry).unwrap();
    let e = pm.run(&mut g, &mut Context::new(p.clone())).unwrap_err();
    assert!(
        matches!(&e, RunError::Broken { pass, index: 1, .. } if pass == "mistype-relu"),
        "{e:?}"
    );
    assert_eq!(e.pass(), Some("mistype-relu"));
    let message = e.to_string();
    assert!(
        message.starts_with("pass `mistype-relu` (#2 in the pipeline) broke the graph"),
        "{message}"
    );
    assert!(message.contains("relu #"), "the node is named: {message}");

    // It is the verifier that catches it: with verification off the run "succeeds".
    let (mut g, p) = small_net();
    let mut pm = PassManager::parse("mistype-relu", &registry)
        .unwrap()
        .verify_each(false);
    assert!(pm.run(&mut g, &mut Context::new(p)).is_ok());
    assert!(kiln_ir::verify(&g).is_err());
}

#[test]
fn the_weight_check_stops_a_pass_that_loses_a_weight() {
    let (mut g, p) = small_net();
    let mut pm = PassManager::new();
    pm.add(Box::new(ForgetWeight));
    let e = pm.run(&mut g, &mut Context::new(p)).unwrap_err();
    assert!(
        matches!(&e, RunError::BrokenWeights { pass, .. } if pass == "forget-weight"),
        "{e:?}"
    );
    assert!(e.to_string().contains("is missing from the weights"), "{e}");

    // Without weights there is nothing to check against.
    let (mut g, _) = small_net();
    assert!(pm.run(&mut g, &mut Context::default()).is_ok());
}
