//! `cargo bench -p cache`: each store operation against a live redis-server (started here on a free
//! loopback port), next to a bare redis-rs `GET` on the same handle.
//!
//! Absolute numbers depend on the machine; the ratio to the bare `GET` does not, much. That ratio is
//! what this bench is for: a store operation is one round trip, so it should cost little more than
//! the cheapest round trip there is (target: ≤ 1.2×).
//!
//! Sessions are created for 1,000 users in turn, as an OAuth server's logins are spread over its
//! users; `session_create_1user` logs one user in again and again, so that user's index grows to
//! every session the bench creates (hundreds of thousands, all alive for 24 h) — a worst case no
//! real user reaches, shown for comparison.
//!
//! Criterion measures the operations one after another, so on a noisy machine (CI, a laptop
//! compiling something) the load can change between two of them and skew their ratio. After
//! criterion's report this bench therefore measures the ratios itself, **interleaved**: many short
//! rounds, each timing a batch of every operation back to back, and the median over rounds of each
//! operation's batch time divided by the raw `GET`'s in the same round.

use std::time::Duration;

use cache::{
    Algorithm, Claims, ConnectOptions, FailureMode, IpPolicy, KeySchema, NewSession, RateLimiter,
    Redis, RedisUrl, Rule, SessionConfig, SessionStore, TokenCache,
};
use criterion::{Criterion, criterion_group};
use localredis::{RedisServer, ServerConfig};

const GROUP: &str = "store-op-vs-raw-get";

struct Fixture {
    _server: RedisServer,
    runtime: tokio::runtime::Runtime,
    redis: Redis,
    sessions: SessionStore,
    tokens: TokenCache,
    limiter: RateLimiter,
}

fn fixture() -> Fixture {
    let server =
        RedisServer::start(ServerConfig::default()).expect("start redis-server for the bench");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let url = RedisUrl::parse(&server.url()).expect("url");
    let redis = runtime
        .block_on(Redis::connect(&url, &ConnectOptions::default()))
        .expect("connect");
    let keys = KeySchema::default();
    let sessions =
        SessionStore::new(redis.clone(), keys.clone(), SessionConfig::default()).unwrap();
    let tokens = TokenCache::new(redis.clone(), keys.clone());
    let rule = Rule {
        limit: u32::MAX,
        window: Duration::from_secs(3600),
        algorithm: Algorithm::FixedWindow,
    };
    let limiter = RateLimiter::new(
        redis.clone(),
        keys,
        [("token".to_string(), rule)].into_iter().collect(),
        FailureMode::Closed,
        IpPolicy::default(),
    )
    .unwrap();
    Fixture {
        _server: server,
        runtime,
        redis,
        sessions,
        tokens,
        limiter,
    }
}

/// A login of one of 1,000 users, in turn.
fn session() -> NewSession {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let user = NEXT.fetch_add(1, Ordering::Relaxed) % 1000;
    NewSession {
        user_id: format!("bench-user-{user}"),
        ..one_user_session()
    }
}

/// A login of the same user every time.
fn one_user_session() -> NewSession {
    NewSession {
        user_id: "bench-user".into(),
        client_ip: Some("203.0.113.1".into()),
        user_agent: Some("Mozilla/5.0 (bench)".into()),
        data: [
            ("authenticated".to_string(), serde_json::json!(true)),
            ("email".to_string(), serde_json::json!("bench@example.com")),
        ]
        .into_iter()
        .collect(),
    }
}

fn claims() -> Claims {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    Claims {
        user_id: "bench-user".into(),
        client_id: "bench-client".into(),
        scope: "openid".into(),
        exp,
    }
}

