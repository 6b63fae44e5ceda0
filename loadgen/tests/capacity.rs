//! `loadgen capacity` against real servers: the projection is checked against a server filled
//! until it refused writes, and bad flags are refused with the flag's name.

mod common;

use std::time::Instant;

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
