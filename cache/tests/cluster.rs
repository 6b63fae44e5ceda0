//! The stores through a Redis Cluster URL (`redis://n1,n2,n3`): a real cluster made with
//! `redis-cli --cluster create`, the same behaviour suite as standalone, and the handle's retry
//! rules (issue 12): nothing that may have run is sent twice (a paused node, a lost reply through a
//! `localredis::Proxy`), while what provably did not run follows `ASK`, `MOVED` and a failover.

mod support;

use std::time::Duration;

use cache::{
    Algorithm, ConnectOptions, ErrorKind, FailureMode, IpPolicy, KeySchema, RateLimiter, Rule,
};
use localredis::{Cluster, ServerConfig};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_work_through_a_cluster_url() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start(3, ServerConfig::default().password("cluster-pw")).unwrap();
    let url = cluster.url();
    assert!(url.matches(',').count() == 2, "three seed nodes in {url}");
    let redis = connect(&url).await;
    assert_eq!(redis.kind(), "cluster");
    exercise_stores(redis, "cl").await;
    // Keys are spread over the nodes; SCAN walks one node at a time.
    let mut nodes_with_keys = 0;
    for node in &cluster.nodes {
        let immortal = keys_without_ttl(node, "cl:*");
        assert!(
            immortal.is_empty(),
            "node {}: keys without TTL {immortal:?}",
            node.port()
        );
        let dbsize = node.command(&["DBSIZE"]).unwrap();
        if !matches!(dbsize, localredis::resp::Reply::Integer(0)) {
            nodes_with_keys += 1;
        }
    }
    assert!(
        nodes_with_keys >= 2,
        "keys did not spread across the cluster"
    );
}

/// Per-command reply timeout in the no-double-apply test: short, so a paused node times out fast.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
const PAUSE_ROUNDS: usize = 4;

/// The node holding the one rate-limit key that names `ip`, and that key (found with SCAN, so the
/// test does not depend on the key schema).
fn node_with_key(cluster: &Cluster, ip: &str) -> (usize, String) {
    for (i, node) in cluster.nodes.iter().enumerate() {
        let reply = node
            .command(&[
                "SCAN",
                "0",
                "MATCH",
                &format!("*ratelimit*{ip}*"),
                "COUNT",
                "1000",
            ])
            .unwrap();
        let keys = reply.as_array().unwrap()[1].as_array().unwrap();
        if let Some(key) = keys.first() {
            return (i, key.as_str().unwrap().to_string());
        }
    }
    panic!("no rate-limit key for {ip} on any node");
}

/// The counter at `key` on `node`, read as a cluster replica allows (`READONLY` first).
fn counter(node: &localredis::RedisServer, key: &str) -> i64 {
    let mut conn = node.connect().unwrap();
    conn.command(&["READONLY"]).unwrap();
    conn.command(&["GET", key])
        .unwrap()
        .as_str()
        .map_or(0, |s| s.parse().unwrap())
}

/// Issue 12: redis-rs's cluster connection re-sends a command after a timeout or a dropped
/// connection, so a rate-limit increment that timed out on a paused node was applied again when
/// the node came back. The handle must report the timeout as indeterminate and send it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_that_timed_out_on_a_paused_node_is_applied_exactly_once() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start(3, ServerConfig::default()).unwrap();
    let opts = ConnectOptions {
        response_timeout: SHORT_TIMEOUT,
        ..ConnectOptions::default()
    };
    let redis = connect_with(&cluster.url(), &opts).await;
    let rule = Rule {
        limit: 1000,
        window: Duration::from_secs(3600),
        algorithm: Algorithm::FixedWindow,
    };
    let limiter = RateLimiter::new(
        redis,
        KeySchema::default(),
        [("signin".to_string(), rule)].into_iter().collect(),
        FailureMode::Closed,
        IpPolicy::default(),
    )
    .unwrap();
    for round in 0..PAUSE_ROUNDS {
        let ip = format!("198.51.100.{}", round + 1);
        let first = limiter.check(&ip, "signin").await.unwrap();
        assert_eq!((first.remaining, first.degraded.is_none()), (999, true));
        let (i, key) = node_with_key(&cluster, &ip);
        let node = &cluster.nodes[i];

        node.pause().unwrap();
        let during = limiter.check(&ip, "signin").await.unwrap();
        // Keep it paused a while longer, as a slow node would be: any re-send piles up behind it.
        tokio::time::sleep(SHORT_TIMEOUT * 2).await;
        node.resume().unwrap();
        let Some(cache::ratelimit::Degraded::FailedClosed { kind, .. }) = &during.degraded else {
            panic!("round {round}: a paused node gave {during:?}");
        };
        assert_eq!(*kind, ErrorKind::Timeout, "round {round}");

        // The timed-out increment ran when the node woke up: exactly once.
        poll_until(Duration::from_secs(5), || async {
            counter(node, &key) >= 2
        })
        .await
        .expect("the timed-out increment never ran");
        let last = limiter.check(&ip, "signin").await.unwrap();
        assert_eq!(
            counter(node, &key),
            3,
            "round {round}: 3 checks, one of them timed out, must count 3 (last decision {last:?})"
        );
    }
}

