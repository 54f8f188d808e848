//! DOT and SVG dumps: clusters named by parameter prefixes, labels with
//! attributes, shapes, parameter counts and MACs, parameters folded into their
//! users; SVG well-formed with a box for every op. Nothing here needs Graphviz.

mod common;

use common::*;
use kiln_ir::ops::*;
use kiln_ir::*;
use proptest::prelude::*;

fn parse(file: &str) -> Graph {
    let g = text::parse(&data(file)).unwrap();
    verify(&g).unwrap();
    g
}

/// The text of the DOT cluster `name`, up to its closing brace.
fn cluster<'a>(dot: &'a str, name: &str) -> &'a str {
    let open = format!("subgraph \"cluster_{name}\" {{\n");
    let start = dot
        .find(&open)
        .unwrap_or_else(|| panic!("no cluster {name} in\n{dot}"));
    let indent = dot[..start].rsplit('\n').next().unwrap();
    let close = format!("\n{indent}}}\n");
    let end = start + dot[start..].find(&close).expect("a closed cluster");
    &dot[start..end]
}

/// The nodes of op `kind`.
fn node_named(g: &Graph, kind: &str) -> Vec<NodeId> {
    g.node_ids().filter(|&id| g.op(id).kind() == kind).collect()
}

#[test]
fn candidate_blocks_come_from_parameter_names() {
    assert_eq!(
        dot::blocks_of_param("layer3.1.conv2.weight"),
        ["layer3", "layer3.1"]
    );
    assert_eq!(
        dot::blocks_of_param("inception_3a_1x1.weight"),
        ["inception_3a"]
    );
    assert_eq!(
        dot::blocks_of_param("inception_3a_double_3x3_reduce_bn.running_var"),
        ["inception_3a"]
    );
    assert_eq!(
        dot::blocks_of_param("Mixed_6b.branch7x7_1.conv.weight"),
        ["Mixed_6b", "Mixed_6b.branch7x7_1"]
    );
    assert!(dot::blocks_of_param("conv1.weight").is_empty());
    assert!(dot::blocks_of_param("conv1_7x7.weight").is_empty());
    assert!(dot::blocks_of_param("weight").is_empty());
}

#[test]
fn the_inception_module_is_one_cluster_holding_all_its_branches() {
    let g = parse("inception_3a.kir");
    let dot = dot::to_dot(&g);
    assert!(dot.starts_with("digraph \"inception_3a\" {\n") && dot.ends_with("}\n"));
    let inside = cluster(&dot, "inception_3a");
    // Every op except the input is inside, the pool branch's pool and the concat too.
    for id in g.node_ids().filter(|&id| g.op(id).param_name().is_none()) {
        let line = format!("n{} [label=", id.index());
        assert!(dot.contains(&line), "node {} is not drawn", id.index());
        assert_eq!(
            inside.contains(&line),
            g.op(id).input_name().is_none(),
            "{} placement",
            g.describe(id)
        );
    }
    // Parameters are folded into their users' labels, not drawn.
    for (id, name, _) in g.params() {
        assert!(
            !dot.contains(&format!("n{} [", id.index())),
            "parameter {name} drawn as a node"
        );
        assert!(
            dot.contains(&format!("\\n@{name}\\n")),
            "parameter {name} not in a label"
        );
    }
    // Key attributes, output shape, parameters and MACs of the 1x1 conv;
    // edges carry their value's type.
    assert!(dot.contains("conv2d 1x1\\n@inception_3a_1x1.weight\\n@inception_3a_1x1.bias\\nf32[1,64,28,28]\\n12,352 params, 9,633,792 MACs"), "{dot}");
    assert!(dot.contains("avg_pool 3x3 pad 1 ceil\\nf32[1,192,28,28]"));
    assert!(dot.contains("concat axis=1\\nf32[1,256,28,28]"));
    assert!(dot.contains("[label=\"f32[1,64,28,28]\"]"));
    assert!(dot.contains("out0 [label=\"output 0\", shape=ellipse];"));
}

#[test]
fn resnet_blocks_nest_and_the_residual_add_is_in_its_block() {
    let g = parse("resnet_bottleneck.kir");
    let dot = dot::to_dot(&g);
    let stage = cluster(&dot, "layer2");
    let block = cluster(&dot, "layer2.0");
    let shortcut = cluster(&dot, "layer2.0.downsample");
    assert!(stage.contains(block) && block.contains(shortcut));
    let add = node_named(&g, "add")[0];
    let line = format!("n{} [label=\"add", add.index());
    assert!(block.contains(&line) && !shortcut.contains(&line), "{dot}");
    let blocks = dot::node_blocks(&g);
    assert_eq!(blocks[&add], ["layer2", "layer2.0"]);
    for conv in node_named(&g, "conv2d") {
        assert!(blocks[&conv].starts_with(&["layer2".to_string(), "layer2.0".to_string()]));
    }
}

