//! The textual format: one line an op, every value typed, parameters by name.
//!
//! ```text
//! graph "block"
//! %0 = input "x" : f32[1,3,8,8]
//! @conv.weight = param : f32[4,3,3,3]
//! %1 = conv2d(%0, @conv.weight) {kernel=[3,3], stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1, bias=false, epilogue={residual=false, relu=false}} : f32[1,4,8,8]
//! %2 = relu(%1) : f32[1,4,8,8]
//! output %2
//! ```
//!
//! Attributes are generic: the printer writes the op's serde fields and the
//! parser deserializes them back, so a new op needs no change here. The full
//! grammar and the canonical form are in docs/ir.md. `print(parse(t)) == t`
//! for canonical text, and every parse error says `line:column: ...`.

use crate::graph::{Graph, NodeId, Value};
use crate::op::Op;
use crate::ops::{Input, Param};
use crate::types::{DType, TensorType, MAX_ELEMENTS, MAX_RANK};
use serde_json::{Map, Number, Value as Json};
use std::collections::HashMap;
use std::fmt::Write;
use thiserror::Error;

/// Nesting deeper than this in attributes is refused (it is surely garbage,
/// and unbounded recursion would overflow the stack).
pub const MAX_DEPTH: usize = 32;

/// A parse error at `line:column` (both from 1).
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{line}:{column}: {message}")]
pub struct TextError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

// ---- printing ---------------------------------------------------------------

/// True if `name` can be written after `@` without quotes.
fn is_bare(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
}

