//! The stores against one real redis-server: expiry, races, exact limits, command counts, TTL audit,
//! hostile replies and Redis outages.

mod semantics;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cache::{
    Algorithm, Error, FailureMode, IpPolicy, KeySchema, RateLimiter, Redis, Rule, SessionConfig,
    SessionStore, TokenCache, TokenStatus,
};
use localredis::{RedisServer, ServerConfig};
use semantics::each_operation_is_one_round_trip;
use support::*;

fn server() -> Option<RedisServer> {
    have(&["redis-server"])
        .then(|| RedisServer::start(ServerConfig::default()).expect("start redis-server"))
}

fn limiter(redis: &Redis, prefix: &str, rule: Rule, mode: FailureMode) -> RateLimiter {
    RateLimiter::new(
        redis.clone(),
        KeySchema::new(prefix).unwrap(),
        [("signin".to_string(), rule)].into_iter().collect(),
        mode,
        IpPolicy::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn stores_behave_and_every_key_has_a_ttl() {
    let Some(server) = server() else { return };
    exercise_stores(connect(&server.url()).await, "suite").await;
    let immortal = keys_without_ttl(&server, "suite:*");
    assert!(immortal.is_empty(), "keys without TTL: {immortal:?}");
}

#[tokio::test]
async fn get_refreshes_the_idle_timeout_and_idle_sessions_expire() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    let idle = Duration::from_millis(800);
    let config = SessionConfig {
        idle_timeout: idle,
        ..Default::default()
    };
    let sessions = SessionStore::new(redis, KeySchema::default(), config).unwrap();
    let (id, _) = sessions.create(new_session("idle")).await.unwrap();
    // Reading every 300 ms keeps it alive well past one idle timeout.
    let start = Instant::now();
    while start.elapsed() < idle * 3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            sessions.get(&id).await.unwrap().is_some(),
            "expired while active"
        );
    }
    let last_read = Instant::now();
    let gone = poll_until(Duration::from_secs(5), || async {
        // Check existence without refreshing: PTTL via a raw connection.
        let ttl = server
            .command(&["PTTL", &KeySchema::default().session(id.expose())])
            .unwrap();
        matches!(ttl, localredis::resp::Reply::Integer(-2))
    })
    .await
    .expect("idle session never expired");
    let idle_for = last_read.elapsed();
    assert!(
        idle_for >= idle - Duration::from_millis(50),
        "expired early after {idle_for:?}"
    );
    assert!(
        gone <= idle + Duration::from_secs(1),
        "expired late after {gone:?}"
    );
    assert!(sessions.get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn no_session_outlives_its_absolute_lifetime() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    let absolute = Duration::from_millis(900);
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(60),
        absolute_lifetime: absolute,
        ..Default::default()
    };
    let sessions = SessionStore::new(redis, KeySchema::default(), config).unwrap();
    let created = Instant::now();
    let (id, _) = sessions.create(new_session("abs")).await.unwrap();
    // Constant activity must not extend it: each get caps the TTL at the absolute deadline.
    let mut last_seen_alive = Duration::ZERO;
    while created.elapsed() < absolute * 3 {
        if sessions.get(&id).await.unwrap().is_some() {
            last_seen_alive = created.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        last_seen_alive <= absolute,
        "returned {last_seen_alive:?} after creation"
    );
    assert!(
        last_seen_alive >= absolute - Duration::from_millis(300),
        "expired early: {last_seen_alive:?}"
    );
    let key = KeySchema::default().session(id.expose());
    assert_eq!(
        server.command(&["EXISTS", &key]).unwrap(),
        localredis::resp::Reply::Integer(0)
    );
}

#[tokio::test]
async fn update_keeps_the_ttl_and_never_resurrects() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    let sessions =
        SessionStore::new(redis, KeySchema::default(), SessionConfig::default()).unwrap();
    let (id, mut s) = sessions.create(new_session("upd")).await.unwrap();
    let key = KeySchema::default().session(id.expose());
    let pttl = |server: &RedisServer| match server.command(&["PTTL", &key]).unwrap() {
        localredis::resp::Reply::Integer(n) => n,
        other => panic!("PTTL: {other:?}"),
    };
    let before = pttl(&server);
    s.data.insert("k".into(), serde_json::json!(1));
    sessions.update(&id, &s).await.unwrap();
    let after = pttl(&server);
    assert!(after > 0 && after <= before, "TTL {before} -> {after}");

    server.command(&["DEL", &key]).unwrap(); // as if it expired
    assert!(matches!(
        sessions.update(&id, &s).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        server.command(&["EXISTS", &key]).unwrap(),
        localredis::resp::Reply::Integer(0)
    );
}

