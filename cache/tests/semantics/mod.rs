//! Checks of the stores' promises under races and at their bounds, shared by the standalone and the
//! Cluster test files (each check takes `cache::Redis` handles, so it runs on any topology):
//! - [`logout_race`]: logins racing "log out everywhere", judged against real time;
//! - [`index_stays_bounded`]: the per-user index after thousands of login/logout cycles;
//! - [`each_operation_is_one_round_trip`]: every operation's commands and round trips, counted by
//!   the servers ([`Traffic`]).
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache::{
    Algorithm, FailureMode, IpPolicy, KeySchema, NewSession, RateLimiter, Redis, Rule,
    SessionConfig, SessionId, SessionStore, TokenCache,
};
use localredis::RedisServer;

use super::support::{claims, parse_commandstats};

pub fn login(user: &str) -> NewSession {
    NewSession {
        user_id: user.into(),
        client_ip: Some("198.51.100.20".into()),
        user_agent: Some("semantics".into()),
        data: [("authenticated".to_string(), serde_json::json!(true))]
            .into_iter()
            .collect(),
    }
}

pub async fn exists(redis: &Redis, key: &str) -> bool {
    let mut conn = redis.clone();
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    n == 1
}

pub async fn index_len(redis: &Redis, index: &str) -> usize {
    let mut conn = redis.clone();
    redis::cmd("ZCARD")
        .arg(index)
        .query_async(&mut conn)
        .await
        .expect("ZCARD")
}

pub async fn listed(redis: &Redis, index: &str, key: &str) -> bool {
    let mut conn = redis.clone();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(index)
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    score.is_some()
}

/// `PEXPIRETIME` of `key`: Unix ms, -1 without a TTL, -2 when absent.
pub async fn expires_at(redis: &Redis, key: &str) -> i64 {
    let mut conn = redis.clone();
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("PEXPIRETIME")
}

/// One login as a task saw it.
struct Login {
    id: SessionId,
    invoked: Instant,
    acked: Instant,
}

/// What [`logout_race`] saw.
#[derive(Debug, Default)]
pub struct RaceFigures {
    pub rounds: usize,
    pub logins: usize,
    /// Logins acknowledged before the logout was invoked: all must be gone.
    pub before: usize,
    /// Logins invoked after the logout was acknowledged: all must survive.
    pub after: usize,
    /// Logins whose call overlapped the logout's: either outcome is right.
    pub racing: usize,
    pub racing_gone: usize,
    /// Sessions created before the logout's linearisation point that survived it (must be 0).
    pub survivors_from_before: usize,
    /// Sessions created after the logout returned that did not survive (must be 0).
    pub lost_after: usize,
    /// Sessions alive but missing from the index (must be 0), or listed but gone (must be 0).
    pub lost_index_entries: usize,
    pub dangling_index_entries: usize,
    /// Logouts whose count differs from the sessions that disappeared (must be 0).
    pub miscounted: usize,
    /// Sessions still alive after a second logout with nothing racing it (must be 0).
    pub unreachable: usize,
}

impl RaceFigures {
    pub fn violations(&self) -> usize {
        self.survivors_from_before
            + self.lost_after
            + self.lost_index_entries
            + self.dangling_index_entries
            + self.miscounted
            + self.unreachable
    }
}

