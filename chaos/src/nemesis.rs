//! nemesis: the faults of the experiment file, fired on schedule against the live topology.
//!
//! Targets are resolved *when a fault fires*, not when the file is read: "the primary" at 3 s is
//! whatever node Sentinel names then, which after an earlier failover is not the node that started
//! as primary. The nemesis remembers what it did to each node, so `restart` / `resume` with target
//! `faulted` bring back exactly the nodes an earlier fault took down.
//!
//! A `pause` with a `duration` schedules its own `resume`. After restarting a node that was the
//! primary when it went down, the nemesis watches it (`ROLE`, every 100 ms, ≤ 20 s) and records
//! the moment it reports `slave`: the old primary must rejoin as a replica, never come back as a
//! second primary. [`run`] returns once the last fault has fired and hands back those watches
//! ([`Rejoins`]) still running: the final reads need no more faults, not the rejoin, so the runner
//! does both at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use crate::db::{Db, NodeAction, NodeKind};
use crate::experiment::{FaultAction, FaultSpec, FaultTarget, TopologyKind};
use crate::guard::AbortOnDrop;
use crate::history::{Clock, FaultEvent, History};

/// The rejoin watches still running after the last fault; aborted if dropped (Ctrl-C), so none
/// keeps the topology alive.
pub struct Rejoins(Vec<AbortOnDrop<()>>);

impl Rejoins {
    /// Waits until every watch has recorded its outcome (each gives up after 20 s).
    pub async fn join(mut self) {
        join_all(self.0.iter_mut().map(AbortOnDrop::join)).await;
    }
}

/// What the nemesis did to a node, and whether it was the primary then.
#[derive(Clone, Copy, Debug)]
struct Damage {
    action: NodeAction,
    was_primary: bool,
}

enum Target {
    Spec(FaultTarget, usize),
    Nodes(Vec<usize>),
}

struct Planned {
    at: Duration,
    action: NodeAction,
    target: Target,
    resume_after: Option<Duration>,
}

fn node_action(a: FaultAction) -> NodeAction {
    match a {
        FaultAction::Kill => NodeAction::Kill,
        FaultAction::Stop => NodeAction::Stop,
        FaultAction::Pause => NodeAction::Pause,
        FaultAction::Resume => NodeAction::Resume,
        FaultAction::Restart => NodeAction::Restart,
        FaultAction::Partition => NodeAction::Partition,
        FaultAction::Heal => NodeAction::Heal,
    }
}

