//! The runner: a list of experiments, one after another, guarded so that nothing of them
//! survives any way out — the end, an error, a panic, Ctrl-C or SIGTERM.
//!
//! Each experiment goes through the three [`phases`](crate::phases). While experiment *n* is in
//! its last phase (mostly waiting for late TTL probes and the old primary's rejoin), the topology
//! of experiment *n + 1* starts; its workload starts only once *n* is torn down, so no two
//! workloads, and no workload and a teardown, ever share the machine.
//!
//! Cleanup, in order of politeness:
//! - the normal path tears each topology down explicitly (`Db::teardown`);
//! - an error or a panic drops the `Db`, whose nodes kill themselves on drop (processes) or are
//!   removed by testcontainers' drop;
//! - a signal aborts the task that runs the list (dropping both topologies it may hold), waits
//!   until every node operation that the abort could not stop has reported back (see
//!   [`crate::guard`]), and only then force-removes every container labelled with one of the
//!   list's run ids.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::db::{BackendKind, NodeInfo, docker, random_hex};
use crate::experiment::Experiment;
use crate::guard::{self, AbortOnDrop, Interrupt, Pending};
pub use crate::outcome::{Outcome, RunError, RunOptions};
use crate::phases::Prepared;

/// How long, after a signal, the runner waits for node operations in flight (a container being
/// created) before it sweeps anyway and says what may be left.
const CLEANUP_LIMIT: Duration = Duration::from_secs(60);

/// What the runner tells its caller, in order; `index` is the position in the list.
pub enum Event {
    /// The experiment's nodes are being started (for `index > 0`: while the previous experiment
    /// finishes).
    Starting { index: usize },
    /// The topology is formed and the workload starts now.
    NodesUp {
        index: usize,
        nodes: Vec<NodeInfo>,
        setup: Duration,
    },
    /// The verdict, or why there is none (boxed: a report is large, the other events small).
    Finished {
        index: usize,
        result: Box<Result<Outcome, RunError>>,
    },
}

/// Runs one experiment; Ctrl-C removes its nodes and returns [`RunError::Interrupted`].
pub async fn run_guarded(exp: Experiment, opts: RunOptions) -> Result<Outcome, RunError> {
    let mut interrupt = Interrupt::ctrl_c()
        .map_err(|e| RunError::Failed(format!("cannot listen for Ctrl-C: {e}")))?;
    let mut outcome = None;
    run_plan(vec![exp], opts, &mut interrupt, |event| {
        if let Event::Finished { result, .. } = event {
            outcome = Some(*result);
        }
    })
    .await?;
    outcome.unwrap_or_else(|| {
        Err(RunError::Failed(
            "the experiment ended without a result".into(),
        ))
    })
}

/// Runs `plan` in order, reporting through `on_event`. Stops early when the environment is
/// missing something (Docker, binaries: every later experiment would fail the same way).
/// `Err` only for a signal ([`RunError::Interrupted`]) or a panic; each experiment's own
/// failure arrives as [`Event::Finished`].
pub async fn run_plan(
    plan: Vec<Experiment>,
    opts: RunOptions,
    interrupt: &mut Interrupt,
    mut on_event: impl FnMut(Event),
) -> Result<(), RunError> {
    if opts.backend == BackendKind::Docker {
        docker::sweep_orphans().await;
    }
    let (pending, all_back) = guard::pending();
    let run_ids = RunIds::default();
    let (tx, mut rx) = unbounded_channel();
    let mut task = AbortOnDrop::spawn(drive(plan, opts.clone(), tx, run_ids.clone(), pending));
    let signal = loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => on_event(event),
                None => break None,
            },
            signal = interrupt.recv() => break Some(signal),
        }
    };
    task.abort();
    let ended = task.join().await;
    let all_done = all_back.wait(CLEANUP_LIMIT).await;
    if opts.backend == BackendKind::Docker {
        let ids = run_ids.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for id in ids {
            docker::sweep_run(&id).await;
        }
    }
    match (signal, ended) {
        (Some(signal), _) => Err(RunError::Interrupted {
            signal,
            detail: if all_done {
                "every node of the run was removed".into()
            } else {
                format!(
                    "node operations were still running after {}s; check `docker ps -a --filter \
                     label=authority-chaos.pid={}` and /tmp/localredis-*",
                    CLEANUP_LIMIT.as_secs(),
                    std::process::id()
                )
            },
        }),
        (None, Err(e)) if e.is_panic() => {
            Err(RunError::Failed(format!("the experiment panicked: {e}")))
        }
        (None, _) => Ok(()),
    }
}

/// Every run id the list used: the labels to sweep after a signal.
#[derive(Clone, Default)]
struct RunIds(Arc<Mutex<Vec<String>>>);

/// The body of [`run_plan`], in its own task so a signal can abort it.
async fn drive(
    plan: Vec<Experiment>,
    opts: RunOptions,
    events: UnboundedSender<Event>,
    run_ids: RunIds,
    pending: Pending,
) {
    let prepare = |index: usize| {
        let run_id = random_hex(4);
        run_ids
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(run_id.clone());
        let _ = events.send(Event::Starting { index });
        let (exp, opts, pending) = (plan[index].clone(), opts.clone(), pending.clone());
        AbortOnDrop::spawn(async move { Prepared::start(exp, &opts, &run_id, &pending).await })
    };
    let mut next = (!plan.is_empty()).then(|| prepare(0));
    for index in 0..plan.len() {
        let Some(mut starting) = next.take() else {
            return;
        };
        let prepared = starting.join().await.unwrap_or_else(|e| {
            Err(RunError::Failed(format!(
                "starting the topology panicked: {e}"
            )))
        });
        let running = match prepared {
            Ok(p) => {
                let _ = events.send(Event::NodesUp {
                    index,
                    nodes: p.nodes().to_vec(),
                    setup: p.setup(),
                });
                p.workload(&opts).await
            }
            Err(e) => Err(e),
        };
        let environment_missing = matches!(running, Err(RunError::Environment(_)));
        if index + 1 < plan.len() && !environment_missing {
            next = Some(prepare(index + 1));
        }
        let result = match running {
            Ok(finishing) => finishing.finish().await,
            Err(e) => Err(e),
        };
        let stop = matches!(result, Err(RunError::Environment(_)));
        let _ = events.send(Event::Finished {
            index,
            result: Box::new(result),
        });
        if stop {
            return;
        }
    }
}
