//! The registry: passes by name, each made by a factory from its options.
//! [`Registry::builtin`] holds this crate's passes; outside code adds its own
//! with [`Registry::register`].

use crate::pass::Pass;
use crate::pipeline::{parse_pipeline, Options, PassSpec, PipelineError};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// Makes a pass from the options of its pipeline entry. It reads every
/// option it knows with [`Options::get`]; the registry then refuses the rest.
pub type Factory = Box<dyn Fn(&mut Options) -> Result<Box<dyn Pass>, PipelineError> + Send + Sync>;

/// A registration the registry refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error("a pass named `{0}` is already registered")]
    Duplicate(String),
    #[error("`{0}` is not a valid pass name (lowercase letters, digits and `-`, starting with a letter)")]
    BadName(String),
}

/// One option of a registered pass, for listings (`kiln passes`) and docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionDoc {
    pub name: String,
    /// The value used when the option is absent, as pipeline text; empty
    /// when absence means "not set" (e.g. no prefix filter).
    pub default: String,
    /// One line: what it does and the values it takes.
    pub doc: String,
}

impl OptionDoc {
    pub fn new(name: &str, default: &str, doc: &str) -> OptionDoc {
        OptionDoc {
            name: name.into(),
            default: default.into(),
            doc: doc.into(),
        }
    }
}

impl fmt::Display for OptionDoc {
    /// `mode=structural  structural|fit|exact: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = if self.default.is_empty() {
            self.name.clone()
        } else {
            format!("{}={}", self.name, self.default)
        };
        write!(f, "{head:<20} {}", self.doc)
    }
}

struct Entry {
    summary: String,
    options: Vec<OptionDoc>,
    factory: Factory,
}

