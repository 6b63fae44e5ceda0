//! `loadgen evict` as the acceptance states it, scaled down so CI stays fast: the guide's
//! `allkeys-lru` with a maxmemory clearly too small for the live sessions is UNSAFE with a measured
//! count of users logged out early; with a maxmemory that fits it is SAFE with none lost. Each
//! runs the real binary, which starts its own throwaway redis-server.

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
fn allkeys_lru_with_enough_memory_loses_nothing_and_is_safe() {
    let Some(()) = redis_available() else { return };
    let (code, r, log) = evict_allkeys_lru("64mb");
    assert_eq!(code, Some(0), "{log}");
    let p = &r["policies"][0];
    assert_eq!(p["verdict"], "SAFE", "{p}");
    assert_eq!(p["lost_sessions_during_load"], 0, "{p}");
    assert_eq!(p["lost_sessions_at_audit"], 0, "{p}");
    assert_eq!(p["ratelimit_over_admissions"], 0, "{p}");
    assert_eq!(p["seed_oom_errors"], 0, "{p}");
    assert_eq!(p["evicted_keys"], 0, "{p}");
    // Every account's session was read back at the audit.
    assert_eq!(p["audited_sessions"], p["seeded_sessions"], "{p}");
    assert_eq!(p["token_hit_ratio"], 1.0, "{p}");
    let safe = r["smallest_safe_maxmemory_bytes"].as_u64().unwrap();
    assert!(safe <= 64 * 1024 * 1024, "{safe}");
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