/// The login-during-logout-everywhere race, `rounds` times: each of `logins` (one store per task,
/// each on its own connection, as separate server instances would be) logs a fresh user in
/// `per_task` times while `logout` runs one log-out-everywhere for that user once half of the logins
/// are done. Judged against real time (Jepsen-style: invocation and completion instants):
/// a login acknowledged before the logout was invoked must be gone; one invoked after the logout
/// returned must survive; every survivor must be in the index and nothing gone may be; the logout's
/// count must equal the sessions that disappeared.
pub async fn logout_race(
    logins: &[SessionStore],
    logout: &SessionStore,
    raw: &Redis,
    keys: &KeySchema,
    rounds: usize,
    per_task: usize,
) -> RaceFigures {
    let mut f = RaceFigures {
        rounds,
        ..Default::default()
    };
    for round in 0..rounds {
        let user = format!("race-{round}");
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for store in logins {
            let (store, user, done) = (store.clone(), user.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..per_task {
                    let invoked = Instant::now();
                    let (id, _) = store.create(login(&user)).await.expect("login");
                    seen.push(Login {
                        id,
                        invoked,
                        acked: Instant::now(),
                    });
                    done.fetch_add(1, Ordering::Relaxed);
                }
                seen
            }));
        }
        let half = logins.len() * per_task / 2;
        while done.load(Ordering::Relaxed) < half {
            tokio::task::yield_now().await;
        }
        let invoked = Instant::now();
        let count = logout.destroy_all_for_user(&user).await.expect("logout");
        let acked = Instant::now();
        let mut seen = Vec::new();
        for t in tasks {
            seen.extend(t.await.expect("login task"));
        }
        let index = keys.user_sessions(&user).expect("user id");
        let mut gone = 0;
        for l in &seen {
            let key = keys.session(l.id.expose());
            let alive = exists(raw, &key).await;
            let in_index = listed(raw, &index, &key).await;
            gone += usize::from(!alive);
            if l.acked < invoked {
                f.before += 1;
                f.survivors_from_before += usize::from(alive);
            } else if l.invoked > acked {
                f.after += 1;
                f.lost_after += usize::from(!alive);
            } else {
                f.racing += 1;
                f.racing_gone += usize::from(!alive);
            }
            f.lost_index_entries += usize::from(alive && !in_index);
            f.dangling_index_entries += usize::from(!alive && in_index);
        }
        f.miscounted += usize::from(count != gone);
        f.logins += seen.len();
        // A second logout must end every survivor, and leave no index behind.
        let left = logout.destroy_all_for_user(&user).await.expect("cleanup");
        f.miscounted += usize::from(left != seen.len() - gone);
        for l in &seen {
            let key = keys.session(l.id.expose());
            f.unreachable += usize::from(exists(raw, &key).await);
        }
        assert!(
            !exists(raw, &index).await,
            "round {round}: index left behind"
        );
    }
    f
}

/// What [`index_stays_bounded`] saw.
#[derive(Debug)]
pub struct IndexFigures {
    pub cycles: usize,
    pub live: usize,
    pub largest: usize,
    pub last: usize,
    /// The index's expiry minus the latest deadline of a live session, ms (must be 0).
    pub expiry_beyond_last_session_ms: i64,
}

/// `live` sessions of `user` stay logged in while `stores.len()` tasks run `cycles` login/logout
/// cycles in total for the same user; the index is sampled every 100 cycles per task.
pub async fn index_stays_bounded(
    stores: &[SessionStore],
    raw: &Redis,
    keys: &KeySchema,
    user: &str,
    live: usize,
    cycles: usize,
) -> IndexFigures {
    let index = keys.user_sessions(user).expect("user id");
    let mut deadlines = Vec::new();
    for _ in 0..live {
        deadlines.push(
            stores[0]
                .create(login(user))
                .await
                .expect("login")
                .0
                .deadline_ms(),
        );
    }
    let per_task = cycles / stores.len();
    let mut tasks = Vec::new();
    for store in stores {
        let (store, raw, user, index) =
            (store.clone(), raw.clone(), user.to_string(), index.clone());
        tasks.push(tokio::spawn(async move {
            let mut largest = 0;
            for i in 0..per_task {
                let (id, _) = store.create(login(&user)).await.expect("login");
                assert!(store.destroy(&id).await.expect("logout"), "cycle {i}");
                if i % 100 == 0 {
                    largest = largest.max(index_len(&raw, &index).await);
                }
            }
            largest
        }));
    }
    let mut largest = 0;
    for t in tasks {
        largest = largest.max(t.await.expect("cycle task"));
    }
    let last_deadline = deadlines.iter().copied().max().unwrap_or(0) as i64;
    IndexFigures {
        cycles: per_task * stores.len(),
        live,
        largest,
        last: index_len(raw, &index).await,
        expiry_beyond_last_session_ms: expires_at(raw, &index).await - last_deadline,
    }
}

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

