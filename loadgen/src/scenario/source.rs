//! Reading a scenario: file text → `--set` overrides → typed [`Scenario`] → validation, with every
//! error pinned to where the bad value came from.
//!
//! Why two parsers: `toml` (serde) gives typed structs and the span of a value it cannot
//! deserialize, but forgets spans once parsing is done; semantic checks (a zero weight, a
//! percentile of 101) happen after that. `toml_edit` keeps the span of every key and value, so
//! a semantic error's TOML path is looked up there to get its line and column.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::schema::{Override, Scenario};
use super::validate::Invalid;

/// One problem with a scenario, printed as `location: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// `file:line:col`, `file`, or `--set key`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// `line:col` (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn at(path: &Path, text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => {
            let (l, c) = line_col(text, s.start);
            format!("{}:{l}:{c}", path.display())
        }
        None => path.display().to_string(),
    }
}

/// serde's "invalid type: string \"…\", expected …" quotes the value; a value in the wrong place may
/// be a secret pasted there (a password where a number belongs), so the type is named instead.
fn without_value(message: &str) -> String {
    const QUOTED: &str = "invalid type: string \"";
    match message.strip_prefix(QUOTED) {
        Some(rest) => match rest.rfind("\", expected ") {
            Some(end) => format!("invalid type: a string{}", &rest[end + 1..]),
            None => "invalid type: a string".into(),
        },
        None => message.to_string(),
    }
}

/// The dotted path of the value whose span holds `offset` (`load.users`, `slo.latency.0.max`).
fn field_at(text: &str, offset: usize) -> Option<String> {
    use toml_edit::{Item, Table, Value};
    let holds = |span: Option<std::ops::Range<usize>>| span.is_some_and(|s| s.contains(&offset));
    // `v` holds the offset: descend into it if it is a container.
    fn value(v: &Value, offset: usize, path: &mut Vec<String>) {
        let inner: Vec<(String, &Value)> = match v {
            Value::InlineTable(t) => t.iter().map(|(k, v)| (k.to_string(), v)).collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
            _ => return,
        };
        if let Some((k, v)) = inner
            .into_iter()
            .find(|(_, v)| v.span().is_some_and(|s| s.contains(&offset)))
        {
            path.push(k);
            value(v, offset, path);
        }
    }
    fn table(
        t: &Table,
        offset: usize,
        path: &mut Vec<String>,
        holds: &dyn Fn(Option<std::ops::Range<usize>>) -> bool,
    ) -> bool {
        for (k, item) in t.iter() {
            path.push(k.to_string());
            let found = match item {
                Item::Value(v) if holds(v.span()) => {
                    value(v, offset, path);
                    true
                }
                Item::Table(t) => table(t, offset, path, holds),
                Item::ArrayOfTables(a) => a.iter().enumerate().any(|(i, t)| {
                    path.push(i.to_string());
                    let found = table(t, offset, path, holds);
                    if !found {
                        path.pop();
                    }
                    found
                }),
                _ => false,
            };
            if found {
                return true;
            }
            path.pop();
        }
        false
    }
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut path = Vec::new();
    table(doc.as_table(), offset, &mut path, &holds).then(|| path.join("."))
}

fn from_toml(path: &Path, text: &str, e: toml::de::Error) -> ScenarioError {
    let mut message = without_value(&e.message().trim_end().replace('\n', " "));
    // A value of the wrong type: name the field it belongs to.
    if message.starts_with("invalid type")
        && let Some(field) = e.span().and_then(|s| field_at(text, s.start))
    {
        message = format!("`{field}` {message}");
    }
    if message.is_empty() {
        // toml has no words for some syntax errors (found by fuzzing: a control character in a
        // comment); name the character instead of printing `file:line:col: ` and nothing.
        let found = e.span().and_then(|s| text.get(s.start..)?.chars().next());
        message = match found {
            Some('\n' | '\r') => "unexpected end of line: this is not TOML".into(),
            Some(c) if c.is_control() => format!(
                "control character U+{:04X} is not allowed here (TOML allows only tab, and escapes in strings)",
                c as u32
            ),
            Some(c) => format!("unexpected `{c}`: this is not TOML"),
            None => "unexpected end of file: this is not TOML".into(),
        };
    }
    ScenarioError {
        location: at(path, text, e.span()),
        message,
    }
}

/// Loads, overrides and validates the scenario at `path`. `sets` are `key=value` pairs whose key
/// is a dotted TOML path (`load.users`, `mix.login`, `slo.latency.0.max`) and whose value is TOML
/// (`10`, `"5s"`) or, when it does not parse as TOML, a plain string (`5s`, `zipf(1.2)`).
pub fn load(path: &Path, sets: &[String]) -> Result<Scenario, Vec<ScenarioError>> {
    load_with(path, sets, &[])
}

