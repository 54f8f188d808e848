//! Pipeline text: `fold-bn,fuse-residual,dce` or
//! `factorize{mode=fit,width=0.5},dce`, parsed into [`PassSpec`]s, and the
//! typed reading of a pass's options ([`Options`]).
//!
//! Grammar (spaces allowed around every token):
//!
//! ```text
//! pipeline := (entry ("," entry)*)?
//! entry    := name ("{" (option ("," option)*)? "}")?
//! option   := key "=" value
//! name, key := [A-Za-z0-9_.-]+
//! value    := any characters but , { } = and spaces, at least one
//! ```
//!
//! Every error names the column (from 1) where it is.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A pipeline that does not parse, or a pass or option it names that does not exist or does not fit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("pipeline column {column}: {message}")]
pub struct PipelineError {
    /// 1-based character column in the pipeline text.
    pub column: usize,
    pub message: String,
}

impl PipelineError {
    pub fn new(column: usize, message: impl Into<String>) -> PipelineError {
        PipelineError {
            column,
            message: message.into(),
        }
    }
}

/// One `key=value` of a pipeline entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionSpec {
    pub key: String,
    pub value: String,
    pub key_column: usize,
    pub value_column: usize,
}

/// One entry of a pipeline: a pass name and its options as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassSpec {
    pub name: String,
    pub column: usize,
    pub options: Vec<OptionSpec>,
}

impl fmt::Display for PassSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.options.is_empty() {
            let opts: Vec<String> = self
                .options
                .iter()
                .map(|o| format!("{}={}", o.key, o.value))
                .collect();
            write!(f, "{{{}}}", opts.join(","))?;
        }
        Ok(())
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn is_value(c: char) -> bool {
    !matches!(c, ',' | '{' | '}' | '=') && !c.is_whitespace()
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn column(&self) -> usize {
        self.pos + 1
    }

    fn skip_spaces(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_spaces();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn found(&mut self) -> String {
        match self.peek() {
            Some(c) => format!("`{c}`"),
            None => "the end".into(),
        }
    }

    /// A run of characters accepted by `accept`, or an error saying `what` was expected.
    fn run_of(
        &mut self,
        accept: fn(char) -> bool,
        what: &str,
    ) -> Result<(String, usize), PipelineError> {
        self.skip_spaces();
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|&c| accept(c)) {
            self.pos += 1;
        }
        if self.pos == start {
            let found = self.found();
            return Err(PipelineError::new(
                self.column(),
                format!("expected {what}, found {found}"),
            ));
        }
        Ok((self.chars[start..self.pos].iter().collect(), start + 1))
    }
}

/// Parses pipeline text into its entries. Empty (or blank) text is the empty pipeline.
pub fn parse_pipeline(text: &str) -> Result<Vec<PassSpec>, PipelineError> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
    };
    let mut specs = Vec::new();
    if lx.peek().is_none() {
        return Ok(specs);
    }
    loop {
        let (name, column) = lx.run_of(is_word, "a pass name")?;
        let mut options: Vec<OptionSpec> = Vec::new();
        if lx.eat('{') {
            if !lx.eat('}') {
                loop {
                    let (key, key_column) = lx.run_of(is_word, "an option name")?;
                    if let Some(prev) = options.iter().find(|o| o.key == key) {
                        return Err(PipelineError::new(
                            key_column,
                            format!(
                                "option `{key}` of {name} is given twice (first at column {})",
                                prev.key_column
                            ),
                        ));
                    }
                    if !lx.eat('=') {
                        let found = lx.found();
                        return Err(PipelineError::new(
                            lx.column(),
                            format!("expected `=` after `{key}`, found {found}"),
                        ));
                    }
                    let (value, value_column) =
                        lx.run_of(is_value, &format!("a value for `{key}`"))?;
                    options.push(OptionSpec {
                        key,
                        value,
                        key_column,
                        value_column,
                    });
                    if lx.eat('}') {
                        break;
                    }
                    if !lx.eat(',') {
                        let found = lx.found();
                        return Err(PipelineError::new(
                            lx.column(),
                            format!("expected `,` or `}}` in the options of {name}, found {found}"),
                        ));
                    }
                }
            }
        }
        specs.push(PassSpec {
            name,
            column,
            options,
        });
        if lx.peek().is_none() {
            return Ok(specs);
        }
        if !lx.eat(',') {
            let found = lx.found();
            return Err(PipelineError::new(
                lx.column(),
                format!("expected `,` between passes, found {found}"),
            ));
        }
    }
}

