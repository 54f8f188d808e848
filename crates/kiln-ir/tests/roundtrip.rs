//! The text format and JSON carry graphs exactly: a golden printer test, the
//! committed reference blocks, and random graphs (valid ones and unverified
//! ones with random attributes) through print/parse and to_json/from_json.

mod common;

use common::*;
use kiln_ir::ops::*;
use kiln_ir::*;
use proptest::prelude::*;
use std::collections::HashMap;

/// Asserts `a` and `b` are the same graph up to node numbering: same name,
/// and node for node in topological order the same op, output types and
/// operands, and the same outputs.
fn assert_same(a: &Graph, b: &Graph) {
    assert_eq!(a.name, b.name);
    let (oa, ob) = (a.topo_order().unwrap(), b.topo_order().unwrap());
    assert_eq!(oa.len(), ob.len(), "node counts");
    let map: HashMap<NodeId, NodeId> = oa.iter().copied().zip(ob.iter().copied()).collect();
    let value = |v: &Value| Value {
        node: map[&v.node],
        port: v.port,
    };
    for (&ia, &ib) in oa.iter().zip(&ob) {
        let (na, nb) = (a.node(ia).unwrap(), b.node(ib).unwrap());
        assert_eq!(na.op, nb.op);
        assert_eq!(na.outputs, nb.outputs);
        assert_eq!(
            a.operands(ia).iter().map(value).collect::<Vec<_>>(),
            b.operands(ib)
        );
    }
    assert_eq!(
        a.outputs().iter().map(value).collect::<Vec<_>>(),
        b.outputs()
    );
}

#[test]
fn every_op_has_a_template() {
    let kinds: Vec<&str> = templates().iter().map(|op| op.kind()).collect();
    assert_eq!(
        kinds,
        Op::KINDS,
        "tests/common templates() must list one op of every kind, in order"
    );
}

fn t(shape: &[usize]) -> TensorType {
    TensorType::f32(shape.to_vec())
}

#[test]
fn the_printer_writes_the_canonical_form() {
    let mut g = Graph::new("golden \"one\"");
    let x = g.add_input("image", t(&[1, 3, 8, 8]));
    let w = g.add_param("stem.conv.weight", t(&[4, 3, 3, 3]));
    let b = g.add_param("stem conv/bias", t(&[4]));
    let mut conv = Conv2d::new(3, 2, 1);
    conv.bias = true;
    let c = g.add(conv, &[x, w, b]).unwrap();
    let bn: Vec<Value> = ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .map(|s| g.add_param(format!("stem.bn.{s}"), t(&[4])))
        .collect();
    let n = g
        .add(BatchNorm::inference(1e-5), &[c, bn[0], bn[1], bn[2], bn[3]])
        .unwrap();
    let r = g.add(Relu {}, &[n]).unwrap();
    let p = g
        .add(
            MaxPool {
                kernel: [2, 2],
                stride: [2, 2],
                pad: [0; 4],
                ceil_mode: true,
            },
            &[r],
        )
        .unwrap();
    let cat = g.add(Concat { axis: 1 }, &[p, p]).unwrap();
    let gap = g.add(GlobalAvgPool {}, &[cat]).unwrap();
    let f = g.add(Flatten { axis: 1 }, &[gap]).unwrap();
    let d = g.add(Dropout { p: 0.2 }, &[f]).unwrap();
    let fw = g.add_param("fc.weight", t(&[10, 8]));
    let logits = g.add(Dense { bias: false }, &[d, fw]).unwrap();
    let labels = g.add_input("labels", t(&[1]));
    let loss = g
        .add(
            SoftmaxCrossEntropy {
                label_smoothing: 0.1,
            },
            &[logits, labels],
        )
        .unwrap();
    g.set_outputs(vec![loss, logits]);
    verify(&g).unwrap();
    let expected = r#"graph "golden \"one\""
%0 = input "image" : f32[1,3,8,8]
@stem.conv.weight = param : f32[4,3,3,3]
@"stem conv/bias" = param : f32[4]
%1 = conv2d(%0, @stem.conv.weight, @"stem conv/bias") {kernel=[3,3], stride=[2,2], pad=[1,1,1,1], dilation=[1,1], groups=1, bias=true, epilogue={residual=false, relu=false}} : f32[1,4,4,4]
@stem.bn.weight = param : f32[4]
@stem.bn.bias = param : f32[4]
@stem.bn.running_mean = param : f32[4]
@stem.bn.running_var = param : f32[4]
%2 = batch_norm(%1, @stem.bn.weight, @stem.bn.bias, @stem.bn.running_mean, @stem.bn.running_var) {eps=1e-5, momentum=0.1, training=false} : f32[1,4,4,4]
%3 = relu(%2) : f32[1,4,4,4]
%4 = max_pool(%3) {kernel=[2,2], stride=[2,2], pad=[0,0,0,0], ceil_mode=true} : f32[1,4,2,2]
%5 = concat(%4, %4) {axis=1} : f32[1,8,2,2]
%6 = global_avg_pool(%5) : f32[1,8,1,1]
%7 = flatten(%6) {axis=1} : f32[1,8]
%8 = dropout(%7) {p=0.2} : f32[1,8]
@fc.weight = param : f32[10,8]
%9 = dense(%8, @fc.weight) {bias=false} : f32[1,10]
%10 = input "labels" : f32[1]
%11 = softmax_cross_entropy(%9, %10) {label_smoothing=0.1} : f32[]
output %11, %9
"#;
    assert_eq!(text::print(&g), expected);
    let back = text::parse(expected).unwrap();
    assert_same(&g, &back);
    assert_eq!(text::print(&back), expected);
}

