//! The bad-input catalogue for `loadgen` (issue 6), beyond the rows in `bad_input.rs`: malformed
//! scenario files and command lines, one row each, run through the real binary.
//!
//! Every row states its input, the exit code (2: usage or scenario error), and a piece of the
//! message that names the place (`file:line:col`, the TOML path, the flag) and the expected form.
//! Every run also has a password-bearing `REDIS_URL` in its environment (and some rows put the
//! password in a flag or on a line of the file where it does not belong): the password must not be
//! printed, raw or percent-encoded; and nothing may panic.
//!
//! Runs are `--dry-run` (or fail before any connection): the whole table takes a couple of
//! seconds and needs no Redis.

mod common;

use common::loadgen;

/// The password in every row's `REDIS_URL` (a valid URL: parsing it is part of every run).
const PASSWORD: &str = "Pw/S3cret-7";
const PASSWORD_ENCODED: &str = "Pw%2FS3cret-7";
const SECRET_URL: &str = "redis://app:Pw%2FS3cret-7@127.0.0.1:1/0";

/// A valid scenario the rows break one way each.
const BASE: &str = "[load]\nusers = 4\nduration = \"2s\"\n\n[mix]\npage_view = 1\n";

/// `BASE` with `extra` appended (a new table, from line 7 on).
fn plus(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// `BASE` with one piece of text replaced.
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replace(from, to)
}

struct Row {
    what: &'static str,
    /// Written to `bad.toml`; `None` = `BASE`.
    file: Option<String>,
    /// Arguments; `SCENARIO` stands for the written file, `OUT` for an empty results directory.
    args: &'static [&'static str],
    /// `REDIS_URL` in the environment (`SECRET_URL` unless a row needs it absent).
    env_url: Option<&'static str>,
    code: i32,
    expect: &'static str,
}

const DRY: &[&str] = &["run", "SCENARIO", "--dry-run"];

fn file(what: &'static str, text: String, expect: &'static str) -> Row {
    Row {
        what,
        file: Some(text),
        args: DRY,
        env_url: Some(SECRET_URL),
        code: 2,
        expect,
    }
}

