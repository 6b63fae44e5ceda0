//! cluster: the `cluster` topology — 3 primaries × 1 replica of Redis Cluster, no sentinels —
//! formed and watched over the network, identically for both backends.
//!
//! The backends only start six data nodes with `cluster-enabled yes`, the node file
//! (`nodes.conf`) in the node's own data directory (so a restarted node keeps its identity and
//! rejoins as whatever the cluster decided meanwhile) and `cluster-node-timeout`. Everything
//! else happens here, with plain commands rather than `redis-cli --cluster create` (the scratch
//! Docker image has no `redis-cli`, and the layout must be fixed for the checker):
//! - node *i* < 3 gets slot range [`RANGES`]`[i]` (`CLUSTER ADDSLOTSRANGE`); node 0 therefore
//!   starts as the owner of slot 0, which is what `target = "primary"` means on a cluster;
//! - node 0 `CLUSTER MEET`s every other node; node 3 + *i* then `CLUSTER REPLICATE`s node *i*;
//! - formed = every node says `cluster_state:ok` and every replica's link is up.
//!
//! [`ClusterWatch`] polls `CLUSTER NODES` / `CLUSTER INFO` on every data node every 100 ms and
//! records, in the same timeline as Sentinel's events (source `cluster`), what Sentinel would have
//! announced, so the checker's definitions carry over unchanged:
//! - a primary flagged `fail?` by some node → `+sdown`, flagged `fail` → `+odown`;
//! - a new owner of a slot range (its replica promoted) → `+switch-master`
//!   (detail `slots:0-5460 127.0.0.1 <old> 127.0.0.1 <new>`, Sentinel's layout): failover time is fault → this;
//! - a node's `cluster_state` changing → `+cluster-state` (detail `<node> fail` / `<node> ok`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::Value;

use super::{Db, DbError, query, value_str};
use crate::experiment::TopologySpec;
use crate::guard::AbortOnDrop;
use crate::history::{Clock, History, SentinelEvent};

/// The slot range of primary *i* at formation.
pub const RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// Data nodes of the topology: 3 primaries, then their replicas in the same order.
pub const NODES: usize = 6;

/// The cluster setting every node gets through [`super::data_directives`]; `cluster-enabled` and
/// the node file are set by each backend (localredis owns `cluster-config-file`).
pub fn directives(spec: &TopologySpec) -> Vec<(String, String)> {
    vec![(
        "cluster-node-timeout".into(),
        spec.cluster_node_timeout_ms.to_string(),
    )]
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub master: bool,
    /// `fail?` (this node's own suspicion).
    pub pfail: bool,
    /// `fail` (agreed by a majority of primaries).
    pub fail: bool,
    pub slots: Vec<(u16, u16)>,
}

/// Parses a `CLUSTER NODES` reply (migrating-slot entries `[…]` are ignored).
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1].split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let flags: Vec<&str> = f[2].split(',').collect();
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|x| (x, x)),
                })
                .collect();
            Some(NodeLine {
                id: f[0].to_string(),
                port,
                master: flags.contains(&"master"),
                pfail: flags.contains(&"fail?"),
                fail: flags.contains(&"fail"),
                slots,
            })
        })
        .collect()
}

