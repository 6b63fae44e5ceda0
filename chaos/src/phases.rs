//! One experiment in three phases, so that the runner can overlap what does not interfere:
//!
//! 1. [`Prepared::start`] — the topology comes up and forms (no workload yet);
//! 2. [`Prepared::workload`] — K clients and the nemesis run for the experiment's `duration`,
//!    Sentinel's events and the TTL probes are recorded;
//! 3. [`Finishing::finish`] — what is left is mostly *waiting*: TTL probes fall due up to
//!    T + tolerance after the last short session, the restarted old primary rejoins a few seconds
//!    after its restart. The final reads, the rejoin watch and the late probes run at the same time
//!    (none depends on another), then the checker judges, the topology is torn down and the report
//!    written.
//!
//! Every measurement the checker times — failover, write gap, acked writes — comes from phase 2,
//! which the runner never overlaps with anything. Phase 3 judges only presence and order (a key
//! present after its expiry, a rejoin within 20 s), so the runner starts the *next* experiment's
//! phase 1 while this one is in phase 3.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache::RedisUrl;
use futures_util::future::try_join_all;

use crate::checker::judge;
use crate::client::Client;
use crate::db::cluster::ClusterWatch;
use crate::db::{BackendKind, Db, NodeInfo};
use crate::events::SentinelWatch;
use crate::experiment::{Experiment, TopologyKind};
use crate::generator::Generator;
use crate::guard::{AbortOnDrop, Pending};
use crate::history::{Clock, History};
use crate::nemesis::{self, Rejoins};
use crate::observe::final_state;
use crate::outcome::{Outcome, RunError, RunOptions};
use crate::recorded::{HISTORY_SCHEMA_VERSION, Recorded};
use crate::report::{Report, SCHEMA_VERSION, Timing, results_dir};
use crate::ttl::TtlProber;

/// A formed topology, waiting for its workload.
pub struct Prepared {
    exp: Experiment,
    db: Db,
    started: time::OffsetDateTime,
    setup: Duration,
}

/// The workload is over; late evidence is still due.
pub struct Finishing {
    exp: Experiment,
    opts: RunOptions,
    db: Arc<Db>,
    started: time::OffsetDateTime,
    setup: Duration,
    /// When phase 2 began (clients connecting). Wall time = setup + time since then: in a suite,
    /// a prepared topology may wait for the previous experiment, and that wait is not this one's.
    active_since: Instant,
    workload: Duration,
    clock: Clock,
    history: Arc<History>,
    /// The URL every client used; parsed once, printed (redacted) into the report.
    url: RedisUrl,
    watch: SentinelWatch,
    /// On a cluster topology: the `CLUSTER NODES` poller (see [`crate::db::cluster`]).
    cluster_watch: Option<ClusterWatch>,
    prober: TtlProber,
    nemesis: AbortOnDrop<Rejoins>,
    /// When the workload stopped, on the experiment clock.
    end_ms: f64,
}

/// Tears the topology down politely if nobody else holds it, else leaves it to the last drop.
async fn teardown(db: Arc<Db>) {
    match Arc::try_unwrap(db) {
        Ok(db) => db.teardown().await,
        Err(db) => drop(db),
    }
}

impl Prepared {
    /// Phase 1: builds `exp`'s topology under `run_id`.
    pub async fn start(
        exp: Experiment,
        opts: &RunOptions,
        run_id: &str,
        pending: &Pending,
    ) -> Result<Prepared, RunError> {
        let t = Instant::now();
        let started = time::OffsetDateTime::now_utc();
        let db = Db::start(&exp.topology, opts.backend, &opts.image, run_id, pending).await?;
        Ok(Prepared {
            exp,
            db,
            started,
            setup: t.elapsed(),
        })
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.db.nodes
    }

    pub fn setup(&self) -> Duration {
        self.setup
    }

