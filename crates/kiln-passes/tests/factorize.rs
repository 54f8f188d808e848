//! factorize: exact keeps outputs, fit reports its true kernel error,
//! structural rewrites every 5x5 of GoogLeNet (paper).

use kiln_ir::ops::Conv2d;
use kiln_ir::{Graph, Op, ParamStore, Tensor, TensorType};
use kiln_passes::{Context, PassManager, Registry, RunReport};
use proptest::prelude::*;

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = kiln_models::init::Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// One conv of `k`x`k` with the given channels, stride, padding, bias.
fn conv_graph(
    cin: usize,
    cout: usize,
    k: usize,
    stride: [usize; 2],
    pad: [usize; 4],
    bias: bool,
    hw: [usize; 2],
    seed: u64,
) -> (Graph, ParamStore, Tensor) {
    let mut g = Graph::new("f");
    let x = g.add_input("x", TensorType::f32([1, cin, hw[0], hw[1]]));
    let w = g.add_param("layer.weight", TensorType::f32([cout, cin, k, k]));
    let mut c = Conv2d::new(k, 1, 0);
    c.stride = stride;
    c.pad = pad;
    c.bias = bias;
    let mut ops = vec![x, w];
    let mut p = ParamStore::new();
    p.insert(
        "layer.weight",
        Tensor::new(vec![cout, cin, k, k], rand(cout * cin * k * k, seed)).unwrap(),
    );
    if bias {
        ops.push(g.add_param("layer.bias", TensorType::f32([cout])));
        p.insert(
            "layer.bias",
            Tensor::new(vec![cout], rand(cout, seed + 1)).unwrap(),
        );
    }
    let y = g.add(c, &ops).unwrap();
    g.set_outputs(vec![y]);
    let input = Tensor::new(
        vec![1, cin, hw[0], hw[1]],
        rand(cin * hw[0] * hw[1], seed + 2),
    )
    .unwrap();
    (g, p, input)
}

fn factorize(g: &mut Graph, p: ParamStore, pipeline: &str) -> (ParamStore, RunReport) {
    let mut cx = Context::new(p);
    let report = PassManager::parse(pipeline, &Registry::builtin())
        .unwrap()
        .run(g, &mut cx)
        .unwrap();
    (cx.params, report)
}

fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.max_abs_diff(b).unwrap() / a.max_abs().max(1e-30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn exact_keeps_the_output(cin in 1usize..5, cout in 1usize..5, row_column in any::<bool>(), n in 3usize..6,
                              sh in 1usize..3, sw in 1usize..3, pads in prop::array::uniform4(0usize..3),
                              bias in any::<bool>(), h in 5usize..9, w in 5usize..9, seed in 0u64..1000) {
        let (k, into) = if row_column { (n, "1xn") } else { (5, "3x3") };
        let (mut g, p, x) = conv_graph(cin, cout, k, [sh, sw], pads, bias, [h, w], seed);
        let before = kiln_interp::run(&g, &p, &[("x", x.clone())]).unwrap();
        let (p2, run) = factorize(&mut g, p, &format!("factorize{{mode=exact,into={into}}},dce"));
        prop_assert_eq!(run.passes[0].report.counter("factorized", "conv"), 1);
        let after = kiln_interp::run(&g, &p2, &[("x", x)]).unwrap();
        let rel = rel_diff(&before[0], &after[0]);
        prop_assert!(rel < 1e-4, "relative error {}", rel);
        let convs = g.node_ids().filter(|&id| matches!(g.op(id), Op::Conv2d(_))).count();
        prop_assert_eq!(convs, 2);
    }
}

#[test]
fn fit_reports_the_kernel_error_it_reaches() {
    for (into, k) in [("3x3", 5), ("1xn", 7)] {
        let (mut g, p, _) = conv_graph(6, 8, k, [1, 1], [2; 4], true, [9, 9], 3);
        let original = p.get("layer.weight").unwrap().clone();
        let (p2, run) = factorize(
            &mut g,
            p,
            &format!("factorize{{mode=fit,into={into},width=1.0,iterations=15}}"),
        );
        let detail = &run.passes[0].report.details[0];
        let reported = detail.get("fit_error").expect("fit reports its error");
        // Measure it: the composite kernel of the pair is the response of the two
        // convs to a unit impulse, which the interpreter computes.
        let a = p2
            .iter()
            .find(|(n, _)| n.contains("factorized_a"))
            .unwrap()
            .1
            .clone();
        let b = p2
            .iter()
            .find(|(n, _)| n.contains("factorized_b"))
            .unwrap()
            .1
            .clone();
        let measured = composite_error(&a, &b, &original);
        assert!(
            (reported - measured).abs() < 1e-4 * measured.max(1e-3),
            "{into}: reported {reported}, measured {measured}"
        );
        assert!(reported > 0.0 && reported < 1.0, "{into}: {reported}");
    }
}

