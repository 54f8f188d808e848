//! The parser: text to graph, one line a statement.

use super::lexer::Cursor;
use super::{TextError, MAX_DEPTH};
use crate::graph::{Graph, NodeId, Value};
use crate::op::Op;
use crate::ops::{Input, Param};
use crate::suggest::edit_distance;
use serde_json::{Map, Value as Json};
use std::collections::{HashMap, HashSet};

/// Parses a graph. Nodes are added in file order with
/// `Graph::add_node_unchecked` and their declared types; the graph is not
/// verified (run `kiln_ir::verify`). Refused, with `line:column: ...`: syntax
/// errors, unknown ops and attributes, attributes of the wrong type,
/// undefined or out-of-order values, undeclared or twice-declared parameters,
/// two inputs of one name, dimensions or shapes above 2^31-1 elements, ranks
/// above 8, nesting deeper than `MAX_DEPTH`, and anything after `output`.
pub fn parse(text: &str) -> Result<Graph, TextError> {
    let mut p = Parser::default();
    let mut last_line = 1;
    for (index, line) in text.split('\n').enumerate() {
        last_line = index + 1;
        let mut c = Cursor::new(line, index + 1);
        if c.at_end() || c.rest().starts_with("//") {
            continue;
        }
        p.statement(&mut c)?;
    }
    let at_end = |message: &str| TextError {
        line: last_line,
        column: 1,
        message: message.into(),
    };
    match p.graph {
        None => Err(at_end("expected 'graph \"NAME\"' as the first line")),
        Some(_) if !p.done => Err(at_end("expected an 'output %N, ...' line at the end")),
        Some(g) => Ok(g),
    }
}

/// Parses the bytes of a file: [`parse`], once they are known to be UTF-8.
/// Bytes that are not are refused at the line and column of the first bad one.
pub fn parse_bytes(bytes: &[u8]) -> Result<Graph, TextError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(e) => {
            let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let line = good.matches('\n').count() + 1;
            let column = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let byte = bytes[e.valid_up_to()];
            Err(TextError {
                line,
                column,
                message: format!("expected UTF-8 text, found the byte 0x{byte:02x}"),
            })
        }
    }
}

#[derive(Default)]
struct Parser {
    graph: Option<Graph>,
    /// `%N` is `values[N]`.
    values: Vec<Value>,
    params: HashMap<String, NodeId>,
    inputs: HashSet<String>,
    /// The output line has been read.
    done: bool,
}

/// Where each attribute starts in the line, by its serde path (`epilogue.relu`,
/// `kernel[0]`), so a deserialization error points at the attribute at fault.
type Spans = HashMap<String, usize>;

impl Parser {
    fn statement(&mut self, c: &mut Cursor<'_>) -> Result<(), TextError> {
        if self.done {
            return Err(
                c.err("expected nothing after the 'output' line (it must be the last statement)")
            );
        }
        let Some(g) = self.graph.as_mut() else {
            return self.header(c);
        };
        c.skip_spaces();
        let start = c.pos;
        if c.eat("@") {
            let name = c.param_name()?;
            c.expect("=", "'=' after the parameter name")?;
            let at = c.pos;
            if c.word() != "param" {
                c.pos = at;
                return Err(
                    c.expected("'param' (a parameter is declared as '@name = param : TYPE')")
                );
            }
            c.expect(":", "':' and the parameter's type")?;
            let ty = c.tensor_type()?;
            c.expect_end()?;
            if self.params.contains_key(&name) {
                return Err(c.err_at(start, format!("parameter @{name} is declared twice")));
            }
            let id = g.add_node_unchecked(Op::Param(Param { name: name.clone() }), &[], vec![ty]);
            self.params.insert(name, id);
            return Ok(());
        }
        if c.rest().starts_with("output")
            && !c.rest()[6..].starts_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_')
        {
            c.pos += "output".len();
            let mut outs = Vec::new();
            loop {
                outs.push(self.operand(c)?);
                if c.at_end() {
                    break;
                }
                c.expect(",", "',' or the end of the line")?;
            }
            self.graph
                .as_mut()
                .expect("checked above")
                .set_outputs(outs);
            self.done = true;
            return Ok(());
        }
        self.definition(c, start)
    }

