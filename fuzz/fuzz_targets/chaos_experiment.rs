//! `chaos_experiment`: the experiment parser (`chaos::Experiment::parse`) on arbitrary input.
//!
//! The properties live in `testkit::experiment` (the `testkit` crate), shared with the stable test
//! `chaos/tests/experiment_fuzz.rs`: no panic, no hang, a message for every refusal, and an
//! accepted experiment prints for `report.json` and parses the same way twice.
#![no_main]

use libfuzzer_sys::fuzz_target;

use testkit::experiment as props;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Err(violation) = props::check(&input) {
        panic!("{violation}\n--- input: {input:?}");
    }
});
