//! The command line's contract with operators and CI: exit codes and error messages that name
//! the field, without starting any Redis.
//!
//! The second half is chaos's part of the bad-input catalogue (issue 6): malformed experiment
//! files and command lines, one row each. Every row states its input, the exit code (2: usage
//! error), and a piece of the message that names the place (`line L, column C`, the field) and the
//! expected form. Nothing may panic, and no secret may be printed: every run has a
//! password-bearing `REDIS_URL` in its environment (chaos must not read it, let alone print it),
//! and two rows put a password on a line of the file where it does not belong — the error names
//! the field and the line, never quotes the line. Every file is refused before any node starts:
//! the table takes about a second, no Redis.

mod support;

use std::path::Path;

use support::{chaos_command, outcome};

/// The password in every run's environment and in the rows that misplace one.
const PASSWORD: &str = "S3cret-pw-9";

fn chaos(args: &[&str]) -> (i32, String) {
    outcome(
        chaos_command()
            .args(args)
            .env("REDIS_URL", format!("redis://:{PASSWORD}@127.0.0.1:1"))
            // Unset, a panic prints its hint `run with RUST_BACKTRACE=1`: one more thing to catch.
            .env_remove("RUST_BACKTRACE"),
    )
}

#[test]
fn a_bad_experiment_file_is_a_usage_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"bad\"\nduration = \"5s\"\n[topology]\nkind = \"sentinel\"\nquorum = 7\n",
    )
    .unwrap();
    let (code, text) = chaos(&["run", file.to_str().unwrap(), "--backend", "process"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("topology.quorum"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    std::fs::write(&file, "name = \"bad\"\nduration = \"soon\"\n").unwrap();
    let (code, text) = chaos(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("duration"), "{text}");
}

#[test]
fn missing_files_and_flags_are_usage_errors() {
    let (code, text) = chaos(&["run", "/nonexistent/x.toml"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("/nonexistent/x.toml"), "{text}");
    let (code, _) = chaos(&["run", "x.toml", "--backend", "kubernetes"]);
    assert_eq!(code, 2);
    let (code, _) = chaos(&["suite", "/nonexistent-dir"]);
    assert_eq!(code, 2);
}

#[test]
fn every_shipped_experiment_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/chaos");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            chaos::Experiment::load(&path).unwrap_or_else(|e| panic!("{}", e.0));
            n += 1;
        }
    }
    assert!(n >= 9, "expected the issue's nine experiments, found {n}");
}

// The bad-input catalogue.

/// A valid experiment the rows break one way each.
const BASE: &str = "name = \"x\"\nduration = \"5s\"\n[topology]\nkind = \"sentinel\"\n[[fault]]\nat = \"1s\"\naction = \"kill\"\ntarget = \"primary\"\n";