fn quote(s: &str, out: &mut String) {
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

fn param_ref(name: &str, out: &mut String) {
    out.push('@');
    if is_bare(name) {
        out.push_str(name);
    } else {
        quote(name, out);
    }
}

/// A float in its shortest round-trip form, always with `.` or `e` so that it
/// reads back as a float. Values that are exactly an f32 (all attributes are)
/// use the f32's shortest form: `1e-5`, not `9.999999747378752e-6`.
fn float(v: f64, out: &mut String) {
    let text = if (v as f32) as f64 == v { format!("{:?}", v as f32) } else { format!("{v:?}") };
    out.push_str(&text);
}

fn attr_value(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            (None, Some(i)) => {
                let _ = write!(out, "{i}");
            }
            _ => float(n.as_f64().unwrap_or(f64::NAN), out),
        },
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

/// The op's attributes as serde fields, without the `op` tag.
pub(crate) fn attributes(op: &Op) -> Map<String, Json> {
    match serde_json::to_value(op) {
        Ok(Json::Object(mut m)) => {
            m.shift_remove("op");
            m
        }
        _ => Map::new(),
    }
}

/// Prints the graph in canonical form: nodes in `Graph::topo_order()`, values
/// numbered in that order. A cyclic graph (which the verifier refuses) still
/// prints, in index order.
pub fn print(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids().collect());
    let mut numbers: HashMap<Value, usize> = HashMap::new();
    for &id in &order {
        let node = g.node(id).expect("live node");
        if node.op.param_name().is_some() {
            continue;
        }
        for port in 0..node.outputs.len() {
            let next = numbers.len();
            numbers.insert(Value { node: id, port: port as u32 }, next);
        }
    }
    let operand = |v: &Value, out: &mut String| match g.node(v.node).and_then(|n| n.op.param_name()) {
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
        let node = g.node(id).expect("live node");
        let types = node.outputs.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
        if let Some(name) = node.op.param_name() {
            param_ref(name, &mut out);
            let _ = writeln!(out, " = param : {types}");
            continue;
        }
        for port in 0..node.outputs.len() {
            if port > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "%{}", numbers[&Value { node: id, port: port as u32 }]);
        }
        if let Some(name) = node.op.input_name() {
            out.push_str(" = input ");
            quote(name, &mut out);
            let _ = writeln!(out, " : {types}");
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
        let _ = writeln!(out, " : {types}");
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

// ---- parsing ----------------------------------------------------------------

/// A cursor over one line.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, message: impl Into<String>) -> TextError {
        self.err_at(self.pos, message)
    }

    fn err_at(&self, pos: usize, message: impl Into<String>) -> TextError {
        let column = self.text[..pos.min(self.text.len())].chars().count() + 1;
        TextError { line: self.line, column, message: message.into() }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.pos += 1;
        }
    }

    /// Consumes `token` (after spaces) if it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_spaces();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str, what: &str) -> Result<(), TextError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.err(format!("expected {what}, found {}", self.found())))
        }
    }

    /// What is at the cursor, for error messages.
    fn found(&self) -> String {
        let r = self.rest();
        match r.chars().next() {
            None => "the end of the line".to_string(),
            Some(_) => {
                let word: String = r.chars().take_while(|c| !c.is_whitespace()).take(20).collect();
                format!("'{word}'")
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_spaces();
        self.pos >= self.text.len()
    }

    fn word(&mut self) -> &'a str {
        self.skip_spaces();
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn string(&mut self) -> Result<String, TextError> {
        self.skip_spaces();
        let start = self.pos;
        if !self.eat("\"") {
            return Err(self.err(format!("expected a string in double quotes, found {}", self.found())));
        }
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err_at(start, "unterminated string"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err_at(start, "unterminated string"));
                    };
                    self.pos += e.len_utf8();
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'u' => {
                            let at = self.pos;
                            if !self.rest().starts_with('{') {
                                return Err(self.err_at(at, "expected '{' after \\u"));
                            }
                            let close = self.rest().find('}').filter(|&i| i <= 9);
                            let Some(close) = close else {
                                return Err(self.err_at(at, "expected \\u{HEX}"));
                            };
                            let hex = &self.rest()[1..close];
                            let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                            let Some(ch) = ch else {
                                return Err(self.err_at(at, format!("\\u{{{hex}}} is not a character")));
                            };
                            out.push(ch);
                            self.pos += close + 1;
                        }
                        other => return Err(self.err_at(self.pos - other.len_utf8(), format!("unknown escape \\{other}"))),
                    }
                }
                c => out.push(c),
            }
        }
    }

    /// A parameter name after `@`: bare or quoted.
    fn param_name(&mut self) -> Result<String, TextError> {
        if self.peek() == Some('"') {
            return self.string();
        }
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || "_.:/-".contains(c)) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err(format!("expected a parameter name after '@', found {}", self.found())));
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn integer(&mut self, what: &str) -> Result<u64, TextError> {
        self.skip_spaces();
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err(format!("expected {what}, found {}", self.found())));
        }
        self.text[start..self.pos]
            .parse()
            .map_err(|_| self.err_at(start, format!("{what} {} is too large", &self.text[start..self.pos])))
    }

    /// `f32[1,3,224,224]`
    fn tensor_type(&mut self) -> Result<TensorType, TextError> {
        self.skip_spaces();
        let start = self.pos;
        let name = self.word();
        let dtype = DType::from_name(name)
            .ok_or_else(|| self.err_at(start, format!("expected a type such as f32[1,3,224,224], found '{name}'")))?;
        self.expect("[", "'[' after the element type")?;
        let mut shape = Vec::new();
        let mut elements: u64 = 1;
        if !self.eat("]") {
            loop {
                let at = self.pos;
                let d = self.integer("a dimension")?;
                if d > MAX_ELEMENTS {
                    return Err(self.err_at(at, format!("dimension {d} exceeds {MAX_ELEMENTS}")));
                }
                elements = elements.saturating_mul(d);
                if elements > MAX_ELEMENTS {
                    return Err(self.err_at(start, format!("the shape has more than {MAX_ELEMENTS} elements")));
                }
                shape.push(d as usize);
                if shape.len() > MAX_RANK {
                    return Err(self.err_at(at, format!("rank exceeds {MAX_RANK}")));
                }
                if self.eat("]") {
                    break;
                }
                self.expect(",", "',' or ']' in the shape")?;
            }
        }
        Ok(TensorType { dtype, shape })
    }

    /// One attribute value, as JSON.
    fn attr_value(&mut self, depth: usize) -> Result<Json, TextError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("attributes nested deeper than {MAX_DEPTH}")));
        }
        self.skip_spaces();
        match self.peek() {
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat("]") {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.attr_value(depth + 1)?);
                    if self.eat("]") {
                        return Ok(Json::Array(items));
                    }
                    self.expect(",", "',' or ']' in the list")?;
                }
            }
            Some('{') => Ok(Json::Object(self.record(depth + 1)?.0)),
            Some('"') => Ok(Json::String(self.string()?)),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            _ => {
                let start = self.pos;
                match self.word() {
                    "true" => Ok(Json::Bool(true)),
                    "false" => Ok(Json::Bool(false)),
                    "null" => Ok(Json::Null),
                    "inf" | "nan" | "NaN" => {
                        Err(self.err_at(start, "non-finite floats cannot be attributes (the verifier refuses them)"))
                    }
                    _ => Err(self.err_at(start, format!("expected an attribute value, found {}", self.found()))),
                }
            }
        }
    }

    fn number(&mut self) -> Result<Json, TextError> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            self.pos += 1;
        }
        let text = &self.text[start..self.pos];
        let is_float = text.contains(['.', 'e', 'E']) || text.ends_with("inf");
        if !is_float {
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Json::Number(u.into()));
            }
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Json::Number(i.into()));
            }
            return Err(self.err_at(start, format!("'{text}' is not an integer that fits 64 bits")));
        }
        let v: f64 = text.parse().map_err(|_| self.err_at(start, format!("'{text}' is not a number")))?;
        Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| self.err_at(start, format!("'{text}' is not a finite number")))
    }

    /// `{k=v, ...}`; also returns the column of each top-level key.
    fn record(&mut self, depth: usize) -> Result<(Map<String, Json>, HashMap<String, usize>), TextError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("attributes nested deeper than {MAX_DEPTH}")));
        }
        self.expect("{", "'{'")?;
        let mut fields = Map::new();
        let mut columns = HashMap::new();
        if self.eat("}") {
            return Ok((fields, columns));
        }
        loop {
            self.skip_spaces();
            let at = self.pos;
            let key = self.word();
            if key.is_empty() {
                return Err(self.err(format!("expected an attribute name, found {}", self.found())));
            }
            if fields.contains_key(key) {
                return Err(self.err_at(at, format!("attribute {key} is given twice")));
            }
            self.expect("=", &format!("'=' after {key}"))?;
            let value = self.attr_value(depth + 1)?;
            columns.insert(key.to_string(), at);
            fields.insert(key.to_string(), value);
            if self.eat("}") {
                return Ok((fields, columns));
            }
            self.expect(",", "',' or '}' in the attributes")?;
        }
    }
}

