//! The `loadgen_scenario` fuzz target's properties on stable Rust, so `cargo test --workspace`
//! checks them too (CI runs no fuzzer; `fuzz/` needs nightly and cargo-fuzz, see
//! `fuzz/README.md`). The properties themselves are in `testkit::scenario`, shared with the
//! target.
//!
//! Inputs: the fuzz seed corpus (`fuzz/corpus/loadgen_scenario/`: the shipped scenarios, malformed
//! seeds, and inputs the fuzzer found), then proptest-made scenario files built from the schema's
//! keys with values both right and wrong, then the shipped scenarios with random edits, then
//! arbitrary text. A few hundred cases each by default (about a second in a debug build);
//! `PROPTEST_CASES=100000` runs more.

use testkit as stable;
use testkit::scenario as scenario_props;

use std::path::Path;

use proptest::prelude::*;

use stable::{duration, float, integer, millis, mostly, number, one_of, real, run, toml_table};

/// Properties over (file text, `--set` overrides).
fn check((text, sets): &(String, Vec<String>)) -> Result<bool, String> {
    scenario_props::check(text, sets)
}

#[test]
fn the_fuzz_seed_corpus_satisfies_the_properties() {
    stable::check_corpus("loadgen_scenario", |input| {
        let (text, sets) = scenario_props::split(input);
        scenario_props::check(text, &sets)
    });
}

#[test]
fn every_shipped_scenario_is_accepted_and_round_trips() {
    let shipped = stable::read_dir(&stable::root().join("scenarios/load"));
    assert!(shipped.len() >= 5, "{shipped:?}");
    for (name, text) in shipped {
        let s = loadgen::scenario::parse(Path::new(&name), &text, &[])
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        scenario_props::round_trip(&s).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A string value the schema reads as a name, a distribution or a size.
fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop_oneof![
            Just("uniform"), Just("zipf(1.1)"), Just("gaussian(0.1)"), Just("zipf(0)"),
            Just("zipf(-1)"), Just("zipf(nan)"), Just("gaussian(inf)"), Just("pareto(1)"),
            Just("64mb"), Just("1gb"), Just("64 parsecs"), Just("allkeys-lru"), Just("lru"),
            Just("rdb"), Just("aof"), Just("open"), Just("closed"), Just("gcra"),
            Just("sliding_window"), Just("fixed_window"), Just("all"), Just("login"),
            Just("authorize"), Just("token"), Just("a:b"), Just("x*y"), Just("128..512"),
            Just("20..10"), Just("1..18446744073709551616"),
        ]
        .prop_map(|s| format!("\"{s}\"")),
        1 => "\"[ -~]{0,12}\"".prop_map(|s| s.replace('\\', "/")),
        1 => Just("\"ünïcödé ✓\"".to_string()),
    ]
}

fn any_value() -> BoxedStrategy<String> {
    prop_oneof![duration(), integer(), float(), text_value()].boxed()
}

