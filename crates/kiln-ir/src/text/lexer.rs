//! The tokens of one line: a cursor that reads names, strings, numbers and
//! types, and reports errors at its position.

use super::{is_name_char, TextError};
use crate::types::{DType, TensorType, MAX_ELEMENTS, MAX_RANK};
use serde_json::{Number, Value as Json};

/// A cursor over one line (without its `\n`).
pub(super) struct Cursor<'a> {
    pub text: &'a str,
    /// Byte offset into `text`, always on a character boundary.
    pub pos: usize,
    /// Line number, from 1.
    pub line: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str, line: usize) -> Cursor<'a> {
        Cursor { text, pos: 0, line }
    }

    pub fn err(&self, message: impl Into<String>) -> TextError {
        self.err_at(self.pos, message)
    }

    /// An error at byte offset `pos`, reported as a character column.
    pub fn err_at(&self, pos: usize, message: impl Into<String>) -> TextError {
        let pos = pos.min(self.text.len());
        let column = self.text.get(..pos).map_or(pos, |s| s.chars().count()) + 1;
        TextError {
            line: self.line,
            column,
            message: message.into(),
        }
    }

    /// `expected {what}, found {what is here}`, at the cursor (past spaces).
    pub fn expected(&self, what: &str) -> TextError {
        let spaces = self.rest().len() - self.rest().trim_start_matches([' ', '\t', '\r']).len();
        self.err_at(
            self.pos + spaces,
            format!("expected {what}, found {}", self.found()),
        )
    }

    pub fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    pub fn skip_spaces(&mut self) {
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            self.bump(c);
        }
    }

    /// Consumes `token` (after spaces) if it is next.
    pub fn eat(&mut self, token: &str) -> bool {
        self.skip_spaces();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, token: &str, what: &str) -> Result<(), TextError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// What is at the cursor, for error messages: the next word (at most 20
    /// characters), or "the end of the line".
    pub fn found(&self) -> String {
        let word: String = self
            .rest()
            .trim_start_matches([' ', '\t', '\r'])
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(20)
            .collect();
        if word.is_empty() {
            "the end of the line".to_string()
        } else {
            format!("'{word}'")
        }
    }

    /// True (after spaces) at the end of the line.
    pub fn at_end(&mut self) -> bool {
        self.skip_spaces();
        self.pos >= self.text.len()
    }

    pub fn expect_end(&mut self) -> Result<(), TextError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.expected("the end of the line"))
        }
    }

    /// An identifier `[A-Za-z0-9_]*` (after spaces); empty if there is none.
    pub fn word(&mut self) -> &'a str {
        self.skip_spaces();
        let start = self.pos;
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            self.bump(c);
        }
        &self.text[start..self.pos]
    }

    /// A string in double quotes with `\" \\ \n \t \r \u{HEX}` escapes.
    pub fn string(&mut self) -> Result<String, TextError> {
        self.skip_spaces();
        let start = self.pos;
        if !self.eat("\"") {
            return Err(self.expected("a string in double quotes"));
        }
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err_at(
                    start,
                    "unterminated string (expected a closing '\"' on this line)",
                ));
            };
            self.bump(c);
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let at = self.pos - 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err_at(
                            start,
                            "unterminated string (expected a closing '\"' on this line)",
                        ));
                    };
                    self.bump(e);
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'u' => out.push(self.unicode_escape(at)?),
                        other => {
                            return Err(self.err_at(at, format!("unknown escape \\{other} (expected one of \\\" \\\\ \\n \\t \\r \\u{{HEX}})")))
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    /// The `{HEX}` of a `\u{HEX}` escape that starts at `at`.
    fn unicode_escape(&mut self, at: usize) -> Result<char, TextError> {
        let rest = self.rest();
        let hex: String = rest
            .strip_prefix('{')
            .map(|r| {
                r.chars()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .take(7)
                    .collect()
            })
            .unwrap_or_default();
        let closed = rest
            .get(1 + hex.len()..)
            .is_some_and(|r| r.starts_with('}'));
        if hex.is_empty() || hex.len() > 6 || !closed {
            return Err(self.err_at(at, "expected \\u{HEX} with 1 to 6 hexadecimal digits"));
        }
        let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
        let ch = ch.ok_or_else(|| {
            self.err_at(at, format!("\\u{{{hex}}} is not a Unicode scalar value"))
        })?;
        self.pos += hex.len() + 2;
        Ok(ch)
    }

    /// A parameter name after `@`: bare `[A-Za-z0-9_.:/-]+` or a quoted string.
    pub fn param_name(&mut self) -> Result<String, TextError> {
        if self.peek() == Some('"') {
            return self.string();
        }
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
            self.bump(c);
        }
        if start == self.pos {
            return Err(
                self.expected("a parameter name after '@' (bare [A-Za-z0-9_.:/-] or quoted)")
            );
        }
        Ok(self.text[start..self.pos].to_string())
    }

    /// A decimal integer that fits `u64` (after spaces).
    pub fn integer(&mut self, what: &str) -> Result<u64, TextError> {
        self.skip_spaces();
        let start = self.pos;
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            self.bump(c);
        }
        if start == self.pos {
            return Err(self.expected(what));
        }
        let digits = &self.text[start..self.pos];
        digits.parse().map_err(|_| {
            self.err_at(
                start,
                format!("expected {what}, found {digits}, which does not fit 64 bits"),
            )
        })
    }

    /// A tensor type `f32[1,3,224,224]` (`f32[]` for a scalar). Refuses
    /// dimensions and element counts above 2^31-1 and ranks above `MAX_RANK`
    /// here, so that no later stage sees an absurd shape.
    pub fn tensor_type(&mut self) -> Result<TensorType, TextError> {
        self.skip_spaces();
        let start = self.pos;
        let name = self.word();
        let Some(dtype) = DType::from_name(name) else {
            self.pos = start;
            return Err(self.expected("a type such as f32[1,3,224,224]"));
        };
        self.expect("[", "'[' after the element type")?;
        let mut shape = Vec::new();
        let mut elements: u64 = 1;
        if self.eat("]") {
            return Ok(TensorType { dtype, shape });
        }
        loop {
            self.skip_spaces();
            let at = self.pos;
            let d = self.integer("a dimension")?;
            if d > MAX_ELEMENTS {
                return Err(self.err_at(
                    at,
                    format!("expected a dimension of at most {MAX_ELEMENTS}, found {d}"),
                ));
            }
            elements = elements.saturating_mul(d);
            if elements > MAX_ELEMENTS {
                return Err(self.err_at(
                    start,
                    format!(
                        "expected a shape of at most {MAX_ELEMENTS} elements; this one has more"
                    ),
                ));
            }
            if shape.len() == MAX_RANK {
                return Err(self.err_at(at, format!("expected a rank of at most {MAX_RANK}")));
            }
            shape.push(d as usize);
            if self.eat("]") {
                return Ok(TensorType { dtype, shape });
            }
            self.expect(",", "',' or ']' in the shape")?;
        }
    }

    /// A number as JSON: an integer (`u64`, or `i64` if negative) unless it
    /// has `.` or an exponent, then a finite float.
    pub fn number(&mut self) -> Result<Json, TextError> {
        self.skip_spaces();
        let start = self.pos;
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            self.bump(c);
        }
        let text = &self.text[start..self.pos];
        let digits = text.trim_start_matches(['+', '-']);
        if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return Err(self.err_at(
                start,
                format!("expected a number, found '{text}' (non-finite floats are not attributes)"),
            ));
        }
        if !text.contains(['.', 'e', 'E']) {
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Json::Number(u.into()));
            }
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Json::Number(i.into()));
            }
            return Err(self.err_at(
                start,
                format!("expected an integer that fits 64 bits, found '{text}'"),
            ));
        }
        let v: f64 = text
            .parse()
            .map_err(|_| self.err_at(start, format!("expected a number, found '{text}'")))?;
        Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| self.err_at(start, format!("expected a finite number, found '{text}'")))
    }
}