#[test]
fn floats_print_in_their_shortest_f32_form() {
    for (p, shown) in [
        (1e-5f32, "1e-5"),
        (0.1, "0.1"),
        (3.4028235e38, "3.4028235e38"),
        (1.0, "1.0"),
        (1e-45, "1e-45"),
        (-0.0, "-0.0"),
        (0.3, "0.3"),
        (16777216.0, "16777216.0"),
    ] {
        let mut g = Graph::new("f");
        let x = g.add_input("x", t(&[2]));
        let y = g.add_node_unchecked(Dropout { p }.into(), &[x], vec![t(&[2])]);
        g.set_outputs(vec![y.into()]);
        let text = text::print(&g);
        assert!(
            text.contains(&format!("{{p={shown}}}")),
            "{p:?} printed as\n{text}"
        );
        let back = text::parse(&text).unwrap();
        let Op::Dropout(d) = back.op(back.outputs()[0].node) else {
            panic!("not a dropout")
        };
        assert_eq!(d.p.to_bits(), p.to_bits(), "{shown} read back as {:?}", d.p);
    }
}

#[test]
fn the_reference_blocks_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kir"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "the Inception and ResNet blocks are in tests/data"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let g = text::parse(&text).unwrap_or_else(|e| panic!("{}:{e}", path.display()));
        verify(&g).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            text::print(&g),
            without_comments(&text),
            "{} is not canonical",
            path.display()
        );
        let back = json::from_json(&json::to_json(&g)).unwrap();
        assert_same(&g, &back);
    }
}

#[test]
fn quoted_names_multiple_outputs_and_comments_round_trip() {
    let text = "// a comment before the header\n\
        graph \"we\\\"ird\\n\\u{1}\"\n\
        %0 = input \"in put\" : f32[2]\n\
        @\"w eight\\\\\" = param : f32[2]\n\
        // a comment between statements\n\
        %1, %2 = relu(%0, @\"w eight\\\\\") : f32[2], f32[]\n\
        %3 = add(%2, %1) {} : f32[2]\n\
        output %3, %0, @\"w eight\\\\\"\n\
        // and after\n";
    let g = text::parse(text).unwrap();
    assert_eq!(g.name, "we\"ird\n\u{1}");
    assert_eq!(g.params()[0].1, "w eight\\");
    let canonical = text::print(&g);
    assert_eq!(canonical, without_comments(text).replace(" {}", ""));
    assert_eq!(text::print(&text::parse(&canonical).unwrap()), canonical);
}

#[test]
fn printing_follows_topological_order_not_node_index() {
    // Node 1 (relu) reads node 2 (the input), added after it; node 0 is then
    // removed, leaving a hole in the indices.
    let mut g = Graph::new("order");
    let dead = g.add_input("dead", t(&[1]));
    let relu = g.add_node_unchecked(Relu {}.into(), &[], vec![t(&[3])]);
    let x = g.add_input("x", t(&[3]));
    g.set_operands(relu, &[x]);
    g.remove_node(dead.node);
    g.set_outputs(vec![relu.into()]);
    verify(&g).unwrap();
    let text = text::print(&g);
    assert_eq!(
        text,
        "graph \"order\"\n%0 = input \"x\" : f32[3]\n%1 = relu(%0) : f32[3]\noutput %1\n"
    );
    assert_same(&g, &text::parse(&text).unwrap());
    assert_same(&g, &json::from_json(&json::to_json(&g)).unwrap());
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            "[a-z_]{1,6}",
            "[a-z]{1,3}\\.[0-9]",
            "[ -~]{1,8}",
            "\\PC{1,4}"
        ],
        1..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn valid_graphs_round_trip_through_text(choices in prop::collection::vec(any::<(u8, u8, u8)>(), 0..24), names in names()) {
        let g = random_valid_graph(&choices, &names);
        verify(&g).unwrap();
        let text = text::print(&g);
        let back = text::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        verify(&back).unwrap();
        assert_same(&g, &back);
        prop_assert_eq!(text::print(&back), text);
    }

    #[test]
    fn valid_graphs_round_trip_through_json(choices in prop::collection::vec(any::<(u8, u8, u8)>(), 0..24), names in names()) {
        let g = random_valid_graph(&choices, &names);
        let json = json::to_json(&g);
        let back = json::from_json(&json).map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
        verify(&back).unwrap();
        assert_same(&g, &back);
        prop_assert_eq!(json::to_json(&back), json);
    }

    /// Random ops with random attributes (huge integers, tiny and huge floats,
    /// awkward strings), random operands and several outputs per node: the
    /// formats carry what the verifier would refuse, exactly.
    #[test]
    fn unverified_graphs_round_trip_through_text_and_json(seed in any::<u64>(), nodes in 0usize..40) {
        let g = random_unverified_graph(seed, nodes);
        let text = text::print(&g);
        let back = text::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        assert_same(&g, &back);
        prop_assert_eq!(&text::print(&back), &text);
        let json = json::to_json(&g);
        let back = json::from_json(&json).map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
        assert_same(&g, &back);
        prop_assert_eq!(text::print(&back), text);
    }
}