    fn header(&mut self, c: &mut Cursor<'_>) -> Result<(), TextError> {
        let at = c.pos;
        if c.word() != "graph" {
            c.pos = at;
            return Err(c.expected("'graph \"NAME\"' as the first line"));
        }
        let name = c.string()?;
        c.expect_end()?;
        self.graph = Some(Graph::new(name));
        Ok(())
    }

    /// `%N[, %N+1 ...] = input "name" : T` or `%N[, ...] = kind(operands) {attrs} : T[, ...]`.
    fn definition(&mut self, c: &mut Cursor<'_>, start: usize) -> Result<(), TextError> {
        let mut defined = 0usize;
        loop {
            c.expect("%", "'%N = ...', '@name = param : TYPE' or 'output ...'")?;
            let at = c.pos;
            let n = c.integer("a value number")?;
            let next = self.values.len() + defined;
            if n != next as u64 {
                let why = if n < next as u64 {
                    "it is already defined"
                } else {
                    "values are numbered in order"
                };
                return Err(c.err_at(at, format!("expected %{next}, found %{n} ({why})")));
            }
            defined += 1;
            if c.eat("=") {
                break;
            }
            c.expect(",", "',' or '=' after the defined values")?;
        }
        c.skip_spaces();
        let kind_at = c.pos;
        let kind = c.word();
        let (op, operands) = if kind == "input" {
            c.skip_spaces();
            let name_at = c.pos;
            let name = c.string()?;
            if !self.inputs.insert(name.clone()) {
                return Err(c.err_at(name_at, format!("input {name:?} is declared twice")));
            }
            (Op::Input(Input { name }), Vec::new())
        } else {
            if kind.is_empty() {
                return Err(c.expected("an op name"));
            }
            if !Op::KINDS.contains(&kind) || kind == "param" {
                return Err(c.err_at(kind_at, unknown_op(kind)));
            }
            c.expect("(", &format!("'(' after {kind}"))?;
            let mut operands = Vec::new();
            if !c.eat(")") {
                loop {
                    operands.push(self.operand(c)?);
                    if c.eat(")") {
                        break;
                    }
                    c.expect(",", "',' or ')' after an operand")?;
                }
            }
            (attributes(c, kind)?, operands)
        };
        c.expect(":", "':' and the output type")?;
        let mut types = vec![c.tensor_type()?];
        while c.eat(",") {
            types.push(c.tensor_type()?);
        }
        c.expect_end()?;
        if types.len() != defined {
            return Err(c.err_at(
                start,
                format!(
                    "expected {defined} output types, one for each value defined, found {}",
                    types.len()
                ),
            ));
        }
        let g = self.graph.as_mut().expect("the header was read");
        let id = g.add_node_unchecked(op, &operands, types);
        self.values
            .extend((0..defined as u32).map(|port| Value { node: id, port }));
        Ok(())
    }

    fn operand(&self, c: &mut Cursor<'_>) -> Result<Value, TextError> {
        c.skip_spaces();
        let at = c.pos;
        if c.eat("@") {
            let name = c.param_name()?;
            return self.params.get(&name).map(|&id| Value::from(id)).ok_or_else(|| {
                c.err_at(at, format!("parameter @{name} is not declared (declare it before its use: '@{name} = param : TYPE')"))
            });
        }
        if !c.eat("%") {
            return Err(c.expected("an operand (%N or @name)"));
        }
        let n = c.integer("a value number")?;
        usize::try_from(n)
            .ok()
            .and_then(|n| self.values.get(n).copied())
            .ok_or_else(|| {
                c.err_at(
                    at,
                    format!("%{n} is not defined (values must be defined before their use)"),
                )
            })
    }
}