/// A Caffe-style name prefix is a block only when two or more layers share
/// it: a stem conv and its BN (`conv1_7x7_s2`, `conv1_7x7_s2_bn`) are not.
#[test]
fn caffe_prefixes_need_two_layers_to_make_a_block() {
    let mut g = Graph::new("stem");
    let x = g.add_input("x", TensorType::f32([1, 3, 8, 8]));
    let w = g.add_param("conv1_7x7_s2.weight", TensorType::f32([4, 3, 1, 1]));
    let c = g.add(Conv2d::new(1, 1, 0), &[x, w]).unwrap();
    let bn: Vec<Value> = ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .map(|s| g.add_param(format!("conv1_7x7_s2_bn.{s}"), TensorType::f32([4])))
        .collect();
    let b = g
        .add(BatchNorm::inference(1e-5), &[c, bn[0], bn[1], bn[2], bn[3]])
        .unwrap();
    let w2 = g.add_param("block_1a_1x1.weight", TensorType::f32([4, 4, 1, 1]));
    let c2 = g.add(Conv2d::new(1, 1, 0), &[b, w2]).unwrap();
    let w3 = g.add_param("block_1a_3x3.weight", TensorType::f32([4, 4, 1, 1]));
    let c3 = g.add(Conv2d::new(1, 1, 0), &[b, w3]).unwrap();
    let sum = g.add(Add {}, &[c2, c3]).unwrap();
    g.set_outputs(vec![sum]);
    let blocks = dot::node_blocks(&g);
    assert!(blocks[&c.node].is_empty() && blocks[&b.node].is_empty());
    assert_eq!(blocks[&c2.node], ["block_1a"]);
    assert_eq!(blocks[&sum.node], ["block_1a"]);
    let dot = dot::to_dot(&g);
    assert!(
        dot.contains("cluster_block_1a") && !dot.contains("cluster_conv1"),
        "{dot}"
    );
}

#[test]
fn an_unverified_graph_draws_without_costs() {
    let mut g = Graph::new("bad");
    let x = g.add_input("x", TensorType::f32([1, 3, 8, 8]));
    let w = g.add_param("w", TensorType::f32([2]));
    let c = g.add_node_unchecked(
        Conv2d::new(3, 1, 1).into(),
        &[x, w],
        vec![TensorType::f32([1])],
    );
    g.set_outputs(vec![c.into()]);
    assert!(verify(&g).is_err());
    let dot = dot::to_dot(&g);
    assert!(
        dot.contains("conv2d 3x3 pad 1\\n@w\\nf32[1]\"") && !dot.contains("MACs"),
        "{dot}"
    );
    xml_elements(&svg::to_svg(&g).unwrap()).unwrap();
}

/// The SVG's boxes: `<g id="n<index>">` per drawn op, `<g id="out<i>">` per output.
fn assert_svg_draws(g: &Graph, svg: &str) {
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{}",
        &svg[..100.min(svg.len())]
    );
    assert!(svg.ends_with("</svg>\n"));
    let elements = xml_elements(svg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(elements[0], "svg");
    for id in g.node_ids() {
        let drawn = svg.contains(&format!("<g id=\"n{}\">", id.index()));
        assert_eq!(drawn, g.op(id).param_name().is_none(), "{}", g.describe(id));
    }
    for i in 0..g.outputs().len() {
        assert!(svg.contains(&format!("<g id=\"out{i}\">")));
    }
    let boxes = g
        .node_ids()
        .filter(|&id| g.op(id).param_name().is_none())
        .count();
    assert_eq!(svg.matches("<rect").count(), boxes);
    // Coordinates are finite: no NaN or inf in the markup (text aside).
    let markup: String = svg
        .split('>')
        .map(|part| part.split('<').nth(1).unwrap_or(""))
        .collect();
    assert!(
        !markup.contains("NaN") && !markup.contains("inf"),
        "bad coordinates"
    );
}

