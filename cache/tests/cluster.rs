//! The stores through a Redis Cluster URL (`redis://n1,n2,n3`): a real 3-primary cluster made with
//! `redis-cli --cluster create`, and the same behaviour suite as standalone.

mod support;

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