/// The master that serves `slot` in one node's view, if any (a `fail`ed one does not serve).
pub fn owner(view: &[NodeLine], slot: u16) -> Option<u16> {
    view.iter()
        .find(|n| n.master && !n.fail && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
        .map(|n| n.port)
}

async fn text(port: u16, pw: &str, args: &[&str]) -> Option<String> {
    let reply = tokio::time::timeout(Duration::from_millis(400), query(port, Some(pw), args));
    match reply.await {
        Ok(Ok(v)) => value_str(&v),
        _ => None,
    }
}

async fn must(port: u16, pw: &str, args: &[&str]) -> Result<Value, DbError> {
    query(port, Some(pw), args)
        .await
        .map_err(|e| DbError::Failed(format!("{} on 127.0.0.1:{port}: {e}", args[..2].join(" "))))
}

/// Forms the cluster on `ports` (6 fresh nodes, primaries first) and waits (≤ 30 s) until it is
/// whole.
pub async fn form(ports: &[u16], pw: &str) -> Result<(), DbError> {
    for (i, &(a, b)) in RANGES.iter().enumerate() {
        let (a, b) = (a.to_string(), b.to_string());
        must(ports[i], pw, &["CLUSTER", "ADDSLOTSRANGE", &a, &b]).await?;
    }
    for &p in &ports[1..] {
        // The bus port is the node's own choice (localredis picks a free one): ask it.
        let nodes = value_str(&must(p, pw, &["CLUSTER", "NODES"]).await?).unwrap_or_default();
        let bus = nodes
            .lines()
            .find(|l| l.contains("myself"))
            .and_then(|l| l.split_whitespace().nth(1)?.split_once('@'))
            .map(|(_, b)| b.split(',').next().unwrap_or(b).to_string())
            .ok_or_else(|| DbError::Failed(format!("127.0.0.1:{p} names no cluster bus port")))?;
        let p = p.to_string();
        must(ports[0], pw, &["CLUSTER", "MEET", "127.0.0.1", &p, &bus]).await?;
    }
    let mut ids = Vec::new();
    for &p in &ports[..3] {
        ids.push(value_str(&must(p, pw, &["CLUSTER", "MYID"]).await?).unwrap_or_default());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let too_late = |what: &str| {
        DbError::Failed(format!(
            "the cluster did not form within 30 s: {what} (needs 6 nodes meeting, \
             cluster_state:ok everywhere, every replica linked)"
        ))
    };
    // A replica can only replicate a primary it already knows of.
    for (i, &p) in ports[3..].iter().enumerate() {
        loop {
            let e = match must(p, pw, &["CLUSTER", "REPLICATE", &ids[i]]).await {
                Ok(_) => break,
                Err(e) => e,
            };
            if tokio::time::Instant::now() > deadline {
                return Err(too_late(&format!(
                    "a replica never learnt of its primary: {e}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    loop {
        let mut whole = true;
        for (i, &p) in ports.iter().enumerate() {
            let info = text(p, pw, &["CLUSTER", "INFO"]).await.unwrap_or_default();
            whole &= info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6");
            if i >= 3 {
                let repl = text(p, pw, &["INFO", "replication"]).await;
                whole &= repl.is_some_and(|r| r.contains("master_link_status:up"));
            }
        }
        if whole {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(too_late("still not whole"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Db {
    /// One live data node's view of the cluster (the first that answers).
    pub async fn cluster_view(&self) -> Option<Vec<NodeLine>> {
        for n in self.data_nodes() {
            if let Some(t) = text(n.port, &self.password, &["CLUSTER", "NODES"]).await {
                return Some(parse_nodes(&t));
            }
        }
        None
    }

    /// Settled: every answering node says `cluster_state:ok` and slot 0 has a live owner that
    /// reports `role:master`.
    pub async fn cluster_settled(&self) -> bool {
        for n in self.data_nodes() {
            if let Some(info) = text(n.port, &self.password, &["CLUSTER", "INFO"]).await
                && !info.contains("cluster_state:ok")
            {
                return false;
            }
        }
        let Some(view) = self.cluster_view().await else {
            return false;
        };
        match owner(&view, 0) {
            Some(p) => self.role(p).await.as_deref() == Some("master"),
            None => false,
        }
    }
}

/// Polls the cluster every 100 ms into the history (see the module docs); aborted on drop.
pub struct ClusterWatch {
    _task: AbortOnDrop<()>,
}

impl ClusterWatch {
    pub fn start(db: Arc<Db>, clock: Clock, history: Arc<History>) -> ClusterWatch {
        ClusterWatch {
            _task: AbortOnDrop::spawn(watch(db, clock, history)),
        }
    }
}

async fn watch(db: Arc<Db>, clock: Clock, history: Arc<History>) {
    let nodes: Vec<(String, u16)> = db.data_nodes().map(|n| (n.name.clone(), n.port)).collect();
    let mut owners: Vec<Vec<u16>> = vec![Vec::new(); RANGES.len()];
    let mut states: BTreeMap<u16, bool> = BTreeMap::new();
    let mut suspected: BTreeMap<(u16, &'static str), bool> = BTreeMap::new();
    let record = |event: &str, detail: String| {
        history.sentinel_event(SentinelEvent {
            at_ms: clock.now(),
            sentinel: "cluster".into(),
            event: event.into(),
            detail,
        })
    };
    loop {
        let polls = nodes.iter().map(|(_, p)| async {
            let info = text(*p, &db.password, &["CLUSTER", "INFO"]).await;
            let view = text(*p, &db.password, &["CLUSTER", "NODES"]).await;
            (info, view.map(|v| parse_nodes(&v)))
        });
        let replies = join_all(polls).await;
        for ((name, port), (info, _)) in nodes.iter().zip(&replies) {
            let Some(info) = info else { continue };
            let ok = info.contains("cluster_state:ok");
            if states.insert(*port, ok) != Some(ok) {
                let word = if ok { "ok" } else { "fail" };
                record("+cluster-state", format!("{name} {word}"));
            }
        }
        let views: Vec<&Vec<NodeLine>> = replies.iter().filter_map(|(_, v)| v.as_ref()).collect();
        for view in &views {
            for n in view.iter().filter(|n| n.master && !n.slots.is_empty()) {
                for (flag, event, on) in [("pfail", "+sdown", n.pfail), ("fail", "+odown", n.fail)]
                {
                    let was = suspected.insert((n.port, flag), on).unwrap_or(false);
                    if on && !was {
                        record(event, format!("master 127.0.0.1 {}", n.port));
                    }
                }
            }
        }
        for (r, &(first, last)) in RANGES.iter().enumerate() {
            // A node never seen owning the range before is its new owner (a stale view — the
            // restarted old primary's first look at its own node file — never switches back).
            let fresh = views
                .iter()
                .filter_map(|v| owner(v, first))
                .find(|p| !owners[r].contains(p));
            if let Some(p) = fresh {
                if let Some(&old) = owners[r].last() {
                    record(
                        "+switch-master",
                        // Laid out as Sentinel's `<name> <ip> <old> <ip> <new>`, so the checker
                        // reads both alike.
                        format!("slots:{first}-{last} 127.0.0.1 {old} 127.0.0.1 {p}"),
                    );
                }
                owners[r].push(p);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The hash slot of `key` (CRC16/XMODEM of the hash tag, if any, mod 16384), as the cluster
/// computes it: which range a session key lives in.
pub fn key_slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let tagged = b.iter().position(|&c| c == b'{').and_then(|s| {
        let e = b[s + 1..].iter().position(|&c| c == b'}')?;
        (e > 0).then(|| &b[s + 1..s + 1 + e])
    });
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(b) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("123456789"), 0x31C3); // CRC16/XMODEM check value
    }

    #[test]
    fn nodes_reply_is_parsed() {
        let t = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                 b 127.0.0.1:7003@17003 slave a 0 0 1 connected\n\
                 c 127.0.0.1:7001@17001 master,fail - 0 0 2 connected 5461-10922 [5461->-x]\n";
        let v = parse_nodes(t);
        assert_eq!(v.len(), 3);
        assert_eq!(owner(&v, 0), Some(7000));
        assert!(v[2].fail);
        assert_eq!(owner(&v, 6000), None, "a failed master serves nothing");
    }
}