/// Parses a graph. Nodes are added in file order with their declared types;
/// the graph is not verified (run `kiln_ir::verify`).
pub fn parse(text: &str) -> Result<Graph, TextError> {
    let mut graph: Option<Graph> = None;
    let mut values: Vec<Value> = Vec::new();
    let mut params: HashMap<String, NodeId> = HashMap::new();
    let mut done = false;
    let mut last_line = 0;
    for (index, line) in text.split('\n').enumerate() {
        last_line = index + 1;
        let mut c = Cursor { text: line, pos: 0, line: index + 1 };
        if c.at_end() || c.rest().starts_with("//") {
            continue;
        }
        if done {
            return Err(c.err("nothing may follow the output line"));
        }
        let Some(g) = graph.as_mut() else {
            c.expect("graph", "'graph \"NAME\"' as the first line")?;
            if c.peek().is_some_and(|ch| !ch.is_whitespace()) {
                return Err(c.err("expected a space after 'graph'"));
            }
            let name = c.string()?;
            if !c.at_end() {
                return Err(c.err(format!("expected the end of the line, found {}", c.found())));
            }
            graph = Some(Graph::new(name));
            continue;
        };
        let start = c.pos;
        if c.eat("@") {
            let name = c.param_name()?;
            c.expect("=", "'=' after the parameter name")?;
            let at = c.pos;
            if c.word() != "param" {
                return Err(c.err_at(at, "expected 'param'"));
            }
            c.expect(":", "':' and the parameter's type")?;
            let ty = c.tensor_type()?;
            if !c.at_end() {
                return Err(c.err(format!("expected the end of the line, found {}", c.found())));
            }
            if params.contains_key(&name) {
                return Err(c.err_at(start, format!("parameter @{name} is declared twice")));
            }
            let id = g.add_node_unchecked(Op::Param(Param { name: name.clone() }), &[], vec![ty]);
            params.insert(name, id);
            continue;
        }
        if c.rest().starts_with("output") {
            c.pos += "output".len();
            let mut outs = Vec::new();
            loop {
                outs.push(operand(&mut c, &values, &params)?);
                if c.at_end() {
                    break;
                }
                c.expect(",", "',' or the end of the line")?;
            }
            g.set_outputs(outs);
            done = true;
            continue;
        }
        // `%N[, %N+1] = ...`
        let mut defined = 0usize;
        loop {
            c.expect("%", "'%N =', '@name = param' or 'output'")?;
            let at = c.pos;
            let n = c.integer("a value number")?;
            if n != (values.len() + defined) as u64 {
                return Err(c.err_at(at, format!("expected %{} (values are numbered in order), found %{n}", values.len() + defined)));
            }
            defined += 1;
            if c.eat("=") {
                break;
            }
            c.expect(",", "',' or '='")?;
        }
        c.skip_spaces();
        let kind_at = c.pos;
        let kind = c.word();
        if kind.is_empty() {
            return Err(c.err(format!("expected an op name, found {}", c.found())));
        }
        let (op, operands) = if kind == "input" {
            let name = c.string()?;
            (Op::Input(Input { name }), Vec::new())
        } else {
            if !Op::KINDS.contains(&kind) || kind == "param" {
                return Err(c.err_at(kind_at, format!("unknown op '{kind}'")));
            }
            c.expect("(", &format!("'(' after {kind}"))?;
            let mut operands = Vec::new();
            if !c.eat(")") {
                loop {
                    operands.push(operand(&mut c, &values, &params)?);
                    if c.eat(")") {
                        break;
                    }
                    c.expect(",", "',' or ')' after an operand")?;
                }
            }
            c.skip_spaces();
            let brace = c.pos;
            let (attrs, columns) = if c.peek() == Some('{') { c.record(0)? } else { (Map::new(), HashMap::new()) };
            let parsed = Op::from_attributes(kind, Json::Object(attrs)).expect("the kind was checked above");
            let op = parsed.map_err(|e| {
                let path = e.path().to_string();
                let top = path.split(['.', '[']).next().unwrap_or("");
                let at = columns.get(top).copied().unwrap_or(brace);
                let message = e.into_inner().to_string();
                if path == "." || path.is_empty() {
                    c.err_at(at, format!("{kind} attributes: {message}"))
                } else {
                    c.err_at(at, format!("{kind} attribute {path}: {message}"))
                }
            })?;
            (op, operands)
        };
        c.expect(":", "':' and the output type")?;
        let mut types = vec![c.tensor_type()?];
        while c.eat(",") {
            types.push(c.tensor_type()?);
        }
        if !c.at_end() {
            return Err(c.err(format!("expected the end of the line, found {}", c.found())));
        }
        if types.len() != defined {
            return Err(c.err_at(start, format!("{defined} values are defined but {} types are given", types.len())));
        }
        let id = g.add_node_unchecked(op, &operands, types);
        for port in 0..defined {
            values.push(Value { node: id, port: port as u32 });
        }
    }
    let eof = TextError { line: last_line, column: 1, message: String::new() };
    let Some(g) = graph else {
        return Err(TextError { message: "expected 'graph \"NAME\"' as the first line".into(), ..eof });
    };
    if !done {
        return Err(TextError { message: "expected an 'output' line at the end".into(), ..eof });
    }
    Ok(g)
}

fn operand(c: &mut Cursor<'_>, values: &[Value], params: &HashMap<String, NodeId>) -> Result<Value, TextError> {
    c.skip_spaces();
    let at = c.pos;
    if c.eat("@") {
        let name = c.param_name()?;
        return params
            .get(&name)
            .map(|&id| Value { node: id, port: 0 })
            .ok_or_else(|| c.err_at(at, format!("parameter @{name} is not declared (declare it with '@{name} = param : TYPE' first)")));
    }
    if !c.eat("%") {
        return Err(c.err(format!("expected an operand (%N or @name), found {}", c.found())));
    }
    let n = c.integer("a value number")?;
    values.get(n as usize).copied().ok_or_else(|| c.err_at(at, format!("%{n} is not defined yet")))
}
