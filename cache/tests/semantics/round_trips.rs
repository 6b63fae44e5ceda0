//! One round trip per store operation, counted by the servers: the commands each operation sends
//! (`INFO commandstats`) and the requests read and replies written (`total_reads_processed`,
//! `total_writes_processed`), summed over every node behind the handle.

use std::collections::HashMap;
use std::time::Duration;

use cache::{
    Algorithm, FailureMode, IpPolicy, KeySchema, RateLimiter, Redis, Rule, SessionConfig,
    SessionStore, TokenCache,
};
use localredis::RedisServer;

use crate::support::{claims, new_session, parse_commandstats};

/// What the servers saw: `INFO commandstats` and the round trips (`total_reads_processed`,
/// `total_writes_processed`), summed over the nodes.
#[derive(Debug)]
pub struct Traffic {
    commands: HashMap<String, u64>,
    reads: u64,
    writes: u64,
}

/// Commands a store's script runs inside Redis: counted by Redis, not sent by the client.
pub const SCRIPT_INTERNAL: [&str; 18] = [
    "set",
    "get",
    "del",
    "time",
    "incr",
    "pttl",
    "pexpire",
    "pexpireat",
    "pexpiretime",
    "zadd",
    "zrem",
    "zrange",
    "zremrangebyscore",
    "hget",
    "hset",
    "hkeys",
    "hdel",
    "exists",
];

/// One long-lived connection per node that reads the counters. Long-lived on purpose: Redis counts
/// a closed connection's final read (EOF) in `total_reads_processed`, and a probe that connected
/// afresh each time would have its previous connection's close land, at a moment the kernel
/// chooses, inside the window it measures (CI once saw 26 reads for 25 updates that way).
pub struct Probe {
    conns: Vec<localredis::resp::Connection>,
    /// Round trips one measurement costs (its own `INFO`), found by measuring twice.
    cost: (u64, u64),
}

impl Probe {
    pub fn new(nodes: &[&RedisServer]) -> Probe {
        let conns = nodes
            .iter()
            .map(|n| n.connect().expect("connect the counter probe"))
            .collect();
        let mut probe = Probe {
            conns,
            cost: (0, 0),
        };
        let a = probe.now();
        let b = probe.now();
        probe.cost = (b.reads - a.reads, b.writes - a.writes);
        probe
    }

    /// One `INFO commandstats stats` per node.
    pub fn now(&mut self) -> Traffic {
        let mut t = Traffic {
            commands: HashMap::new(),
            reads: 0,
            writes: 0,
        };
        for conn in &mut self.conns {
            let info = conn
                .command(&["INFO", "commandstats", "stats"])
                .expect("INFO");
            let info = info.as_str().unwrap_or_default();
            // The probe's own AUTH (password-protected nodes) is the measuring, not the stores.
            for (name, calls) in parse_commandstats(info) {
                if name != "auth" {
                    *t.commands.entry(name).or_default() += calls;
                }
            }
            let stat = |name: &str| -> u64 {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
                    .unwrap_or(0)
            };
            t.reads += stat("total_reads_processed");
            t.writes += stat("total_writes_processed");
        }
        t
    }

    /// Commands run and round trips since `before`, less what the measuring itself cost.
    pub fn since(&mut self, before: &Traffic) -> (HashMap<String, u64>, u64, u64) {
        let now = self.now();
        let mut commands = HashMap::new();
        for (k, v) in &now.commands {
            let d = v - before.commands.get(k).copied().unwrap_or(0);
            if d > 0 {
                commands.insert(k.clone(), d);
            }
        }
        (
            commands,
            now.reads - before.reads - self.cost.0,
            now.writes - before.writes - self.cost.1,
        )
    }
}

/// Asserts that `n` operations named `op` were `n` round trips, each sending exactly the commands
/// in `sent` (commands a script runs inside Redis aside); prints the finding.
pub fn assert_one_round_trip_each(
    op: &str,
    n: u64,
    sent: &[&str],
    (commands, reads, writes): (HashMap<String, u64>, u64, u64),
) {
    let scripted = sent.contains(&"evalsha");
    for (name, calls) in &commands {
        if sent.contains(&name.as_str()) {
            assert_eq!(
                *calls, n,
                "{op}: {name} ran {calls} times for {n} operations: {commands:?}"
            );
        } else {
            assert!(
                scripted && SCRIPT_INTERNAL.contains(&name.as_str()),
                "{op}: unexpected command {name} ({calls}×): {commands:?}"
            );
        }
    }
    for name in sent {
        assert!(
            commands.contains_key(*name),
            "{op}: {name} never ran: {commands:?}"
        );
    }
    assert_eq!(
        (reads, writes),
        (n, n),
        "{op}: {n} operations took {reads} requests read and {writes} replies written: {commands:?}"
    );
    println!("{op}: 1 round trip per operation ({})", sent.join(" "));
}