/// ||K' - K|| / ||K|| with K' the composite of the pair, computed by running
/// the two convs (no padding) on one-hot images.
fn composite_error(a: &Tensor, b: &Tensor, k: &Tensor) -> f64 {
    let (cout, cin, n) = (k.shape[0], k.shape[1], k.shape[2]);
    let mut num = 0.0;
    let mut den = 0.0;
    for i in 0..cin {
        for r in 0..n {
            for c in 0..n {
                // An image of size n x n with a one at (r, c) of channel i; a valid
                // correlation of the pair gives out[o] = K'[o, i, r, c].
                let mut g = Graph::new("impulse");
                let x = g.add_input("x", TensorType::f32([1, cin, n, n]));
                let wa = g.add_param("a", TensorType::f32(a.shape.clone()));
                let wb = g.add_param("b", TensorType::f32(b.shape.clone()));
                let mut ca = Conv2d::new(1, 1, 0);
                ca.kernel = [a.shape[2], a.shape[3]];
                let mut cb = Conv2d::new(1, 1, 0);
                cb.kernel = [b.shape[2], b.shape[3]];
                let m = g.add(ca, &[x, wa]).unwrap();
                let y = g.add(cb, &[m, wb]).unwrap();
                g.set_outputs(vec![y]);
                let mut p = ParamStore::new();
                p.insert("a", a.clone());
                p.insert("b", b.clone());
                let mut img = Tensor::zeros(&[1, cin, n, n]);
                img.data[(i * n + r) * n + c] = 1.0;
                let out = kiln_interp::run(&g, &p, &[("x", img)]).unwrap();
                for o in 0..cout {
                    let kv = k.data[((o * cin + i) * n + r) * n + c] as f64;
                    let d = out[0].data[o] as f64 - kv;
                    num += d * d;
                    den += kv * kv;
                }
            }
        }
    }
    (num / den).sqrt()
}

#[test]
fn structural_rewrites_all_nine_5x5_convs_of_googlenet_paper() {
    let cfg = kiln_models::Config::default_for("googlenet-paper")
        .unwrap()
        .with_input(64);
    let mut g = kiln_models::build("googlenet-paper", &cfg).unwrap();
    let p = kiln_models::init_params(&g, 1);
    let fives = |g: &Graph| {
        g.node_ids()
            .filter(|&id| matches!(g.op(id), Op::Conv2d(c) if c.kernel == [5, 5]))
            .count()
    };
    assert_eq!(fives(&g), 9);
    let (p2, run) = factorize(&mut g, p, "factorize{mode=structural,bn=true},dce");
    assert_eq!(run.passes[0].report.counter("factorized", "conv"), 9);
    assert_eq!(fives(&g), 0);
    let figures = &run.passes[0].report.figures;
    assert!(figures
        .iter()
        .any(|f| f.name == "params" && f.after != f.before));
    let name = g.inputs()[0].1.to_string();
    let x = Tensor::new(
        g.inputs()[0].2.shape.clone(),
        rand(g.inputs()[0].2.elements(), 4),
    )
    .unwrap();
    let out = kiln_interp::run(&g, &p2, &[(name.as_str(), x)]).unwrap();
    assert!(out[0].data.iter().all(|v| v.is_finite()));
}

#[test]
fn exact_on_inception_v3_keeps_the_output() {
    let cfg = kiln_models::Config::default_for("inception-v3")
        .unwrap()
        .with_input(75);
    let mut g = kiln_models::build("inception-v3", &cfg).unwrap();
    let p = kiln_models::init_params(&g, 2);
    let name = g.inputs()[0].1.to_string();
    let x = Tensor::new(
        g.inputs()[0].2.shape.clone(),
        rand(g.inputs()[0].2.elements(), 9),
    )
    .unwrap();
    let before = kiln_interp::run(&g, &p, &[(name.as_str(), x.clone())]).unwrap();
    let (p2, run) = factorize(&mut g, p, "factorize{mode=exact},dce");
    assert_eq!(run.passes[0].report.counter("factorized", "conv"), 3);
    let after = kiln_interp::run(&g, &p2, &[(name.as_str(), x)]).unwrap();
    let rel = rel_diff(&before[0], &after[0]);
    assert!(rel < 1e-4, "relative error {rel:e}");
}

#[test]
fn refusals_are_reported() {
    let mut g = Graph::new("f");
    let x = g.add_input("x", TensorType::f32([1, 4, 8, 8]));
    let w = g.add_param("g.weight", TensorType::f32([4, 2, 5, 5]));
    let mut c = Conv2d::new(5, 1, 2);
    c.groups = 2;
    let y = g.add(c, &[x, w]).unwrap();
    g.set_outputs(vec![y]);
    let mut p = ParamStore::new();
    p.insert("g.weight", Tensor::zeros(&[4, 2, 5, 5]));
    let (_, run) = factorize(&mut g, p, "factorize{mode=exact}");
    let d = &run.passes[0].report.details[0];
    assert!(d.message.contains("grouped"), "{}", d.message);
    let e = PassManager::parse("factorize{mode=wrong}", &Registry::builtin())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("structural") && e.contains("wrong"), "{e}");
}
