//! Hostile input to the text parser and the JSON loader: errors that say where
//! and what was expected, never a panic, for every truncation, thousands of
//! mutations, deep nesting and absurd numbers.

mod common;

use common::*;
use kiln_ir::*;

fn error(text: &str) -> String {
    match text::parse(text) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = "graph \"g\"\n%0 = input \"x\" : f32[1,2]\n";

/// Each case: the statement on line 3, and the exact start of the message.
#[test]
fn errors_say_line_column_and_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        (
            "%1 = relu(%0 : f32[1,2]",
            "3:14: expected ',' or ')' after an operand, found ':'",
        ),
        (
            "%1 = relux(%0) : f32[1,2]",
            "3:6: unknown op 'relux' (did you mean 'relu'?)",
        ),
        (
            "%1 = frobnicate(%0) : f32[1,2]",
            "3:6: unknown op 'frobnicate' (expected one of input, param, conv2d",
        ),
        ("%1 = param(%0) : f32[1,2]", "3:6: unknown op 'param'"),
        (
            "%2 = relu(%0) : f32[1,2]",
            "3:2: expected %1, found %2 (values are numbered in order)",
        ),
        (
            "%0 = relu(%0) : f32[1,2]",
            "3:2: expected %1, found %0 (it is already defined)",
        ),
        ("%1 = relu(%7) : f32[1,2]", "3:11: %7 is not defined"),
        ("%1 = relu(%1) : f32[1,2]", "3:11: %1 is not defined"),
        (
            "%1 = relu(@w) : f32[1,2]",
            "3:11: parameter @w is not declared",
        ),
        (
            "%1 = relu(%0) : f32[1,2\noutput %1",
            "3:24: expected ',' or ']' in the shape, found the end of the line",
        ),
        (
            "%1 = relu(%0) : f64[1,2]",
            "3:17: expected a type such as f32[1,3,224,224], found 'f64[1,2]'",
        ),
        (
            "%1 = relu(%0) f32[1,2]",
            "3:15: expected ':' and the output type, found 'f32[1,2]'",
        ),
        (
            "%1 = relu(%0) : f32[1,2] extra",
            "3:26: expected the end of the line, found 'extra'",
        ),
        (
            "%1, %2 = relu(%0) : f32[1,2]",
            "3:1: expected 2 output types, one for each value defined, found 1",
        ),
        (
            "%1 = input \"x\" : f32[1]",
            "3:12: input \"x\" is declared twice",
        ),
        (
            "@w = param : f32[1]\n@w = param : f32[1]",
            "4:1: parameter @w is declared twice",
        ),
        ("@w = parm : f32[1]", "3:6: expected 'param'"),
        (
            "@ = param : f32[1]",
            "3:3: expected a parameter name after '@' (bare [A-Za-z0-9_.:/-] or quoted), found '='",
        ),
        (
            "%1 = relu(%0) {} : f32[1,2]\noutput %1\n%2 = relu(%1) : f32[1,2]",
            "5:1: expected nothing after the 'output' line",
        ),
        (
            "output",
            "3:7: expected an operand (%N or @name), found the end of the line",
        ),
        (
            "output %0 %0",
            "3:11: expected ',' or the end of the line, found '%0'",
        ),
        (
            "%1 = relu(%0) : f32[1,2]",
            "4:1: expected an 'output %N, ...' line at the end",
        ),
        (
            "x = relu(%0) : f32[1,2]",
            "3:1: expected '%N = ...', '@name = param : TYPE' or 'output ...', found 'x'",
        ),
        (
            "%1 = input x : f32[1]",
            "3:12: expected a string in double quotes, found 'x'",
        ),
        ("%1 = input \"y : f32[1]", "3:12: unterminated string"),
        ("%1 = input \"\\q\" : f32[1]", "3:13: unknown escape \\q"),
        (
            "%1 = input \"\\u{110000}\" : f32[1]",
            "3:13: \\u{110000} is not a Unicode scalar value",
        ),
        (
            "%1 = input \"\\u{d800}\" : f32[1]",
            "3:13: \\u{d800} is not a Unicode scalar value",
        ),
        (
            "%1 = input \"\\u{}\" : f32[1]",
            "3:13: expected \\u{HEX} with 1 to 6 hexadecimal digits",
        ),
        (
            "%1 = input \"\\u{1234567}\" : f32[1]",
            "3:13: expected \\u{HEX} with 1 to 6 hexadecimal digits",
        ),
    ];
    for (line, expected) in cases {
        let e = error(&format!("{HEAD}{line}\n"));
        assert!(
            e.starts_with(expected),
            "for {line:?}:\n got      {e:?}\n expected {expected:?}..."
        );
    }
    assert_eq!(
        error(""),
        "1:1: expected 'graph \"NAME\"' as the first line"
    );
    assert_eq!(
        error("// only a comment\n"),
        "2:1: expected 'graph \"NAME\"' as the first line"
    );
    assert!(error("%0 = input \"x\" : f32[1]\n")
        .starts_with("1:1: expected 'graph \"NAME\"' as the first line"));
    assert!(error("graph g\n").starts_with("1:7: expected a string in double quotes, found 'g'"));
    assert!(error("graph \"g\" x\n").starts_with("1:11: expected the end of the line, found 'x'"));
    assert!(error("graph \"g\"\ngraph \"h\"\n").starts_with("2:1: expected '%N = ...'"));
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = error(&format!(
        "{HEAD}%1 = input \"名前\" : f32[1] ?\noutput %1\n"
    ));
    assert!(
        e.starts_with("3:26: expected the end of the line, found '?'"),
        "{e}"
    );
}

