//! The Docker backend: every node is a container started through testcontainers.
//!
//! Choices, each forced by something in FIELD-NOTES.md or by the images we must support:
//! - **Host networking**, a distinct free loopback port per node: Sentinel announces and clients
//!   connect to `127.0.0.1:<port>` exactly as with local processes, without NAT or
//!   `announce-ip`. (`get_host_port_ipv4` does not work in this mode; we chose the ports.)
//!   Except for an experiment with a `partition` fault: one namespace cannot be cut in two, so its
//!   nodes run on a bridge network of the run, same ports published on `127.0.0.1`
//!   ([`super::network`] says why and how).
//! - **Config files copied in** (`with_copy_to`), not command-line flags and not bind mounts: the
//!   scratch image has no shell, and Sentinel rewrites its config with temp-file + rename, which a
//!   bind-mounted single file forbids. The files go to `/data`, which is writable in both our
//!   scratch image and `redis:7-alpine` (whose entrypoint hands `/data` to the `redis` user).
//! - **SIGKILL through bollard**: testcontainers has `stop` (SIGTERM, then KILL after a grace
//!   period), `pause`, `unpause` and `start`, but no kill; its re-exported bollard client does.
//! - **Restart = `docker start` of the same container**: same port, same writable layer, so the
//!   node comes back with whatever RDB/AOF it wrote, like a restarted process. testcontainers does
//!   not re-apply its wait strategy then; the caller polls `PING`.
//! - **Labels for cleanup**: every container (and bridge network) carries
//!   `authority-chaos.run=<run id>` and `authority-chaos.pid=<our pid>`. Teardown removes this
//!   run's containers, then its network, by label (so a panic half-way through start-up still
//!   removes what was created), and [`sweep_orphans`] removes those of earlier runs whose process
//!   is gone (a harness killed with `kill -9`).
//! - **Creation runs in its own task, holding a [`Pending`] token.** The engine finishes a
//!   `create` whose client went away; if Ctrl-C aborted the experiment mid-request, the container
//!   would appear after the runner's sweep by label. The task always sees its request through, and
//!   removes the container itself when nobody is waiting for it; the runner sweeps only once every
//!   token is back.
//! - **Started in two concurrent waves** (the three data nodes, then the three sentinels):
//!   creating a container costs ~0.5 s of engine time, and nothing in a wave depends on another
//!   node of the same wave — a replica retries until its primary listens. Sentinels wait for the
//!   data nodes, or they would count the primary down before the experiment starts, and for the
//!   replicas to attach (see [`super::wait_replicas_attached`]).

use std::collections::HashMap;

use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::{
    KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, CopyTargetOptions, GenericImage, ImageExt};

use futures_util::future::join_all;
use localredis::Persistence;

use super::{DbError, NodeAction, NodeInfo, NodeKind, SERVICE, data_directives, network};
use crate::experiment::{TopologyKind, TopologySpec};
use crate::guard::Pending;

const RUN_LABEL: &str = "authority-chaos.run";
const PID_LABEL: &str = "authority-chaos.pid";

pub struct DockerNodes {
    containers: Vec<ContainerAsync<GenericImage>>,
    run_id: String,
    /// The run's bridge network, when the experiment partitions (see [`super::network`]).
    network: Option<String>,
}

/// The Docker client, if an engine answers. `Err` explains what is missing (exit 3).
pub async fn engine() -> Result<Docker, String> {
    let docker = docker_client_instance()
        .await
        .map_err(|e| format!("no Docker client: {e}"))?;
    match tokio::time::timeout(std::time::Duration::from_secs(3), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(format!("the Docker engine does not answer: {e}")),
        Err(_) => Err("the Docker engine did not answer within 3 s".into()),
    }
}

/// Whether `image` exists locally (testcontainers would otherwise try to pull it).
pub async fn image_exists(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// `name:tag` → (`name`, `tag`), the tag defaulting to `latest` (a `:` before the last `/` is a
/// registry port, not a tag).
pub fn split_image(image: &str) -> (String, String) {
    let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Where the nodes listen and how they name each other: host networking (`127.0.0.1`), or the
/// run's bridge network (see [`super::network`]), where each listens on its bridge address.
#[derive(Clone, Copy)]
enum Net<'a> {
    Host,
    Bridge(&'a str),
}

impl Net<'_> {
    fn bind(self) -> &'static str {
        match self {
            Net::Host => "127.0.0.1",
            Net::Bridge(_) => "0.0.0.0",
        }
    }
    fn name(self) -> Option<String> {
        match self {
            Net::Host => None,
            Net::Bridge(n) => Some(n.to_string()),
        }
    }
}

