//! `loadgen capacity` against real servers: the projection is checked against a server filled
//! until it refused writes; sizes measured while a previous run's counters expire match a clean
//! server's; a server others keep writing to is refused (exit 3); bad flags are refused with the
//! flag's name.

mod common;

use std::time::{Duration, Instant};

use cache::{ConnectOptions, Redis, RedisUrl};
use common::*;
use futures_util::stream::{self, StreamExt};
use loadgen::testing::{login_session, payload, session_store};
use localredis::{RedisServer, ServerConfig};
use rand::SeedableRng;
use rand::rngs::SmallRng;

const SCENARIO: &str = "scenarios/load/steady-state.toml";

/// Fills the server with sessions shaped like the scenario's (the login's fields, its payload
/// sizes, its sessions per user) through the real `SessionStore`, until a write is refused with
/// OOM; returns how many were stored.
async fn fill_until_oom(url: &str) -> u64 {
    let scenario = loadgen::scenario::load(&root().join(SCENARIO), &[]).unwrap();
    let k = &scenario.keyspace;
    let redis = Redis::connect(&RedisUrl::parse(url).unwrap(), &ConnectOptions::default())
        .await
        .unwrap();
    let store = session_store(&redis, k).unwrap();
    let per = k.sessions_per_user as u64;
    let mut stored = 0u64;
    let mut next = 0u64;
    let started = Instant::now();
    // Batches of 32 concurrent creates; the first OOM ends the fill (every later write would be
    // refused too: nothing expires within the session TTL).
    'fill: loop {
        let batch: Vec<_> = stream::iter(next..next + 32)
            .map(|i| {
                let store = &store;
                let mut rng = SmallRng::seed_from_u64(i);
                let p = payload(k.payload, &mut rng);
                let user = format!("u{}", i / per);
                let ip = format!("198.18.{}.{}", (i >> 8) & 255, i & 255);
                async move { store.create(login_session(&user, &ip, &p)).await }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        next += 32;
        for r in batch {
            match r {
                Ok(_) => stored += 1,
                Err(e) => {
                    assert!(e.to_string().contains("OOM"), "{e}");
                    break 'fill;
                }
            }
        }
        assert!(started.elapsed().as_secs() < 60, "fill did not hit OOM");
    }
    stored
}

#[test]
fn the_projection_is_within_5_percent_of_a_server_filled_until_oom() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(
        ServerConfig::default()
            .maxmemory("64mb")
            .maxmemory_policy("noeviction"),
    )
    .unwrap();
    let url = server.url();
    let o = run(&[
        "capacity",
        SCENARIO,
        "--redis-url",
        &url,
        "--format",
        "json",
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let p = &r["projection"];
    assert_eq!(p["maxmemory_bytes"], 64 * 1024 * 1024);
    assert_eq!(p["maxmemory_source"], "CONFIG GET maxmemory");
    let projected = p["alone_at_maxmemory"]["sessions"].as_u64().unwrap() as f64;
    // With headroom the figure is lower, and the scenario's keyspace fits this server.
    assert!(p["alone"]["sessions"].as_f64().unwrap() < projected);
    assert!(r["bytes_per_session"].as_f64().unwrap() > 500.0);

    let actual = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fill_until_oom(&url)) as f64;
    let error = (projected - actual) / actual;
    eprintln!(
        "projected {projected} sessions at 64mb, stored {actual} before OOM: error {:+.2} %",
        error * 100.0
    );
    assert!(
        error.abs() <= 0.05,
        "projected {projected} sessions, the server stored {actual} ({:+.2} %)",
        error * 100.0
    );
}

/// `loadgen capacity <steady-state> --format json` against `url`: (exit code, report, log).
fn capacity_json(url: &str) -> (Option<i32>, serde_json::Value, String) {
    let o = run(&[
        "capacity",
        SCENARIO,
        "--redis-url",
        url,
        "--samples",
        "1000",
        "--format",
        "json",
    ]);
    let (stdout, stderr) = text(&o);
    let r = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code(), r, format!("{stdout}\n{stderr}"))
}

/// Writes `n` rate-limit counters shaped like a previous run's (`<prefix>:ratelimit:<ip>:<endpoint>`)
/// whose TTLs run out one after another between 0.5 s and `within` from now.
async fn expiring_counters(url: &str, n: u64, within: Duration) {
    let redis = Redis::connect(&RedisUrl::parse(url).unwrap(), &ConnectOptions::default())
        .await
        .unwrap();
    let mut conn = redis.clone();
    let span = within.as_millis() as u64 - 500;
    for batch in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in batch {
            let ip = format!("198.{}.{}.{}", 18 + (i >> 16), (i >> 8) & 255, i & 255);
            let key = format!("loadgen:ratelimit:{ip}:authorize");
            pipe.cmd("SET")
                .arg(key)
                .arg(3)
                .arg("PX")
                .arg(500 + i * span / n)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
}

#[test]
fn sizes_measured_while_a_runs_counters_expire_match_a_clean_servers() {
    let Some(()) = redis_available() else { return };
    let clean = RedisServer::start(ServerConfig::default()).unwrap();
    let (code, c, log) = capacity_json(&clean.url());
    assert_eq!(code, Some(0), "{log}");

    let busy = RedisServer::start(ServerConfig::default()).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(expiring_counters(
            &busy.url(),
            60_000,
            Duration::from_secs(8),
        ));
    let (code, b, log) = capacity_json(&busy.url());
    assert_eq!(code, Some(0), "{log}");
    // The case is real: others' keys did expire while it measured.
    assert!(
        b["measured"]["expired_during"].as_u64().unwrap() > 1000,
        "{b}"
    );
    for kind in ["bytes_per_session", "bytes_per_token", "bytes_per_counter"] {
        let (clean, busy) = (c[kind].as_f64().unwrap(), b[kind].as_f64().unwrap());
        let off = (busy - clean) / clean;
        eprintln!(
            "{kind}: clean {clean} B, while counters expired {busy} B ({:+.1} %)",
            off * 100.0
        );
        assert!(off.abs() <= 0.10, "{kind}: clean {clean}, busy {busy}");
    }
    assert!(
        b["measured"]["model"]["base"].as_f64().unwrap() > 0.0,
        "{b}"
    );
}

#[test]
fn a_server_others_keep_writing_to_is_refused_with_exit_3() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, mut conn) = (stop.clone(), server.connect().unwrap());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.command(&["SET", &format!("other:{i}"), "x"]).unwrap();
                i += 1;
            }
        })
    };
    let (code, _, log) = capacity_json(&server.url());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("others changed the server while loadgen measured"),
        "{log}"
    );
    assert!(!log.contains("needs"), "no projection is printed: {log}");
}

#[test]
fn bad_capacity_flags_exit_2_naming_the_flag() {
    for (args, expected) in [
        (
            vec!["--maxmemory", "lots"],
            "--maxmemory `lots` is not a size",
        ),
        (vec!["--maxmemory", "64tb"], "unknown unit `tb`"),
        (vec!["--headroom", "150%"], "--headroom `150%` is outside"),
        (vec!["--samples", "1"], "--samples 1: expected 10 to"),
    ] {
        let mut a = vec!["capacity", SCENARIO];
        a.extend(args);
        let o = run(&a);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{a:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