#[test]
fn the_svg_draws_every_op_with_its_block_and_label() {
    for file in ["inception_3a.kir", "resnet_bottleneck.kir"] {
        let g = parse(file);
        let svg = svg::to_svg(&g).unwrap();
        assert_svg_draws(&g, &svg);
    }
    let svg = svg::to_svg(&parse("inception_3a.kir")).unwrap();
    assert!(
        svg.contains(">[inception_3a]</text>")
            && svg.contains(">12,352 params, 9,633,792 MACs</text>")
    );
    assert!(svg.contains(">@inception_3a_pool_proj.weight</text>"));
}

/// Many Inception-like modules in a row (about 2,000 drawn nodes, more than
/// the largest zoo graph): the layout is linear-ish, so this stays fast.
#[test]
fn a_large_graph_draws_and_names_are_escaped() {
    let mut g = Graph::new("big <&> \"graph\"");
    let mut x = g.add_input("x", TensorType::f32([1, 8, 4, 4]));
    for m in 0..100 {
        let mut branches = Vec::new();
        for b in 0..4 {
            let mut v = x;
            for k in 0..b + 1 {
                let w = g.add_param(
                    format!("mixed_{m}_b{b}_{k}.weight"),
                    TensorType::f32([2, if k == 0 { 8 } else { 2 }, 1, 1]),
                );
                v = g.add(Conv2d::new(1, 1, 0), &[v, w]).unwrap();
                v = g.add(Relu {}, &[v]).unwrap();
            }
            branches.push(v);
        }
        x = g.add(Concat { axis: 1 }, &branches).unwrap();
    }
    let w = g.add_param("head <w> & \"q\"", TensorType::f32([8, 8, 1, 1]));
    let y = g.add(Conv2d::new(1, 1, 0), &[x, w]).unwrap();
    g.set_outputs(vec![y, x]);
    verify(&g).unwrap();
    let svg = svg::to_svg(&g).unwrap();
    assert_svg_draws(&g, &svg);
    assert!(svg.contains("@head &lt;w&gt; &amp; &quot;q&quot;"));
    let dot = dot::to_dot(&g);
    assert!(dot.contains("cluster_mixed_99"));
    assert!(dot.contains("@head <w> & \\\"q\\\""));
}

#[test]
fn too_large_and_cyclic_graphs_are_refused_with_a_reason() {
    let mut g = Graph::new("chain");
    let mut v = g.add_input("x", TensorType::f32([1]));
    for _ in 0..svg::MAX_SVG_NODES {
        v = g
            .add_node_unchecked(Relu {}.into(), &[v], vec![TensorType::f32([1])])
            .into();
    }
    g.set_outputs(vec![v]);
    let e = svg::to_svg(&g).unwrap_err();
    assert!(
        matches!(e, svg::SvgError::TooLarge(n) if n == svg::MAX_SVG_NODES + 1),
        "{e}"
    );
    assert!(e.to_string().contains("limited to 20000"));

    let mut g = Graph::new("cycle");
    let x = g.add_input("x", TensorType::f32([1]));
    let a = g.add_node_unchecked(Add {}.into(), &[x], vec![TensorType::f32([1])]);
    let r = g.add_node_unchecked(Relu {}.into(), &[a.into()], vec![TensorType::f32([1])]);
    g.connect(r.into(), a, 1);
    g.set_outputs(vec![r.into()]);
    let e = svg::to_svg(&g).unwrap_err().to_string();
    assert!(e.contains("cycle") && e.contains("add #1"), "{e}");
    // DOT and text still print a cyclic graph (for debugging a broken pass).
    assert!(dot::to_dot(&g).contains("n2 -> n1"));
    assert!(text::print(&g).contains("add(%0, %2)"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dumps_of_random_graphs_are_well_formed(choices in prop::collection::vec(any::<(u8, u8, u8)>(), 0..24)) {
        let g = random_valid_graph(&choices, &["a".into(), "b b".into(), "c.1".into()]);
        let dot = dot::to_dot(&g);
        let closed = dot.ends_with("}\n");
        prop_assert!(dot.starts_with("digraph") && closed);
        prop_assert_eq!(dot.matches('{').count(), dot.matches('}').count());
        for id in g.node_ids().filter(|&id| g.op(id).param_name().is_none()) {
            let needle = format!("n{} [label=", id.index());
            prop_assert!(dot.contains(&needle));
        }
        assert_svg_draws(&g, &svg::to_svg(&g).unwrap());
    }

    #[test]
    fn dumps_of_unverified_graphs_do_not_panic(seed in any::<u64>(), nodes in 0usize..30) {
        let g = random_unverified_graph(seed, nodes);
        let closed = dot::to_dot(&g).ends_with("}\n");
        prop_assert!(closed);
        assert_svg_draws(&g, &svg::to_svg(&g).unwrap());
    }
}
