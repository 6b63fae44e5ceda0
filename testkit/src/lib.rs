//! # testkit — test support for the workspace, never shipped
//!
//! The fuzz targets' properties are written once, here, and checked twice: by the cargo-fuzz
//! targets in `fuzz/` (nightly, libFuzzer) and by stable-Rust tests in `cargo test --workspace`
//! (`loadgen/tests/scenario_fuzz.rs`, `chaos/tests/experiment_fuzz.rs`), which depend on this crate
//! as a dev-dependency instead of `#[path]`-including files across crates.
//!
//! - [`scenario`]: the properties of `loadgen::scenario::parse`;
//! - [`experiment`]: the properties of `chaos::Experiment::parse`;
//! - this module: the plumbing for the stable tests — running a property over a proptest
//!   strategy, reading seed files, and random edits of a text (what libFuzzer's mutator does to
//!   the corpus, done by proptest so `cargo test --workspace` needs no nightly).

pub mod experiment;
pub mod scenario;

use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per property: `default`, or `PROPTEST_CASES` for a longer run.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Checks `property` on `cases(default_cases)` inputs from `strategy`; panics with the shrunk
/// input and the violated property. Returns how many inputs the parser accepted (`Ok(true)`), so a
/// test can show that its accepting paths (the round trips) were exercised, not only its errors.
pub fn run<T: Debug>(
    default_cases: u32,
    strategy: impl Strategy<Value = T>,
    property: impl Fn(&T) -> Result<bool, String>,
) -> u32 {
    let config = Config {
        cases: cases(default_cases),
        failure_persistence: None,
        ..Config::default()
    };
    let accepted = AtomicU32::new(0);
    let result = TestRunner::new(config).run(&strategy, |input| match property(&input) {
        Ok(true) => {
            accepted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("{e}\n--- input: {input:?}"))),
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    accepted.into_inner()
}

/// [`run`], and at least one input in 20 must have been accepted: the accepting path (the round
/// trips) ran, not only the errors.
pub fn run_accepting<T: Debug>(
    default_cases: u32,
    strategy: impl Strategy<Value = T>,
    property: impl Fn(&T) -> Result<bool, String>,
) {
    let accepted = run(default_cases, strategy, property);
    let cases = cases(default_cases);
    assert!(
        accepted * 20 >= cases,
        "only {accepted} of {cases} inputs were accepted"
    );
}

/// `(path, text)` of every file in `dir`, sorted by path; bytes that are not UTF-8 are replaced,
/// as the fuzz targets do.
pub fn read_dir(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            (p.display().to_string(), text)
        })
        .collect();
    files.sort();
    files
}