/// Every store operation, `N` times each, is `N` round trips sending the commands the module docs
/// name: on one server or a Cluster (`nodes` are all the servers behind `redis`).
pub async fn each_operation_is_one_round_trip(redis: &Redis, nodes: &[&RedisServer], prefix: &str) {
    const N: u64 = 25;
    let keys = KeySchema::new(prefix).unwrap();
    let sessions =
        SessionStore::new(redis.clone(), keys.clone(), SessionConfig::default()).unwrap();
    let tokens = TokenCache::new(redis.clone(), keys.clone());
    let rule = |algorithm| Rule {
        limit: 1_000_000,
        window: Duration::from_secs(60),
        algorithm,
    };
    let endpoints = Algorithm::ALL.map(|a| (a.name(), a));
    let rules = endpoints
        .iter()
        .map(|(e, a)| (e.to_string(), rule(*a)))
        .collect();
    let limiter = RateLimiter::new(
        redis.clone(),
        keys.clone(),
        rules,
        FailureMode::Closed,
        IpPolicy::default(),
    )
    .unwrap();
    let exp = claims(Duration::from_secs(600));
    let users: Vec<String> = (0..N).map(|i| format!("rt-{i}")).collect();

    // Warm up: the first EVALSHA of each script loads it (NOSCRIPT + SCRIPT LOAD), and the first
    // create anchors the store's estimate of Redis's clock.
    let (warm, _) = sessions.create(new_session("rt-warm")).await.unwrap();
    sessions.get(&warm).await.unwrap();
    sessions.destroy(&warm).await.unwrap();
    sessions.destroy_all_for_user("rt-warm").await.unwrap();
    tokens.revoke("warm", None).await.unwrap();
    for (endpoint, _) in endpoints {
        limiter.check("192.0.2.2", endpoint).await.unwrap();
    }

    let mut probe = Probe::new(nodes);
    let t = probe.now();
    let mut ids = Vec::new();
    for user in &users {
        ids.push(sessions.create(new_session(user)).await.unwrap());
    }
    assert_one_round_trip_each("session.create", N, &["evalsha"], probe.since(&t));
    // Reads: far from the deadline (the default 60 min idle, 24 h lifetime) a read is one GETEX;
    // when the idle refresh could pass the deadline it also caps the TTL there; a store that has no
    // recent reading of Redis's clock asks for one in the same round trip.
    let t = probe.now();
    for (id, _) in &ids {
        sessions.get(id).await.unwrap().unwrap();
    }
    assert_one_round_trip_each("session.get", N, &["getex"], probe.since(&t));
    let capped_config = SessionConfig {
        idle_timeout: Duration::from_secs(24 * 3600),
        ..SessionConfig::default()
    };
    let capped = SessionStore::new(redis.clone(), keys.clone(), capped_config.clone()).unwrap();
    let mut near = Vec::new();
    for user in &users {
        near.push(
            capped
                .create(new_session(&format!("{user}-capped")))
                .await
                .unwrap()
                .0,
        );
    }
    let t = probe.now();
    for id in &near {
        capped.get(id).await.unwrap().unwrap();
    }
    let capping = ["getex", "pexpireat"];
    assert_one_round_trip_each(
        "session.get (near the deadline)",
        N,
        &capping,
        probe.since(&t),
    );
    let t = probe.now();
    for id in &near {
        let fresh = SessionStore::new(redis.clone(), keys.clone(), capped_config.clone()).unwrap();
        fresh.get(id).await.unwrap().unwrap();
    }
    let first = ["getex", "pexpireat", "time"];
    assert_one_round_trip_each("session.get (a store's first)", N, &first, probe.since(&t));
    let t = probe.now();
    for (id, s) in &ids {
        sessions.update(id, s).await.unwrap();
    }
    assert_one_round_trip_each("session.update", N, &["set"], probe.since(&t));
    let t = probe.now();
    for (id, _) in &ids {
        assert!(sessions.destroy(id).await.unwrap());
    }
    assert_one_round_trip_each("session.destroy", N, &["evalsha"], probe.since(&t));
    for user in &users {
        sessions.create(new_session(user)).await.unwrap();
    }
    let t = probe.now();
    for user in &users {
        assert_eq!(sessions.destroy_all_for_user(user).await.unwrap(), 1);
    }
    assert_one_round_trip_each(
        "session.destroy_all_for_user",
        N,
        &["evalsha"],
        probe.since(&t),
    );
    let t = probe.now();
    for i in 0..N {
        tokens.put(&format!("t{i}"), &exp).await.unwrap();
    }
    assert_one_round_trip_each("token.put", N, &["set"], probe.since(&t));
    let t = probe.now();
    for i in 0..N {
        tokens.get(&format!("t{i}")).await.unwrap().unwrap();
    }
    assert_one_round_trip_each("token.get", N, &["get"], probe.since(&t));
    let t = probe.now();
    for i in 0..N {
        tokens
            .revoke(&format!("t{i}"), Some(exp.exp))
            .await
            .unwrap();
    }
    assert_one_round_trip_each("token.revoke", N, &["evalsha"], probe.since(&t));
    for (endpoint, _) in endpoints {
        let t = probe.now();
        for _ in 0..N {
            limiter.check("192.0.2.2", endpoint).await.unwrap();
        }
        let op = format!("ratelimit.check ({endpoint})");
        assert_one_round_trip_each(&op, N, &["evalsha"], probe.since(&t));
    }
}