#[test]
fn bytes_that_are_not_utf8_are_refused_where_they_are() {
    let mut bytes = format!("{HEAD}%1 = input \"é").into_bytes();
    bytes.extend_from_slice(&[0xff, b'"']);
    let e = text::parse_bytes(&bytes).unwrap_err().to_string();
    assert_eq!(e, "3:14: expected UTF-8 text, found the byte 0xff");
    // A truncated multi-byte character at the very end, too.
    let e = text::parse_bytes(&"graph \"é\"".as_bytes()[..8])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "1:8: expected UTF-8 text, found the byte 0xc3");
    let valid = format!("{HEAD}output %0\n");
    assert_eq!(
        text::print(&text::parse_bytes(valid.as_bytes()).unwrap()),
        valid
    );
}

/// Attribute errors name the op, the attribute's path and what serde
/// expected, at the column of the attribute (the nested one when nested).
#[test]
fn attribute_errors_name_the_path_at_its_column() {
    let conv = |attrs: &str| {
        format!("graph \"g\"\n%0 = input \"x\" : f32[1,1,3,3]\n@w = param : f32[1,1,1,1]\n%1 = conv2d(%0, @w) {{{attrs}}} : f32[1,1,3,3]\noutput %1\n")
    };
    let good = "kernel=[1,1], stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1, bias=false, epilogue={residual=false, relu=false}";
    text::parse(&conv(good)).unwrap();
    let column = |attrs: &str, needle: &str| {
        "%1 = conv2d(%0, @w) {".chars().count()
            + attrs[..attrs.find(needle).unwrap()].chars().count()
            + 1
    };
    let cases: &[(&str, &str, &str)] = &[
        ("relu=false}", "relu=1}", "conv2d attribute epilogue.relu: invalid type: integer `1`, expected a boolean"),
        ("groups=1", "groups=true", "conv2d attribute groups: invalid type: boolean `true`, expected usize"),
        ("stride=[1,1]", "stride=[1,-1]", "conv2d attribute stride[1]: invalid value: integer `-1`, expected usize"),
        ("stride=[1,1]", "stride=[1,1.5]", "conv2d attribute stride[1]: invalid type: floating point `1.5`, expected usize"),
        ("pad=[0,0,0,0]", "pad=[0,0]", "conv2d attribute pad: invalid length 2, expected an array of length 4"),
        ("bias=false", "bias=false, bogus=2", "conv2d attribute bogus: unknown field `bogus`"),
        ("epilogue={residual=false, relu=false}", "epilogue={residual=false, relu=false, fused=true}", "conv2d attribute epilogue.fused: unknown field `fused`"),
        ("epilogue={residual=false, relu=false}", "epilogue={relu=false}", "conv2d attribute epilogue: missing field `residual`"),
        ("groups=1", "groups=18446744073709551616", "expected an integer that fits 64 bits"),
        ("groups=1", "groups=1e999", "expected a finite number, found '1e999'"),
        ("groups=1", "groups=inf", "expected an attribute value (a number, true, false, a string, [list] or {record}), found 'inf,'"),
        ("groups=1", "groups=-inf", "expected a number, found '-inf' (non-finite floats are not attributes)"),
        ("groups=1", "groups=1, groups=1", "attribute groups is given twice"),
        ("groups=1", "groups 1", "expected '=' after groups, found '1,'"),
    ];
    for (from, to, message) in cases {
        let attrs = good.replacen(from, to, 1);
        let e = error(&conv(&attrs));
        assert!(
            e.starts_with("4:") && e.contains(message),
            "for {to:?}:\n got {e:?}\n expected 4:_: ...{message}"
        );
        // The column is that of the innermost attribute named in the message.
        if let Some(path) = message
            .strip_prefix("conv2d attribute ")
            .and_then(|m| m.split(':').next())
        {
            let last = path.rsplit(['.', '[']).next().unwrap();
            let needle = if path.ends_with(']') {
                let parent = &path[..path.rfind('[').unwrap()];
                let list_start = attrs.find(&format!("{parent}=[")).unwrap() + parent.len() + 2;
                let index: usize = last.trim_end_matches(']').parse().unwrap();
                let item = attrs[list_start..]
                    .split(',')
                    .take(index)
                    .map(|s| s.len() + 1)
                    .sum::<usize>();
                attrs[list_start + item..].to_string()
            } else {
                format!("{last}=")
            };
            let expected = format!("4:{}:", column(&attrs, &needle));
            assert!(
                e.starts_with(&expected),
                "for {to:?}: got {e:?}, expected it at {expected}"
            );
        }
    }
    let e =
        error("graph \"g\"\n%0 = input \"x\" : f32[1,2]\n%1 = softmax(%0) : f32[1,2]\noutput %1\n");
    assert_eq!(e, "3:18: softmax attributes: missing field `axis`");
}