/// A string from `values` mostly, else any string value.
fn choice(values: &[&'static str]) -> BoxedStrategy<String> {
    mostly(one_of(values), text_value().boxed())
}

const OPS: &[&str] = &[
    "login",
    "page_view",
    "api_call",
    "token_refresh",
    "logout",
    "ratelimit",
    "logout_everywhere",
];
const DISTRIBUTIONS: &[&str] = &["uniform", "zipf(1.1)", "zipf(2)", "gaussian(0.1)"];

fn endpoints() -> BoxedStrategy<String> {
    let names =
        proptest::sample::subsequence(vec!["authorize", "token", "signin", "register"], 0..4);
    mostly(
        names.prop_map(|v| format!("{v:?}")).boxed(),
        proptest::collection::vec(text_value(), 0..3)
            .prop_map(|v| format!("[{}]", v.join(", ")))
            .boxed(),
    )
}

fn payload() -> BoxedStrategy<String> {
    let valid = prop_oneof![
        (0u32..4096).prop_map(|n| n.to_string()),
        (0u32..2048, 0u32..2048).prop_map(|(a, b)| format!("\"{}..{}\"", a.min(b), a.max(b))),
    ];
    mostly(valid.boxed(), text_value().boxed())
}

fn latency_slo() -> BoxedStrategy<String> {
    let op = choice(&[OPS, &["all"]].concat());
    let time = proptest::option::weighted(0.3, choice(&["response", "service"]));
    (op, real(0.1, 100.0), millis(1, 1000), time)
        .prop_map(|(op, p, max, time)| {
            let time = time.map(|t| format!("time = {t}\n")).unwrap_or_default();
            format!("[[slo.latency]]\nop = {op}\npercentile = {p}\nmax = {max}\n{time}")
        })
        .boxed()
}

fn rule() -> BoxedStrategy<String> {
    let name = mostly("[a-z]{1,8}".boxed(), "[a-z:*\\[ ]{1,8}".boxed());
    let algorithm = choice(&["fixed_window", "sliding_window", "gcra"]);
    (name, number(1..=100), millis(1, 60_000), algorithm)
        .prop_map(|(name, limit, w, alg)| {
            format!(
                "[ratelimit.rules.\"{name}\"]\nlimit = {limit}\nwindow = {w}\nalgorithm = {alg}\n"
            )
        })
        .boxed()
}

/// One `--set`: a known dotted key and a fitting value mostly, else anything.
fn set() -> BoxedStrategy<String> {
    let valid = prop_oneof![
        (1u32..50).prop_map(|n| format!("load.users={n}")),
        (1u32..60).prop_map(|n| format!("load.duration={n}s")),
        (0u32..9).prop_map(|n| format!("mix.login={n}")),
        proptest::sample::select(DISTRIBUTIONS).prop_map(|d| format!("keyspace.distribution={d}")),
        proptest::sample::select(vec!["open", "closed"])
            .prop_map(|m| format!("ratelimit.failure_mode={m}")),
    ];
    let key = proptest::sample::select(vec![
        "load.users",
        "load.duration",
        "load.rate",
        "mix.login",
        "keyspace.endpoints",
        "slo.latency.0.max",
        "slo.latency.7.op",
        "load.users.x",
        "load",
        "",
        "..",
    ]);
    let invalid = prop_oneof![
        (key, prop_oneof![any_value(), "[ -~]{0,10}".boxed()])
            .prop_map(|(k, v)| format!("{k}={v}")),
        "[ -~]{0,16}".boxed(),
    ];
    mostly(valid.boxed(), invalid.boxed())
}

/// Scenario files shaped like the schema: often valid, otherwise wrong in one or two places.
fn scenario_like() -> impl Strategy<Value = (String, Vec<String>)> {
    let head = proptest::option::weighted(
        0.3,
        (
            mostly("\"[a-z][a-z0-9-]{0,10}\"".boxed(), text_value().boxed()),
            integer(),
        )
            .prop_map(|(name, seed)| format!("name = {name}\nseed = {seed}\n")),
    );
    let load = toml_table(
        "load",
        vec![
            ("users", number(1..=50)),
            ("duration", millis(1000, 60_000)),
        ],
        0.97,
        any_value(),
    );
    let load_more = toml_table(
        "load-more",
        vec![
            ("ramp", real(0.5, 100.0)),
            ("warmup", millis(0, 5000)),
            ("rate", real(1.0, 1000.0)),
        ],
        0.3,
        any_value(),
    );
    let keyspace = proptest::option::of(toml_table(
        "keyspace",
        vec![
            (
                "prefix",
                mostly("\"[a-z]{1,8}\"".boxed(), text_value().boxed()),
            ),
            ("users", number(1..=10_000)),
            ("sessions_per_user", number(1..=4)),
            ("client_ips", number(1..=10_000)),
            ("endpoints", endpoints()),
            ("distribution", choice(DISTRIBUTIONS)),
            ("ip_distribution", choice(DISTRIBUTIONS)),
            ("payload", payload()),
            ("session_idle_timeout", millis(1000, 3_600_000)),
            ("session_absolute_lifetime", millis(1000, 86_400_000)),
            ("token_ttl", millis(1000, 3_600_000)),
            ("revoked_probe", real(0.0, 1.0)),
        ],
        0.4,
        any_value(),
    ));
    let mix = toml_table(
        "mix",
        OPS.iter().map(|op| (*op, number(0..=100))).collect(),
        0.5,
        any_value(),
    );
    let ratelimit = proptest::option::weighted(
        0.2,
        choice(&["open", "closed"]).prop_map(|m| format!("[ratelimit]\nfailure_mode = {m}\n")),
    );
    let redis = proptest::option::of(toml_table(
        "redis",
        vec![
            ("maxmemory", choice(&["64mb", "1gb", "1048576", "512kb"])),
            (
                "maxmemory_policy",
                choice(&["noeviction", "allkeys-lru", "volatile-ttl"]),
            ),
            ("persistence", choice(&["none", "rdb", "aof"])),
            ("connect_timeout", millis(1, 5000)),
            ("response_timeout", millis(1, 5000)),
        ],
        0.4,
        any_value(),
    ));
    let slo = proptest::option::of(toml_table(
        "slo",
        vec![
            ("max_error_rate", real(0.0, 1.0)),
            ("min_throughput", real(0.0, 10_000.0)),
        ],
        0.5,
        any_value(),
    ));
    let latencies = proptest::collection::vec(latency_slo(), 0..3);
    let rules = proptest::collection::vec(rule(), 0..2);
    let sets = proptest::collection::vec(set(), 0..3);
    let tables = (load, load_more, keyspace, mix, ratelimit, redis, slo);
    (head, tables, latencies, rules, sets).prop_map(
        |(
            head,
            (load, load_more, keyspace, mix, ratelimit, redis, slo),
            latencies,
            rules,
            sets,
        )| {
            // `load-more` only holds the optional keys of `[load]`: join them into one table.
            let load = load + load_more.trim_start_matches("[load-more]\n");
            let text = [
                head.unwrap_or_default(),
                load,
                keyspace.unwrap_or_default(),
                mix,
                ratelimit.unwrap_or_default(),
                redis.unwrap_or_default(),
                slo.unwrap_or_default(),
                latencies.concat(),
                rules.concat(),
            ]
            .concat();
            (text, sets)
        },
    )
}

#[test]
fn schema_shaped_scenarios_never_panic_and_round_trip() {
    // About a quarter are accepted: the round trips run, not only the errors.
    stable::run_accepting(400, scenario_like(), check);
}

#[test]
fn shipped_scenarios_with_random_edits_never_panic() {
    let seeds = stable::read_dir(&stable::root().join("scenarios/load"));
    let seeds: Vec<String> = seeds.into_iter().map(|(_, text)| text).collect();
    let sets = proptest::collection::vec(set(), 0..2);
    // Many edits hit comments or values that stay valid; those must round-trip too.
    stable::run_accepting(300, (stable::edited(seeds), sets), check);
}

#[test]
fn arbitrary_text_never_panics() {
    let text = prop_oneof![
        any::<String>(),
        "[\\[\\]a-z_=\". 0-9\n{},#'-]{0,80}",
        "\\[(load|mix|keyspace|slo|redis)\\]\n[a-z_]{1,10} = [ -~]{0,12}\n",
    ];
    run(
        1000,
        (text, proptest::collection::vec("[ -~]{0,12}", 0..2)),
        check,
    );
}
