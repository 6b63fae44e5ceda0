//! The experiment parser's robustness properties, written once and used twice: by the cargo-fuzz
//! target `fuzz/fuzz_targets/chaos_experiment.rs` (nightly, libFuzzer) and by
//! the stable-Rust test `chaos/tests/experiment_fuzz.rs` (proptest, in `cargo test --workspace`).
//!
//! For any text, [`chaos::Experiment::parse`]:
//! - returns (no panic; a hang is caught by libFuzzer's `-timeout` or the test's time budget);
//! - when it refuses, says why in a non-empty message;
//! - when it accepts, the experiment prints with the printer that writes it into `report.json`
//!   (`serde_json`), and parsing the same text again gives the same experiment.
//!
//! There is no parse → print → parse round trip to check: the only printer is that JSON, which
//! writes durations as `{secs, nanos}`, a form the experiment grammar (humantime strings) does not
//! read and is not meant to. An experiment file is written by people, never by the tool.

use chaos::Experiment;

/// Checks every property for one input: `Ok(true)` if the experiment was accepted, `Ok(false)` if
/// it was refused properly, `Err` with the violated property.
pub fn check(text: &str) -> Result<bool, String> {
    match Experiment::parse(text) {
        Err(e) if e.0.trim().is_empty() => Err("refused with an empty message".into()),
        Err(_) => Ok(false),
        Ok(exp) => {
            let json = serde_json::to_string(&exp)
                .map_err(|e| format!("accepted, but does not print for report.json: {e}"))?;
            let again = Experiment::parse(text)
                .map_err(|e| format!("accepted once, refused the second time: {}", e.0))?;
            let json_again = serde_json::to_string(&again).map_err(|e| e.to_string())?;
            if json_again != json {
                return Err(format!(
                    "parsing twice gave two experiments:\n  {json}\n  {json_again}"
                ));
            }
            Ok(true)
        }
    }
}
