//! The scenario parser's robustness properties, written once and used twice: by the cargo-fuzz
//! target `fuzz/fuzz_targets/loadgen_scenario.rs` (nightly, libFuzzer) and by
//! the stable-Rust test `loadgen/tests/scenario_fuzz.rs` (proptest, in `cargo test --workspace`).
//!
//! For any text and any `--set` overrides, [`loadgen::scenario::parse`]:
//! - returns (no panic; a hang is caught by libFuzzer's `-timeout` or the test's time budget);
//! - when it refuses, returns at least one error, each with a non-empty message and a location that
//!   is `fuzz.toml`, `fuzz.toml:<line>:<col>` inside the text, or a `--set`;
//! - when it accepts, the resolved scenario round-trips through its printers: the `Serialize` impls
//!   that `summary.json` and `--dry-run` use. Printed as TOML it parses again (same parser,
//!   validation included) to the same scenario, and printing that is a fixed point; printed as
//!   JSON it deserializes and validates to the same scenario.
//!
//! Scenarios have no `PartialEq` (and need none): two are "the same" when their JSON is.

use std::path::Path;

use loadgen::scenario::{self, Scenario, ScenarioError};

/// The name the text is parsed under; every file location must start with it.
pub const FILE: &str = "fuzz.toml";

/// Most `--set` overrides taken from one fuzz input.
pub const MAX_SETS: usize = 4;

/// Splits a fuzz input: the text before the first NUL byte is the scenario file, each
/// NUL-separated piece after it one `--set key=value` (NUL cannot occur in either for real).
pub fn split(input: &str) -> (&str, Vec<String>) {
    let mut parts = input.split('\0');
    let text = parts.next().unwrap_or_default();
    (text, parts.take(MAX_SETS).map(str::to_string).collect())
}

/// Checks every property for one input: `Ok(true)` if the scenario was accepted (and round-trips),
/// `Ok(false)` if it was refused properly, `Err` with the violated property.
pub fn check(text: &str, sets: &[String]) -> Result<bool, String> {
    match scenario::parse(Path::new(FILE), text, sets) {
        Ok(s) => round_trip(&s).map(|()| true),
        Err(errors) => check_errors(text, &errors).map(|()| false),
    }
}

fn check_errors(text: &str, errors: &[ScenarioError]) -> Result<(), String> {
    if errors.is_empty() {
        return Err("refused with an empty error list".into());
    }
    let lines = text.split('\n').count();
    for e in errors {
        if e.message.trim().is_empty() {
            return Err(format!("error without a message at {}", e.location));
        }
        if e.location.starts_with("--set") || e.location == FILE {
            continue;
        }
        let at = e
            .location
            .strip_prefix(FILE)
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.split_once(':'))
            .and_then(|(l, c)| Some((l.parse::<usize>().ok()?, c.parse::<usize>().ok()?)));
        match at {
            Some((line, col)) if line >= 1 && line <= lines && col >= 1 => {}
            _ => {
                return Err(format!(
                    "location {:?} is not {FILE}[:line:col] inside the {lines}-line text ({})",
                    e.location, e.message
                ));
            }
        }
    }
    Ok(())
}

/// The printers of an accepted scenario give it back unchanged.
pub fn round_trip(s: &Scenario) -> Result<(), String> {
    let json = serde_json::to_value(s).map_err(|e| format!("does not print as JSON: {e}"))?;

    let printed = toml::to_string(s).map_err(|e| format!("does not print as TOML: {e}"))?;
    let again = scenario::parse(Path::new(FILE), &printed, &[]).map_err(|errors| {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(
            "the printed TOML is refused: {}\n--- printed:\n{printed}",
            all.join("; ")
        )
    })?;
    let json_again = serde_json::to_value(&again).map_err(|e| e.to_string())?;
    if json_again != json {
        return Err(format!(
            "TOML round trip changed the scenario:\n  before {json}\n  after  {json_again}\n--- printed:\n{printed}"
        ));
    }
    let reprinted = toml::to_string(&again).map_err(|e| e.to_string())?;
    if reprinted != printed {
        return Err(format!(
            "TOML printing is not a fixed point:\n--- first:\n{printed}\n--- second:\n{reprinted}"
        ));
    }

    let from_json: Scenario = serde_json::from_value(json.clone())
        .map_err(|e| format!("the printed JSON does not read back: {e}\n{json}"))?;
    let problems = from_json.validate();
    if !problems.is_empty() {
        return Err(format!(
            "the printed JSON reads back invalid: {problems:?}\n{json}"
        ));
    }
    let json_back = serde_json::to_value(&from_json).map_err(|e| e.to_string())?;
    if json_back != json {
        return Err(format!(
            "JSON round trip changed the scenario:\n  before {json}\n  after  {json_back}"
        ));
    }
    Ok(())
}
