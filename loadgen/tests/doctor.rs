//! `loadgen doctor` against real servers: a default redis-server (every hazard), a production-like
//! one, an unreachable address, an immortal key, and a Sentinel group.

use std::time::Duration;

use cache::{ConnectOptions, RedisUrl};
use loadgen::report::doctor::{DoctorReport, Severity};
use loadgen::testing::diagnose;
use localredis::{Persistence, RedisServer, Sentinel, SentinelConfig, ServerConfig};

fn have(binaries: &[&str]) -> bool {
    binaries
        .iter()
        .all(|b| match localredis::require_binary_for_test(b) {
            Ok(_) => true,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                false
            }
        })
}

async fn doctor(url: &str) -> DoctorReport {
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    diagnose(&RedisUrl::parse(url).unwrap(), &opts).await
}

fn checks(r: &DoctorReport) -> Vec<(&'static str, Severity)> {
    r.findings.iter().map(|f| (f.check, f.severity)).collect()
}

#[tokio::test]
async fn a_default_server_shows_every_hazard_and_exits_1() {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let r = doctor(&server.url()).await;
    let c = checks(&r);
    println!("{}", r.render_text());
    assert!(r.reachable);
    assert!(c.contains(&("maxmemory-unset", Severity::High)), "{c:?}");
    assert!(
        c.contains(&("no-auth", Severity::Medium)),
        "bound to loopback: {c:?}"
    );
    assert!(c.contains(&("persistence-none", Severity::Medium)), "{c:?}");
    assert!(c.contains(&("no-replica", Severity::Medium)), "{c:?}");
    assert_eq!(r.exit_code(), 1);
}

#[tokio::test]
async fn a_production_like_server_has_no_high_finding_and_immortal_keys_are_counted() {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(
        ServerConfig::default()
            .password("doctor-pw")
            .maxmemory("64mb")
            .maxmemory_policy("noeviction")
            .persistence(Persistence::Aof {
                fsync: "everysec".into(),
            })
            .directive("tcp-keepalive", "300"),
    )
    .unwrap();
    let r = doctor(&server.url()).await;
    println!("{}", r.render_text());
    assert!(r.worst() < Some(Severity::High), "{:?}", checks(&r));
    assert_eq!(r.exit_code(), 0);
    assert!(!r.render_text().contains("doctor-pw"));

    server
        .command(&["SET", "authority:ratelimit:10.0.0.1:signin", "3"])
        .unwrap();
    server
        .command(&["SET", "authority:session:x", "{}", "EX", "60"])
        .unwrap();
    let r = doctor(&server.url()).await;
    let keys = r.keys.as_ref().unwrap();
    assert_eq!(keys.per_kind["ratelimit"].without_ttl, 1);
    assert_eq!(keys.per_kind["session"].without_ttl, 0);
    assert!(keys.per_kind["session"].sampled_bytes_per_key.unwrap() > 0);
    assert!(checks(&r).contains(&("keys-without-ttl", Severity::High)));
    assert_eq!(r.exit_code(), 1);
}

#[tokio::test]
async fn unreachable_and_wrong_password_are_named_with_the_address() {
    if !have(&["redis-server"]) {
        return;
    }
    let port = localredis::free_port().unwrap();
    let r = doctor(&format!("redis://:s3cret-x@127.0.0.1:{port}")).await;
    assert!(!r.reachable);
    assert_eq!(r.exit_code(), 3);
    assert_eq!(r.findings[0].check, "connection-refused");
    assert!(r.findings[0].message.contains(&port.to_string()));
    assert!(!r.render_text().contains("s3cret-x"));

    let server = RedisServer::start(ServerConfig::default().password("right")).unwrap();
    let r = doctor(&format!("redis://:Wrong-9@127.0.0.1:{}", server.port())).await;
    assert_eq!(r.findings[0].check, "authentication-failed");
    assert!(!r.render_text().contains("Wrong-9"));
}

#[tokio::test]
async fn sentinel_urls_show_every_sentinel_and_a_wrong_service_name() {
    if !have(&["redis-server", "redis-sentinel"]) {
        return;
    }
    let primary = RedisServer::start(ServerConfig::default()).unwrap();
    let sentinel = Sentinel::start(SentinelConfig::monitoring("mymaster", &primary)).unwrap();
    let dead = localredis::free_port().unwrap();
    // One live sentinel of two: by default the handle wants a majority of the URL's sentinels
    // (2) to agree on the primary, so accept one here.
    let url = format!(
        "redis://127.0.0.1:{},127.0.0.1:{dead}/mymaster?sentinel_quorum=1",
        sentinel.port()
    );
    let r = doctor(&url).await;
    println!("{}", r.render_text());
    assert!(r.reachable);
    assert_eq!(r.nodes.len(), 2);
    assert!(
        r.nodes[0]
            .state
            .contains(&format!("127.0.0.1:{}", primary.port())),
        "{:?}",
        r.nodes
    );
    assert!(r.nodes[1].state.starts_with("unreachable"));
    assert!(checks(&r).iter().any(|(c, _)| *c == "sentinel-unreachable"));

    let r = doctor(&format!(
        "redis://127.0.0.1:{}/othermaster",
        sentinel.port()
    ))
    .await;
    assert!(
        checks(&r).contains(&("sentinel-unknown-service", Severity::High)),
        "{:?}",
        checks(&r)
    );
    assert_eq!(
        r.exit_code(),
        3,
        "no primary can be found for an unknown service"
    );
}
