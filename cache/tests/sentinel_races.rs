//! The Sentinel handle's edges (issue 14, point 4), each with real sentinels and a TCP proxy
//! (`localredis::Proxy`) for the faults a signal cannot make:
//! - a `+switch-master` that arrives while a lookup is in flight wins over the lookup's older answer;
//! - `+switch-master` subscriptions that go silent without closing (half-open) are replaced;
//! - a pipeline refused with `READONLY` is not sent again, a single command is.

mod support;
#[path = "support/sentinel.rs"]
mod witness;

use std::time::{Duration, Instant};

use cache::{ConnectOptions, ErrorKind};
use localredis::{SentinelGroup, ServerConfig};
use support::*;
use witness::{Monitor, SwitchLog, Writer, fail_over_and_follow, proxied_url, proxies_for, role};

const SERVICE: &str = "mymaster";

fn group(password: &str) -> SentinelGroup {
    SentinelGroup::start(
        ServerConfig::default().password(password),
        1,
        3,
        SERVICE,
        |c| c.failover_timeout_ms = 3000,
    )
    .unwrap()
}

/// How long the proxies hold back the sentinels' answers to a lookup: longer than a forced failover
/// takes to be announced (about 1 s here), so the announcement lands while the lookup is in flight.
const LOOKUP_DELAY: Duration = Duration::from_millis(2500);
const RACE_ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_announced_during_a_lookup_is_never_overwritten_by_its_older_answer() {
    if !have(&["redis-server", "redis-sentinel"]) {
        return;
    }
    for round in 1..=RACE_ROUNDS {
        race_round(round).await;
    }
}

async fn race_round(round: usize) {
    let group = group("race-pw");
    let proxies = proxies_for(&group);
    let (old, new) = (group.primary.port(), group.replicas[0].port());
    let switches = SwitchLog::subscribe(&group).await;
    // Slow answers must not time out: the budget per sentinel is connect + response timeout.
    let opts = ConnectOptions {
        response_timeout: Duration::from_secs(6),
        ..ConnectOptions::default()
    };
    let redis = connect_with(&proxied_url(&group, &proxies, SERVICE), &opts).await;
    let writer = Writer::start(redis.clone(), "race:", Duration::from_millis(5));
    poll_until(Duration::from_secs(10), || async { writer.acked() >= 20 })
        .await
        .expect("the writer never got going");

    // Cut the handle's connection to the primary: its write fails, and the next one starts a
    // lookup whose answers (the old primary, at the old epoch) the proxies hold back.
    proxies.iter().for_each(|p| p.delay_replies(LOOKUP_DELAY));
    group
        .primary
        .command(&["CLIENT", "KILL", "TYPE", "normal"])
        .unwrap();
    poll_until(Duration::from_secs(5), || async {
        redis.current_primary().is_none()
    })
    .await
    .expect("the handle never dropped the killed connection");
    let lookup_started = Instant::now();
    let monitor = Monitor::start(&group.primary).await; // after the kill, which would end it
    let (first_at, switched_at) =
        fail_over_and_follow(&group, SERVICE, &switches, &redis, &writer, 1).await;
    let before = writer.acked();
    poll_until(Duration::from_secs(10), || async {
        writer.acked() >= before + 50
    })
    .await
    .expect("writes stopped after the switch");
    let log = writer.log.clone();
    drop(writer);

    assert!(
        first_at < lookup_started + LOOKUP_DELAY,
        "round {round}: precondition: the announcement ({:?} after the lookup began) did not land \
         while the lookup was held back ({LOOKUP_DELAY:?})",
        first_at - lookup_started
    );
    let stray = monitor.after(first_at, "race:", new);
    assert!(
        stray.is_empty(),
        "round {round}: {} writes reached the old primary after the switch was announced: {:?}",
        stray.len(),
        &stray[..stray.len().min(3)]
    );
    let named_old = log
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.at > first_at && w.primary == Some(old))
        .count();
    assert_eq!(
        named_old, 0,
        "round {round}: the handle went back to the old primary {old} after the announcement"
    );
    println!(
        "round {round}: announcement {} ms into the held-back lookup; handle on the new primary \
         {} ms after it",
        (first_at - lookup_started).as_millis(),
        (switched_at - first_at).as_millis()
    );
}