/// One session and one token to read, and the raw key of that session for the bare GET.
fn seed(f: &Fixture) -> (cache::SessionId, String) {
    let (id, _) = f.runtime.block_on(f.sessions.create(session())).unwrap();
    f.runtime
        .block_on(f.tokens.put("bench-token", &claims()))
        .unwrap();
    let raw_key = KeySchema::default().session(id.expose());
    (id, raw_key)
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let rt = &f.runtime;
    let (id, raw_key) = seed(&f);

    let mut group = c.benchmark_group(GROUP);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("raw_get", |b| {
        b.to_async(rt).iter(|| async {
            let mut conn = f.redis.clone();
            let v: Option<String> = redis::cmd("GET")
                .arg(&raw_key)
                .query_async(&mut conn)
                .await
                .unwrap();
            v
        })
    });
    group.bench_function("session_get", |b| {
        b.to_async(rt)
            .iter(|| async { f.sessions.get(&id).await.unwrap() })
    });
    group.bench_function("session_create", |b| {
        b.to_async(rt)
            .iter(|| async { f.sessions.create(session()).await.unwrap() })
    });
    group.bench_function("session_create_1user", |b| {
        b.to_async(rt)
            .iter(|| async { f.sessions.create(one_user_session()).await.unwrap() })
    });
    group.bench_function("token_get", |b| {
        b.to_async(rt)
            .iter(|| async { f.tokens.get("bench-token").await.unwrap() })
    });
    group.bench_function("ratelimit_check", |b| {
        b.to_async(rt)
            .iter(|| async { f.limiter.check("198.51.100.1", "token").await.unwrap() })
    });
    group.finish();
}

const OPS: [&str; 6] = [
    "raw_get",
    "session_get",
    "session_create",
    "session_create_1user",
    "token_get",
    "ratelimit_check",
];

/// Runs operation `op` once.
async fn run_op(f: &Fixture, op: usize, id: &cache::SessionId, raw_key: &str) {
    match op {
        0 => {
            let mut conn = f.redis.clone();
            let _: Option<String> = redis::cmd("GET")
                .arg(raw_key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        1 => drop(f.sessions.get(id).await.unwrap()),
        2 => drop(f.sessions.create(session()).await.unwrap()),
        3 => drop(f.sessions.create(one_user_session()).await.unwrap()),
        4 => drop(f.tokens.get("bench-token").await.unwrap()),
        _ => drop(f.limiter.check("198.51.100.1", "token").await.unwrap()),
    }
}

/// Interleaved rounds: in each, a batch of every operation back to back; ratio = median over rounds
/// of (op batch time / raw GET batch time in the same round).
fn interleaved_ratios() {
    const ROUNDS: usize = 40;
    const BATCH: usize = 300;
    let f = fixture();
    let (id, raw_key) = seed(&f);
    let mut ratios = vec![Vec::with_capacity(ROUNDS); OPS.len()];
    let mut per_op_us = vec![Vec::with_capacity(ROUNDS); OPS.len()];
    for _ in 0..ROUNDS {
        let mut times = [0f64; OPS.len()];
        for (op, time) in times.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            f.runtime.block_on(async {
                for _ in 0..BATCH {
                    run_op(&f, op, &id, &raw_key).await;
                }
            });
            *time = start.elapsed().as_secs_f64();
        }
        for op in 0..OPS.len() {
            ratios[op].push(times[op] / times[0]);
            per_op_us[op].push(times[op] / BATCH as f64 * 1e6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("\nstore operation cost relative to one bare GET round trip, interleaved");
    println!("({ROUNDS} rounds x {BATCH} ops each, medians; target <= 1.20x):");
    println!("  {:<22} {:>10} {:>7}", "operation", "per op", "ratio");
    for op in 0..OPS.len() {
        let us = median(&mut per_op_us[op]);
        let ratio = median(&mut ratios[op]);
        println!("  {:<22} {:>8.1}µs {:>6.2}x", OPS[op], us, ratio);
    }
}

criterion_group!(stores, benches);

fn main() {
    if localredis::find_binary("redis-server").is_err() {
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    stores();
    Criterion::default().configure_from_args().final_summary();
    interleaved_ratios();
}
