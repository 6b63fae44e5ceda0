//! Bad input, as the issue lists it: each gets a clear message naming the field or flag and the
//! expected form, the right exit code (2 usage/scenario, 3 target), no panic and no secret.

mod common;

use std::time::{Duration, Instant};

use common::*;
use localredis::{RedisServer, ServerConfig, TlsFiles, free_port};

/// Each bad input: exit 2, a message naming what is wrong, no panic, no secret.
#[test]
fn bad_scenarios_and_flags_exit_2_with_the_place_and_the_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[load]\nusers = 4\nduration = \"2s\"\n\n[mix]\npage_view = 1\n";
    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "unknown key",
            format!("{base}[keyspace]\nuserz = 3\n"),
            vec![],
            "bad.toml:8:1: unknown field `userz`",
        ),
        (
            "wrong type",
            base.replace("users = 4", "users = \"four\""),
            vec![],
            "bad.toml:2:9: `load.users` invalid type: a string, expected u32",
        ),
        (
            "zero weight",
            base.replace("page_view = 1", "page_view = 0"),
            vec![],
            "`mix` all weights are 0",
        ),
        (
            "zero duration",
            base.replace("\"2s\"", "\"0s\""),
            vec![],
            "bad.toml:3:12: `load.duration` is 0s: expected at least 1s",
        ),
        (
            "negative duration",
            base.replace("\"2s\"", "\"-2s\""),
            vec![],
            "`-2s` is negative",
        ),
        (
            "duration without unit",
            base.replace("\"2s\"", "2"),
            vec![],
            "2 has no unit",
        ),
        (
            "rate with zero users",
            base.replace("users = 4", "users = 0\nrate = 100.0"),
            vec![],
            "a target rate needs at least one user",
        ),
        (
            "percentile above 100",
            format!("{base}[[slo.latency]]\nop = \"all\"\npercentile = 101\nmax = \"1ms\"\n"),
            vec![],
            "bad.toml:9:14: `slo.latency.0.percentile` 101 is outside 0–100",
        ),
        (
            "percentile below 0",
            format!("{base}[[slo.latency]]\nop = \"all\"\npercentile = -1\nmax = \"1ms\"\n"),
            vec![],
            "is outside 0–100",
        ),
        (
            "unknown op in an slo",
            format!("{base}[[slo.latency]]\nop = \"pageview\"\npercentile = 99\nmax = \"1ms\"\n"),
            vec![],
            "`pageview` is not an operation",
        ),
        (
            "bad distribution",
            format!("{base}[keyspace]\ndistribution = \"zipf\"\n"),
            vec![],
            "expected \"uniform\", \"zipf(<s>)\"",
        ),
        (
            "flag: zero duration",
            base.to_string(),
            vec!["--duration", "0s"],
            "--duration: `load.duration` is 0s",
        ),
        (
            "flag: negative duration",
            base.to_string(),
            vec!["--duration", "-5s"],
            "`-5s` is negative",
        ),
        (
            "flag: rate with zero users",
            base.to_string(),
            vec!["--users", "0", "--rate", "50"],
            "--users: `load.users` is 0: a target rate needs at least one user",
        ),
        (
            "flag: bad --set",
            base.to_string(),
            vec!["--set", "load"],
            "expected key=value",
        ),
        (
            "flag: bad URL",
            base.to_string(),
            vec!["--redis-url", "http://:hunter2@h"],
            "--redis-url: REDIS_URL scheme `http` is not supported",
        ),
        (
            "flag: bad --inject-delay",
            base.to_string(),
            vec!["--inject-delay", "soon"],
            "--inject-delay `soon`",
        ),
    ];
    for (what, body, extra, expected) in cases {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, body).unwrap();
        let p_s = p.display().to_string();
        let mut args = vec!["run", p_s.as_str(), "--dry-run"];
        args.extend(extra);
        let o = run(&args);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {stdout}\n{stderr}");
        assert!(
            stderr.contains(expected),
            "{what}: expected `{expected}` in:\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("hunter2"),
            "{what}: {stderr}"
        );
    }
}

#[test]
fn an_out_directory_that_cannot_be_written_exits_2_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = file.join("results").display().to_string();
    let started = Instant::now();
    let o = run(&[
        "run",
        "scenarios/load/smoke.toml",
        "--redis-url",
        "redis://127.0.0.1:1",
        "--out",
        &out,
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--out") && stderr.contains("cannot create"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn an_unreachable_server_exits_3_within_5_seconds_naming_the_address() {
    let port = free_port().unwrap();
    let url = format!("redis://:pw-not-shown@127.0.0.1:{port}");
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let started = Instant::now();
    let o = run(&[
        "run",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--out",
        &out_s,
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert!(!stderr.contains("pw-not-shown"));
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no empty results directory left"
    );
}

#[test]
fn a_wrong_password_exits_3_without_printing_it() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default().password("right-pw")).unwrap();
    let url = format!("redis://:wrong-pw@127.0.0.1:{}", server.port());
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    // Through REDIS_URL this time: the environment is honoured.
    let o = loadgen(&["run", "scenarios/load/smoke.toml", "--out", &out_s])
        .env("REDIS_URL", &url)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    for secret in ["wrong-pw", "right-pw"] {
        assert!(!stderr.contains(secret) && !stdout.contains(secret));
    }
}

#[test]
fn a_tls_name_mismatch_exits_3() {
    let Some(()) = redis_available() else { return };
    let tls = TlsFiles::generate(&["redis.example.test"]).unwrap();
    let server = RedisServer::start(ServerConfig::default().tls(tls.clone())).unwrap();
    let url = format!("rediss://127.0.0.1:{}", server.port());
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let ca = tls.ca_cert.display().to_string();
    let o = run(&[
        "run",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--tls-ca",
        &ca,
        "--out",
        &out_s,
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");
}

#[test]
fn dry_run_prints_the_resolved_config_with_the_password_redacted() {
    let o = run(&[
        "run",
        "scenarios/load/smoke.toml",
        "--dry-run",
        "--redis-url",
        "redis://app:hunter2@127.0.0.1:6380/2",
        "--users",
        "3",
        "--set",
        "keyspace.distribution=gaussian(0.2)",
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["target"]["url"], "redis://app:***@127.0.0.1:6380/2");
    assert_eq!(j["scenario"]["load"]["users"], 3);
    assert_eq!(j["scenario"]["keyspace"]["distribution"], "gaussian(0.2)");
    assert!(!stdout.contains("hunter2"));
}

#[test]
fn without_redis_server_installed_it_says_how_to_install_it_or_pass_a_url() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let o = loadgen(&["run", "scenarios/load/smoke.toml", "--out", &out_s])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("apt-get install redis-server"), "{stderr}");
    assert!(stderr.contains("--redis-url"), "{stderr}");
}