/// Detection takes up to the health-check period (1 s) plus the ping timeout (the 1 s response
/// timeout), then a lookup on fresh connections; the bound adds room for a loaded CI box. A handle
/// whose subscriptions hang on the silent sockets hears nothing and stays on the old primary until
/// Sentinel demotes it, about 10 s later.
const HALF_OPEN_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_sentinel_connections_are_replaced_and_the_switch_is_not_missed() {
    if !have(&["redis-server", "redis-sentinel"]) {
        return;
    }
    let group = group("half-open-pw");
    let proxies = proxies_for(&group);
    let (old, new) = (group.primary.port(), group.replicas[0].port());
    let switches = SwitchLog::subscribe(&group).await;
    let monitor = Monitor::start(&group.primary).await;
    let redis = connect(&proxied_url(&group, &proxies, SERVICE)).await;
    // Every sentinel carries the handle's query connection and its subscription.
    poll_until(Duration::from_secs(10), || async {
        proxies.iter().all(|p| p.open_connections() >= 2)
    })
    .await
    .expect("the handle never subscribed through every proxy");
    let writer = Writer::start(redis.clone(), "half:", Duration::from_millis(5));

    // Every connection the handle has to a sentinel goes silent without closing; then fail over.
    proxies.iter().for_each(|p| p.stall_open_connections());
    let (majority_at, switched_at) =
        fail_over_and_follow(&group, SERVICE, &switches, &redis, &writer, 2).await;
    drop(writer);
    let late = switched_at.saturating_duration_since(majority_at);
    println!(
        "half-open subscriptions: handle switched {} ms after the majority's +switch-master",
        late.as_millis()
    );
    assert!(
        late <= HALF_OPEN_BOUND,
        "the handle moved {late:?} after the majority switched (bound {HALF_OPEN_BOUND:?})"
    );
    let stray = monitor.after(switched_at, "half:", new);
    assert!(
        stray.is_empty(),
        "{} writes reached {old} after the switch",
        stray.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_refused_as_readonly_is_not_sent_again_but_a_single_command_is() {
    if !have(&["redis-server", "redis-sentinel"]) {
        return;
    }
    let group = group("readonly-pw");
    let (old, new) = (group.primary.port(), group.replicas[0].port());
    // Two handles on the old primary that will not hear of the failover: the only news they get is
    // the READONLY refusal itself.
    let deaf = ConnectOptions {
        watch_switch_master: false,
        ..ConnectOptions::default()
    };
    let single = connect_with(&group.url(SERVICE), &deaf).await;
    let pipelined = connect_with(&group.url(SERVICE), &deaf).await;
    assert_eq!(single.current_primary().map(|n| n.port), Some(old));

    // Fail over, and demote the old primary by hand (Sentinel would take ~10 s to do it).
    group.sentinels[1]
        .command(&["SENTINEL", "FAILOVER", SERVICE])
        .unwrap();
    poll_until(Duration::from_secs(30), || async {
        (0..3).all(|i| group.primary_port(i, SERVICE) == Some(new))
    })
    .await
    .expect("the sentinels never agreed on the new primary");
    group
        .primary
        .command(&["REPLICAOF", "127.0.0.1", &new.to_string()])
        .unwrap();
    poll_until(Duration::from_secs(10), || async {
        role(&group.primary).as_deref() == Some("slave")
    })
    .await
    .expect("the old primary never became a replica");
    let promoted = group.server_on(new).unwrap();

    let mut pipe = redis::pipe();
    pipe.cmd("INCR").arg("ro:pipe").cmd("INCR").arg("ro:pipe");
    let refused = pipe
        .query_async::<Vec<i64>>(&mut pipelined.clone())
        .await
        .map_err(cache::Error::from)
        .expect_err("a pipeline on a replica cannot succeed without being re-sent");
    assert_eq!(refused.kind(), ErrorKind::ReadOnly, "{refused}");
    assert!(!refused.is_indeterminate(), "READONLY means nothing ran");
    assert_eq!(
        promoted.command(&["GET", "ro:pipe"]).unwrap(),
        localredis::resp::Reply::Nil,
        "the refused pipeline was re-sent to the new primary"
    );

    let n: i64 = redis::cmd("INCR")
        .arg("ro:single")
        .query_async(&mut single.clone())
        .await
        .expect("a single command refused as READONLY is sent once more, to the new primary");
    assert_eq!(n, 1);
    assert_eq!(single.current_primary().map(|n| n.port), Some(new));
    assert_eq!(
        promoted.command(&["GET", "ro:single"]).unwrap().as_str(),
        Some("1")
    );
}