/// One data node's config. `bus_port`: a cluster node's bus port, one we chose free (the default,
/// port + 10000, may be taken or beyond 65535 under host networking).
fn redis_conf(
    spec: &TopologySpec,
    port: u16,
    password: &str,
    replica_of: Option<(&str, u16)>,
    net: Net,
    bus_port: Option<u16>,
) -> String {
    let mut lines = vec![
        format!("port {port}"),
        format!("bind {}", net.bind()),
        "dir /data".into(),
        "protected-mode yes".into(),
        format!("requirepass \"{password}\""),
        format!("masterauth \"{password}\""),
    ];
    // The settings the process backend hands to localredis (`PersistenceMode::to_localredis`):
    // one mapping from the experiment's mode, so both backends persist alike.
    lines.extend(match spec.persistence.to_localredis() {
        Persistence::None => vec!["save \"\"".to_string(), "appendonly no".into()],
        Persistence::Rdb { save } => vec![format!("save {save}"), "appendonly no".into()],
        Persistence::Aof { fsync } => vec![
            "save \"\"".into(),
            "appendonly yes".into(),
            format!("appendfsync {fsync}"),
        ],
    });
    if let Some((host, p)) = replica_of {
        lines.push(format!("replicaof {host} {p}"));
    }
    if spec.kind == TopologyKind::Cluster {
        // In /data, the container's writable layer: `docker start` keeps the node's identity.
        lines.extend([
            "cluster-enabled yes".into(),
            "cluster-config-file nodes.conf".into(),
        ]);
        lines.extend(bus_port.map(|b| format!("cluster-port {b}")));
    }
    lines.extend(
        data_directives(spec)
            .into_iter()
            .map(|(k, v)| format!("{k} {v}")),
    );
    lines.push(String::new());
    lines.join("\n")
}

fn sentinel_conf(
    spec: &TopologySpec,
    port: u16,
    password: &str,
    (host, primary): (&str, u16),
    net: Net,
) -> String {
    [
        format!("port {port}"),
        format!("bind {}", net.bind()),
        "dir /data".into(),
        "protected-mode no".into(),
        format!(
            "sentinel monitor {SERVICE} {host} {primary} {}",
            spec.quorum
        ),
        format!(
            "sentinel down-after-milliseconds {SERVICE} {}",
            spec.down_after_ms
        ),
        format!(
            "sentinel failover-timeout {SERVICE} {}",
            spec.failover_timeout_ms
        ),
        format!("sentinel auth-pass {SERVICE} \"{password}\""),
        String::new(),
    ]
    .join("\n")
}

/// One container to create: what [`start_container`] needs.
struct ContainerSpec {
    name: String,
    binary: &'static str,
    conf_name: &'static str,
    conf: String,
    port: u16,
    /// `None`: host networking; else the bridge network, the port published on `127.0.0.1`.
    network: Option<String>,
}

async fn start_container(
    image: &str,
    run_id: &str,
    spec: ContainerSpec,
) -> Result<ContainerAsync<GenericImage>, DbError> {
    let (repo, tag) = split_image(image);
    let conf_path = format!("/data/{}", spec.conf_name);
    let name = spec.name;
    let image_ref = GenericImage::new(repo, tag).with_wait_for(WaitFor::Nothing);
    let request = match spec.network {
        None => image_ref.with_network("host"),
        Some(network) => image_ref
            .with_network(network)
            .with_mapped_port(spec.port, ContainerPort::Tcp(spec.port))
            .with_host_config_modifier(|hc| {
                // Published on loopback only: the sentinels run without protected mode.
                for bindings in hc.port_bindings.iter_mut().flat_map(|b| b.values_mut()) {
                    for b in bindings.iter_mut().flatten() {
                        b.host_ip = Some("127.0.0.1".into());
                    }
                }
            }),
    };
    request
        .with_container_name(format!("chaos-{run_id}-{name}"))
        .with_label(RUN_LABEL, run_id)
        .with_label(PID_LABEL, std::process::id().to_string())
        .with_copy_to(
            CopyTargetOptions::new(conf_path.clone()).with_mode(0o600),
            spec.conf.into_bytes(),
        )
        .with_cmd([spec.binary.to_string(), conf_path])
        .start()
        .await
        .map_err(|e| DbError::Failed(format!("starting container {name} from {image}: {e}")))
}

