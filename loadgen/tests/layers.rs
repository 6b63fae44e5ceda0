//! The layering of `loadgen/src`, checked from the code itself (see the crate docs in `lib.rs`):
//!
//! - imports run only downwards: cli → commands → engine → report → scenario / error;
//! - no command imports another command;
//! - no import circle among the files;
//! - only `cli/render.rs` prints.
//!
//! Imports are read from `use` statements (braces expanded) and from `crate::` / `super::` paths in
//! code; comments are ignored, so a doc link to a higher layer is not an import. `mod` declarations
//! are not imports. A broken rule fails with the file, the path and the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path of a source file: `engine/workload.rs` → [engine, workload], `engine/capacity/mod.rs`
/// → [engine, capacity], `lib.rs` → [].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// Code without comments (a doc link is not an import).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, self}}` → [a::b, a::c::d, a::c].
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        return vec![path.to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .flat_map(expand)
        .map(|sub| {
            if sub == "self" {
                prefix.to_string()
            } else {
                format!("{prefix}::{sub}")
            }
        })
        .collect()
}

/// Every `crate::`, `super::` or `self::` path the code names.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` statements (a line that starts with `use`, `pub use` or `pub(crate) use`; text in a
    // string that happens to contain "use " is not one), braces expanded.
    let lines: Vec<&str> = code.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let rest_of = ["use ", "pub use ", "pub(crate) use "]
            .iter()
            .find_map(|p| line.strip_prefix(p));
        i += 1;
        let Some(first) = rest_of else { continue };
        let mut statement = first.to_string();
        while !statement.contains(';') && i < lines.len() {
            statement.push(' ');
            statement.push_str(lines[i].trim());
            i += 1;
        }
        if let Some(end) = statement.find(';') {
            out.extend(expand(&statement[..end]));
        }
    }
    // Paths in code.
    for start in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(start) {
            let from = at + i;
            let path: String = code[from..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_string());
            at = from + start.len();
        }
    }
    out
}

/// The file a path names, relative to `module` (the longest prefix that is a module file).
fn resolve(
    module: &[String],
    path: &str,
    files: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segs.first() {
        Some(&"crate") => {
            segs.remove(0);
            Vec::new()
        }
        Some(&"super") | Some(&"self") => {
            let mut m = module.to_vec();
            while let Some(&s) = segs.first() {
                match s {
                    "super" => {
                        m.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                segs.remove(0);
            }
            m
        }
        _ => return None,
    };
    let mut best = files.contains_key(&base).then(|| base.clone());
    for s in segs {
        base.push(s.to_string());
        if files.contains_key(&base) {
            best = Some(base.clone());
        }
    }
    best
}

fn layer(module: &[String]) -> (usize, &str) {
    match module.first().map(String::as_str) {
        Some("cli") => (4, "cli"),
        Some("commands") => (3, "commands"),
        Some("engine") => (2, "engine"),
        Some("report") => (1, "report"),
        Some("scenario") | Some("error") => (0, "scenario/error"),
        _ => (5, "root"),
    }
}

#[test]
fn imports_run_downwards_without_circles_and_only_the_renderer_prints() {
    let root = src();
    let mut files: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
    for e in WalkDir::new(&root).into_iter().filter_map(Result::ok) {
        if e.path().extension().is_some_and(|x| x == "rs") {
            let rel = e.path().strip_prefix(&root).unwrap().to_path_buf();
            files.insert(module_of(&rel), rel);
        }
    }
    assert!(files.len() > 40, "found only {} files", files.len());
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut broken = Vec::new();
    for (module, rel) in &files {
        let text = std::fs::read_to_string(root.join(rel)).unwrap();
        let code = code(&text);
        let printing = ["print!(", "println!(", "eprintln!(", "eprint!("]
            .iter()
            .any(|m| code.contains(m));
        if printing && rel != Path::new("cli/render.rs") {
            broken.push(format!(
                "{}: prints (only cli/render.rs may)",
                rel.display()
            ));
        }
        for p in paths(&code) {
            let Some(target) = resolve(module, &p, &files) else {
                continue;
            };
            if &target == module || target.is_empty() {
                continue;
            }
            let ((from, from_name), (to, to_name)) = (layer(module), layer(&target));
            if from < 5 && to > from {
                broken.push(format!(
                    "{}: `{p}` runs up from {from_name} to {to_name}",
                    rel.display()
                ));
            }
            if from_name == "commands"
                && to_name == "commands"
                && module.get(1) != target.get(1)
                && target.len() > 1
            {
                broken.push(format!(
                    "{}: `{p}`: a command imports another command",
                    rel.display()
                ));
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    // Circles: depth-first search for a back edge.
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        circles: &mut Vec<String>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let names: Vec<String> = stack[at..].iter().map(|s| s.join("::")).collect();
                    circles.push(format!(
                        "circle: {} -> {}",
                        names.join(" -> "),
                        m.join("::")
                    ));
                }
                Some(_) => {}
                None => visit(m, edges, state, stack, circles),
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut circles = Vec::new();
    for n in files.keys() {
        if !state.contains_key(n) {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut circles);
        }
    }
    broken.extend(circles);
    let per_layer = files.keys().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(layer(k).1).or_insert(0) += 1;
        m
    });
    eprintln!("files per layer: {per_layer:?}");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_a_broken_rule() {
    // The parser must find what the rules are about, or the test above proves nothing.
    let p = paths(&code(
        "use crate::engine::{attack, capacity::{self, Limit}};\n// use crate::cli::x;\nfn f() { crate::report::fmt::us(1); }",
    ));
    assert!(p.contains(&"crate::engine::attack".to_string()), "{p:?}");
    assert!(p.contains(&"crate::engine::capacity".to_string()), "{p:?}");
    assert!(p.contains(&"crate::report::fmt::us".to_string()), "{p:?}");
    assert!(
        !p.iter().any(|x| x.contains("cli")),
        "comments are not imports: {p:?}"
    );
    let files: BTreeMap<Vec<String>, PathBuf> = [
        (
            vec!["engine".to_string(), "attack".to_string()],
            PathBuf::from("engine/attack.rs"),
        ),
        (vec!["cli".to_string()], PathBuf::from("cli/mod.rs")),
    ]
    .into();
    let target = resolve(
        &["engine".to_string(), "attack".to_string()],
        "crate::cli::values::x",
        &files,
    )
    .unwrap();
    assert!(
        layer(&target).0 > layer(&["engine".to_string()]).0,
        "an upward import is seen"
    );
}