#[test]
fn absurd_numbers_are_refused_before_anything_is_allocated() {
    let cases: &[(&str, &str)] = &[
        (
            "f32[2147483648]",
            "3:21: expected a dimension of at most 2147483647, found 2147483648",
        ),
        (
            "f32[18446744073709551616]",
            "3:21: expected a dimension, found 18446744073709551616, which does not fit 64 bits",
        ),
        (
            "f32[65536,65536]",
            "3:17: expected a shape of at most 2147483647 elements",
        ),
        (
            "f32[2147483647,2147483647,2147483647]",
            "3:17: expected a shape of at most 2147483647 elements",
        ),
        (
            "f32[1,1,1,1,1,1,1,1,1]",
            "3:37: expected a rank of at most 8",
        ),
        ("f32[-1]", "3:21: expected a dimension, found '-1]'"),
    ];
    for (ty, expected) in cases {
        let e = error(&format!("{HEAD}%1 = relu(%0) : {ty}\noutput %1\n"));
        assert!(
            e.starts_with(expected),
            "for {ty}: got {e:?}, expected {expected:?}"
        );
    }
    let e = error(&format!(
        "{HEAD}%1 = relu(%18446744073709551615) : f32[1,2]\noutput %1\n"
    ));
    assert!(
        e.starts_with("3:11: %18446744073709551615 is not defined"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}%99999999999999999999 = relu(%0) : f32[1,2]\noutput %1\n"
    ));
    assert!(
        e.starts_with(
            "3:2: expected a value number, found 99999999999999999999, which does not fit 64 bits"
        ),
        "{e}"
    );
    // The largest legal tensor is accepted (and only declared, never allocated).
    text::parse(&format!(
        "{HEAD}%1 = relu(%0) : f32[2147483647]\noutput %1\n"
    ))
    .unwrap();
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let n = 100_000;
    for (open, close) in [("[", "]"), ("{a=", "}"), ("[{a=", "}]")] {
        let deep = format!(
            "{HEAD}%1 = relu(%0) {{a={}1{}}} : f32[1,2]\noutput %1\n",
            open.repeat(n),
            close.repeat(n)
        );
        let e = error(&deep);
        assert!(
            e.starts_with("3:")
                && e.contains("expected at most 32 levels of nested lists and records"),
            "{}",
            &e[..e.len().min(200)]
        );
    }
    // 32 levels are fine for the parser (the op then refuses the attribute).
    let ok = format!(
        "{HEAD}%1 = relu(%0) {{a={}1{}}} : f32[1,2]\noutput %1\n",
        "[".repeat(31),
        "]".repeat(31)
    );
    assert!(error(&ok).contains("relu attribute a: unknown field `a`"));
}