/// A limiter allowing 1000 sign-ins an hour, failing closed, on `redis`.
fn big_limiter(redis: cache::Redis) -> RateLimiter {
    let rule = Rule {
        limit: 1000,
        window: Duration::from_secs(3600),
        algorithm: Algorithm::FixedWindow,
    };
    RateLimiter::new(
        redis,
        KeySchema::default(),
        [("signin".to_string(), rule)].into_iter().collect(),
        FailureMode::Closed,
        IpPolicy::default(),
    )
    .unwrap()
}

/// The kind of Redis failure a degraded decision stands for.
fn degraded_kind(d: &cache::Decision) -> Option<ErrorKind> {
    match &d.degraded {
        Some(cache::ratelimit::Degraded::FailedClosed { kind, .. }) => Some(*kind),
        _ => None,
    }
}

/// Issue 12: when the reply to an increment is lost with its connection (the script ran), redis-rs
/// reconnected and ran it again, and the caller saw one successful check counted twice. The
/// handle must report the check as indeterminate and leave the count at what actually ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_whose_reply_was_lost_is_indeterminate_and_counted_once() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start(3, ServerConfig::default()).unwrap();
    // Node 0 tells clients to reach it through a proxy that can lose a reply.
    let proxy = localredis::Proxy::start(cluster.nodes[0].port()).unwrap();
    let port = proxy.port().to_string();
    cluster.nodes[0]
        .command(&["CONFIG", "SET", "cluster-announce-port", &port])
        .unwrap();
    poll_until(Duration::from_secs(10), || async {
        cluster.nodes.iter().all(|n| {
            n.command(&["CLUSTER", "NODES"])
                .ok()
                .and_then(|r| r.as_str().map(|s| s.contains(&format!(":{port}@"))))
                .unwrap_or(false)
        })
    })
    .await
    .expect("the announced port never spread");
    let seeds: Vec<String> = cluster.nodes[1..]
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let limiter = big_limiter(connect(&format!("redis://{}", seeds.join(","))).await);

    // An IP whose counter lives on node 0.
    let mut ip = None;
    for i in 1..=50 {
        let candidate = format!("203.0.113.{i}");
        limiter.check(&candidate, "signin").await.unwrap();
        if node_with_key(&cluster, &candidate).0 == 0 {
            ip = Some(candidate);
            break;
        }
    }
    let ip = ip.expect("no IP in 50 hashed to node 0");
    let (_, key) = node_with_key(&cluster, &ip);
    assert_eq!(counter(&cluster.nodes[0], &key), 1);

    proxy.lose_next_reply();
    let lost = limiter.check(&ip, "signin").await.unwrap();
    assert_eq!(
        degraded_kind(&lost),
        Some(ErrorKind::ConnectionDropped),
        "{lost:?}"
    );
    assert_eq!(
        counter(&cluster.nodes[0], &key),
        2,
        "the check whose reply was lost ran, and ran once"
    );
    let next = limiter.check(&ip, "signin").await.unwrap();
    assert_eq!((next.remaining, next.degraded.is_none()), (997, true));
}

/// The node that serves `key`'s slot: the only one that answers `EXISTS` instead of `MOVED`.
fn owner(nodes: &[&localredis::RedisServer], key: &str) -> usize {
    nodes
        .iter()
        .position(|n| n.command(&["EXISTS", key]).is_ok())
        .expect("some node serves every slot")
}

