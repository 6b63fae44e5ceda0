//! The session and token promises at their edges, on one real redis-server: logins racing "log out
//! everywhere", the per-user index after 10,000 login/logout cycles, deadlines under injected clock
//! skew (switched while the store runs), and revocation tombstones on a skewed host.
//!
//! Each test prints its figures (`cargo test -p cache --test session_semantics -- --nocapture`).

mod semantics;
mod support;

use std::time::{Duration, Instant};

use cache::token::token_hash;
use cache::{
    Error, ErrorKind, HostClock, KeySchema, Redis, SessionConfig, SessionStore, TokenCache,
    TokenStatus,
};
use localredis::{RedisServer, ServerConfig};
use semantics::*;
use support::*;

fn server() -> Option<RedisServer> {
    have(&["redis-server"])
        .then(|| RedisServer::start(ServerConfig::default()).expect("start redis-server"))
}

fn store(redis: &Redis, keys: &KeySchema, config: SessionConfig) -> SessionStore {
    SessionStore::new(redis.clone(), keys.clone(), config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_never_misses_a_racing_login() {
    let Some(server) = server() else { return };
    let keys = KeySchema::new("race").unwrap();
    // 8 login tasks and the logout, each with its own connection, as 9 server instances would be.
    let mut logins = Vec::new();
    for _ in 0..8 {
        let redis = patient(&server.url()).await;
        logins.push(store(&redis, &keys, SessionConfig::default()));
    }
    let raw = patient(&server.url()).await;
    let logout = store(&raw, &keys, SessionConfig::default());
    let f = logout_race(&logins, &logout, &raw, &keys, 300, 4).await;
    println!("{f:?}");
    assert_eq!(f.violations(), 0, "{f:?}");
    // The race was a race: logins overlapped the logout and both outcomes happened.
    assert!(f.racing >= 100, "only {} racing logins: {f:?}", f.racing);
    assert!(
        f.racing_gone > 0 && f.racing_gone < f.racing,
        "racing logins all went one way: {f:?}"
    );
    assert!(keys_without_ttl(&server, "race:*").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_holds_only_sessions_that_can_still_be_alive() {
    let Some(server) = server() else { return };
    let raw = patient(&server.url()).await;
    let keys = KeySchema::new("bound").unwrap();
    let stores: Vec<SessionStore> = (0..8)
        .map(|_| store(&raw, &keys, SessionConfig::default()))
        .collect();
    let f = index_stays_bounded(&stores, &raw, &keys, "daily-user", 3, 10_000).await;
    println!("{f:?}");
    assert_eq!(f.cycles, 10_000);
    assert_eq!(f.last, f.live, "{f:?}");
    // Sampled while 8 tasks cycle: at most one in-flight session per task beyond the live ones.
    assert!(f.largest <= f.live + stores.len(), "{f:?}");
    assert_eq!(f.expiry_beyond_last_session_ms, 0, "{f:?}");
    assert!(keys_without_ttl(&server, "bound:*").is_empty());
}

#[tokio::test]
async fn sessions_past_their_deadline_are_pruned_from_the_index_on_the_next_login() {
    let Some(server) = server() else { return };
    let raw = connect(&server.url()).await;
    let keys = KeySchema::new("prune").unwrap();
    // Never logged out: each dies by its deadline; the index must not keep them.
    let lifetime = Duration::from_millis(300);
    let config = SessionConfig {
        idle_timeout: Duration::from_millis(100),
        absolute_lifetime: lifetime,
        ..Default::default()
    };
    let sessions = store(&raw, &keys, config.clone());
    let index = keys.user_sessions("forgetful").unwrap();
    let (mut deadlines, mut largest, mut checked) = (Vec::new(), 0usize, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        let invoked = now_ms();
        let (id, _) = sessions.create(new_session("forgetful")).await.unwrap();
        deadlines.push(id.deadline_ms());
        // Alive at most: sessions whose deadline had not passed when this login ran.
        let tolerance = config.deadline_tolerance().as_millis() as u64;
        let could_live = deadlines
            .iter()
            .filter(|d| **d + tolerance >= invoked)
            .count();
        let len = index_len(&raw, &index).await;
        assert!(
            len <= could_live,
            "index holds {len}, at most {could_live} can be alive"
        );
        largest = largest.max(len);
        checked += 1;
    }
    println!(
        "{checked} logins over 1.5 s with a {lifetime:?} lifetime, never logged out: index at most {largest}"
    );
    assert!(
        checked > 20 && largest < checked / 2,
        "{largest} of {checked}"
    );
}

#[tokio::test]
async fn a_full_server_refuses_logins_but_never_a_logout() {
    if !have(&["redis-server"]) {
        return;
    }
    let maxmemory = 4 * 1024 * 1024u64;
    let server = RedisServer::start(
        ServerConfig::default()
            .maxmemory("4mb")
            .maxmemory_policy("noeviction"),
    )
    .expect("start redis-server");
    let raw = connect(&server.url()).await;
    let sessions = store(
        &raw,
        &KeySchema::new("full").unwrap(),
        SessionConfig::default(),
    );
    let mut login = new_session("filler");
    login
        .data
        .insert("payload".into(), serde_json::json!("x".repeat(1024)));
    let mut stored = 0;
    let refusal = loop {
        // Bounded: 4 MiB holds a few thousand of these; the bug this guards against never stops.
        assert!(stored < 20_000, "{stored} logins stored past maxmemory");
        let mut user = login.clone();
        user.user_id = format!("filler-{}", stored % 50);
        match sessions.create(user).await {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(refusal.kind(), ErrorKind::OutOfMemory, "{refusal}");
    let info = server.command(&["INFO", "memory"]).unwrap();
    let used: u64 = info
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    // A script that starts below the limit runs to its end: one login's worth past it at most.
    assert!(
        used < maxmemory + 64 * 1024,
        "used_memory {used} > maxmemory {maxmemory}"
    );
    // Logging out must work on a full server: it frees memory.
    let mut freed = 0;
    for user in 0..25 {
        freed += sessions
            .destroy_all_for_user(&format!("filler-{user}"))
            .await
            .unwrap();
    }
    assert!(freed > 0);
    sessions.create(new_session("after")).await.unwrap();
    println!(
        "maxmemory 4 MiB, noeviction: {stored} logins stored, then refused ({}); used_memory \
         {used}; log-out-everywhere of {freed} sessions worked and a login fit again",
        refusal.kind()
    );
}

fn now_ms() -> u64 {
    HostClock::system().now_ms()
}

/// Redis's clock, Unix ms.
async fn redis_now_ms(redis: &Redis) -> u64 {
    let mut conn = redis.clone();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Skew of this host, ms: none, half a minute either way, two hours (more than the idle timeout)
/// either way; the last ones are switched on a running store.
const OFFSETS: [i64; 5] = [0, 30_000, -30_000, 7_200_000, -7_200_000];

#[tokio::test]
async fn deadlines_are_on_redis_clock_whatever_the_host_clock_says() {
    let Some(server) = server() else { return };
    let raw = connect(&server.url()).await;
    let keys = KeySchema::new("skew").unwrap();
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(60 * 60),
        absolute_lifetime: Duration::from_secs(4 * 60 * 60),
        ..Default::default()
    };
    let (idle, lifetime) = (3_600_000u64, 14_400_000u64);
    let tolerance = config.deadline_tolerance().as_millis() as u64;
    // Load the scripts first: a NOSCRIPT reply is counted as an EVALSHA too.
    let warm = store(&raw, &keys, config.clone());
    let (id, _) = warm.create(new_session("skewed")).await.unwrap();
    warm.destroy(&id).await.unwrap();
    // A fresh store per offset (its first create meets Redis's refusal), and one store whose
    // clock is switched to every offset in turn while it runs.
    let switched = HostClock::system();
    let running = store(&raw, &keys, config.clone()).with_host_clock(switched.clone());
    let (mut worst_deadline_ms, mut creates, mut refusals) = (0u64, 0u64, 0u64);
    for (round, offset) in OFFSETS.iter().chain(OFFSETS.iter().rev()).enumerate() {
        switched.set_offset_ms(*offset);
        let fresh =
            store(&raw, &keys, config.clone()).with_host_clock(HostClock::with_offset(*offset));
        for sessions in [&fresh, &running] {
            let before_stats = commandstats(&server);
            let t1 = redis_now_ms(&raw).await;
            let (id, value) = sessions.create(new_session("skewed")).await.unwrap();
            let t2 = redis_now_ms(&raw).await;
            let evalsha = delta(&before_stats, &commandstats(&server))["evalsha"];
            creates += 1;
            refusals += evalsha - 1;
            // The absolute deadline: Redis's creation time + lifetime, within the tolerance.
            let d = id.deadline_ms();
            assert_eq!(value.absolute_expires_ms, d);
            assert!(
                d + tolerance >= t1 + lifetime && d <= t2 + lifetime + tolerance,
                "offset {offset}: deadline {d} vs Redis {t1}..{t2} + {lifetime}"
            );
            let off = d.abs_diff((t1 + t2) / 2 + lifetime);
            worst_deadline_ms = worst_deadline_ms.max(off);
            assert!(
                value.created_ms.abs_diff((t1 + t2) / 2) <= tolerance,
                "{value:?}"
            );
            // The idle timeout: Redis's clock + idle exactly (relative PX).
            let key = keys.session(id.expose());
            let expires = expires_at(&raw, &key).await as u64;
            assert!(
                (t1 + idle..=t2 + idle).contains(&expires),
                "offset {offset}: key expires at {expires}, Redis {t1}..{t2} + idle"
            );
            // A read refreshes the idle timeout on Redis's clock and never deletes.
            let t1 = redis_now_ms(&raw).await;
            assert!(
                sessions.get(&id).await.unwrap().is_some(),
                "offset {offset}"
            );
            let t2 = redis_now_ms(&raw).await;
            let expires = expires_at(&raw, &key).await as u64;
            assert!(
                (t1 + idle..=t2 + idle).contains(&expires),
                "offset {offset}: after get, expires at {expires}, Redis {t1}..{t2} + idle"
            );
            let mut changed = value.clone();
            changed
                .data
                .insert("round".into(), serde_json::json!(round));
            sessions.update(&id, &changed).await.unwrap();
            assert!(sessions.destroy(&id).await.unwrap());
        }
    }
    println!(
        "host offsets {OFFSETS:?} (fresh stores, and one store switched through them): {creates} \
         creates, {refusals} deadlines refused by Redis and retried; worst absolute deadline off \
         Redis's creation time + lifetime by {worst_deadline_ms} ms (tolerance {tolerance} ms); \
         idle refresh exact on Redis's clock"
    );
    // Only fresh stores on a skewed host are refused, once each (the first create anchors them);
    // the switched store never is: a step of the host's clock does not move its estimate.
    let skewed_fresh_stores = 2 * OFFSETS.iter().filter(|o| **o != 0).count() as u64;
    assert_eq!(refusals, skewed_fresh_stores);
    assert!(worst_deadline_ms <= tolerance);
}

#[tokio::test]
async fn a_read_just_before_the_deadline_returns_the_session_and_keeps_it_until_then() {
    let Some(server) = server() else { return };
    let raw = connect(&server.url()).await;
    let keys = KeySchema::new("edge").unwrap();
    let config = SessionConfig {
        idle_timeout: Duration::from_millis(1000),
        absolute_lifetime: Duration::from_millis(1500),
        ..Default::default()
    };
    // A host far behind Redis: with deadlines on the host's clock, every read would delete. One
    // store logs in and reads, another (on the same skewed host) only ever reads.
    let skewed = HostClock::with_offset(-7_200_000);
    let sessions = store(&raw, &keys, config.clone()).with_host_clock(skewed.clone());
    let reader = store(&raw, &keys, config).with_host_clock(skewed);
    let (id, _) = sessions.create(new_session("edge")).await.unwrap();
    let key = keys.session(id.expose());
    let mut reads_near_deadline = 0;
    for round in 0.. {
        let now = redis_now_ms(&raw).await;
        if now + 50 >= id.deadline_ms() {
            break;
        }
        let by = if round % 2 == 0 { &sessions } else { &reader };
        assert!(by.get(&id).await.unwrap().is_some(), "read at {now}");
        assert!(
            exists(&raw, &key).await,
            "a read at {now} deleted the session"
        );
        let expires = expires_at(&raw, &key).await as u64;
        assert!(expires <= id.deadline_ms(), "TTL past the deadline");
        if now + 500 >= id.deadline_ms() {
            reads_near_deadline += 1;
            assert_eq!(
                expires,
                id.deadline_ms(),
                "near the deadline the TTL is capped there"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reads_near_deadline >= 2, "{reads_near_deadline}");
    poll_until(Duration::from_secs(5), || async {
        sessions.get(&id).await.unwrap().is_none()
    })
    .await
    .expect("session outlived its deadline");
    assert!(redis_now_ms(&raw).await >= id.deadline_ms());
}

#[tokio::test]
async fn revocation_tombstones_are_on_redis_clock_and_outlive_the_longest_token() {
    let Some(server) = server() else { return };
    let raw = connect(&server.url()).await;
    let keys = KeySchema::new("revoke").unwrap();
    let allowance = 300_000u64;
    let longest = 24 * 3_600_000u64;
    for offset in OFFSETS {
        let tokens = TokenCache::new(raw.clone(), keys.clone())
            .with_host_clock(HostClock::with_offset(offset));
        let key = |t: &str| format!("revoke:token:{}", token_hash(t));
        // Known exp: the tombstone ends at exp + allowance exactly, whoever revokes.
        let c = claims(Duration::from_secs(600));
        let token = format!("known-{offset}");
        assert!(!tokens.revoke(&token, Some(c.exp)).await.unwrap());
        assert_eq!(
            expires_at(&raw, &key(&token)).await as u64,
            c.exp * 1000 + allowance,
            "offset {offset}"
        );
        // Unknown exp: the longest token lifetime + allowance, on Redis's clock.
        let token = format!("unknown-{offset}");
        let t1 = redis_now_ms(&raw).await;
        tokens.revoke(&token, None).await.unwrap();
        let t2 = redis_now_ms(&raw).await;
        let expires = expires_at(&raw, &key(&token)).await as u64;
        assert!(
            (t1 + longest + allowance..=t2 + longest + allowance).contains(&expires),
            "offset {offset}: {expires}"
        );
    }
    // The longest-lived token the cache accepts, revoked without its exp: the tombstone outlives
    // it, and a put after the revocation stays refused.
    let tokens = TokenCache::new(raw.clone(), keys.clone());
    let c = claims(Duration::from_secs(24 * 3600 - 5));
    tokens.put("longest", &c).await.unwrap();
    assert_eq!(
        expires_at(&raw, &format!("revoke:token:{}", token_hash("longest"))).await as u64,
        c.exp * 1000
    );
    assert!(tokens.revoke("longest", None).await.unwrap());
    let expires = expires_at(&raw, &format!("revoke:token:{}", token_hash("longest"))).await as u64;
    assert!(
        expires >= c.exp * 1000 + allowance,
        "{expires} < exp + allowance"
    );
    assert_eq!(
        tokens.put("longest", &c).await.unwrap(),
        cache::PutOutcome::Revoked
    );
    assert_eq!(
        tokens.lookup("longest").await.unwrap(),
        TokenStatus::Revoked
    );
    // A token living longer than the configured maximum is not cached at all.
    let far = claims(Duration::from_secs(25 * 3600));
    let err = tokens.put("too-long", &far).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "claims.exp",
                ..
            }
        ),
        "{err}"
    );
    println!(
        "tombstones: exp + {allowance} ms (known exp), Redis TIME + {longest} + {allowance} ms \
         (unknown) under host offsets {OFFSETS:?}; the longest accepted token's tombstone \
         outlives it by {} ms",
        expires - c.exp * 1000
    );
    assert!(keys_without_ttl(&server, "revoke:*").is_empty());
}
