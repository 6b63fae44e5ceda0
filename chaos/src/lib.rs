//! # chaos — break Redis on purpose, then check what the cache stores lost
//!
//! Answers "what does our Redis setup do to sessions, tokens and rate limits when a primary or a
//! sentinel dies?" with a recorded history instead of an anecdote. The parts carry Jepsen's names:
//!
//! | part | module | job |
//! |---|---|---|
//! | db | [`db`] | build the topology (1 primary, 2 replicas, 3 sentinels; or one standalone node) as local processes or Docker containers, tear it down whatever happens |
//! | client | [`client`] | the real `cache` stores over one `cache::Redis` handle per worker |
//! | generator | [`generator`] | K workers creating, reading, updating sessions, checking rate limits, putting and revoking tokens; every call recorded in the [`history`] |
//! | nemesis | [`nemesis`] | kill -9, stop, pause/resume, restart — at the times the experiment file says |
//! | checker | [`checker`] | verdicts over the whole history: acked writes lost, write gap, failover time (from Sentinel's [`events`]), split brain, TTLs ([`ttl`]), persistence |
//! | report | [`report`] | `results/chaos-<experiment>-<time>/report.json` + `report.md` |
//!
//! [`experiment`] parses the operator's TOML file; [`phases`] wires one experiment together
//! (topology up → workload → late evidence, verdict, report); [`run`] runs a list of them, the
//! next topology starting while the previous experiment finishes, and [`guard`] makes sure
//! nothing of them survives Ctrl-C; [`repeat`] summarises `--repeat N`; [`observe`] takes the
//! final look after the system settles; [`image`] builds the local image.

pub mod checker;
pub mod client;
pub mod cluster_check;
pub mod db;
pub mod events;
pub mod experiment;
pub mod generator;
pub mod guard;
pub mod history;
pub mod image;
pub mod nemesis;
pub mod observe;
pub mod phases;
pub mod repeat;
pub mod report;
pub mod run;
pub mod ttl;

pub use db::BackendKind;
pub use experiment::Experiment;
pub use guard::Interrupt;
pub use run::{Event, RunError, RunOptions, run_guarded, run_plan};

/// The image used when none is given and `redis:7-alpine` is not present locally.
pub const LOCAL_IMAGE: &str = "authority-redis:local";
/// The image for users with a registry.
pub const DEFAULT_IMAGE: &str = "redis:7-alpine";

/// Chooses backend and image. `backend = None` means auto: Docker when an engine answers and the
/// image is present (never a pull: there may be no registry), else local processes. Returns the
/// choice and, for auto, why.
pub async fn choose_backend(
    backend: Option<BackendKind>,
    image: Option<&str>,
) -> Result<(BackendKind, String, String), RunError> {
    let engine = db::docker::engine().await;
    let image = match (image, &engine) {
        (Some(i), _) => i.to_string(),
        (None, Ok(e))
            if !db::docker::image_exists(e, DEFAULT_IMAGE).await
                && db::docker::image_exists(e, LOCAL_IMAGE).await =>
        {
            LOCAL_IMAGE.to_string()
        }
        _ => DEFAULT_IMAGE.to_string(),
    };
    match (backend, engine) {
        (Some(BackendKind::Process), _) => {
            Ok((BackendKind::Process, image, "--backend process".into()))
        }
        (Some(BackendKind::Docker), Ok(_)) => {
            Ok((BackendKind::Docker, image, "--backend docker".into()))
        }
        (Some(BackendKind::Docker), Err(e)) => Err(RunError::Environment(format!(
            "--backend docker: {e} (start dockerd, or use --backend process)"
        ))),
        (None, Ok(e)) if db::docker::image_exists(&e, &image).await => Ok((
            BackendKind::Docker,
            image.clone(),
            format!("auto: Docker engine answers and {image} is present"),
        )),
        (None, Ok(_)) => Ok((
            BackendKind::Process,
            image.clone(),
            format!(
                "auto: {image} is not on the Docker engine (build it with `chaos image build`); using local processes"
            ),
        )),
        (None, Err(e)) => Ok((
            BackendKind::Process,
            image,
            format!("auto: {e}; using local processes"),
        )),
    }
}