/// [`load`], then the typed `overrides` (flags such as `--users`), each applied to its field and
/// blamed on its flag if the result is invalid.
pub fn load_with(
    path: &Path,
    sets: &[String],
    overrides: &[Override],
) -> Result<Scenario, Vec<ScenarioError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ScenarioError {
            location: path.display().to_string(),
            message: format!("cannot read the scenario file: {e}"),
        }]
    })?;
    parse_with(path, &text, sets, overrides)
}

/// [`load`] without the file system: `text` is the scenario, `path` only names it (in error
/// locations, and as the default `name`). The fuzz targets and tests call this directly.
pub fn parse(path: &Path, text: &str, sets: &[String]) -> Result<Scenario, Vec<ScenarioError>> {
    parse_with(path, text, sets, &[])
}

/// [`parse`] with typed overrides applied last (see [`load_with`]).
pub fn parse_with(
    path: &Path,
    text: &str,
    sets: &[String],
    overrides: &[Override],
) -> Result<Scenario, Vec<ScenarioError>> {
    let mut scenario = if sets.is_empty() {
        toml::from_str::<Scenario>(text).map_err(|e| vec![from_toml(path, text, e)])?
    } else {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| vec![from_toml(path, text, e)])?;
        for set in sets {
            apply_set(&mut table, set).map_err(|message| {
                vec![ScenarioError {
                    location: format!("--set {set}"),
                    message,
                }]
            })?;
        }
        match Scenario::deserialize(toml::Value::Table(table)) {
            Ok(s) => s,
            // If the file alone is already wrong, point into the file; otherwise an override is.
            Err(e) => match toml::from_str::<Scenario>(text) {
                Err(file_err) => return Err(vec![from_toml(path, text, file_err)]),
                Ok(_) => {
                    return Err(vec![ScenarioError {
                        location: "--set".into(),
                        message: without_value(&e.message().trim_end().replace('\n', " ")),
                    }]);
                }
            },
        }
    };
    if scenario.name.is_none() {
        scenario.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    for o in overrides {
        o.apply(&mut scenario);
    }
    let problems = scenario.validate();
    if problems.is_empty() {
        return Ok(scenario);
    }
    let doc = toml_edit::ImDocument::parse(text).ok();
    Err(problems
        .into_iter()
        .map(|p| locate(path, text, doc.as_ref(), sets, overrides, p))
        .collect())
}

fn set_key(set: &str) -> &str {
    set.split_once('=').map_or(set, |(k, _)| k.trim())
}

fn locate(
    path: &Path,
    text: &str,
    doc: Option<&toml_edit::ImDocument<&str>>,
    sets: &[String],
    overrides: &[Override],
    p: Invalid,
) -> ScenarioError {
    let dotted = p.path.join(".");
    // A flag set this value last: the flag is to blame.
    if let Some(o) = overrides.iter().rev().find(|o| o.path() == dotted) {
        return ScenarioError {
            location: o.flag().to_string(),
            message: format!("`{dotted}` {}", p.message),
        };
    }
    // The last --set that touched this value (or a table containing it) is to blame.
    if let Some(set) = sets.iter().rev().find(|s| {
        let k = set_key(s);
        k == dotted || k.starts_with(&format!("{dotted}.")) || dotted.starts_with(&format!("{k}."))
    }) {
        return ScenarioError {
            location: format!("--set {}", set_key(set)),
            message: format!("`{dotted}` {}", p.message),
        };
    }
    let mut span = None;
    if let Some(doc) = doc {
        let mut item: &toml_edit::Item = doc.as_item();
        for seg in &p.path {
            let next = match seg.parse::<usize>() {
                Ok(i) => item.get(i),
                Err(_) => item.get(seg.as_str()),
            };
            match next {
                Some(n) => {
                    item = n;
                    span = n.span().or(span);
                }
                None => break,
            }
        }
        // A table header's span, when the value itself has none (e.g. an omitted key).
        if span.is_none()
            && let Some((k, _)) = p.path.first().and_then(|k| doc.get_key_value(k))
        {
            span = k.span();
        }
    }
    ScenarioError {
        location: at(path, text, span),
        message: format!("`{dotted}` {}", p.message),
    }
}

/// Applies one `key=value` to the table, creating intermediate tables as needed.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<(), String> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| "expected key=value, e.g. --set load.users=100".to_string())?;
    let key = key.trim();
    let segs: Vec<&str> = key.split('.').collect();
    if key.is_empty() || segs.iter().any(|s| s.is_empty()) {
        return Err("expected a dotted key such as load.users or mix.login".into());
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &segs, value, key);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