/// Runs every fault of `faults` at its time; returns when the last one has fired, with the
/// rejoin watches it started.
pub async fn run(
    db: Arc<Db>,
    faults: Vec<FaultSpec>,
    clock: Clock,
    history: Arc<History>,
) -> Rejoins {
    let mut plan: Vec<Planned> = faults
        .iter()
        .map(|f| Planned {
            at: f.at,
            action: node_action(f.action),
            target: Target::Spec(f.target, f.count),
            resume_after: f.duration,
        })
        .collect();
    let mut damaged: BTreeMap<usize, Damage> = BTreeMap::new();
    let mut watches = Vec::new();
    while !plan.is_empty() {
        let next = (0..plan.len()).min_by_key(|&i| plan[i].at).unwrap_or(0);
        let p = plan.remove(next);
        tokio::time::sleep_until(clock.instant_at(p.at.as_secs_f64() * 1000.0).into()).await;
        let primary = db.current_primary().await;
        let targets = resolve(&db, &p, primary, &damaged);
        if targets.is_empty() {
            history.fault(FaultEvent {
                at_ms: clock.now(),
                done_ms: clock.now(),
                action: format!("{:?}", p.action).to_lowercase(),
                node: "-".into(),
                port: 0,
                role: "-".into(),
                error: Some("no node matched the target".into()),
            });
            continue;
        }
        let fired = join_all(targets.iter().map(|&i| {
            let was_primary = damaged.get(&i).is_some_and(|d| d.was_primary);
            let db = db.clone();
            let history = history.clone();
            async move {
                let at_ms = clock.now();
                let result = db.apply(i, p.action).await;
                let node = &db.nodes[i];
                let role = match node.kind {
                    NodeKind::Sentinel => "sentinel",
                    NodeKind::Data if Some(i) == primary => "primary",
                    NodeKind::Data if was_primary => "old primary",
                    NodeKind::Data => "replica",
                };
                history.fault(FaultEvent {
                    at_ms,
                    done_ms: clock.now(),
                    action: format!("{:?}", p.action).to_lowercase(),
                    node: node.name.clone(),
                    port: node.port,
                    role: role.into(),
                    error: result.err().map(|e| e.to_string()),
                });
            }
        }))
        .await;
        drop(fired);
        for &i in &targets {
            match p.action {
                NodeAction::Kill | NodeAction::Stop | NodeAction::Pause | NodeAction::Partition => {
                    damaged.insert(
                        i,
                        Damage {
                            action: p.action,
                            was_primary: Some(i) == primary,
                        },
                    );
                }
                NodeAction::Restart | NodeAction::Resume | NodeAction::Heal => {
                    let was_primary = damaged.remove(&i).is_some_and(|d| d.was_primary);
                    if was_primary && db.spec.kind != TopologyKind::Standalone {
                        watches.push(AbortOnDrop::spawn(watch_rejoin(
                            db.clone(),
                            i,
                            clock,
                            history.clone(),
                        )));
                    }
                }
            }
        }
        if let (NodeAction::Pause, Some(after)) = (p.action, p.resume_after) {
            plan.push(Planned {
                at: p.at + after,
                action: NodeAction::Resume,
                target: Target::Nodes(targets),
                resume_after: None,
            });
        }
    }
    Rejoins(watches)
}

fn resolve(
    db: &Db,
    p: &Planned,
    primary: Option<usize>,
    damaged: &BTreeMap<usize, Damage>,
) -> Vec<usize> {
    let healthy = |i: &usize| !damaged.contains_key(i);
    let data = || {
        db.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == NodeKind::Data)
    };
    match &p.target {
        Target::Nodes(v) => v.clone(),
        Target::Spec(FaultTarget::Primary, _) => primary.into_iter().collect(),
        Target::Spec(FaultTarget::Replica, _) => data()
            .map(|(i, _)| i)
            .filter(|i| Some(*i) != primary && healthy(i))
            .take(1)
            .collect(),
        Target::Spec(FaultTarget::Sentinels, count) => db
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.kind == NodeKind::Sentinel && healthy(i))
            .map(|(i, _)| i)
            .take(*count)
            .collect(),
        Target::Spec(FaultTarget::Faulted, _) => damaged
            .iter()
            .filter(|(_, d)| match p.action {
                NodeAction::Restart => matches!(d.action, NodeAction::Kill | NodeAction::Stop),
                NodeAction::Resume => d.action == NodeAction::Pause,
                NodeAction::Heal => d.action == NodeAction::Partition,
                _ => true,
            })
            .map(|(i, _)| *i)
            .collect(),
        Target::Spec(FaultTarget::All, _) => (0..db.nodes.len()).collect(),
    }
}

/// Records when node `i` reports `ROLE slave` after coming back.
async fn watch_rejoin(db: Arc<Db>, i: usize, clock: Clock, history: Arc<History>) {
    let node = db.nodes[i].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (action, error) = loop {
        let role = db.role(node.port).await;
        if role.as_deref() == Some("slave") {
            break ("rejoined-as-replica", None);
        }
        // No failover happened (e.g. quorum lost): the node is still the primary, rightly.
        if role.as_deref() == Some("master") && db.current_primary().await == Some(i) {
            break ("still-primary", None);
        }
        if tokio::time::Instant::now() > deadline {
            break (
                "rejoin-timeout",
                Some("still not a replica 20 s after coming back".to_string()),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let now = clock.now();
    history.fault(FaultEvent {
        at_ms: now,
        done_ms: now,
        action: action.into(),
        node: node.name,
        port: node.port,
        role: "old primary".into(),
        error,
    });
}
