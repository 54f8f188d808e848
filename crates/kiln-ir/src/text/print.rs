//! The printer: a graph in canonical text.

use super::is_name_char;
use crate::graph::{Graph, Value};
use crate::op::Op;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::fmt::Write;

/// Prints the graph in canonical form: a `graph` line, then every node in
/// `Graph::topo_order()` (a parameter's line where it falls in that order),
/// values numbered `%0, %1, ...` as they are defined, all attributes in struct
/// field order, and an `output` line. A cyclic graph (which the verifier
/// refuses) still prints, in index order, but does not parse back.
pub fn print(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let mut numbers: HashMap<Value, usize> = HashMap::new();
    for &id in &order {
        let node = g.node(id).expect("an id from the graph");
        if node.op.param_name().is_some() {
            continue;
        }
        for port in 0..node.outputs.len() {
            let next = numbers.len();
            numbers.insert(
                Value {
                    node: id,
                    port: port as u32,
                },
                next,
            );
        }
    }
    // A value the graph does not hold (a dangling output) prints as `%?`,
    // which the parser refuses: the verifier refuses such graphs too.
    let operand = |v: &Value, out: &mut String| match g.node(v.node).and_then(|n| n.op.param_name())
    {
        Some(name) => param_ref(name, out),
        None => match numbers.get(v) {
            Some(n) => {
                let _ = write!(out, "%{n}");
            }
            None => out.push_str("%?"),
        },
    };
    let mut out = String::new();
    out.push_str("graph ");
    quote(&g.name, &mut out);
    out.push('\n');
    for &id in &order {
        let node = g.node(id).expect("an id from the graph");
        if let Some(name) = node.op.param_name() {
            param_ref(name, &mut out);
            out.push_str(" = param");
            types(&node.outputs, &mut out);
            continue;
        }
        for port in 0..node.outputs.len() {
            if port > 0 {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "%{}",
                numbers[&Value {
                    node: id,
                    port: port as u32
                }]
            );
        }
        if let Some(name) = node.op.input_name() {
            out.push_str(" = input ");
            quote(name, &mut out);
            types(&node.outputs, &mut out);
            continue;
        }
        let _ = write!(out, " = {}(", node.op.kind());
        for (i, v) in g.operands(id).iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            operand(v, &mut out);
        }
        out.push(')');
        let attrs = attributes(&node.op);
        if !attrs.is_empty() {
            out.push(' ');
            record(&attrs, &mut out);
        }
        types(&node.outputs, &mut out);
    }
    out.push_str("output ");
    for (i, v) in g.outputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        operand(v, &mut out);
    }
    out.push('\n');
    out
}

/// ` : t0, t1` and the end of the line.
fn types(ts: &[crate::TensorType], out: &mut String) {
    out.push_str(" :");
    for (i, t) in ts.iter().enumerate() {
        out.push_str(if i > 0 { ", " } else { " " });
        let _ = write!(out, "{t}");
    }
    out.push('\n');
}

/// The op's attributes as serde fields, without the `op` tag, in field order.
pub(crate) fn attributes(op: &Op) -> Map<String, Json> {
    match serde_json::to_value(op) {
        Ok(Json::Object(mut m)) => {
            m.shift_remove("op");
            m
        }
        _ => Map::new(),
    }
}

/// The attributes as the text format writes them, without the braces
/// (`axis=1`, `p=0.4`); empty for an op without attributes.
pub(crate) fn inline_attributes(op: &Op) -> String {
    let mut out = String::new();
    record(&attributes(op), &mut out);
    out[1..out.len() - 1].to_string()
}

fn param_ref(name: &str, out: &mut String) {
    out.push('@');
    if !name.is_empty() && name.chars().all(is_name_char) {
        out.push_str(name);
    } else {
        quote(name, out);
    }
}

/// A string in double quotes; `"`, `\` and control characters escaped, so the
/// result never spans lines.
pub(crate) fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float in its shortest round-trip form, always with `.` or `e` so that it
/// reads back as a float. serde_json holds f32 attributes as f64; a value that
/// is exactly an f32 is written in the f32's shortest form (`1e-5`, not
/// `9.999999747378752e-6`), which reads back to the same f32.
fn float(v: f64, out: &mut String) {
    let narrow = v as f32;
    if narrow as f64 == v {
        // The parser reads an f64 and serde narrows it to f32: two roundings.
        // Should they ever disagree with the f32's own, write the exact f64.
        let short = format!("{narrow:?}");
        if short
            .parse::<f64>()
            .is_ok_and(|back| (back as f32).to_bits() == narrow.to_bits())
        {
            out.push_str(&short);
            return;
        }
    }
    let _ = write!(out, "{v:?}");
}

fn attr_value(v: &Json, out: &mut String) {
    match v {
        // serde_json turns a non-finite float into null; the verifier refuses it.
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else {
                float(n.as_f64().unwrap_or(f64::NAN), out);
            }
        }
        Json::String(s) => quote(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                attr_value(item, out);
            }
            out.push(']');
        }
        Json::Object(fields) => record(fields, out),
    }
}

fn record(fields: &Map<String, Json>, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        attr_value(v, out);
    }
    out.push('}');
}