fn set_path(
    at: &mut toml::Value,
    segs: &[&str],
    value: toml::Value,
    key: &str,
) -> Result<(), String> {
    let Some((seg, rest)) = segs.split_first() else {
        *at = value;
        return Ok(());
    };
    let next = match at {
        toml::Value::Table(t) => t
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new())),
        toml::Value::Array(a) => {
            let len = a.len();
            let idx: usize = seg
                .parse()
                .map_err(|_| format!("`{key}`: `{seg}` should be a list index, e.g. 0"))?;
            a.get_mut(idx).ok_or_else(|| {
                format!("`{key}`: the list has {len} entries, index {idx} is out of range")
            })?
        }
        _ => return Err(format!("`{key}`: `{seg}` is inside a value, not a table")),
    };
    set_path(next, rest, value, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    const OK: &str = "[load]\nusers = 2\nduration = \"2s\"\n\n[mix]\npage_view = 1\n";

    #[test]
    fn a_minimal_scenario_loads_with_defaults() {
        let (_d, p) = write(OK);
        let s = load(&p, &[]).unwrap();
        assert_eq!(s.name.as_deref(), Some("s"));
        assert_eq!(s.keyspace.users, 10_000);
        assert_eq!(s.mix.total(), 1);
    }

    #[test]
    fn unknown_keys_and_wrong_types_point_at_the_line() {
        let (_d, p) = write("[load]\nusers = 2\nduration = \"2s\"\nuser = 3\n[mix]\nlogin = 1\n");
        let e = load(&p, &[]).unwrap_err();
        assert!(e[0].location.ends_with("s.toml:4:1"), "{}", e[0]);
        assert!(e[0].message.contains("unknown field `user`"), "{}", e[0]);
        assert!(e[0].message.contains("`users`"), "{}", e[0]);

        let (_d, p) = write("[load]\nusers = \"two\"\nduration = \"2s\"\n[mix]\nlogin = 1\n");
        let e = load(&p, &[]).unwrap_err();
        assert!(e[0].location.ends_with(":2:9"), "{}", e[0]);
        assert!(e[0].message.contains("invalid type"), "{}", e[0]);
        // The field is named; the value (which could be a secret pasted in the wrong place) is not.
        assert!(e[0].message.starts_with("`load.users` "), "{}", e[0]);
        assert!(!e[0].message.contains("two"), "{}", e[0]);
        let (_d, p) = write(&format!(
            "{OK}\n[[slo.latency]]\nop = \"all\"\npercentile = \"hunter2\"\nmax = \"5ms\"\n"
        ));
        let e = load(&p, &[]).unwrap_err();
        assert!(
            e[0].message
                .starts_with("`slo.latency.0.percentile` invalid type: a string"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn semantic_errors_point_at_the_value() {
        let text = "[load]\nusers = 0\nrate = 100.0\nduration = \"0s\"\n[mix]\nlogin = 0\n\n[[slo.latency]]\nop = \"login\"\npercentile = 101\nmax = \"1ms\"\n";
        let (_d, p) = write(text);
        let e = load(&p, &[]).unwrap_err();
        let all: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        let find = |needle: &str| {
            all.iter()
                .find(|m| m.contains(needle))
                .cloned()
                .unwrap_or_else(|| panic!("{needle} in {all:?}"))
        };
        assert!(find("load.users").contains(":2:9"));
        assert!(find("load.users").contains("target rate needs at least one user"));
        assert!(find("load.duration").contains(":4:12"));
        assert!(find("`mix` all weights are 0").contains(":5:1"));
        assert!(find("percentile").contains(":10:14"));
        assert!(find("percentile").contains("outside 0–100"));
    }

    #[test]
    fn sets_override_and_are_blamed_for_their_errors() {
        let (_d, p) = write(OK);
        let s = load(
            &p,
            &[
                "load.users=7".into(),
                "keyspace.distribution=zipf(1.2)".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.load.users, 7);
        assert_eq!(s.keyspace.distribution.to_string(), "zipf(1.2)");
        let e = load(&p, &["load.users=0".into()]).unwrap_err();
        assert_eq!(e[0].location, "--set load.users");
        let e = load(&p, &["load.users=many".into()]).unwrap_err();
        assert_eq!(e[0].location, "--set");
        assert!(e[0].message.contains("invalid type"), "{}", e[0]);
        let e = load(&p, &["nonsense".into()]).unwrap_err();
        assert!(e[0].message.contains("key=value"));
        let e = load(&p, &["load.users.x=1".into()]).unwrap_err();
        assert!(e[0].message.contains("not a table"), "{}", e[0]);
    }

    #[test]
    fn sets_reach_into_lists_of_tables() {
        let (_d, p) = write(&format!(
            "{OK}\n[[slo.latency]]\nop = \"all\"\npercentile = 99\nmax = \"5ms\"\n"
        ));
        let s = load(&p, &["slo.latency.0.max=\"7ms\"".into()]).unwrap();
        assert_eq!(s.slo.latency[0].max.to_string(), "7ms");
    }
}