    /// Phase 2: runs the workload and the faults for the experiment's duration.
    pub async fn workload(self, opts: &RunOptions) -> Result<Finishing, RunError> {
        let Prepared {
            exp,
            db,
            started,
            setup,
        } = self;
        let active_since = Instant::now();
        let db = Arc::new(db);
        let w = &exp.workload;
        // One handle per worker plus the prober's; each resolves the primary through Sentinel.
        let connected = async {
            let url = RedisUrl::parse(&db.url())?;
            let clients = try_join_all((0..=w.clients).map(|_| Client::connect(&url, w))).await?;
            Ok::<_, cache::Error>((url, clients))
        }
        .await;
        let (url, mut clients) = match connected {
            Ok(c) => c,
            Err(e) => {
                teardown(db).await;
                return Err(RunError::Failed(format!("a client cannot connect: {e}")));
            }
        };
        let prober_client = clients.pop().expect("clients + 1 handles");
        let history = Arc::new(History::default());
        let clock = Clock::start();
        let sentinels = db.sentinels().map(|n| (n.name.clone(), n.port)).collect();
        let watch = SentinelWatch::start(sentinels, clock, history.clone()).await;
        let cluster_watch = (db.spec.kind == TopologyKind::Cluster)
            .then(|| ClusterWatch::start(db.clone(), clock, history.clone()));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let prober = TtlProber::start(
            prober_client.redis.clone(),
            w.short_session_ttl,
            w.ttl_tolerance,
            clock,
            history.clone(),
            rx,
        );
        let generator = Generator::start(clients, w.interval, clock, history.clone(), tx);
        let nemesis = AbortOnDrop::spawn(nemesis::run(
            db.clone(),
            exp.faults.clone(),
            clock,
            history.clone(),
        ));
        tokio::time::sleep_until(clock.instant_at(exp.duration.as_secs_f64() * 1000.0).into())
            .await;
        generator.stop().await;
        let end_ms = clock.now();
        Ok(Finishing {
            end_ms,
            workload: active_since.elapsed(),
            exp,
            opts: opts.clone(),
            db,
            active_since,
            started,
            setup,
            clock,
            history,
            url,
            watch,
            cluster_watch,
            prober,
            nemesis,
        })
    }
}

impl Finishing {
    /// Phase 3: late evidence, verdict, teardown, report.
    pub async fn finish(self) -> Result<Outcome, RunError> {
        let Finishing {
            exp,
            opts,
            db,
            active_since,
            started,
            setup,
            workload,
            clock,
            history,
            url,
            watch,
            cluster_watch,
            prober,
            mut nemesis,
            end_ms,
        } = self;
        let finish_started = Instant::now();
        // The last fault must have fired before anything is read back.
        let rejoins = match nemesis.join().await {
            Ok(r) => r,
            Err(e) => {
                drop((watch, prober));
                teardown(db).await;
                return Err(RunError::Failed(format!("the nemesis failed: {e}")));
            }
        };
        let (_, probes, final_state) = tokio::join!(
            rejoins.join(),
            prober.finish(),
            final_state(&db, &url, &exp.workload, clock, &history)
        );
        // Stopped last, so Sentinel's late events (+convert-to-slave) are in the timeline.
        drop((watch, cluster_watch));

        let recorded = Recorded {
            schema_version: HISTORY_SCHEMA_VERSION,
            experiment: exp,
            initial_primary_port: db.nodes[0].port,
            end_ms,
            ops: history.ops(),
            sessions: history.sessions(),
            writes: history.writes(),
            faults: history.faults(),
            sentinel_events: history.sentinel_events(),
            probes,
            final_state,
        };
        let verdict = judge(&recorded);
        let fmt = time::format_description::well_known::Rfc3339;
        let report = Report {
            schema_version: SCHEMA_VERSION,
            backend: opts.backend,
            image: (opts.backend == BackendKind::Docker).then(|| opts.image.clone()),
            started_utc: started.format(&fmt).unwrap_or_default(),
            wall_time_s: (setup + active_since.elapsed()).as_secs_f64(),
            timing: Timing {
                setup_s: setup.as_secs_f64(),
                workload_s: workload.as_secs_f64(),
                finish_s: finish_started.elapsed().as_secs_f64(),
            },
            url: url.to_string(),
            nodes: db.nodes.clone(),
            faults: recorded.faults.clone(),
            sentinel_events: recorded.sentinel_events.clone(),
            final_state: recorded.final_state.clone(),
            verdict,
            total_ops: recorded.ops.len(),
            experiment: recorded.experiment.clone(),
        };
        teardown(db).await;
        let dir = results_dir(&opts.results_root, &report.experiment.name, started);
        report
            .write(&dir, &recorded)
            .map_err(|e| RunError::Failed(format!("writing {}: {e}", dir.display())))?;
        Ok(Outcome { report, dir })
    }
}