/// [`start_container`] in a task of its own that cannot be cancelled half-way (see the module
/// docs): if the caller has gone when the container exists, the task removes it.
async fn start_detached(
    image: &str,
    run_id: &str,
    spec: ContainerSpec,
    pending: &Pending,
) -> Result<ContainerAsync<GenericImage>, DbError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (image, run_id, token) = (image.to_string(), run_id.to_string(), pending.clone());
    tokio::spawn(async move {
        let started = start_container(&image, &run_id, spec).await;
        if let Err(Ok(orphan)) = tx.send(started) {
            let _ = orphan.rm().await;
        }
        drop(token);
    });
    rx.await
        .map_err(|_| DbError::Failed("the container start task panicked".into()))?
}

/// `n` distinct loopback ports that were free a moment ago (all bound at once, so no two are
/// the same; Redis binds them a moment later).
fn free_ports(n: usize) -> Result<Vec<u16>, DbError> {
    let failed = |e: std::io::Error| DbError::Failed(format!("finding a free port: {e}"));
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(failed))
        .collect()
}

impl DockerNodes {
    pub async fn start(
        spec: &TopologySpec,
        password: &str,
        image: &str,
        run_id: &str,
        pending: &Pending,
    ) -> Result<(DockerNodes, Vec<NodeInfo>), DbError> {
        let docker = engine().await.map_err(DbError::Environment)?;
        if !image_exists(&docker, image).await {
            return Err(DbError::Environment(format!(
                "the image {image} is not on this Docker engine and no registry may be reachable; \
                 build it from the host's Redis binaries with `chaos image build` \
                 (or docker/build-image.sh), or pass --image / --backend process"
            )));
        }
        let network = match spec.bridge_network {
            true => Some(network::create(&docker, run_id, labels(run_id)).await?),
            false => None,
        };
        let mut nodes = DockerNodes {
            containers: Vec::new(),
            run_id: run_id.to_string(),
            network,
        };
        let started = nodes.start_nodes(spec, password, image, pending).await;
        if started.is_err() {
            sweep_run(run_id).await;
        }
        Ok((nodes, started?))
    }

