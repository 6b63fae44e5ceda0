//! The stores' multi-key operations on a real 3-primary Redis Cluster (made with
//! `redis-cli --cluster create` by `localredis`): a user's sessions and index share one slot, so
//! log-out-everywhere, the index and its pruning are single scripts there too; the race, the index
//! bound and the one-round-trip rule hold as on one server.
//!
//! One test starts one cluster (a few seconds) and runs every check on it in turn, each under its
//! own key prefix; the cluster is dropped (processes killed, directories removed) when it ends.

mod semantics;
mod support;

use std::collections::BTreeSet;

use cache::{KeySchema, Redis, SessionConfig, SessionStore};
use localredis::resp::Reply;
use localredis::{Cluster, ServerConfig};
use semantics::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_promises_hold_on_a_cluster() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start(3, ServerConfig::default().password("cluster-pw"))
        .expect("start a 3-node cluster");
    a_users_sessions_and_index_share_a_slot_and_users_spread_over_the_nodes(&cluster).await;
    a_forged_index_member_in_another_slot_is_skipped_not_a_cross_slot_error(&cluster).await;
    each_store_operation_is_one_round_trip_on_a_cluster(&cluster).await;
    log_out_everywhere_never_misses_a_racing_login_on_a_cluster(&cluster).await;
    the_index_stays_bounded_on_a_cluster(&cluster).await;
}

fn store(redis: &Redis, keys: &KeySchema) -> SessionStore {
    SessionStore::new(redis.clone(), keys.clone(), SessionConfig::default()).unwrap()
}

fn slot_of(cluster: &Cluster, key: &str) -> i64 {
    match cluster.nodes[0]
        .command(&["CLUSTER", "KEYSLOT", key])
        .unwrap()
    {
        Reply::Integer(slot) => slot,
        other => panic!("CLUSTER KEYSLOT: {other:?}"),
    }
}

/// Which node holds `key` (index into `cluster.nodes`).
fn node_of(cluster: &Cluster, key: &str) -> usize {
    let holders: Vec<usize> = (0..cluster.nodes.len())
        .filter(|&i| {
            matches!(
                cluster.nodes[i].command(&["EXISTS", key]),
                Ok(Reply::Integer(1))
            )
        })
        .collect();
    assert_eq!(holders.len(), 1, "{key} on nodes {holders:?}");
    holders[0]
}

async fn a_users_sessions_and_index_share_a_slot_and_users_spread_over_the_nodes(
    cluster: &Cluster,
) {
    let redis = patient(&cluster.url()).await;
    let keys = KeySchema::new("cs-slots").unwrap();
    let sessions = store(&redis, &keys);
    let mut nodes_used = BTreeSet::new();
    for u in 0..12 {
        let user = format!("user-{u}");
        let index = keys.user_sessions(&user).unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (id, _) = sessions.create(new_session(&user)).await.unwrap();
            let key = keys.session(id.expose());
            assert_eq!(slot_of(cluster, &key), slot_of(cluster, &index), "{user}");
            ids.push(key);
        }
        nodes_used.insert(node_of(cluster, &index));
        assert_eq!(index_len(&redis, &index).await, 3);
        assert_eq!(sessions.destroy_all_for_user(&user).await.unwrap(), 3);
        for key in &ids {
            assert!(!exists(&redis, key).await);
        }
        assert!(!exists(&redis, &index).await);
    }
    println!(
        "12 users' sessions and indexes: each user in one slot, users on nodes {nodes_used:?}"
    );
    assert!(
        nodes_used.len() >= 2,
        "users did not spread: {nodes_used:?}"
    );
}

async fn log_out_everywhere_never_misses_a_racing_login_on_a_cluster(cluster: &Cluster) {
    let keys = KeySchema::new("cs-race").unwrap();
    let mut logins = Vec::new();
    for _ in 0..8 {
        logins.push(store(&patient(&cluster.url()).await, &keys));
    }
    let raw = patient(&cluster.url()).await;
    let f = logout_race(&logins, &store(&raw, &keys), &raw, &keys, 150, 4).await;
    println!("cluster: {f:?}");
    assert_eq!(f.violations(), 0, "{f:?}");
    assert!(
        f.racing >= 50 && f.racing_gone > 0 && f.racing_gone < f.racing,
        "{f:?}"
    );
}

async fn the_index_stays_bounded_on_a_cluster(cluster: &Cluster) {
    let raw = patient(&cluster.url()).await;
    let keys = KeySchema::new("cs-bound").unwrap();
    let stores: Vec<SessionStore> = (0..8).map(|_| store(&raw, &keys)).collect();
    let f = index_stays_bounded(&stores, &raw, &keys, "daily-user", 3, 10_000).await;
    println!("cluster: {f:?}");
    assert_eq!((f.cycles, f.last), (10_000, f.live), "{f:?}");
    assert!(f.largest <= f.live + stores.len(), "{f:?}");
    assert_eq!(f.expiry_beyond_last_session_ms, 0, "{f:?}");
    for node in &cluster.nodes {
        assert!(
            keys_without_ttl(node, "cs-*").is_empty(),
            "node {}",
            node.port()
        );
    }
}

async fn each_store_operation_is_one_round_trip_on_a_cluster(cluster: &Cluster) {
    let redis = patient(&cluster.url()).await;
    let nodes: Vec<_> = cluster.nodes.iter().collect();
    each_operation_is_one_round_trip(&redis, &nodes, "cs-rt").await;
}

async fn a_forged_index_member_in_another_slot_is_skipped_not_a_cross_slot_error(
    cluster: &Cluster,
) {
    let redis = patient(&cluster.url()).await;
    let keys = KeySchema::new("cs-forged").unwrap();
    let sessions = store(&redis, &keys);
    let (victim, _) = sessions.create(new_session("victim")).await.unwrap();
    let (own, _) = sessions.create(new_session("mallory")).await.unwrap();
    let index = keys.user_sessions("mallory").unwrap();
    let victim_key = keys.session(victim.expose());
    assert_ne!(slot_of(cluster, &victim_key), slot_of(cluster, &index));
    // Someone with write access lists the victim's session in mallory's index.
    let mut conn = redis.clone();
    let _: i64 = redis::cmd("ZADD")
        .arg(&index)
        .arg(4_102_444_800_000u64)
        .arg(&victim_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(sessions.destroy_all_for_user("mallory").await.unwrap(), 1);
    assert!(!exists(&redis, &keys.session(own.expose())).await);
    assert!(
        exists(&redis, &victim_key).await,
        "the forged member was deleted"
    );
}
