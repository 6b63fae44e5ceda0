//! `loadgen_scenario`: the scenario parser (`loadgen::scenario::parse`) on arbitrary input.
//!
//! The input is a scenario file, optionally followed by NUL-separated `--set key=value` overrides
//! (so the override path, `apply_set`, is fuzzed too). The properties live in
//! `testkit::scenario` (the `testkit` crate), shared with the stable test `loadgen/tests/scenario_fuzz.rs`:
//! no panic, no hang, well-formed error locations, and an accepted scenario round-trips through
//! its TOML and JSON printers.
#![no_main]

use libfuzzer_sys::fuzz_target;

use testkit::scenario as props;

fuzz_target!(|data: &[u8]| {
    // The parser takes &str; lossy decoding lets byte-level mutations still reach it.
    let input = String::from_utf8_lossy(data);
    let (text, sets) = props::split(&input);
    if let Err(violation) = props::check(text, &sets) {
        panic!("{violation}\n--- input: {input:?}");
    }
});