/// A parse that succeeds on mangled input must give a graph that every
/// consumer handles without panicking, and that prints back to text which
/// parses to the same text (unless it holds a non-finite float, printed null).
fn check_consumers(text: &str) {
    let Ok(g) = text::parse(text) else { return };
    let verified = verify(&g).is_ok();
    let printed = text::print(&g);
    match text::parse(&printed) {
        Ok(back) => assert_eq!(text::print(&back), printed),
        Err(e) => assert!(
            printed.contains("null"),
            "the print of a parsed graph does not parse: {e}\n{printed}"
        ),
    }
    let json = json::to_json(&g);
    if let Ok(back) = json::from_json(&json) {
        assert_eq!(text::print(&back), printed);
    }
    let dot = dot::to_dot(&g);
    assert!(dot.ends_with("}\n"));
    if let Ok(svg) = svg::to_svg(&g) {
        xml_elements(&svg).unwrap();
    }
    if verified {
        let _ = cost::cost(&g);
    }
}

#[test]
fn every_truncation_is_an_error_or_a_smaller_graph_never_a_panic() {
    for file in ["inception_3a.kir", "resnet_bottleneck.kir"] {
        let text = data(file);
        for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            let cut = &text[..end];
            match text::parse(cut) {
                // Only a cut that keeps every statement and at least one
                // output operand can parse.
                Ok(_) => assert!(
                    end >= text.rfind("output %").unwrap() + "output %0".len(),
                    "{file}[..{end}] parsed"
                ),
                Err(e) => assert!(e.line >= 1 && e.column >= 1),
            }
        }
    }
}

#[test]
fn thousands_of_mutations_give_errors_or_graphs_every_consumer_handles() {
    let text = data("inception_3a.kir");
    let alphabet = b"%@{}[](),:=\"\\-+.eE0123456789 \t\nxq_/\x01";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for round in 0..6_000 {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = *rng.pick(alphabet),
                1 => bytes[at] = rng.next() as u8,
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, *rng.pick(alphabet)),
            }
        }
        // Mostly one line at a time is mangled; every few rounds a whole
        // line is duplicated or dropped.
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if round % 7 == 0 {
            let lines: Vec<&str> = s.lines().collect();
            let k = rng.below(lines.len());
            let mut out: Vec<&str> = lines.clone();
            if rng.coin() {
                out.insert(k, lines[k])
            } else {
                out.remove(k);
            }
            s = out.join("\n");
        }
        if text::parse(&s).is_ok() {
            parsed += 1;
        }
        check_consumers(&s);
    }
    // Some mutations are harmless (a digit in a shape, a space): the test
    // must also exercise the consumers of odd but parseable graphs.
    assert!(parsed > 100, "only {parsed} mutated files parsed");
}