/// Passes by name.
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The passes of this crate: `dce`, `cse`, `const-fold`, `canonicalize`,
    /// `fold-bn`, `factorize`, `fuse-residual`.
    pub fn builtin() -> Registry {
        let mut r = Registry::new();
        crate::passes::register_builtin(&mut r);
        r
    }

    /// Adds a pass. `name` is what pipelines write; `summary` is one line for
    /// listings. Refuses a name already taken or not of the form `[a-z][a-z0-9-]*`.
    /// The factory reads the entry's options with [`Options::get`]; document
    /// them with [`Registry::register_with_options`].
    pub fn register<F>(
        &mut self,
        name: &str,
        summary: &str,
        factory: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn(&mut Options) -> Result<Box<dyn Pass>, PipelineError> + Send + Sync + 'static,
    {
        self.register_with_options(name, summary, Vec::new(), factory)
    }

    /// [`Registry::register`] with the documentation of the options the
    /// factory reads, for [`Registry::options`] and [`Registry::help`].
    pub fn register_with_options<F>(
        &mut self,
        name: &str,
        summary: &str,
        options: Vec<OptionDoc>,
        factory: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn(&mut Options) -> Result<Box<dyn Pass>, PipelineError> + Send + Sync + 'static,
    {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(RegistryError::BadName(name.into()));
        }
        if self.entries.contains_key(name) {
            return Err(RegistryError::Duplicate(name.into()));
        }
        self.entries.insert(
            name.into(),
            Entry {
                summary: summary.into(),
                options,
                factory: Box::new(factory),
            },
        );
        Ok(())
    }

    /// Adds a pass that takes no options, made by `make`.
    pub fn register_simple<F>(
        &mut self,
        name: &str,
        summary: &str,
        make: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn() -> Box<dyn Pass> + Send + Sync + 'static,
    {
        self.register(name, summary, move |_| Ok(make()))
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// The one-line summary of pass `name`.
    pub fn summary(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|e| e.summary.as_str())
    }

    /// The documented options of pass `name` (empty for an unknown pass or
    /// one that takes none).
    pub fn options(&self, name: &str) -> &[OptionDoc] {
        self.entries.get(name).map_or(&[], |e| e.options.as_slice())
    }

    /// The listing `kiln passes` prints: every pass with its summary, then
    /// its options indented, one a line.
    pub fn help(&self) -> String {
        let width = self.names().map(str::len).max().unwrap_or(0);
        let mut out = String::new();
        for (name, e) in &self.entries {
            out.push_str(&format!("{name:<width$}  {}\n", e.summary));
            for o in &e.options {
                out.push_str(&format!("{:<width$}    {o}\n", ""));
            }
        }
        out
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Makes the pass of one pipeline entry.
    pub fn create(&self, spec: &PassSpec) -> Result<Box<dyn Pass>, PipelineError> {
        let Some(entry) = self.entries.get(&spec.name) else {
            return Err(PipelineError::new(spec.column, self.unknown(&spec.name)));
        };
        let mut options = Options::new(spec);
        let pass = (entry.factory)(&mut options)?;
        options.finish()?;
        if pass.name() != spec.name {
            return Err(PipelineError::new(
                spec.column,
                format!(
                    "the factory registered as `{}` made a pass named `{}`",
                    spec.name,
                    pass.name()
                ),
            ));
        }
        Ok(pass)
    }

    /// Parses pipeline text and makes its passes, in order.
    pub fn parse(&self, pipeline: &str) -> Result<Vec<Box<dyn Pass>>, PipelineError> {
        parse_pipeline(pipeline)?
            .iter()
            .map(|s| self.create(s))
            .collect()
    }

    fn unknown(&self, name: &str) -> String {
        let known: Vec<&str> = self.names().collect();
        let close = known
            .iter()
            .filter(|k| kiln_ir::suggest::edit_distance(k, name) <= 2)
            .min_by_key(|k| kiln_ir::suggest::edit_distance(k, name));
        let hint = close
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        format!("unknown pass `{name}` ({hint}known: {})", known.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::{Context, PassError, Report};
    use kiln_ir::Graph;

    struct Named(&'static str);
    impl Pass for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn run(&self, _: &mut Graph, _: &mut Context) -> Result<Report, PassError> {
            Ok(Report::new())
        }
    }

    #[test]
    fn builtin_passes_are_all_there() {
        let r = Registry::builtin();
        let names: Vec<&str> = r.names().collect();
        assert_eq!(
            names,
            [
                "canonicalize",
                "const-fold",
                "cse",
                "dce",
                "factorize",
                "fold-bn",
                "fuse-residual"
            ]
        );
        assert!(r.summary("fold-bn").unwrap().contains("BatchNorm"));
    }

    #[test]
    fn unknown_passes_get_a_suggestion_and_the_column() {
        let e = Registry::builtin().parse("dce, fold-nb").err().unwrap();
        assert_eq!(e.column, 6);
        assert!(
            e.message.starts_with(
                "unknown pass `fold-nb` (did you mean `fold-bn`? known: canonicalize,"
            ),
            "{e}"
        );
    }

    #[test]
    fn registration_refuses_duplicates_and_bad_names() {
        let mut r = Registry::builtin();
        assert_eq!(
            r.register_simple("dce", "again", || Box::new(Named("dce"))),
            Err(RegistryError::Duplicate("dce".into()))
        );
        assert_eq!(
            r.register_simple("My_Pass", "x", || Box::new(Named("My_Pass"))),
            Err(RegistryError::BadName("My_Pass".into()))
        );
        r.register_simple("my-pass", "mine", || Box::new(Named("my-pass")))
            .unwrap();
        assert_eq!(r.parse("my-pass,dce").unwrap().len(), 2);
        let e = r.parse("my-pass{level=2}").err().unwrap();
        assert_eq!(
            e.message,
            "unknown option `level` (my-pass takes no options)"
        );
    }

    #[test]
    fn a_factory_must_name_its_pass_as_registered() {
        let mut r = Registry::new();
        r.register_simple("liar", "x", || Box::new(Named("other")))
            .unwrap();
        let e = r.parse("liar").err().unwrap();
        assert!(e.message.contains("made a pass named `other`"), "{e}");
    }

    #[test]
    fn documented_options_are_the_ones_the_factories_read() {
        let r = Registry::builtin();
        for name in r.names() {
            // Every documented default parses, as written, as that pass's option.
            let set: Vec<String> = r
                .options(name)
                .iter()
                .filter(|o| !o.default.is_empty())
                .map(|o| format!("{}={}", o.name, o.default))
                .collect();
            let text = if set.is_empty() {
                name.to_string()
            } else {
                format!("{name}{{{}}}", set.join(","))
            };
            let made = r.parse(&text);
            assert!(made.is_ok(), "{text}: {}", made.err().unwrap());
            // And an unknown option is refused with the list of the documented ones.
            let e = r.parse(&format!("{name}{{zzz=1}}")).err().unwrap();
            let read: Vec<&str> = match e.message.split_once(" knows ") {
                Some((_, list)) => list.trim_end_matches(')').split(", ").collect(),
                None => Vec::new(),
            };
            let documented: Vec<&str> = r.options(name).iter().map(|o| o.name.as_str()).collect();
            assert_eq!(
                read, documented,
                "{name}: the options read (from `{e}`) and documented differ"
            );
        }
        let help = r.help();
        assert!(
            help.contains("factorize") && help.contains("mode=structural"),
            "{help}"
        );
        assert_eq!(
            help.lines().filter(|l| !l.starts_with(' ')).count(),
            r.names().count()
        );
    }

    #[test]
    fn options_of_outside_passes_are_listed() {
        let mut r = Registry::new();
        let docs = vec![OptionDoc::new("level", "2", "how hard to try, 0 to 3")];
        r.register_with_options("tidy", "tidies", docs, |o| {
            let _: usize = o.get_or("level", 2)?;
            Ok(Box::new(Named("tidy")))
        })
        .unwrap();
        assert_eq!(
            r.options("tidy")[0].to_string(),
            format!("{:<20} how hard to try, 0 to 3", "level=2")
        );
        assert!(r.options("nope").is_empty());
        assert_eq!(
            r.help(),
            format!(
                "tidy  tidies\n        {:<20} how hard to try, 0 to 3\n",
                "level=2"
            )
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(kiln_ir::suggest::edit_distance("fold-bn", "fold-nb"), 2);
        assert_eq!(kiln_ir::suggest::edit_distance("dce", "dce"), 0);
        assert_eq!(kiln_ir::suggest::edit_distance("", "cse"), 3);
    }
}
