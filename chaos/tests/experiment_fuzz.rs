//! The `chaos_experiment` fuzz target's properties on stable Rust, so `cargo test --workspace`
//! checks them too (CI runs no fuzzer; `fuzz/` needs nightly and cargo-fuzz, see
//! `fuzz/README.md`). The properties themselves are in `testkit::experiment`, shared with the
//! target.
//!
//! Inputs: the fuzz seed corpus (`fuzz/corpus/chaos_experiment/`: the shipped experiments,
//! malformed seeds, and inputs the fuzzer found), then proptest-made experiment files built from
//! the schema's keys with values both right and wrong, then the shipped experiments with random
//! edits, then arbitrary text. A few hundred cases each by default (about a second in a debug
//! build); `PROPTEST_CASES=100000` runs more.

use testkit as stable;
use testkit::experiment as experiment_props;

use proptest::prelude::*;

use experiment_props::check;
use stable::{duration, integer, millis, mostly, number, one_of, run, toml_table};

#[test]
fn the_fuzz_seed_corpus_satisfies_the_properties() {
    stable::check_corpus("chaos_experiment", check);
}

/// A string value from the experiment's enums and names, right or wrong.
fn word() -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "sentinel", "standalone", "cluster", "none", "rdb", "rdb-fast", "rdb_fast", "aof",
            "kill", "stop", "pause", "resume", "restart", "reboot", "primary", "replica",
            "sentinels", "faulted", "all", "Primary", "x", "primary-kill", "a b", "../x",
        ])
        .prop_map(|w| format!("\"{w}\"")),
        1 => "\"[ -~]{0,10}\"".prop_map(|s| s.replace('\\', "/")),
        1 => Just("\"ünïcödé-✓\"".to_string()),
    ]
    .boxed()
}

fn boolean() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![Just("true"), Just("false")]
            .prop_map(str::to_string)
            .boxed(),
        prop_oneof![Just("1"), Just("\"yes\"")]
            .prop_map(str::to_string)
            .boxed(),
    )
}

fn any_value() -> BoxedStrategy<String> {
    prop_oneof![duration(), integer(), word(), boolean()].boxed()
}

/// One `[[fault]]`: actions and targets that a standalone node accepts, mostly.
fn fault() -> BoxedStrategy<String> {
    let required = (
        millis(0, 1000),
        mostly(one_of(&["kill", "stop", "restart", "resume"]), word()),
        mostly(one_of(&["primary", "faulted", "all"]), word()),
    );
    let optional = vec![("count", number(1..=3)), ("duration", millis(100, 3000))];
    (required, toml_table("[fault]", optional, 0.1, any_value()))
        .prop_map(|((at, action, target), t)| {
            let (header, rest) = t.split_at(10);
            format!("{header}at = {at}\naction = {action}\ntarget = {target}\n{rest}")
        })
        .boxed()
}

/// Experiment files shaped like the schema: often valid, otherwise wrong in one or two places.
fn experiment_like() -> impl Strategy<Value = String> {
    let name = mostly("\"[a-z][a-z0-9_-]{0,12}\"".boxed(), word());
    let head = (
        proptest::option::weighted(0.97, name),
        proptest::option::weighted(0.97, millis(1000, 60_000)),
    )
        .prop_map(|(name, duration)| {
            let name = name.map(|n| format!("name = {n}\n")).unwrap_or_default();
            let duration = duration
                .map(|d| format!("duration = {d}\n"))
                .unwrap_or_default();
            format!("{name}description = \"generated\"\n{duration}")
        });
    let kind = mostly(one_of(&["sentinel", "standalone"]), word());
    let topology = (
        kind,
        toml_table(
            "topology",
            vec![
                ("down_after_ms", number(100..=5000)),
                ("failover_timeout_ms", number(100..=10_000)),
                ("quorum", number(1..=3)),
                ("min_replicas_to_write", number(0..=2)),
                ("min_replicas_max_lag", number(1..=30)),
                (
                    "persistence",
                    mostly(one_of(&["none", "rdb", "rdb-fast", "aof"]), word()),
                ),
            ],
            0.5,
            any_value(),
        ),
    )
        .prop_map(|(kind, table)| table.replacen('\n', &format!("\nkind = {kind}\n"), 1));
    // `[workload]` has no per-key defaults: it is all there or refused.
    let workload = proptest::option::of(toml_table(
        "workload",
        vec![
            ("clients", number(1..=64)),
            ("interval", millis(1, 100)),
            ("session_ttl", millis(60_000, 600_000)),
            ("short_session_ttl", millis(1000, 5000)),
            ("ttl_tolerance", millis(100, 2000)),
            ("wait_replicas", number(0..=0)),
            ("wait_timeout", millis(1, 300)),
            ("response_timeout", millis(400, 1000)),
        ],
        0.97,
        any_value(),
    ));
    let faults = proptest::collection::vec(fault(), 0..3);
    let expect = proptest::option::of(toml_table(
        "expect",
        vec![
            ("max_acked_writes_lost", number(0..=10)),
            ("failover", boolean()),
            ("max_write_gap", millis(100, 10_000)),
            ("max_split_brain_writes", number(0..=10)),
            ("ttl", boolean()),
            ("old_primary_rejoins", boolean()),
            ("max_loss_window", millis(100, 10_000)),
            ("revocations_kept", boolean()),
        ],
        0.4,
        any_value(),
    ));
    (head, topology, workload, faults, expect).prop_map(
        |(head, topology, workload, faults, expect)| {
            [
                head,
                topology,
                workload.unwrap_or_default(),
                faults.concat(),
                expect.unwrap_or_default(),
            ]
            .concat()
        },
    )
}

#[test]
fn schema_shaped_experiments_never_panic() {
    // About a quarter are accepted: the accepting path runs, not only the errors.
    stable::run_accepting(400, experiment_like(), |text: &String| check(text));
}

#[test]
fn shipped_experiments_with_random_edits_never_panic() {
    let seeds = stable::read_dir(&stable::root().join("scenarios/chaos"));
    let seeds: Vec<String> = seeds.into_iter().map(|(_, text)| text).collect();
    assert!(seeds.len() >= 9);
    // Many edits hit comments or values that stay valid: those exercise the accepting path.
    stable::run_accepting(300, stable::edited(seeds), |text: &String| check(text));
}

#[test]
fn arbitrary_text_never_panics() {
    let text = prop_oneof![
        any::<String>(),
        "[\\[\\]a-z_=\". 0-9\n{},#'-]{0,80}",
        "(name = \"x\"\nduration = \"5s\"\n)?\\[(topology|workload|expect)\\]\n[a-z_]{1,10} = [ -~]{0,12}\n",
    ];
    run(1000, text, |text: &String| check(text));
}
