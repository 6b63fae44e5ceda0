//! A Redis Cluster of local primaries, created the way operators do it.
//!
//! Nodes are ordinary [`RedisServer`]s with `cluster-enabled yes`; the slots
//! are assigned by `redis-cli --cluster create … --cluster-yes`, the standard
//! tool, rather than by hand-rolled `CLUSTER ADDSLOTS`/`MEET` calls, so the
//! cluster looks like the ones users run. `redis-cli` returns once the
//! configuration is consistent, but nodes flip to `cluster_state:ok` a little
//! later and independently, so we then poll `CLUSTER INFO` on every node.
//!
//! Each node gets an explicit cluster bus port (see `ServerConfig::render`),
//! since free ports are often above 55535, where the default bus port
//! (port + 10000) does not exist.
//!
//! Both waits are bounded (30 s for `redis-cli`, 20 s for the state), and the
//! tool's output goes to `cluster-create.log` in the first node's directory.

use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, RedisServer, ServerConfig, find_binary};

const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
const STATE_TIMEOUT: Duration = Duration::from_secs(20);
const CLI_TIMEOUT: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A running cluster. Dropping it kills every node.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, in creation order. Signal them individually for faults.
    /// `redis-cli` decides which become replicas; ask a node's `ROLE`.
    pub nodes: Vec<RedisServer>,
    replicas_per_primary: usize,
}

impl Cluster {
    /// Start `n_primaries` (at least 3, as `redis-cli` requires) nodes from
    /// `base` (with `cluster` forced on), create the cluster and wait until
    /// every node reports `cluster_state:ok`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for fewer than 3 nodes, a fixed port or a
    /// `replica_of`; [`Error::Tool`] if `redis-cli --cluster create` fails;
    /// [`Error::ClusterNotReady`]; and anything [`RedisServer::start`] returns.
    pub fn start(n_primaries: usize, base: ServerConfig) -> Result<Self, Error> {
        Self::start_with_replicas(n_primaries, 0, base)
    }

    /// As [`start`](Self::start), with `replicas_per_primary` replicas for
    /// each primary (`--cluster-replicas`), so a primary can fail over.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with_replicas(
        n_primaries: usize,
        replicas_per_primary: usize,
        base: ServerConfig,
    ) -> Result<Self, Error> {
        if n_primaries < 3 {
            return Err(Error::InvalidConfig(format!(
                "a cluster needs at least 3 primaries, got {n_primaries}"
            )));
        }
        if base.port.is_some() || base.replica_of.is_some() {
            return Err(Error::InvalidConfig(
                "cluster nodes pick their own ports and are primaries: leave `port` and \
                 `replica_of` unset in the base config"
                    .into(),
            ));
        }
        let cli = find_binary("redis-cli")?;
        let config = base.cluster(true);
        let nodes = (0..n_primaries * (1 + replicas_per_primary))
            .map(|_| RedisServer::start(config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let cluster = Cluster {
            nodes,
            replicas_per_primary,
        };
        cluster.create_slots(&cli)?;
        cluster.wait_state_ok(&cli)?;
        Ok(cluster)
    }

    /// `redis://[:password@]127.0.0.1:P1,127.0.0.1:P2,…` (`rediss` for TLS):
    /// the multi-host form this workspace's URL grammar reads as a cluster.
    pub fn url(&self) -> String {
        let Some(first) = self.nodes.first() else {
            return String::new();
        };
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let config = first.config();
        format!(
            "{}://{}{}",
            config.scheme(),
            config.url_userinfo(),
            hosts.join(",")
        )
    }

    fn create_slots(&self, cli: &Path) -> Result<(), Error> {
        let mut cmd = self.cli(cli);
        cmd.args(["--cluster", "create"])
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .arg("--cluster-replicas")
            .arg(self.replicas_per_primary.to_string())
            .arg("--cluster-yes");
        let what = "redis-cli --cluster create";
        let output_path = self.nodes[0].dir().join("cluster-create.log");
        let (status, output) = run_bounded(cmd, what, &output_path, CREATE_TIMEOUT)?;
        match status {
            Some(status) if status.success() && output.contains("All 16384 slots covered") => {
                Ok(())
            }
            status => Err(Error::Tool {
                what: what.to_string(),
                status: status.map_or(format!("timed out after {CREATE_TIMEOUT:?}"), |s| {
                    s.to_string()
                }),
                output,
            }),
        }
    }

    fn wait_state_ok(&self, cli: &Path) -> Result<(), Error> {
        let deadline = Instant::now() + STATE_TIMEOUT;
        let mut pending = 0;
        loop {
            let mut detail = String::new();
            while pending < self.nodes.len() {
                match self.cluster_info(cli, pending) {
                    Ok(info) if info.contains("cluster_state:ok") => pending += 1,
                    Ok(info) => {
                        let state = info.lines().find(|l| l.starts_with("cluster_state"));
                        detail = format!("node {} says {state:?}", self.nodes[pending].port());
                        break;
                    }
                    Err(e) => {
                        detail = e.to_string();
                        break;
                    }
                }
            }
            if pending == self.nodes.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::ClusterNotReady {
                    waited: STATE_TIMEOUT,
                    detail,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `CLUSTER INFO` of node `i`: over our RESP client, or via `redis-cli`
    /// for TLS nodes, which that client cannot reach.
    fn cluster_info(&self, cli: &Path, i: usize) -> Result<String, Error> {
        let node = &self.nodes[i];
        if node.config().tls.is_none() {
            let reply = node.command(&["CLUSTER", "INFO"])?;
            return Ok(reply.as_str().unwrap_or_default().to_string());
        }
        let mut cmd = self.cli(cli);
        cmd.args(["-p", &node.port().to_string(), "CLUSTER", "INFO"]);
        let output_path = node.dir().join("cluster-info.out");
        let (_, output) = run_bounded(cmd, "redis-cli CLUSTER INFO", &output_path, CLI_TIMEOUT)?;
        Ok(output)
    }

    /// `redis-cli` with the nodes' TLS and password settings. The password
    /// goes through `REDISCLI_AUTH`, never argv, where `ps` would show it.
    fn cli(&self, cli: &Path) -> Command {
        let config = self.nodes[0].config();
        let mut cmd = Command::new(cli);
        cmd.args(["-h", "127.0.0.1"]);
        if let Some(tls) = &config.tls {
            cmd.arg("--tls").arg("--cacert").arg(&tls.ca_cert);
        }
        match &config.password {
            Some(password) => cmd.env("REDISCLI_AUTH", password),
            None => cmd.env_remove("REDISCLI_AUTH"),
        };
        cmd
    }
}

/// Run `cmd` with its output in `output_path`, killing it after `timeout`.
/// Returns its exit status (`None` if it was killed) and its output.
fn run_bounded(
    mut cmd: Command,
    what: &str,
    output_path: &Path,
    timeout: Duration,
) -> Result<(Option<ExitStatus>, String), Error> {
    let open_error = |e| Error::io(format!("creating {}", output_path.display()), e);
    let out = File::create(output_path).map_err(open_error)?;
    let err = out.try_clone().map_err(open_error)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child =
        crate::spawn::spawn(cmd).map_err(|e| Error::io(format!("running {what}"), e))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(Error::io(format!("waiting for {what}"), e)),
        }
    };
    let output = std::fs::read_to_string(output_path).unwrap_or_default();
    Ok((status, output))
}