/// A value an option can take: parsed from its text, or a sentence saying
/// what was expected.
pub trait OptionValue: Sized {
    fn parse_option(text: &str) -> Result<Self, String>;
}

macro_rules! from_str_option {
    ($($t:ty => $what:literal),*) => {$(
        impl OptionValue for $t {
            fn parse_option(text: &str) -> Result<Self, String> {
                <$t>::from_str(text).map_err(|_| format!("expected {}, found `{text}`", $what))
            }
        }
    )*};
}
from_str_option!(usize => "a non-negative integer", u64 => "a non-negative integer", i64 => "an integer");

impl OptionValue for f64 {
    fn parse_option(text: &str) -> Result<Self, String> {
        match f64::from_str(text) {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("expected a finite number, found `{text}`")),
        }
    }
}

impl OptionValue for bool {
    fn parse_option(text: &str) -> Result<Self, String> {
        match text {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("expected true or false, found `{text}`")),
        }
    }
}

impl OptionValue for String {
    fn parse_option(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
}

/// Picks the value named `text` among `choices`, or says which names are allowed.
pub fn choice<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!("expected one of {}, found `{text}`", names.join(", "))
        })
}

/// The options of one pipeline entry, read by a pass's factory with typed
/// getters. Every option must be asked for: [`Options::finish`] (which the
/// registry calls after the factory) refuses the ones that were not,
/// naming their column and the options the pass knows.
pub struct Options<'a> {
    spec: &'a PassSpec,
    used: Vec<bool>,
    asked: Vec<&'static str>,
}

impl<'a> Options<'a> {
    pub fn new(spec: &'a PassSpec) -> Options<'a> {
        Options {
            spec,
            used: vec![false; spec.options.len()],
            asked: Vec::new(),
        }
    }

    /// The pass name of the entry.
    pub fn pass(&self) -> &str {
        &self.spec.name
    }

    /// The option `key` parsed as `T`, or `None` when it is absent.
    pub fn get<T: OptionValue>(&mut self, key: &'static str) -> Result<Option<T>, PipelineError> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        let Some(i) = self.spec.options.iter().position(|o| o.key == key) else {
            return Ok(None);
        };
        self.used[i] = true;
        let o = &self.spec.options[i];
        T::parse_option(&o.value).map(Some).map_err(|e| {
            PipelineError::new(
                o.value_column,
                format!("option `{key}` of {}: {e}", self.spec.name),
            )
        })
    }

    /// The option `key`, or `default` when it is absent.
    pub fn get_or<T: OptionValue>(
        &mut self,
        key: &'static str,
        default: T,
    ) -> Result<T, PipelineError> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// True when the entry gives option `key`.
    pub fn has(&self, key: &str) -> bool {
        self.spec.options.iter().any(|o| o.key == key)
    }