fn text(node: &localredis::RedisServer, args: &[&str]) -> String {
    node.command(args).unwrap().as_str().unwrap().to_string()
}

/// With redis-rs's retries off, `ASK` (a slot in migration) is the handle's to follow: `ASKING`
/// and the command, on the node the reply names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_slot_in_migration_follows_ask_to_the_importing_node() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start(3, ServerConfig::default()).unwrap();
    let redis = connect(&cluster.url()).await;
    let key = "ask:moving-key";
    let nodes: Vec<_> = cluster.nodes.iter().collect();
    let (from, to) = {
        let a = owner(&nodes, key);
        (nodes[a], nodes[(a + 1) % 3])
    };
    let slot = match from.command(&["CLUSTER", "KEYSLOT", key]).unwrap() {
        localredis::resp::Reply::Integer(n) => n.to_string(),
        other => panic!("KEYSLOT gave {other:?}"),
    };
    let (from_id, to_id) = (
        text(from, &["CLUSTER", "MYID"]),
        text(to, &["CLUSTER", "MYID"]),
    );
    to.command(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id])
        .unwrap();
    from.command(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id])
        .unwrap();

    let mut conn = redis.clone();
    redis::cmd("SET")
        .arg(key)
        .arg("v")
        .query_async::<()>(&mut conn)
        .await
        .expect("a write to a migrating slot follows ASK");
    let mut asking = to.connect().unwrap();
    asking.command(&["ASKING"]).unwrap();
    assert_eq!(asking.command(&["GET", key]).unwrap().as_str(), Some("v"));
}

/// After a failover the old primary answers `MOVED`: the write goes to the promoted replica, once,
/// and redis-rs's slot map is rebuilt so later writes go there directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_writes_follow_moved_once_and_the_slot_map_is_refreshed() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start_with_replicas(3, 1, ServerConfig::default()).unwrap();
    let limiter = big_limiter(connect(&cluster.url()).await);
    let ip = "192.0.2.10";
    limiter.check(ip, "signin").await.unwrap();
    let (old, key) = node_with_key(&cluster, ip);
    let old = &cluster.nodes[old];
    let replica = cluster
        .nodes
        .iter()
        .find(|n| {
            let role = n.command(&["ROLE"]).unwrap();
            let r = role.as_array().unwrap();
            r[0].as_str() == Some("slave")
                && r[2] == localredis::resp::Reply::Integer(old.port().into())
        })
        .expect("the primary has a replica");
    poll_until(Duration::from_secs(10), || async {
        counter(replica, &key) == 1
    })
    .await
    .expect("the replica never caught up");

    replica.command(&["CLUSTER", "FAILOVER"]).unwrap();
    poll_until(Duration::from_secs(20), || async {
        role(old) == "slave" && role(replica) == "master"
    })
    .await
    .expect("the manual failover never completed");

    let before = commandstats_full(old);
    for n in 2..=21 {
        let d = limiter.check(ip, "signin").await.unwrap();
        assert_eq!(d.degraded, None, "check {n} after the failover");
        assert_eq!(counter(replica, &key), n, "check {n} counted once");
    }
    let redirected = rejected(&commandstats_full(old), &before);
    println!("20 checks after a cluster failover: {redirected} redirected by the demoted primary");
    assert!(
        redirected <= 2,
        "{redirected} of 20 checks went to the demoted primary first: the slot map was not refreshed"
    );
}

fn role(node: &localredis::RedisServer) -> String {
    node.command(&["ROLE"]).unwrap().as_array().unwrap()[0]
        .as_str()
        .unwrap()
        .to_string()
}

/// `INFO commandstats` as text.
fn commandstats_full(node: &localredis::RedisServer) -> String {
    text(node, &["INFO", "commandstats"])
}

/// Calls refused (`rejected_calls`, e.g. by a redirect) between two `INFO commandstats`, summed.
fn rejected(after: &str, before: &str) -> i64 {
    let total = |info: &str| -> i64 {
        info.lines()
            .filter_map(|l| l.split("rejected_calls=").nth(1))
            .filter_map(|v| v.split(',').next()?.parse::<i64>().ok())
            .sum()
    };
    total(after) - total(before)
}