fn unknown_op(kind: &str) -> String {
    let nearest = Op::KINDS
        .iter()
        .filter(|k| **k != "param")
        .min_by_key(|k| edit_distance(kind, k));
    match nearest {
        Some(k) if edit_distance(kind, k) <= 2 => {
            format!("unknown op '{kind}' (did you mean '{k}'?)")
        }
        _ => format!(
            "unknown op '{kind}' (expected one of {})",
            Op::KINDS.join(", ")
        ),
    }
}

/// The optional `{...}` after the operands, deserialized into the op `kind`.
fn attributes(c: &mut Cursor<'_>, kind: &str) -> Result<Op, TextError> {
    c.skip_spaces();
    let brace = c.pos;
    let mut spans = Spans::new();
    let attrs = if c.peek() == Some('{') {
        record(c, 1, "", &mut spans)?
    } else {
        Map::new()
    };
    let parsed = Op::from_attributes(kind, Json::Object(attrs)).expect("the kind was checked");
    parsed.map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            return c.err_at(brace, format!("{kind} attributes: {message}"));
        }
        // The attribute itself, else the nearest enclosing one that was written.
        let mut key = path.as_str();
        let at = loop {
            if let Some(&at) = spans.get(key) {
                break at;
            }
            match key.rfind(['.', '[']) {
                Some(cut) => key = &key[..cut],
                None => break brace,
            }
        };
        c.err_at(at, format!("{kind} attribute {path}: {message}"))
    })
}

fn too_deep(c: &Cursor<'_>) -> TextError {
    c.err(format!(
        "expected at most {MAX_DEPTH} levels of nested lists and records"
    ))
}

/// One attribute value as JSON, inside `depth` lists and records; `path` is
/// its serde path.
fn value(
    c: &mut Cursor<'_>,
    depth: usize,
    path: &str,
    spans: &mut Spans,
) -> Result<Json, TextError> {
    c.skip_spaces();
    match c.peek() {
        Some('[') => {
            if depth >= MAX_DEPTH {
                return Err(too_deep(c));
            }
            c.expect("[", "'['")?;
            let mut items = Vec::new();
            if c.eat("]") {
                return Ok(Json::Array(items));
            }
            loop {
                c.skip_spaces();
                let item = format!("{path}[{}]", items.len());
                spans.insert(item.clone(), c.pos);
                items.push(value(c, depth + 1, &item, spans)?);
                if c.eat("]") {
                    return Ok(Json::Array(items));
                }
                c.expect(",", "',' or ']' in the list")?;
            }
        }
        Some('{') => Ok(Json::Object(record(c, depth + 1, path, spans)?)),
        Some('"') => Ok(Json::String(c.string()?)),
        Some(ch) if ch.is_ascii_digit() || matches!(ch, '-' | '+' | '.') => c.number(),
        _ => {
            let start = c.pos;
            match c.word() {
                "true" => Ok(Json::Bool(true)),
                "false" => Ok(Json::Bool(false)),
                "null" => Ok(Json::Null),
                _ => {
                    c.pos = start;
                    Err(c.expected(
                        "an attribute value (a number, true, false, a string, [list] or {record})",
                    ))
                }
            }
        }
    }
}

/// `{key=value, ...}` (keys unique), the `depth`-th enclosing list or record.
fn record(
    c: &mut Cursor<'_>,
    depth: usize,
    path: &str,
    spans: &mut Spans,
) -> Result<Map<String, Json>, TextError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(c));
    }
    c.expect("{", "'{'")?;
    let mut fields = Map::new();
    if c.eat("}") {
        return Ok(fields);
    }
    loop {
        c.skip_spaces();
        let at = c.pos;
        let key = c.word();
        if key.is_empty() {
            return Err(c.expected("an attribute name"));
        }
        if fields.contains_key(key) {
            return Err(c.err_at(at, format!("attribute {key} is given twice")));
        }
        c.expect("=", &format!("'=' after {key}"))?;
        let full = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        spans.insert(full.clone(), at);
        let v = value(c, depth, &full, spans)?;
        fields.insert(key.to_string(), v);
        if c.eat("}") {
            return Ok(fields);
        }
        c.expect(",", "',' or '}' in the attributes")?;
    }
}