    /// An error located at option `key` (or at the pass name if it is absent),
    /// for checks that involve several options.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> PipelineError {
        let column = self
            .spec
            .options
            .iter()
            .find(|o| o.key == key)
            .map_or(self.spec.column, |o| o.key_column);
        PipelineError::new(column, format!("{}: {}", self.spec.name, message.into()))
    }

    /// Refuses any option the factory did not ask for.
    pub fn finish(self) -> Result<(), PipelineError> {
        let Some(i) = self.used.iter().position(|u| !u) else {
            return Ok(());
        };
        let o = &self.spec.options[i];
        let known = if self.asked.is_empty() {
            format!("{} takes no options", self.spec.name)
        } else {
            format!("{} knows {}", self.spec.name, self.asked.join(", "))
        };
        Err(PipelineError::new(
            o.key_column,
            format!("unknown option `{}` ({known})", o.key),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_options_with_columns() {
        let specs = parse_pipeline("fold-bn, factorize{mode=fit, width=0.5} ,dce").unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fold-bn", "factorize", "dce"]);
        assert_eq!(specs[1].column, 10);
        assert_eq!(specs[1].options[1].key, "width");
        assert_eq!(specs[1].options[1].value, "0.5");
        assert_eq!(specs[1].options[1].key_column, 30);
        assert_eq!(specs[1].options[1].value_column, 36);
        assert_eq!(specs[1].to_string(), "factorize{mode=fit,width=0.5}");
    }

    #[test]
    fn empty_text_is_the_empty_pipeline_and_empty_braces_are_no_options() {
        assert!(parse_pipeline("  ").unwrap().is_empty());
        let specs = parse_pipeline("cse{}").unwrap();
        assert!(specs[0].options.is_empty());
    }

    #[test]
    fn syntax_errors_name_the_column() {
        let cases = [
            ("fold-bn,,dce", 9, "expected a pass name, found `,`"),
            ("dce;cse", 4, "expected `,` between passes, found `;`"),
            (
                "factorize{mode}",
                15,
                "expected `=` after `mode`, found `}`",
            ),
            (
                "factorize{mode=}",
                16,
                "expected a value for `mode`, found `}`",
            ),
            (
                "factorize{mode=fit",
                19,
                "expected `,` or `}` in the options of factorize, found the end",
            ),
            (
                "factorize{mode=fit,mode=exact}",
                20,
                "option `mode` of factorize is given twice (first at column 11)",
            ),
            ("dce,", 5, "expected a pass name, found the end"),
        ];
        for (text, column, message) in cases {
            let e = parse_pipeline(text).unwrap_err();
            assert_eq!((e.column, e.message.as_str()), (column, message), "{text}");
        }
    }

    #[test]
    fn typed_options_and_unknown_ones() {
        let specs = parse_pipeline("p{width=0.5,n=3,on=true,widht=2}").unwrap();
        let mut o = Options::new(&specs[0]);
        assert_eq!(o.get::<f64>("width").unwrap(), Some(0.5));
        assert_eq!(o.get::<usize>("n").unwrap(), Some(3));
        assert_eq!(o.get_or("on", false).unwrap(), true);
        assert_eq!(o.get::<usize>("absent").unwrap(), None);
        let e = o.finish().unwrap_err();
        assert_eq!(e.column, 25);
        assert_eq!(
            e.message,
            "unknown option `widht` (p knows width, n, on, absent)"
        );

        let specs = parse_pipeline("dce{x=1}").unwrap();
        let e = Options::new(&specs[0]).finish().unwrap_err();
        assert_eq!(e.message, "unknown option `x` (dce takes no options)");
    }

    #[test]
    fn bad_values_name_the_value_column() {
        let specs = parse_pipeline("p{n=-1,f=nan,b=maybe}").unwrap();
        let mut o = Options::new(&specs[0]);
        let e = o.get::<usize>("n").unwrap_err();
        assert_eq!(
            (e.column, e.message.as_str()),
            (
                5,
                "option `n` of p: expected a non-negative integer, found `-1`"
            )
        );
        assert!(o
            .get::<f64>("f")
            .unwrap_err()
            .message
            .contains("finite number"));
        assert!(o
            .get::<bool>("b")
            .unwrap_err()
            .message
            .contains("true or false"));
        assert_eq!(choice("fit", &[("fit", 1), ("exact", 2)]), Ok(1));
        assert_eq!(
            choice("fat", &[("fit", 1), ("exact", 2)]),
            Err("expected one of fit, exact, found `fat`".into())
        );
    }
}