    /// The data nodes, then the sentinels (see the module docs). On a bridge network the primary
    /// starts alone first: the others name it by its address, which Docker assigns.
    async fn start_nodes(
        &mut self,
        spec: &TopologySpec,
        password: &str,
        image: &str,
        pending: &Pending,
    ) -> Result<Vec<NodeInfo>, DbError> {
        let network = self.network.clone();
        let net = network.as_deref().map_or(Net::Host, Net::Bridge);
        let sentinel = spec.kind == TopologyKind::Sentinel;
        let (data_count, sentinel_count) = match spec.kind {
            TopologyKind::Sentinel => (3, 3),
            TopologyKind::Standalone => (1, 0),
            TopologyKind::Cluster => (super::cluster::NODES, 0),
        };
        // Sentinel's data nodes 1.. replicate node 0; a cluster's replicas are assigned after start.
        let is_replica = |i: usize| sentinel && i > 0;
        let bus_count = if spec.kind == TopologyKind::Cluster {
            data_count
        } else {
            0
        };
        let ports = free_ports(data_count + sentinel_count + bus_count)?;
        let (data_ports, rest) = ports.split_at(data_count);
        let (sentinel_ports, bus_ports) = rest.split_at(sentinel_count);
        let primary_port = data_ports[0];
        let node = |name: String, kind, port, binary, conf_name, conf| {
            let info = NodeInfo {
                name: name.clone(),
                kind,
                port,
            };
            let container = ContainerSpec {
                name,
                binary,
                conf_name,
                conf,
                port,
                network: net.name(),
            };
            (info, container)
        };
        let data_node = |i: usize, primary: Option<(&str, u16)>| {
            let port = data_ports[i];
            let conf = redis_conf(
                spec,
                port,
                password,
                primary,
                net,
                bus_ports.get(i).copied(),
            );
            let name = format!("redis-{i}");
            node(
                name,
                NodeKind::Data,
                port,
                "redis-server",
                "redis.conf",
                conf,
            )
        };
        let mut infos = Vec::new();
        let pw = Some(password);
        let primary_host = match net {
            Net::Host => {
                let data = (0..data_count)
                    .map(|i| data_node(i, is_replica(i).then_some(("127.0.0.1", primary_port))));
                self.start_wave(data.collect(), pw, image, pending, &mut infos)
                    .await?;
                "127.0.0.1".to_string()
            }
            Net::Bridge(name) => {
                self.start_wave(vec![data_node(0, None)], pw, image, pending, &mut infos)
                    .await?;
                let docker = engine().await.map_err(DbError::Environment)?;
                let (ip, _) = network::inspect(&docker, self.containers[0].id(), name).await?;
                let replicas = (1..data_count)
                    .map(|i| data_node(i, is_replica(i).then_some((ip.as_str(), primary_port))));
                self.start_wave(replicas.collect(), pw, image, pending, &mut infos)
                    .await?;
                ip
            }
        };
        if !sentinel {
            return Ok(infos);
        }
        super::wait_replicas_attached(primary_port, password, 2).await?;
        let sentinels: Vec<_> = sentinel_ports
            .iter()
            .enumerate()
            .map(|(i, &port)| {
                let conf = sentinel_conf(spec, port, password, (&primary_host, primary_port), net);
                let name = format!("sentinel-{i}");
                let kind = NodeKind::Sentinel;
                node(name, kind, port, "redis-sentinel", "sentinel.conf", conf)
            })
            .collect();
        self.start_wave(sentinels, None, image, pending, &mut infos)
            .await?;
        Ok(infos)
    }

    /// Starts one wave of containers concurrently and waits until each answers `PING`; their
    /// infos are appended to `infos` (in the containers' order).
    async fn start_wave(
        &mut self,
        wave: Vec<(NodeInfo, ContainerSpec)>,
        password: Option<&str>,
        image: &str,
        pending: &Pending,
        infos: &mut Vec<NodeInfo>,
    ) -> Result<(), DbError> {
        let (wave_infos, specs): (Vec<NodeInfo>, Vec<ContainerSpec>) = wave.into_iter().unzip();
        let run_id = self.run_id.clone();
        let started = specs
            .into_iter()
            .map(|c| start_detached(image, &run_id, c, pending));
        let started = join_all(started).await;
        self.keep_or_cleanup(started).await?;
        let limit = std::time::Duration::from_secs(20);
        let answered = wave_infos
            .iter()
            .map(|n| super::wait_ping(n.port, password, limit));
        for answer in join_all(answered).await {
            answer?;
        }
        infos.extend(wave_infos);
        Ok(())
    }

    /// Keeps every started container (in order); if any failed, removes this run's containers
    /// and returns the first error.
    async fn keep_or_cleanup(
        &mut self,
        started: Vec<Result<ContainerAsync<GenericImage>, DbError>>,
    ) -> Result<(), DbError> {
        let mut first_error = None;
        for s in started {
            match s {
                Ok(c) => self.containers.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => {
                sweep_run(&self.run_id).await;
                Err(e)
            }
        }
    }

    pub async fn apply(&self, index: usize, action: NodeAction) -> Result<(), DbError> {
        let c = &self.containers[index];
        let failed =
            |e: String| DbError::Failed(format!("{action:?} of container {}: {e}", c.id()));
        match action {
            NodeAction::Kill => {
                let docker = engine().await.map_err(DbError::Environment)?;
                let opts = KillContainerOptions {
                    signal: "SIGKILL".into(),
                };
                docker
                    .kill_container(c.id(), Some(opts))
                    .await
                    .map_err(|e| failed(e.to_string()))
            }
            NodeAction::Stop => c
                .stop_with_timeout(Some(10))
                .await
                .map_err(|e| failed(e.to_string())),
            NodeAction::Pause => c.pause().await.map_err(|e| failed(e.to_string())),
            NodeAction::Resume => c.unpause().await.map_err(|e| failed(e.to_string())),
            NodeAction::Restart => c.start().await.map_err(|e| failed(e.to_string())),
            NodeAction::Partition => self.partition(index).await,
            NodeAction::Heal => self.heal(index).await,
        }
    }

    /// Cuts node `index` off every other node (see [`super::network`]). Peers are resolved now:
    /// a node that is down has no address, and one restarted later may get a new one, which is
    /// not cut.
    async fn partition(&self, index: usize) -> Result<(), DbError> {
        let (docker, net) = self.bridge()?;
        let docker = docker.await?;
        let id = self.containers[index].id();
        let (_, pid) = network::inspect(&docker, id, net).await?;
        let others = self
            .containers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index);
        let inspected = join_all(others.map(|(_, c)| network::inspect(&docker, c.id(), net))).await;
        let peers: Vec<String> = inspected.into_iter().flatten().map(|(ip, _)| ip).collect();
        network::cut(pid, &peers).await
    }

