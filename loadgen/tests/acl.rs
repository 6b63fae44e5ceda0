//! Least privilege, as the README's Permissions section promises: a Redis user created with exactly
//! the rule `loadgen doctor` prints passes `run`, `capacity`, `evict` and `doctor`; the same rule
//! without one command stops with exit 3 naming it (`GETEX` in a run's load, `EVALSHA` in an
//! eviction run, which is then NOT TESTED). The run also shows `report.html` is self-contained.

mod common;

use std::collections::BTreeMap;

use common::*;
use localredis::{RedisServer, ServerConfig};

const SMOKE: &str = "scenarios/load/smoke.toml";
const EVICTION: &str = "scenarios/load/eviction.toml";
const PW: &str = "acl-test-pw";

/// `loadgen doctor --format json`'s rules, by whom they are for.
fn printed_rules(admin_url: &str) -> BTreeMap<String, String> {
    let o = run(&["doctor", "--redis-url", admin_url, "--format", "json"]);
    let (stdout, stderr) = text(&o);
    let r: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    r["acl"]
        .as_array()
        .expect("doctor prints the ACL rules")
        .iter()
        .map(|a| {
            (
                a["for"].as_str().unwrap().to_string(),
                a["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The printed rule for `for_`, with the scenarios' prefixes instead of the default one, and
/// without `drop` (e.g. `+getex`) when given.
fn rule_for(rules: &BTreeMap<String, String>, for_: &str, drop: Option<&str>) -> Vec<String> {
    let prefixes: Vec<String> = [SMOKE, EVICTION]
        .iter()
        .map(|s| {
            let sc = loadgen::scenario::load(&root().join(s), &[]).unwrap();
            format!("~{}:*", sc.keyspace.prefix)
        })
        .collect();
    let rule = rules[for_].replace("~authority:*", &prefixes.join(" "));
    rule.split_whitespace()
        .filter(|w| Some(*w) != drop)
        .map(String::from)
        .collect()
}

/// Creates `name` with password [`PW`] and `rule`; returns its URL.
fn user(server: &RedisServer, name: &str, rule: &[String]) -> String {
    let mut args = vec![
        "ACL".to_string(),
        "SETUSER".into(),
        name.into(),
        "reset".into(),
    ];
    args.extend(["on".to_string(), format!(">{PW}")]);
    args.extend(rule.iter().cloned());
    server.command(&args).expect("ACL SETUSER");
    format!("redis://{name}:{PW}@127.0.0.1:{}", server.port())
}

fn out_dir() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().display().to_string();
    (d, s)
}

#[test]
fn a_user_with_exactly_the_printed_rule_passes_run_capacity_evict_and_doctor() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let rules = printed_rules(&server.url());
    assert_eq!(
        rules.keys().collect::<Vec<_>>(),
        ["doctor", "run, sweep, evict, capacity", "stores"]
    );
    let url = user(
        &server,
        "loadgen",
        &rule_for(&rules, "run, sweep, evict, capacity", None),
    );
    let (out_path, out) = out_dir();

    let mut args = vec!["run", SMOKE, "--redis-url", &url, "--out", &out];
    args.extend(QUICK);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "run: {stdout}\n{stderr}");
    assert!(!stderr.contains("lacks"), "{stderr}");
    // loadgen's own page: tables and the chart inline, nothing fetched from elsewhere.
    let dir = results_dir(&stdout);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("<svg"), "{html}");
    for attr in ["src=", "href="] {
        assert!(!html.contains(attr), "report.html has {attr}");
    }
    assert!(dir.join("goose-report.html").is_file());

    let o = run(&["capacity", SMOKE, "--redis-url", &url, "--samples", "200"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "capacity: {stdout}\n{stderr}");
    assert!(!stderr.contains("lacks"), "{stderr}");

    let doctor_url = user(&server, "doctor", &rule_for(&rules, "doctor", None));
    let o = run(&["doctor", "--redis-url", &doctor_url]);
    let (stdout, stderr) = text(&o);
    // 1: the default server has high findings (no maxmemory); 3 would be a refusal.
    assert_eq!(o.status.code(), Some(1), "doctor: {stdout}\n{stderr}");
    assert!(!stdout.contains("acl-missing-command"), "{stdout}");

    // Eviction pressure, so that the verdict is SAFE or UNSAFE, never NOT TESTED.
    server
        .command(&["CONFIG", "SET", "maxmemory", "16mb"])
        .unwrap();
    server
        .command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .unwrap();
    let e = evict_on(EVICTION, &url, out_path.path());
    assert!(matches!(e.code, Some(0 | 1)), "evict: {}", e.log);
    assert!(
        !e.log.contains("NOT TESTED") && !e.log.contains("lacks"),
        "{}",
        e.log
    );
}

#[test]
fn a_user_lacking_one_command_gets_exit_3_naming_it() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let rules = printed_rules(&server.url());
    let load = "run, sweep, evict, capacity";

    let url = user(&server, "nogetex", &rule_for(&rules, load, Some("+getex")));
    let (out_path, out) = out_dir();
    let mut args = vec!["run", SMOKE, "--redis-url", &url, "--out", &out];
    args.extend(QUICK);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("the ACL user lacks `GETEX`"), "{stderr}");

    let url = user(
        &server,
        "noevalsha",
        &rule_for(&rules, load, Some("+evalsha")),
    );
    server
        .command(&["CONFIG", "SET", "maxmemory", "16mb"])
        .unwrap();
    let e = evict_on(EVICTION, &url, out_path.path());
    assert_eq!(e.code, Some(3), "{}", e.log);
    let (r, stdout) = (e.report, e.log);
    let p = &r["policies"][0];
    assert_eq!(p["verdict"], "NOT TESTED", "{p}");
    assert!(
        p["reasons"][0]
            .as_str()
            .unwrap()
            .contains("the ACL user lacks `EVALSHA`"),
        "{p}"
    );
    assert!(stdout.contains("NOT TESTED"), "{stdout}");

    let url = user(
        &server,
        "noinfo",
        &rule_for(&rules, "doctor", Some("+info")),
    );
    let o = run(&["doctor", "--redis-url", &url]);
    let (stdout, _) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("the ACL user lacks `INFO`"), "{stdout}");
}