#[test]
fn hostile_json_gives_errors_not_panics() {
    let g = text::parse(&data("resnet_bottleneck.kir")).unwrap();
    let good = json::to_json(&g);
    json::from_json(&good).unwrap();
    for end in (0..good.trim_end().len()).step_by(7) {
        assert!(
            json::from_json(&good[..end]).is_err(),
            "a truncation at {end} loaded"
        );
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(json::from_json(&deep).is_err());
    let deep_op = good.replacen(
        "\"op\": \"relu\"",
        &format!(
            "\"op\": \"relu\", \"x\": {}{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
        1,
    );
    assert!(json::from_json(&deep_op).is_err());

    let doc = |nodes: &str, outputs: &str| {
        format!(
            r#"{{"format": "kiln-ir", "version": 1, "name": "g", "nodes": [{nodes}], "outputs": {outputs}}}"#
        )
    };
    let input = r#"{"id": 0, "op": {"op": "input", "name": "x"}, "operands": [], "outputs": [{"dtype": "f32", "shape": [2]}]}"#;
    let relu = |operand: &str| {
        format!(
            r#"{{"id": 1, "op": {{"op": "relu"}}, "operands": [{operand}], "outputs": [{{"dtype": "f32", "shape": [2]}}]}}"#
        )
    };
    json::from_json(&doc(&format!("{input}, {}", relu("[0, 0]")), "[[1, 0]]")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            doc(&format!("{input}, {}", relu("[1, 0]")), "[[1, 0]]"),
            "nodes[1]: operand 0 [1, 0] names a node that is not defined before it",
        ),
        (
            doc(&format!("{input}, {}", relu("[0, 3]")), "[[1, 0]]"),
            "nodes[1]: operand 0 [0, 3] names a port the node does not have",
        ),
        (
            doc(&format!("{input}, {}", relu("[0, 0]")), "[[2, 0]]"),
            "outputs[0]: [2, 0] names a node that is not defined before it",
        ),
        (
            doc(&format!("{input}, {}", relu("[0, 0]")), "[[1, 1]]"),
            "outputs[0]: [1, 1] names a port the node does not have",
        ),
        (
            doc(&format!("{input}, {input}"), "[[0, 0]]"),
            "nodes[1]: has id 0, expected 1",
        ),
        (
            doc(
                &format!("{input}, {}", input.replace("\"id\": 0", "\"id\": 1")),
                "[[0, 0]]",
            ),
            "nodes[1]: input \"x\" is declared twice",
        ),
        (
            doc(&input.replace("[2]", "[1099511627776]"), "[[0, 0]]"),
            "nodes[0]: output 0: f32[1099511627776] has more than 2147483647 elements",
        ),
        (
            doc(&input.replace("[2]", "[1,1,1,1,1,1,1,1,1]"), "[[0, 0]]"),
            "nodes[0]: output 0: f32[1,1,1,1,1,1,1,1,1] has rank 9, above the maximum 8",
        ),
        (
            doc(&input.replace("[2]", "[-2]"), "[[0, 0]]"),
            "nodes[0].outputs[0].shape[0]: invalid value: integer `-2`",
        ),
        (
            doc(&input.replace("f32", "f64"), "[[0, 0]]"),
            "nodes[0].outputs[0].dtype: unknown variant `f64`",
        ),
        (
            doc(&input.replace("\"input\"", "\"frobnicate\""), "[[0, 0]]"),
            "nodes[0].op.op: unknown variant `frobnicate`",
        ),
        (
            doc(
                &relu("")
                    .replace("\"relu\"}", "\"relu\", \"bogus\": 1}")
                    .replace("\"id\": 1", "\"id\": 0"),
                "[[0, 0]]",
            ),
            "nodes[0].op: unknown field `bogus`",
        ),
        (
            doc(input, "[[0, 0]]").replace("\"name\": \"g\",", "\"name\": \"g\", \"extra\": 1,"),
            "extra: unknown field `extra`",
        ),
        (
            doc(input, "[[0, 0]]").replace("\"kiln-ir\"", "\"onnx\""),
            "format is \"onnx\" version 1, expected \"kiln-ir\" version 1",
        ),
        (
            doc(input, "[[0, 0]]").replace("\"version\": 1", "\"version\": 2"),
            "format is \"kiln-ir\" version 2",
        ),
        ("[1, 2, 3]".into(), "document: "),
        ("\"kiln-ir\"".into(), "document: invalid type: string"),
        (
            "{\"format\": \"kiln-ir\", \"version\": 1}".into(),
            "document: missing field `name`",
        ),
        (
            format!("{} trailing", doc(input, "[[0, 0]]")),
            "document: trailing characters",
        ),
    ];
    for (text, expected) in &cases {
        let e = json::from_json(text).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.starts_with(expected) || e.contains(expected),
            "got {e:?}\nexpected {expected:?}\nfor {text}"
        );
    }
    let mut rng = Rng(7);
    for _ in 0..2_000 {
        let mut b = good.as_bytes().to_vec();
        let at = rng.below(b.len());
        b[at] = *rng.pick(b"{}[],:\"0123456789-e.x ");
        if let Ok(g) = json::from_json(&String::from_utf8_lossy(&b)) {
            let _ = verify(&g);
            let _ = text::print(&g);
            let _ = dot::to_dot(&g);
            let _ = svg::to_svg(&g);
        }
    }
}