    /// Removes node `index`'s partition rules; a node that is not running has none.
    async fn heal(&self, index: usize) -> Result<(), DbError> {
        let (docker, net) = self.bridge()?;
        let docker = docker.await?;
        match network::inspect(&docker, self.containers[index].id(), net).await {
            Ok((_, pid)) => network::heal(pid).await,
            Err(_) => Ok(()),
        }
    }

    fn bridge(&self) -> Result<(impl Future<Output = Result<Docker, DbError>>, &str), DbError> {
        let net = self.network.as_deref().ok_or_else(|| {
            DbError::Failed(
                "this topology runs on host networking (one shared network namespace): only an \
                 experiment with a `partition` fault gets the bridge network"
                    .into(),
            )
        })?;
        let docker = async { engine().await.map_err(DbError::Environment) };
        Ok((docker, net))
    }

    pub async fn teardown(self) {
        let run_id = self.run_id.clone();
        join_all(self.containers.into_iter().map(|c| c.rm())).await;
        sweep_run(&run_id).await;
    }
}

async fn remove_labelled(
    docker: &Docker,
    label: String,
    keep: impl Fn(&HashMap<String, String>) -> bool,
) {
    let filters = HashMap::from([("label".to_string(), vec![label])]);
    let opts = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let Ok(list) = docker.list_containers(Some(opts)).await else {
        return;
    };
    for c in list {
        let labels = c.labels.clone().unwrap_or_default();
        if keep(&labels) {
            continue;
        }
        if let Some(id) = c.id {
            let rm = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            let _ = docker.remove_container(&id, Some(rm)).await;
        }
    }
}

/// The labels of every container and network of run `run_id`.
fn labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        (PID_LABEL.to_string(), std::process::id().to_string()),
    ])
}

/// Force-removes every container and network of run `run_id` (used after success, error, panic
/// and Ctrl-C).
pub async fn sweep_run(run_id: &str) {
    if let Ok(docker) = engine().await {
        let label = format!("{RUN_LABEL}={run_id}");
        remove_labelled(&docker, label.clone(), |_| false).await;
        network::remove_labelled(&docker, label, |_| false).await;
    }
}

/// Removes containers left by earlier chaos processes that no longer exist (killed with -9).
pub async fn sweep_orphans() {
    let Ok(docker) = engine().await else { return };
    let alive = |labels: &HashMap<String, String>| {
        labels
            .get(PID_LABEL)
            .and_then(|p| p.parse::<i32>().ok())
            // SAFETY: kill with signal 0 only checks that the process exists.
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    };
    remove_labelled(&docker, RUN_LABEL.to_string(), alive).await;
    network::remove_labelled(&docker, RUN_LABEL.to_string(), alive).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_at_the_tag() {
        assert_eq!(
            split_image("redis:7-alpine"),
            ("redis".into(), "7-alpine".into())
        );
        assert_eq!(split_image("redis"), ("redis".into(), "latest".into()));
        assert_eq!(
            split_image("reg.local:5000/authority-redis:local"),
            ("reg.local:5000/authority-redis".into(), "local".into())
        );
    }
}
