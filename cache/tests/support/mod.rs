//! Shared harness for the cache crate's integration tests: real servers on free loopback ports
//! (through `localredis`), command counting with `INFO commandstats`, TTL audits with `SCAN`, and the
//! store behaviour suite that must hold on every topology.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cache::{
    Algorithm, Claims, ConnectOptions, FailureMode, IpPolicy, KeySchema, NewSession, PutOutcome,
    RateLimiter, Redis, RedisUrl, Rule, SessionConfig, SessionStore, TokenCache, TokenStatus,
};
use localredis::RedisServer;

/// The redis binaries a test needs, or `None` (test skipped, reason printed) outside CI.
/// With `CI=true` a missing binary fails the test instead.
pub fn have(binaries: &[&str]) -> bool {
    for b in binaries {
        if let Err(reason) = localredis::require_binary_for_test(b) {
            eprintln!("skipped: {reason}");
            return false;
        }
    }
    true
}

pub async fn connect(url: &str) -> Redis {
    connect_with(url, &ConnectOptions::default()).await
}

pub async fn connect_with(url: &str, opts: &ConnectOptions) -> Redis {
    let parsed = RedisUrl::parse(url).expect("test URL parses");
    Redis::connect(&parsed, opts)
        .await
        .unwrap_or_else(|e| panic!("connect {parsed}: {e}"))
}

/// `cmdstat_<name>` → calls, without the INFO that reads it.
pub fn commandstats(server: &RedisServer) -> HashMap<String, u64> {
    let reply = server
        .command(&["INFO", "commandstats"])
        .expect("INFO commandstats");
    parse_commandstats(reply.as_str().unwrap_or_default())
}

pub fn parse_commandstats(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .filter(|(name, _)| name != "info")
        .collect()
}

pub fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// Keys matching `pattern` on `server` without an expiry, found with SCAN (never KEYS). On a
/// cluster, call it for every node: SCAN only walks the node it is sent to.
pub fn keys_without_ttl(server: &RedisServer, pattern: &str) -> Vec<String> {
    let mut conn = server.connect().expect("connect for SCAN");
    let mut cursor = "0".to_string();
    let mut missing = Vec::new();
    loop {
        let reply = conn
            .command(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "500"])
            .expect("SCAN");
        let parts = reply.as_array().expect("SCAN reply is an array");
        cursor = parts[0].as_str().expect("cursor").to_string();
        for key in parts[1].as_array().expect("keys") {
            let key = key.as_str().expect("key").to_string();
            let ttl = conn.command(&["PTTL", &key]).expect("PTTL");
            // -2: expired between SCAN and PTTL, fine. -1: immortal.
            if matches!(ttl, localredis::resp::Reply::Integer(-1)) {
                missing.push(key);
            }
        }
        if cursor == "0" {
            return missing;
        }
    }
}

/// Polls `check` every 20 ms until it returns true or `limit` passes; returns the elapsed time.
pub async fn poll_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

pub fn claims(exp_in: Duration) -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Claims {
        user_id: "user-1".into(),
        client_id: "client-1".into(),
        scope: "openid profile".into(),
        exp: (now + exp_in).as_secs() + 1,
    }
}

pub fn new_session(user: &str) -> NewSession {
    NewSession {
        user_id: user.into(),
        client_ip: Some("203.0.113.7".into()),
        user_agent: Some("integration-test".into()),
        data: [("authenticated".to_string(), serde_json::json!(true))]
            .into_iter()
            .collect(),
    }
}

/// The behaviour every topology must show: sessions, tokens and limits round-trip, and every key
/// written carries a TTL. Uses its own key prefix so topologies can share a server.
pub async fn exercise_stores(redis: Redis, prefix: &str) {
    let keys = KeySchema::new(prefix).unwrap();
    let sessions =
        SessionStore::new(redis.clone(), keys.clone(), SessionConfig::default()).unwrap();
    let tokens = TokenCache::new(redis.clone(), keys.clone());
    let limiter = RateLimiter::new(
        redis.clone(),
        keys.clone(),
        [(
            "signin".to_string(),
            Rule {
                limit: 5,
                window: Duration::from_secs(3600),
                algorithm: Algorithm::FixedWindow,
            },
        )]
        .into_iter()
        .collect(),
        FailureMode::Closed,
        IpPolicy::default(),
    )
    .unwrap();

    // Sessions: create, read, update, destroy, log out everywhere.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (id, created) = sessions.create(new_session("alice")).await.unwrap();
        assert_eq!(sessions.get(&id).await.unwrap().as_ref(), Some(&created));
        ids.push(id);
    }
    let (bob, _) = sessions.create(new_session("bob")).await.unwrap();
    let mut s = sessions.get(&ids[0]).await.unwrap().unwrap();
    s.data.insert("mfa".into(), serde_json::json!("passed"));
    sessions.update(&ids[0], &s).await.unwrap();
    assert_eq!(
        sessions.get(&ids[0]).await.unwrap().unwrap().data["mfa"],
        "passed"
    );
    assert!(sessions.destroy(&ids[1]).await.unwrap());
    assert!(sessions.get(&ids[1]).await.unwrap().is_none());
    assert!(matches!(
        sessions.update(&ids[1], &s).await,
        Err(cache::Error::NotFound(_))
    ));
    assert_eq!(sessions.destroy_all_for_user("alice").await.unwrap(), 4);
    for id in &ids {
        assert!(sessions.get(id).await.unwrap().is_none());
    }
    assert!(sessions.get(&bob).await.unwrap().is_some());

    // Tokens: put, get, revoke, and a revoked token stays revoked.
    let c = claims(Duration::from_secs(600));
    assert_eq!(tokens.put("tok-a", &c).await.unwrap(), PutOutcome::Stored);
    assert_eq!(
        tokens.put("tok-a", &c).await.unwrap(),
        PutOutcome::AlreadyCached
    );
    assert_eq!(tokens.get("tok-a").await.unwrap(), Some(c.clone()));
    assert!(tokens.revoke("tok-a", Some(c.exp)).await.unwrap());
    assert_eq!(tokens.lookup("tok-a").await.unwrap(), TokenStatus::Revoked);
    assert_eq!(tokens.put("tok-a", &c).await.unwrap(), PutOutcome::Revoked);
    assert_eq!(
        tokens.lookup("never-seen").await.unwrap(),
        TokenStatus::Unknown
    );

    // Limits: exactly `limit` admitted, then refused with a retry hint.
    let mut allowed = 0;
    for _ in 0..8 {
        let d = limiter.check("198.51.100.9", "signin").await.unwrap();
        assert!(d.degraded.is_none());
        if d.allowed {
            allowed += 1;
        } else {
            assert!(d.retry_after.is_some());
        }
    }
    assert_eq!(allowed, 5);
}