/// `BASE` with `extra` appended (from line 9 on).
fn plus(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// `BASE` with one piece of text replaced.
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

const WORKLOAD: &str = "[workload]\nclients = 4\ninterval = \"10ms\"\nsession_ttl = \"600s\"\nshort_session_ttl = \"4s\"\nttl_tolerance = \"1500ms\"\nwait_replicas = 0\nwait_timeout = \"300ms\"\nresponse_timeout = \"500ms\"\n";

/// `BASE` plus a full `[workload]` table with one piece replaced.
fn workload(from: &str, to: &str) -> String {
    assert!(WORKLOAD.contains(from), "{from}");
    plus(&WORKLOAD.replacen(from, to, 1))
}

/// `(what, file text, expected piece of the message)`: `chaos run bad.toml --backend process`.
#[rustfmt::skip]
fn file_rows() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("TOML syntax: unterminated string", "name = \"x\n".into(), "bad.toml: line 1, column 10: invalid basic string"),
        ("control character in a comment", format!("#\u{1}\n{BASE}"), "bad.toml: line 1, column 2: control character U+0001 is not allowed here"),
        ("empty file", String::new(), "missing field `name`"),
        ("no [topology]", "name = \"x\"\nduration = \"5s\"\n".into(), "missing field `topology`"),
        ("name with a path in it", with("\"x\"", "\"../etc\""), "invalid `name`: expected 1-64 characters of a-z, 0-9, `-` or `_`"),
        ("name of 65 characters", with("\"x\"", &format!("\"{}\"", "n".repeat(65))), "invalid `name`: expected 1-64 characters"),
        ("duration 0s", with("\"5s\"", "\"0s\""), "invalid `duration`: expected between \"1s\" and \"1h\""),
        ("duration over an hour", with("\"5s\"", "\"2h\""), "invalid `duration`: expected between \"1s\" and \"1h\""),
        ("duration without quotes and unit", with("\"5s\"", "5"), "line 2, column 12: expected a duration such as \"1500ms\" or \"3s\" (quoted, with a unit), got 5"),
        ("negative duration", with("\"5s\"", "\"-5s\""), "line 2, column 12: expected a duration such as \"1500ms\" or \"3s\", got \"-5s\""),
        ("unknown topology", with("\"sentinel\"", "\"ring\""), "line 4, column 8: unknown variant `ring`, expected one of `sentinel`, `standalone`, `cluster`"),
        ("down-after below 100 ms", with("kind = \"sentinel\"", "kind = \"sentinel\"\ndown_after_ms = 50"), "invalid `topology.down_after_ms / failover_timeout_ms`: expected at least 100 (milliseconds)"),
        ("negative down-after", with("kind = \"sentinel\"", "kind = \"sentinel\"\ndown_after_ms = -1"), "line 5, column 17: invalid value: integer `-1`, expected u64"),
        ("min-replicas-to-write above the replicas", with("kind = \"sentinel\"", "kind = \"sentinel\"\nmin_replicas_to_write = 3"), "invalid `topology.min_replicas_to_write`: expected 0, 1 or 2"),
        ("unknown persistence", with("kind = \"sentinel\"", "kind = \"sentinel\"\npersistence = \"always\""), "unknown variant `always`, expected one of `none`, `rdb`, `rdb-fast`, `aof`"),
        ("[workload] with one key only", plus("[workload]\nclients = 8\n"), "line 9, column 1: missing field `interval`"),
        ("no clients", workload("clients = 4", "clients = 0"), "invalid `workload.clients`: expected between 1 and 64"),
        ("short sessions under 1s", workload("short_session_ttl = \"4s\"", "short_session_ttl = \"500ms\""), "invalid `workload.short_session_ttl / session_ttl`: expected short_session_ttl ≥ \"1s\""),
        ("WAIT for 3 replicas", workload("wait_replicas = 0", "wait_replicas = 3"), "invalid `workload.wait_replicas / wait_timeout`: expected wait_replicas 0-2"),
        ("[fault] as a table, not [[fault]]", with("[[fault]]", "[fault]"), "line 5, column 1: invalid type: map, expected a sequence"),
        ("unknown fault action", with("\"kill\"", "\"explode\""), "unknown variant `explode`, expected one of `kill`, `stop`, `pause`, `resume`, `restart`"),
        ("unknown fault target", with("\"primary\"", "\"database\""), "unknown variant `database`, expected one of `primary`, `replica`, `sentinels`, `faulted`, `all`"),
        ("fault without a time", with("at = \"1s\"\n", ""), "line 5, column 1: missing field `at`"),
        ("fault time in words", with("\"1s\"", "\"later\""), "line 6, column 6: expected a duration such as \"1500ms\" or \"3s\", got \"later\""),
        ("replica fault on a standalone node", with("\"sentinel\"", "\"standalone\"").replace("\"primary\"", "\"replica\""), "invalid `fault[0].target`: expected `primary`, `faulted` or `all`"),
        ("four sentinels of three", with("\"primary\"", "\"sentinels\"\ncount = 4"), "invalid `fault[0].count`: expected 1, 2 or 3 sentinels"),
        ("kill with a duration", with("\"primary\"", "\"primary\"\nduration = \"1s\""), "invalid `fault[0].duration`: expected only with action = \"pause\""),
        ("failover expected without Sentinel", with("\"sentinel\"", "\"standalone\"") + "[expect]\nfailover = true\n", "invalid `expect.failover`: expected nothing: a standalone topology has no Sentinel"),
        ("write gap in words", plus("[expect]\nmax_write_gap = \"fast\"\n"), "line 10, column 17: expected a duration such as \"1500ms\" or \"3s\", got \"fast\""),
        ("misspelt expectation", plus("[expect]\nmax_lost = 0\n"), "line 10, column 1: unknown field `max_lost`, expected one of `max_acked_writes_lost`"),
        ("failover = \"yes\"", plus("[expect]\nfailover = \"yes\"\n"), "line 10, column 12: invalid type: string \"yes\", expected a boolean"),
        ("a REDIS_URL pasted into the file", format!("redis_url = \"redis://:{PASSWORD}@10.0.0.5:6379\"\n{BASE}"), "bad.toml: line 1, column 1: unknown field `redis_url`, expected one of `name`"),
        ("a password in [topology]", with("kind = \"sentinel\"", &format!("kind = \"sentinel\"\npassword = \"{PASSWORD}\"")), "line 5, column 1: unknown field `password`, expected one of `kind`"),
    ]
}