impl Traffic {
    /// One `INFO commandstats stats` per node, on a fresh connection.
    pub fn now(nodes: &[&RedisServer]) -> Traffic {
        let mut t = Traffic {
            commands: HashMap::new(),
            reads: 0,
            writes: 0,
        };
        for node in nodes {
            let info = node
                .command(&["INFO", "commandstats", "stats"])
                .expect("INFO");
            let info = info.as_str().unwrap_or_default();
            // The probes' own AUTH (password-protected nodes) is the measuring, not the stores.
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

    /// Commands run and round trips since `before`, less what the measuring itself cost
    /// (`baseline`: two measurements with nothing in between).
    pub fn since(
        &self,
        before: &Traffic,
        baseline: (u64, u64),
    ) -> (HashMap<String, u64>, u64, u64) {
        let mut commands = HashMap::new();
        for (k, v) in &self.commands {
            let d = v - before.commands.get(k).copied().unwrap_or(0);
            if d > 0 {
                commands.insert(k.clone(), d);
            }
        }
        (
            commands,
            self.reads - before.reads - baseline.0,
            self.writes - before.writes - baseline.1,
        )
    }

    /// Round trips the measuring itself costs between two measurements.
    pub fn baseline(nodes: &[&RedisServer]) -> (u64, u64) {
        let a = Traffic::now(nodes);
        let b = Traffic::now(nodes);
        (b.reads - a.reads, b.writes - a.writes)
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
    let endpoints = [
        ("fixed", Algorithm::FixedWindow),
        ("sliding", Algorithm::SlidingWindow),
        ("gcra", Algorithm::Gcra),
    ];
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
    let (warm, _) = sessions.create(login("rt-warm")).await.unwrap();
    sessions.get(&warm).await.unwrap();
    sessions.destroy(&warm).await.unwrap();
    sessions.destroy_all_for_user("rt-warm").await.unwrap();
    tokens.revoke("warm", None).await.unwrap();
    for (endpoint, _) in endpoints {
        limiter.check("192.0.2.2", endpoint).await.unwrap();
    }

    let baseline = Traffic::baseline(nodes);
    let measure = |t: &Traffic| Traffic::now(nodes).since(t, baseline);
    let t = Traffic::now(nodes);
    let mut ids = Vec::new();
    for user in &users {
        ids.push(sessions.create(login(user)).await.unwrap());
    }
    assert_one_round_trip_each("session.create", N, &["evalsha"], measure(&t));
    // Reads: far from the deadline (the default 60 min idle, 24 h lifetime) a read is one GETEX;
    // when the idle refresh could pass the deadline it also caps the TTL there; a store that has no
    // recent reading of Redis's clock asks for one in the same round trip.
    let t = Traffic::now(nodes);
    for (id, _) in &ids {
        sessions.get(id).await.unwrap().unwrap();
    }
    assert_one_round_trip_each("session.get", N, &["getex"], measure(&t));
    let capped_config = SessionConfig {
        idle_timeout: Duration::from_secs(24 * 3600),
        ..SessionConfig::default()
    };
    let capped = SessionStore::new(redis.clone(), keys.clone(), capped_config.clone()).unwrap();
    let mut near = Vec::new();
    for user in &users {
        near.push(
            capped
                .create(login(&format!("{user}-capped")))
                .await
                .unwrap()
                .0,
        );
    }
    let t = Traffic::now(nodes);
    for id in &near {
        capped.get(id).await.unwrap().unwrap();
    }
    let capping = ["getex", "pexpireat"];
    assert_one_round_trip_each("session.get (near the deadline)", N, &capping, measure(&t));
    let t = Traffic::now(nodes);
    for id in &near {
        let fresh = SessionStore::new(redis.clone(), keys.clone(), capped_config.clone()).unwrap();
        fresh.get(id).await.unwrap().unwrap();
    }
    let first = ["getex", "pexpireat", "time"];
    assert_one_round_trip_each("session.get (a store's first)", N, &first, measure(&t));
    let t = Traffic::now(nodes);
    for (id, s) in &ids {
        sessions.update(id, s).await.unwrap();
    }
    assert_one_round_trip_each("session.update", N, &["set"], measure(&t));
    let t = Traffic::now(nodes);
    for (id, _) in &ids {
        assert!(sessions.destroy(id).await.unwrap());
    }
    assert_one_round_trip_each("session.destroy", N, &["evalsha"], measure(&t));
    for user in &users {
        sessions.create(login(user)).await.unwrap();
    }
    let t = Traffic::now(nodes);
    for user in &users {
        assert_eq!(sessions.destroy_all_for_user(user).await.unwrap(), 1);
    }
    assert_one_round_trip_each("session.destroy_all_for_user", N, &["evalsha"], measure(&t));
    let t = Traffic::now(nodes);
    for i in 0..N {
        tokens.put(&format!("t{i}"), &exp).await.unwrap();
    }
    assert_one_round_trip_each("token.put", N, &["set"], measure(&t));
    let t = Traffic::now(nodes);
    for i in 0..N {
        tokens.get(&format!("t{i}")).await.unwrap().unwrap();
    }
    assert_one_round_trip_each("token.get", N, &["get"], measure(&t));
    let t = Traffic::now(nodes);
    for i in 0..N {
        tokens
            .revoke(&format!("t{i}"), Some(exp.exp))
            .await
            .unwrap();
    }
    assert_one_round_trip_each("token.revoke", N, &["evalsha"], measure(&t));
    for (endpoint, _) in endpoints {
        let t = Traffic::now(nodes);
        for _ in 0..N {
            limiter.check("192.0.2.2", endpoint).await.unwrap();
        }
        let op = format!("ratelimit.check ({endpoint})");
        assert_one_round_trip_each(&op, N, &["evalsha"], measure(&t));
    }
}