#[tokio::test]
async fn a_revoked_token_stays_revoked_under_racing_puts() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    let tokens = TokenCache::new(redis, KeySchema::default());
    let c = claims(Duration::from_secs(300));
    for round in 0..20 {
        let token = format!("race-token-{round}");
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (tokens, token, c) = (tokens.clone(), token.clone(), c.clone());
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    tokens.put(&token, &c).await.map(|_| ())
                } else {
                    tokens.revoke(&token, Some(c.exp)).await.map(|_| ())
                }
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            tokens.lookup(&token).await.unwrap(),
            TokenStatus::Revoked,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn tokens_expire_with_their_claims_and_expired_ones_are_refused() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    let tokens = TokenCache::new(redis, KeySchema::default());
    let mut c = claims(Duration::ZERO);
    c.exp -= 5;
    assert!(matches!(
        tokens.put("old", &c).await,
        Err(Error::Invalid { .. })
    ));
    let c = claims(Duration::from_secs(1));
    tokens.put("short", &c).await.unwrap();
    let key = format!("authority:token:{}", cache::token::token_hash("short"));
    let ttl = match server.command(&["PTTL", &key]).unwrap() {
        localredis::resp::Reply::Integer(n) => n,
        other => panic!("{other:?}"),
    };
    assert!(ttl > 0 && ttl <= 2_100, "TTL {ttl} ms should be exp - now");
    poll_until(Duration::from_secs(5), || async {
        tokens.get("short").await.unwrap().is_none()
    })
    .await
    .expect("token outlived its exp");
}

async fn admitted_by_64_tasks(limiter: &RateLimiter, requests_per_task: u32) -> u32 {
    let allowed = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (limiter, allowed) = (limiter.clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..requests_per_task {
                let d = limiter.check("192.0.2.1", "signin").await.unwrap();
                assert!(d.degraded.is_none(), "{d:?}");
                if d.allowed {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    allowed.load(Ordering::Relaxed)
}

#[tokio::test]
async fn every_algorithm_admits_exactly_the_limit_under_64_concurrent_tasks() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    // A window far longer than the test, so the burst stays inside one window.
    for (i, algorithm) in Algorithm::ALL.into_iter().enumerate() {
        let rule = Rule {
            limit: 50,
            window: Duration::from_secs(3600),
            algorithm,
        };
        let l = limiter(&redis, &format!("exact{i}"), rule, FailureMode::Closed);
        assert_eq!(admitted_by_64_tasks(&l, 10).await, 50, "{algorithm:?}");
        let immortal = keys_without_ttl(&server, &format!("exact{i}:*"));
        assert!(immortal.is_empty(), "{algorithm:?}: {immortal:?}");
    }
}

#[tokio::test]
async fn each_store_operation_is_one_round_trip() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    let nodes = [&server];
    each_operation_is_one_round_trip(&redis, &nodes, "rt").await;
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_a_clear_error_not_a_panic() {
    let Some(server) = server() else { return };
    let redis = connect(&server.url()).await;
    let sessions = SessionStore::new(
        redis.clone(),
        KeySchema::default(),
        SessionConfig::default(),
    )
    .unwrap();
    let (id, _) = sessions.create(new_session("wt")).await.unwrap();
    let key = KeySchema::default().session(id.expose());
    server.command(&["DEL", &key]).unwrap();
    server.command(&["RPUSH", &key, "x"]).unwrap();
    let err = sessions.get(&id).await.unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::Command { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(id.expose()), "{err}");

    server.command(&["SET", &key, "{not json"]).unwrap();
    let err = sessions.get(&id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupt {
                what: "session",
                ..
            }
        ),
        "{err:?}"
    );

    let tokens = TokenCache::new(redis, KeySchema::default());
    let tkey = format!("authority:token:{}", cache::token::token_hash("wrongtype"));
    server.command(&["HSET", &tkey, "a", "b"]).unwrap();
    let err = tokens.get("wrongtype").await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrongtype"), "{err}");
}

#[tokio::test]
async fn when_redis_is_down_the_limiter_fails_open_or_closed_as_configured_and_recovers() {
    let Some(mut server) = server() else { return };
    let redis = connect(&server.url()).await;
    let rule = Rule {
        limit: 3,
        window: Duration::from_secs(3600),
        algorithm: Algorithm::FixedWindow,
    };
    let open = limiter(&redis, "fo", rule, FailureMode::Open);
    let closed = limiter(&redis, "fc", rule, FailureMode::Closed);
    assert!(
        open.check("192.0.2.3", "signin")
            .await
            .unwrap()
            .degraded
            .is_none()
    );

    server.kill().unwrap();
    let d = open.check("192.0.2.3", "signin").await.unwrap();
    assert!(
        d.allowed
            && matches!(
                d.degraded,
                Some(cache::ratelimit::Degraded::FailedOpen { .. })
            ),
        "{d:?}"
    );
    let d = closed.check("192.0.2.3", "signin").await.unwrap();
    assert!(
        !d.allowed
            && matches!(
                d.degraded,
                Some(cache::ratelimit::Degraded::FailedClosed { .. })
            ),
        "{d:?}"
    );

    server.restart().unwrap();
    // The handle reconnects in the background; counting resumes from a fresh window.
    poll_until(Duration::from_secs(10), || async {
        matches!(open.check("192.0.2.3", "signin").await, Ok(d) if d.degraded.is_none())
    })
    .await
    .expect("limiter never recovered after Redis came back");
    let mut allowed = 1; // the probe above was admitted
    for _ in 0..5 {
        if open.check("192.0.2.3", "signin").await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3);
    assert!(keys_without_ttl(&server, "f*").is_empty());
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_with_the_address() {
    let port = localredis::free_port().unwrap();
    let url = cache::RedisUrl::parse(&format!("redis://:hunter2@127.0.0.1:{port}")).unwrap();
    let start = Instant::now();
    let err = Redis::connect(&url, &cache::ConnectOptions::default())
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let msg = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(
        msg.contains(&port.to_string()) && !msg.contains("hunter2"),
        "{msg}"
    );
}