/// Checks one row's run; `Some(reason)` if it is wrong.
fn judge(what: &str, (code, text): (i32, String), expect: &str) -> Option<String> {
    let mut wrong = Vec::new();
    if code != 2 {
        wrong.push(format!("exit {code}, expected 2"));
    }
    if !text.contains(expect) {
        wrong.push(format!("lacks `{expect}`"));
    }
    if text.contains("panicked") || text.contains("RUST_BACKTRACE") {
        wrong.push("panicked".into());
    }
    if text.contains(PASSWORD) || text.contains("S3cret") {
        wrong.push("printed the password".into());
    }
    (!wrong.is_empty()).then(|| format!("{what}: {}\n{text}", wrong.join("; ")))
}

#[test]
fn malformed_experiment_files_exit_2_naming_the_line_the_field_and_the_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let rows = file_rows();
    assert!(rows.len() >= 30, "{} rows", rows.len());
    let failures: Vec<String> = rows
        .into_iter()
        .filter_map(|(what, text, expect)| {
            std::fs::write(&file, text).unwrap();
            let run = chaos(&["run", file.to_str().unwrap(), "--backend", "process"]);
            judge(what, run, expect)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn malformed_command_lines_exit_2_naming_the_flag_and_the_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.toml");
    std::fs::write(&good, BASE).unwrap();
    std::fs::write(d.join("non-utf8.toml"), b"name = \"\xff\"\n").unwrap();
    // A suite whose last file is wrong: refused before the first one runs.
    let suite = d.join("suite");
    std::fs::create_dir(&suite).unwrap();
    std::fs::write(suite.join("a-good.toml"), BASE).unwrap();
    std::fs::write(
        suite.join("z-bad.toml"),
        with(
            "kind = \"sentinel\"",
            "kind = \"sentinel\"\nquorum = \"two\"",
        ),
    )
    .unwrap();
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let p = |p: &Path| p.display().to_string();
    let partition = p(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/chaos/partition-primary.toml")
    );
    let (good, non_utf8, suite, empty, dir_s) = (
        p(&good),
        p(&d.join("non-utf8.toml")),
        p(&suite),
        p(&empty),
        p(d),
    );

    #[rustfmt::skip]
    let rows: Vec<(&str, Vec<&str>, &str)> = vec![
        ("no experiment file", vec!["run"], "the following required arguments were not provided"),
        ("--repeat 0", vec!["run", &good, "--repeat", "0"], "invalid value '0' for '--repeat <REPEAT>': 0 is not in 1..=100"),
        ("--repeat 101", vec!["run", &good, "--repeat", "101"], "101 is not in 1..=100"),
        ("--repeat in words", vec!["run", &good, "--repeat", "many"], "invalid value 'many' for '--repeat <REPEAT>'"),
        ("--image without a value", vec!["run", &good, "--image"], "a value is required for '--image <IMAGE>'"),
        ("unknown flag", vec!["run", &good, "--backendz", "process"], "unexpected argument '--backendz' found"),
        ("unknown subcommand", vec!["break", &good], "unrecognized subcommand 'break'"),
        ("image without a subcommand", vec!["image"], "Usage: chaos image <COMMAND>"),
        ("experiment file is a directory", vec!["run", &dir_s, "--backend", "process"], "cannot read experiment file"),
        ("experiment file is not UTF-8", vec!["run", &non_utf8, "--backend", "process"], "stream did not contain valid UTF-8"),
        ("suite without experiments", vec!["suite", &empty, "--backend", "process"], "no *.toml experiment in"),
        ("suite with one bad file", vec!["suite", &suite, "--backend", "process"], "z-bad.toml: line 5, column 10: invalid type: string \"two\", expected u32"),
        ("partition on the process backend", vec!["run", &partition, "--backend", "process"], "partition-primary: fault action `partition` needs --backend docker"),
    ];
    let n = rows.len();
    let failures: Vec<String> = rows
        .into_iter()
        .filter_map(|(what, args, expect)| judge(what, chaos(&args), expect))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(n >= 12, "{n} rows");
}