/// The workspace root (the includers are one directory below it).
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Checks `property` on every file of the seed corpus `fuzz/corpus/<target>/` (at least 20: the
/// shipped files, malformed seeds, and inputs the fuzzer found), so `cargo test` replays them all.
pub fn check_corpus(target: &str, property: impl Fn(&str) -> Result<bool, String>) {
    let corpus = read_dir(&root().join("fuzz/corpus").join(target));
    assert!(
        corpus.len() >= 20,
        "expected the {target} seed corpus, found {}",
        corpus.len()
    );
    let failures: Vec<String> = corpus
        .iter()
        .filter_map(|(name, input)| property(input).err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One edit: where (an index into the text's character boundaries), what (replace, insert,
/// delete, duplicate the line) and with which character.
pub type Edit = (Index, u8, char);

/// Applies one edit. Edits stay on character boundaries: the parsers take `&str`.
pub fn apply(text: &mut String, (at, kind, with): Edit) {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let i = bounds[at.index(bounds.len())];
    let next = bounds.iter().copied().find(|&b| b > i).unwrap_or(i);
    match kind % 4 {
        0 => text.replace_range(i..next, &with.to_string()),
        1 => text.insert(i, with),
        2 => text.replace_range(i..next, ""),
        _ => {
            let start = text[..i].rfind('\n').map_or(0, |n| n + 1);
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
            let line = text[start..end].to_string();
            text.insert_str(end, &line);
        }
    }
}

/// One of `seeds` with 1 to 7 random edits, mostly with characters that matter to TOML and to
/// the values' own grammars (durations, ranges, distributions).
pub fn edited(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let with = prop_oneof![
        4 => proptest::sample::select(
            "[]{}=\"'.,#\n \\0123456789-+_:eEsmhnaiz()".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ];
    let edits = proptest::collection::vec((any::<Index>(), any::<u8>(), with), 1..8);
    (proptest::sample::select(seeds), edits).prop_map(|(seed, edits)| {
        let mut text = seed;
        for e in edits {
            apply(&mut text, e);
        }
        text
    })
}

// TOML values for the schema-shaped generators: mostly right, often wrong in the ways people
// and programs get them wrong.

/// A duration value: right (`"10s"`, `"1h 30m"`) or wrong (no unit, negative, huge, not text).
pub fn duration() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (0u64..100_000, prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h"), Just("ns")])
            .prop_map(|(n, u)| format!("\"{n}{u}\"")),
        1 => Just("\"1h 30m 5s 20ms\"".to_string()),
        1 => Just("\"18446744073709551615s\"".to_string()),
        1 => Just("\"584542046090years\"".to_string()),
        1 => "-?[0-9]{1,4}",
        1 => "\"-?[0-9 ]{0,3}[a-z]{0,5}\"",
        1 => Just("[]".to_string()),
    ]
    .boxed()
}

/// An integer value: the interesting edges of u32/u64/i64, and non-integers.
pub fn integer() -> BoxedStrategy<String> {
    prop_oneof![
        6 => (0u32..2000).prop_map(|n| n.to_string()),
        1 => prop_oneof![
            Just("0"), Just("-1"), Just("4294967295"), Just("4294967296"),
            Just("9223372036854775807"), Just("1_000"), Just("0x10"), Just("1e3"),
            Just("\"7\""), Just("true"),
        ]
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// A float value, including the ones validation must refuse.
pub fn float() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (0.0f64..2000.0).prop_map(|f| format!("{f:?}")),
        1 => prop_oneof![
            Just("nan"), Just("inf"), Just("-inf"), Just("-0.0"), Just("0"), Just("1e300"),
            Just("5e-324"), Just("101"), Just("-1.5"), Just("\"0.5\""),
        ]
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// `valid` nine times in ten, else `invalid`: a generated file is then accepted often enough for
/// the round trips to run, and refused often enough for the errors to be exercised.
pub fn mostly(
    valid: BoxedStrategy<String>,
    invalid: BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    prop_oneof![9 => valid, 1 => invalid].boxed()
}

/// One of `values`, as a TOML string.
pub fn one_of(values: &[&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(values.to_vec())
        .prop_map(|v| format!("\"{v}\""))
        .boxed()
}

/// An integer in `range`, mostly; else any [`integer`].
pub fn number(range: std::ops::RangeInclusive<u32>) -> BoxedStrategy<String> {
    mostly(range.prop_map(|n| n.to_string()).boxed(), integer())
}

/// A duration from `lo` to `hi` milliseconds, mostly; else any [`duration`].
pub fn millis(lo: u64, hi: u64) -> BoxedStrategy<String> {
    mostly(
        (lo..=hi).prop_map(|ms| format!("\"{ms}ms\"")).boxed(),
        duration(),
    )
}

/// A float from `lo` to `hi`, mostly; else any [`float`].
pub fn real(lo: f64, hi: f64) -> BoxedStrategy<String> {
    mostly((lo..=hi).prop_map(|f| format!("{f:?}")).boxed(), float())
}

/// A `[name]` table: each of `keys` present with probability `presence`, usually with a value of
/// its own strategy and sometimes (1 in 20) with `any` value; plus, rarely, a misspelt key.
pub fn toml_table(
    name: &'static str,
    keys: Vec<(&'static str, BoxedStrategy<String>)>,
    presence: f64,
    any: BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    let lines: Vec<_> = keys
        .into_iter()
        .map(|(key, own)| {
            let value = prop_oneof![19 => own, 1 => any.clone()];
            proptest::option::weighted(presence, value.prop_map(move |v| format!("{key} = {v}")))
        })
        .collect();
    let typo = proptest::option::weighted(0.03, "[a-z_]{1,10} = 1");
    (lines, typo)
        .prop_map(move |(lines, typo)| {
            let mut out = format!("[{name}]\n");
            for l in lines.into_iter().flatten().chain(typo) {
                out.push_str(&l);
                out.push('\n');
            }
            out
        })
        .boxed()
}
