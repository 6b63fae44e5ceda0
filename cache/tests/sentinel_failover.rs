//! The Sentinel handle follows a failover: 1 primary + 1 replica + 3 sentinels as local processes,
//! SIGKILL the primary while a writer runs, and check that writes come back within a bound, land on
//! the promoted replica, and never reach the old primary once it is restarted (and demoted).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache::{KeySchema, SessionConfig, SessionStore};
use localredis::{SentinelGroup, ServerConfig};
use support::*;
use tokio::sync::Mutex;

const DOWN_AFTER_MS: u64 = 1000;

#[derive(Debug, Clone)]
struct Write {
    at: Duration,
    ok: bool,
    primary_port: Option<u16>,
    error: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_handle_follows_a_failover_and_never_writes_to_the_demoted_primary() {
    if !have(&["redis-server", "redis-sentinel"]) {
        return;
    }
    let mut group = SentinelGroup::start(
        ServerConfig::default().password("failover-pw"),
        1,
        3,
        "mymaster",
        |c| {
            c.down_after_ms = DOWN_AFTER_MS;
            c.failover_timeout_ms = 3000;
        },
    )
    .unwrap();
    let redis = connect(&group.url("mymaster")).await;
    let SentinelGroup {
        primary,
        replicas,
        sentinels,
    } = &mut group;
    let replica = &replicas[0];
    assert_eq!(redis.current_primary().unwrap().port, primary.port());
    let sessions = SessionStore::new(
        redis.clone(),
        KeySchema::default(),
        SessionConfig::default(),
    )
    .unwrap();

    // Writer: one session create every 10 ms, each outcome recorded with the primary in use.
    let history = Arc::new(Mutex::new(Vec::<Write>::new()));
    let start = Instant::now();
    let writer = {
        let (history, sessions, redis) = (history.clone(), sessions.clone(), redis.clone());
        tokio::spawn(async move {
            while start.elapsed() < Duration::from_secs(60) {
                let result = sessions.create(new_session("writer")).await;
                let w = Write {
                    at: start.elapsed(),
                    ok: result.is_ok(),
                    primary_port: redis.current_primary().map(|n| n.port),
                    error: result.err().map(|e| e.to_string()),
                };
                history.lock().await.push(w);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    poll_until(Duration::from_secs(5), || async {
        history.lock().await.iter().filter(|w| w.ok).count() >= 20
    })
    .await
    .expect("writer never got going");

    let killed_at = start.elapsed();
    primary.kill().unwrap();

    // Writes must succeed again, on the replica, within down-after + election + promotion.
    // Typically 3-4 s. The bound is generous because Sentinel enters TILT mode (and acts on
    // nothing for 30 s) when its timer is starved, which happens on a loaded 2-core CI machine.
    let bound = Duration::from_millis(DOWN_AFTER_MS) + Duration::from_secs(40);
    let recovered = poll_until(bound, || async {
        history
            .lock()
            .await
            .iter()
            .any(|w| w.at > killed_at && w.ok && w.primary_port == Some(replica.port()))
    })
    .await;
    let first_ok_after = history
        .lock()
        .await
        .iter()
        .find(|w| w.at > killed_at && w.ok)
        .map(|w| w.at - killed_at);
    if recovered.is_none() {
        let views: Vec<String> = sentinels
            .iter()
            .map(|s| {
                format!(
                    "{:?}",
                    s.command(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
                )
            })
            .collect();
        let h = history.lock().await;
        let last: Vec<String> = h
            .iter()
            .rev()
            .take(5)
            .map(|w| {
                format!(
                    "{:?} ok={} primary={:?} error={:?}",
                    w.at, w.ok, w.primary_port, w.error
                )
            })
            .collect();
        panic!(
            "no successful write on the new primary within {bound:?}; replica port {}; sentinels say {views:?}; last writes {last:?}",
            replica.port()
        );
    }
    let gap = first_ok_after.unwrap();
    println!(
        "write gap after SIGKILL of the primary: {gap:?} (down-after-milliseconds {DOWN_AFTER_MS})"
    );

    // Bring the old primary back: it starts as a master with no data; Sentinel demotes it. The
    // handle must not send it a single write, before or after the demotion.
    primary.restart().unwrap();
    eprintln!(
        "restarted the old primary at {:?}",
        std::time::SystemTime::now()
    );
    // Sentinel notices the returning node on its next INFO round (every 10 s per node), so the
    // demotion takes 10-20 s; allow for TILT mode on a loaded CI machine (see above).
    let demoted = poll_until(Duration::from_secs(75), || async {
        primary
            .command(&["ROLE"])
            .ok()
            .and_then(|r| {
                r.as_array()
                    .and_then(|a| a.first().and_then(|x| x.as_str().map(|s| s == "slave")))
            })
            .unwrap_or(false)
    })
    .await;
    if demoted.is_none() {
        for s in sentinels.iter() {
            let log = std::fs::read_to_string(s.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            eprintln!(
                "sentinel {} log tail (newest first):\n{}",
                s.port(),
                tail.join("\n")
            );
        }
        panic!("Sentinel never demoted the restarted old primary");
    }
    let writes_before = history.lock().await.len();
    poll_until(Duration::from_secs(5), || async {
        history.lock().await.len() >= writes_before + 50
    })
    .await
    .expect("writer stalled after the demotion");
    writer.abort();

    let stats = commandstats(primary);
    assert_eq!(
        stats.get("evalsha").copied().unwrap_or(0),
        0,
        "the handle wrote to the restarted old primary: {stats:?}"
    );
    let h = history.lock().await;
    let after_recovery: Vec<&Write> = h.iter().filter(|w| w.at > killed_at + gap).collect();
    assert!(
        after_recovery
            .iter()
            .all(|w| w.primary_port != Some(primary.port())),
        "a write after recovery went to the old primary"
    );
    let failed = h.iter().filter(|w| !w.ok).count();
    println!(
        "{} writes, {failed} failed during the failover, primary switches seen by the handle: {}",
        h.len(),
        redis.primary_changes()
    );
    assert_eq!(redis.current_primary().unwrap().port, replica.port());
}