fn flags(what: &'static str, args: &'static [&'static str], expect: &'static str) -> Row {
    Row {
        what,
        file: None,
        args,
        env_url: Some(SECRET_URL),
        code: 2,
        expect,
    }
}

#[rustfmt::skip]
fn scenario_rows() -> Vec<Row> {
    vec![
        file("TOML syntax: unterminated string", with("\"2s\"", "\"2s"), "bad.toml:3:15: invalid basic string"),
        file("control character in a comment", format!("#\u{1}\n{BASE}"), "bad.toml:1:2: control character U+0001 is not allowed here"),
        file("empty file", String::new(), "bad.toml:1:1: missing field `load`"),
        file("no [mix]", "[load]\nusers = 4\nduration = \"2s\"\n".into(), "missing field `mix`"),
        file("no load.duration", "[load]\nusers = 4\n[mix]\nlogin = 1\n".into(), "missing field `duration`"),
        file("misspelt table", plus("[mixx]\nlogin = 1\n"), "bad.toml:7:2: unknown field `mixx`, expected one of `name`"),
        file("a REDIS_URL pasted into the file", format!("redis_url = \"{SECRET_URL}\"\n{BASE}"), "bad.toml:1:1: unknown field `redis_url`, expected one of `name`"),
        file("a password in [redis]", plus(&format!("[redis]\npassword = \"{PASSWORD}\"\n")), "bad.toml:8:1: unknown field `password`, expected one of `maxmemory`"),
        file("negative seed", format!("seed = -1\n{BASE}"), "bad.toml:1:8: invalid value: integer `-1`, expected u64"),
        file("users above u32", with("users = 4", "users = 4294967296"), "bad.toml:2:9: invalid value: integer `4294967296`, expected u32"),
        file("duration with an unknown unit", with("\"2s\"", "\"5 parsecs\""), "bad.toml:3:12: `5 parsecs` is not a duration"),
        file("ramp 0", with("users = 4", "users = 4\nramp = 0"), "bad.toml:3:8: `load.ramp` expected users started per second, greater than 0"),
        file("negative rate", with("users = 4", "users = 4\nrate = -10.0"), "`load.rate` expected operations per second, greater than 0"),
        file("keyspace.users 0", plus("[keyspace]\nusers = 0\n"), "bad.toml:8:9: `keyspace.users` is 0: expected at least 1"),
        file("too many sessions", plus("[keyspace]\nusers = 2000000\nsessions_per_user = 2\n"), "`keyspace.users` users × sessions_per_user is above 2000000"),
        file("prefix with a colon", plus("[keyspace]\nprefix = \"a:b\"\n"), "bad.toml:8:10: `keyspace.prefix` expected printable ASCII without spaces, `:`"),
        file("prefix that forges keys", plus("[keyspace]\nprefix = \"authority\\r\\nFLUSHALL\"\n"), "`keyspace.prefix` expected printable ASCII"),
        file("no endpoints but ratelimit ops", with("page_view = 1", "ratelimit = 1\n[keyspace]\nendpoints = []"), "`keyspace.endpoints` is empty but mix.ratelimit > 0"),
        file("endpoint without a rule", plus("[keyspace]\nendpoints = [\"logout\"]\n"), "endpoint `logout` has no rate-limit rule: expected one of authorize"),
        file("payload above 1 MiB", plus("[keyspace]\npayload = 2000000\n"), "bad.toml:8:11: `keyspace.payload` expected at most 1048576 bytes"),
        file("payload range upside down", plus("[keyspace]\npayload = \"512..128\"\n"), "`512..128` has its minimum above its maximum: expected a byte count"),
        file("negative payload", plus("[keyspace]\npayload = -1\n"), "-1 is negative: expected a byte count like 512"),
        file("payload as words", plus("[keyspace]\npayload = \"lots\"\n"), "`lots` is not valid: expected a byte count like 512 or a range like \"256..2048\""),
        file("idle timeout under 1s", plus("[keyspace]\nsession_idle_timeout = \"500ms\"\n"), "`keyspace.session_idle_timeout` expected at least 1s"),
        file("revoked_probe above 1", plus("[keyspace]\nrevoked_probe = 1.5\n"), "`keyspace.revoked_probe` expected a fraction from 0 to 1"),
        file("unknown ip distribution", plus("[keyspace]\nip_distribution = \"pareto(2)\"\n"), "`pareto(2)` is not a distribution: expected \"uniform\""),
        file("rule limit 0", plus("[ratelimit.rules.signin]\nlimit = 0\nwindow = \"60s\"\n"), "`ratelimit.rules.signin.limit` is 0: expected at least 1"),
        file("rule window 0", plus("[ratelimit.rules.signin]\nlimit = 5\nwindow = \"0s\"\n"), "bad.toml:9:10: `ratelimit.rules.signin.window` expected at least 1ms"),
        file("endpoint name that forges keys", plus("[ratelimit.rules.\"sign:in\"]\nlimit = 5\nwindow = \"60s\"\n"), "`ratelimit.rules.sign:in` endpoint names are 1–64 printable ASCII characters without spaces, `:`"),
        file("unknown algorithm", plus("[ratelimit.rules.signin]\nlimit = 5\nwindow = \"60s\"\nalgorithm = \"leaky_bucket\"\n"), "bad.toml:10:13: unknown variant `leaky_bucket`, expected one of `fixed_window`"),
        file("unknown failure mode", plus("[ratelimit]\nfailure_mode = \"maybe\"\n"), "unknown variant `maybe`, expected `open` or `closed`"),
        file("maxmemory in parsecs", plus("[redis]\nmaxmemory = \"64 parsecs\"\n"), "`redis.maxmemory` expected a size like \"64mb\""),
        file("unknown eviction policy", plus("[redis]\nmaxmemory_policy = \"lru\"\n"), "`redis.maxmemory_policy` `lru` is not a policy: expected one of noeviction"),
        file("unknown persistence", plus("[redis]\npersistence = \"sometimes\"\n"), "unknown variant `sometimes`, expected one of `none`, `rdb`, `aof`"),
        file("connect timeout 0", plus("[redis]\nconnect_timeout = \"0ms\"\n"), "`redis.connect_timeout` expected at least 1ms"),
        file("error rate above 1", plus("[slo]\nmax_error_rate = 2\n"), "`slo.max_error_rate` expected a fraction from 0 to 1"),
        file("negative throughput", plus("[slo]\nmin_throughput = -5\n"), "`slo.min_throughput` expected operations per second, 0 or more"),
        file("unknown latency kind", plus("[[slo.latency]]\nop = \"all\"\npercentile = 99\nmax = \"1ms\"\ntime = \"wall\"\n"), "bad.toml:11:8: unknown variant `wall`, expected `response` or `service`"),
    ]
}

#[rustfmt::skip]
fn flag_rows() -> Vec<Row> {
    vec![
        flags("--rate 0", &["run", "SCENARIO", "--dry-run", "--rate", "0"], "--rate: `load.rate` expected operations per second, greater than 0"),
        flags("--users negative", &["run", "SCENARIO", "--dry-run", "--users", "-1"], "unexpected argument '-1'"),
        flags("--users not a number", &["run", "SCENARIO", "--dry-run", "--users", "many"], "invalid value 'many' for '--users <N>'"),
        flags("--rate not a number", &["run", "SCENARIO", "--dry-run", "--rate", "fast"], "invalid value 'fast' for '--rate <OPS_PER_S>'"),
        flags("--set of an unknown key", &["run", "SCENARIO", "--dry-run", "--set", "load.userz=3"], "--set: unknown field `userz`, expected one of `users`"),
        flags("--set of a negative weight", &["run", "SCENARIO", "--dry-run", "--set", "mix.login=-1"], "--set: invalid value: integer `-1`, expected u32"),
        flags("--set without a key", &["run", "SCENARIO", "--dry-run", "--set", "=3"], "--set =3: expected a dotted key such as load.users"),
        flags("--set into a number", &["run", "SCENARIO", "--dry-run", "--set", "load.users.x=1"], "`load.users.x`: `x` is inside a value, not a table"),
        flags("--set past the end of a list", &["run", "scenarios/load/smoke.toml", "--dry-run", "--set", "slo.latency.5.max=1ms"], "`slo.latency.5.max`: the list has 1 entries, index 5 is out of range"),
        flags("--set of an endpoint without a rule", &["run", "SCENARIO", "--dry-run", "--set", "keyspace.endpoints=[\"x\"]"], "--set keyspace.endpoints: `keyspace.endpoints` endpoint `x` has no rate-limit rule"),
        flags("unknown flag", &["run", "SCENARIO", "--userz", "3"], "unexpected argument '--userz' found"),
        flags("no scenario", &["run"], "required arguments were not provided"),
        flags("unknown subcommand", &["fly"], "unrecognized subcommand 'fly'"),
        flags("scenario is a directory", &["run", "scenarios/load", "--dry-run"], "scenarios/load: cannot read the scenario file"),
        flags("scenario does not exist", &["run", "scenarios/load/nope.toml", "--dry-run"], "scenarios/load/nope.toml: cannot read the scenario file: No such file"),
        flags("--redis-url port out of range", &["run", "SCENARIO", "--dry-run", "--redis-url", "redis://:Pw%2FS3cret-7@h:99999"], "--redis-url: REDIS_URL port `99999` of host `h` is not valid: expected a number from 1 to 65535"),
        flags("--redis-url without a host", &["run", "SCENARIO", "--dry-run", "--redis-url", "redis://:Pw%2FS3cret-7@"], "--redis-url: REDIS_URL host #1 is empty: expected host[:port]"),
        flags("--redis-url with an unencoded `/` in the password", &["run", "SCENARIO", "--dry-run", "--redis-url", "redis://:Pw/S3cret-7@h:6379"], "--redis-url: REDIS_URL has an `@` after a `/`, `?` or `://`: if the user name or password contains `/`, `?`, `#`, `:` or `@`, percent-encode them"),
        flags("--redis-url with an unencoded `#` in the password", &["run", "SCENARIO", "--dry-run", "--redis-url", "redis://:Pw#S3cret-7@h:6379"], "--redis-url: REDIS_URL has a `#fragment`, which is not supported"),
        flags("--tls-ca that does not exist", &["run", "SCENARIO", "--redis-url", "rediss://:Pw%2FS3cret-7@127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem", "--out", "OUT"], "--tls-ca /nonexistent/ca.pem: cannot read the CA bundle"),
        flags("doctor --format xml", &["doctor", "--format", "xml"], "invalid value 'xml' for '--format <FORMAT>'"),
        flags("doctor --tls-ca that does not exist", &["doctor", "--tls-ca", "/nonexistent/ca.pem"], "--tls-ca /nonexistent/ca.pem: cannot read it"),
        flags("doctor with a bad --redis-url", &["doctor", "--redis-url", "redis://:Pw%2FS3cret-7@h/a/b/c"], "REDIS_URL path `/a/b/c` is not valid: expected /<db>, /<service> or /<service>/<db>"),
        Row {
            what: "doctor with a bad REDIS_URL",
            file: None,
            args: &["doctor"],
            env_url: Some("redis://app:Pw%2FS3cret-7@h:0"),
            code: 2,
            expect: "REDIS_URL port `0` of host `h` is not valid",
        },
        Row {
            what: "doctor without a target",
            file: None,
            args: &["doctor"],
            env_url: None,
            code: 2,
            expect: "loadgen doctor needs a target: pass --redis-url URL or set REDIS_URL",
        },
    ]
}

fn check(rows: Vec<Row>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.toml");
    let scenario_s = scenario.display().to_string();
    let out_s = dir.path().join("results").display().to_string();
    let mut failures = Vec::new();
    let n = rows.len();
    for row in rows {
        std::fs::write(&scenario, row.file.as_deref().unwrap_or(BASE)).unwrap();
        let args: Vec<&str> = row
            .args
            .iter()
            .map(|a| match *a {
                "SCENARIO" => scenario_s.as_str(),
                "OUT" => out_s.as_str(),
                a => a,
            })
            .collect();
        let mut cmd = loadgen(&args);
        // Unset, a panic prints its hint `run with RUST_BACKTRACE=1`: one more thing to catch.
        cmd.env_remove("RUST_BACKTRACE");
        if let Some(url) = row.env_url {
            cmd.env("REDIS_URL", url);
        }
        let out = cmd.output().expect("loadgen runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let all = format!("{stdout}{stderr}");
        let mut wrong = Vec::new();
        if out.status.code() != Some(row.code) {
            wrong.push(format!(
                "exit {:?}, expected {}",
                out.status.code(),
                row.code
            ));
        }
        if !stderr.contains(row.expect) {
            wrong.push(format!("stderr lacks `{}`", row.expect));
        }
        if all.contains("panicked") || all.contains("RUST_BACKTRACE") {
            wrong.push("panicked".into());
        }
        if all.contains(PASSWORD) || all.contains(PASSWORD_ENCODED) || all.contains("S3cret") {
            wrong.push("printed the password".into());
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}\n{all}", row.what, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    n
}

#[test]
fn malformed_scenario_files_exit_2_naming_the_line_the_field_and_the_expected_form() {
    let n = check(scenario_rows());
    assert!(n >= 38, "{n} rows");
}

#[test]
fn malformed_command_lines_exit_2_naming_the_flag_and_the_expected_form() {
    let n = check(flag_rows());
    assert!(n >= 25, "{n} rows");
}
