//! The `redis_url` fuzz target's properties on stable Rust, so `cargo test --workspace` checks them
//! too (CI runs no fuzzer; `fuzz/` needs nightly and cargo-fuzz, see `fuzz/README.md`).
//!
//! For every input:
//! - `RedisUrl::parse` returns, without panicking;
//! - a URL that parses prints (`to_unredacted_string`) to one that parses to the same value, and
//!   printing again gives the same text;
//! - the redacted `Display` parses to the same value with every password replaced by `***`;
//! - a refused URL's error message does not contain the password.
//!
//! Inputs: the fuzz seed corpus (`fuzz/corpus/redis_url/`, including inputs the fuzzer found), then
//! proptest strings built from the grammar's pieces (schemes, user-info with characters that need
//! encoding, host lists, IPv6, db numbers, service names, options), then arbitrary strings.
//! 2000 cases each by default (well under a second); `PROPTEST_CASES=200000` runs more.

use std::path::Path;

use cache::url::{RedisUrl, Secret};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// A password marker: if an error message contains it, the password leaked.
const MARK: &str = "Pw9Zq";

/// The round-trip and redaction properties for one input; `Err` describes the violation.
fn check(input: &str) -> Result<(), String> {
    let url = match RedisUrl::parse(input) {
        Ok(url) => url,
        Err(e) => {
            let shown = format!("{e} {e:?}");
            // Inputs built with a marked password: the marker sits right after `user:`.
            if input.contains(&format!(":{MARK}")) && shown.contains(MARK) {
                return Err(format!("error shows the password: {shown}"));
            }
            return Ok(());
        }
    };
    let printed = url.to_unredacted_string();
    let reparsed = RedisUrl::parse(&printed)
        .map_err(|e| format!("printed form {printed:?} does not parse: {e}"))?;
    if reparsed != url {
        return Err(format!(
            "round trip changed the value: printed {printed:?}\n  parsed   {url:?}\n  reparsed {reparsed:?}"
        ));
    }
    if reparsed.to_unredacted_string() != printed {
        return Err(format!("printing {printed:?} is not a fixed point"));
    }
    let redacted = url.to_string();
    let mut expected = url.clone();
    expected.password = url.password.as_ref().map(|_| Secret::new("***"));
    expected.options.sentinel_password = url
        .options
        .sentinel_password
        .as_ref()
        .map(|_| Secret::new("***"));
    match RedisUrl::parse(&redacted) {
        Ok(r) if r == expected => Ok(()),
        Ok(r) => Err(format!("redacted {redacted:?} parses to {r:?}")),
        Err(e) => Err(format!("redacted {redacted:?} does not parse: {e}")),
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn run(strategy: impl Strategy<Value = String>) {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&strategy, |input| {
        check(&input).map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_fuzz_seed_corpus_satisfies_the_properties() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/redis_url");
    let mut failures = Vec::new();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/redis_url exists") {
        let path = entry.unwrap().path();
        let input = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        n += 1;
        if let Err(e) = check(&input) {
            failures.push(format!("{}: {input:?}: {e}", path.display()));
        }
    }
    assert!(n >= 20, "expected the seed corpus, found {n} files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One piece of user-info: plain, percent-encoded, or with a raw character that needs encoding.
fn userinfo_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{0,8}",
        "[a-z]{0,4}(%[0-9A-F]{2}){1,3}[a-z]{0,4}",
        "[a-z]{0,4}[/?#@:,%+&= ][a-z]{0,4}",
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,6}(\\.[a-z]{1,4}){0,2}",
        "(25[0-5]|1?[0-9]{1,2})(\\.(25[0-5]|1?[0-9]{1,2})){3}",
        Just("[::1]".to_string()),
        Just("[2001:db8::7]".to_string()),
        "[A-Z]{1,6}",
        "[a-z:\\[\\]*]{1,8}",
    ]
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (1u32..70000).prop_map(|p| format!(":{p}")),
        "[:]{0,1}[0-9a-z]{0,3}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("/".to_string()),
        (0u64..3_000_000_000).prop_map(|db| format!("/{db}")),
        "/[a-zA-Z_.][a-zA-Z0-9_.-]{0,8}(/[0-9]{1,3})?",
        // Percent-encoded service names, including ones that decode to something numeric.
        "/(%3[0-9]|%2D|%2B|%6D){1,3}[a-z0-9]{0,4}(/[0-9]{1,2})?",
        "/[a-z0-9/%-]{0,10}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let option = prop_oneof![
        (1u32..4_000_000).prop_map(|ms| format!("connect_timeout={ms}")),
        (0u32..4_000_000).prop_map(|ms| format!("response_timeout={ms}")),
        userinfo_text().prop_map(|u| format!("sentinel_username={u}")),
        userinfo_text().prop_map(|p| format!("sentinel_password={p}")),
        (0u32..5).prop_map(|q| format!("sentinel_quorum={q}")),
        "[a-z_]{1,6}=[a-z0-9]{0,3}",
    ];
    prop_oneof![
        2 => Just(String::new()),
        1 => proptest::collection::vec(option, 1..4).prop_map(|o| format!("?{}", o.join("&"))),
    ]
}

/// URLs from the grammar's pieces: mostly well-formed, often subtly not.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("redis"),
        Just("rediss"),
        Just("redis+sentinel"),
        Just("rediss+cluster"),
        Just("REDIS"),
        Just("redis+cluster"),
    ];
    let userinfo = prop_oneof![
        2 => Just(String::new()),
        2 => (userinfo_text(), userinfo_text()).prop_map(|(u, p)| format!("{u}:{MARK}{p}@")),
        1 => userinfo_text().prop_map(|u| format!("{u}@")),
    ];
    let hosts = proptest::collection::vec((host(), port()), 1..4).prop_map(|hs| {
        hs.into_iter()
            .map(|(h, p)| format!("{h}{p}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    (scheme, userinfo, hosts, path(), query())
        .prop_map(|(s, u, h, p, q)| format!("{s}://{u}{h}{p}{q}"))
}

#[test]
fn grammar_shaped_urls_round_trip_and_never_show_the_password() {
    run(url_like());
}

#[test]
fn arbitrary_strings_never_panic_and_round_trip() {
    run(prop_oneof![
        any::<String>(),
        "redis://[ -~]{0,40}",
        "rediss?(\\+(sentinel|cluster))?://[a-z0-9:@/,.?=&%\\[\\]-]{0,40}",
    ]);
}
