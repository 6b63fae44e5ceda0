//! `loadgen evict` as the acceptance states it, scaled down so CI stays fast: the guide's
//! `allkeys-lru` with a maxmemory clearly too small for the live sessions is UNSAFE with a measured
//! count of users logged out early; with a maxmemory that fits — no eviction pressure — and on a
//! target without maxmemory it is NOT TESTED (exit 3), however little was lost. Each runs the real
//! binary against a real redis-server. (An ACL user that cannot run EVALSHA: `tests/acl.rs`.)

mod common;

use common::*;

const SCENARIO: &str = "scenarios/load/eviction.toml";

/// `loadgen evict` with allkeys-lru at `maxmemory`, short; returns (exit code, evict.json).
fn evict_allkeys_lru(maxmemory: &str) -> (Option<i32>, serde_json::Value, String) {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let o = run(&[
        "evict",
        SCENARIO,
        "--policies",
        "allkeys-lru",
        "--maxmemory",
        maxmemory,
        "--duration",
        "2s",
        "--set",
        "load.warmup=0s",
        "--out",
        &out_s,
    ]);
    let (stdout, stderr) = text(&o);
    let dir = results_dir(&stdout);
    assert!(dir.join("evict.md").is_file(), "{stdout}\n{stderr}");
    let report = serde_json::from_str(&std::fs::read_to_string(dir.join("evict.json")).unwrap())
        .unwrap_or_else(|e| panic!("evict.json: {e}\n{stdout}\n{stderr}"));
    (o.status.code(), report, format!("{stdout}\n{stderr}"))
}

#[test]
fn allkeys_lru_with_too_little_memory_logs_users_out_and_is_unsafe() {
    let Some(()) = redis_available() else { return };
    let (code, r, log) = evict_allkeys_lru("16mb");
    assert_eq!(code, Some(1), "{log}");
    let p = &r["policies"][0];
    assert_eq!(p["policy"], "allkeys-lru");
    assert_eq!(p["maxmemory_bytes"], 16 * 1024 * 1024);
    assert_eq!(p["verdict"], "UNSAFE", "{p}");
    let lost = p["lost_sessions_during_load"].as_u64().unwrap()
        + p["lost_sessions_at_audit"].as_u64().unwrap();
    assert!(lost > 0, "{p}");
    assert!(p["evicted_keys"].as_u64().unwrap() > 0, "{p}");
    assert!(
        p["reasons"][0]
            .as_str()
            .unwrap()
            .contains("signed-in users were logged out early"),
        "{p}"
    );
    // The projection agrees: this keyspace needs more than 16 MB.
    let safe = r["smallest_safe_maxmemory_bytes"].as_u64().unwrap();
    assert!(safe > 16 * 1024 * 1024, "{safe}");
    assert_eq!(r["all_safe"], false);
    assert!(log.contains("allkeys-lru    UNSAFE"), "{log}");
}

#[test]
fn with_room_to_spare_nothing_is_lost_but_the_policy_is_not_tested() {
    let Some(()) = redis_available() else { return };
    let (code, r, log) = evict_allkeys_lru("64mb");
    // Nothing was lost, but nothing could have been: memory never came near maxmemory.
    assert_eq!(code, Some(3), "{log}");
    let p = &r["policies"][0];
    assert_eq!(p["verdict"], "NOT TESTED", "{p}");
    assert_eq!(p["lost_sessions_during_load"], 0, "{p}");
    assert_eq!(p["lost_sessions_at_audit"], 0, "{p}");
    assert_eq!(p["evicted_keys"], 0, "{p}");
    // The workload did run: every account's session was read back at the audit.
    assert_eq!(p["audited_sessions"], p["seeded_sessions"], "{p}");
    let why = p["reasons"].to_string();
    assert!(why.contains("no eviction pressure"), "{why}");
    assert!(
        p["peak_used_memory"].as_u64().unwrap() < 64 * 1024 * 1024 * 9 / 10,
        "{p}"
    );
    assert_eq!(r["all_safe"], false);
    assert!(log.contains("allkeys-lru    NOT TESTED"), "{log}");
    let safe = r["smallest_safe_maxmemory_bytes"].as_u64().unwrap();
    assert!(safe <= 64 * 1024 * 1024, "{safe}");
}

#[test]
fn a_target_without_maxmemory_is_not_tested() {
    let Some(()) = redis_available() else { return };
    let server = localredis::RedisServer::start(localredis::ServerConfig::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = evict_on(SCENARIO, &server.url(), out.path());
    assert_eq!(e.code, Some(3), "{}", e.log);
    let r = e.report;
    let p = &r["policies"][0];
    assert_eq!(p["verdict"], "NOT TESTED", "{p}");
    assert!(p["seeded_sessions"].as_u64().unwrap() > 0, "{p}");
    assert!(
        p["reasons"].to_string().contains("maxmemory is not set"),
        "{p}"
    );
}

#[test]
fn bad_evict_flags_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--policies", "allkeys-lru,most-recent"],
            "--policies: `redis.maxmemory_policy` `most-recent` is not a policy: expected one of noeviction",
        ),
        (
            &["--policies", "allkeys-lru,"],
            "--policies `allkeys-lru,`: empty entry",
        ),
        (
            &["--maxmemory", "16 parsecs"],
            "--maxmemory: `redis.maxmemory` expected a size",
        ),
        (
            &["--duration", "0s"],
            "--duration `0s`: expected at least 1s",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--policies",
                "noeviction",
            ],
            "--policies and --maxmemory configure throwaway servers",
        ),
    ];
    for (args, expected) in cases {
        let mut a = vec!["evict", SCENARIO];
        a.extend(args);
        let o = run(&a);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{a:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A scenario without [redis] maxmemory needs the flag.
    let o = run(&["evict", "scenarios/load/smoke.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("needs a maxmemory"), "{}", text(&o).1);
}
