//! `redis-sentinel` processes watching one primary.
//!
//! Sentinel rewrites its own config file at run time (it records the sentinels
//! and replicas it discovers, the current epoch and — after a failover — the
//! new primary) by writing a temp file and renaming it over the original. So
//! the config must be a writable file in a writable directory: it lives in the
//! sentinel's temporary directory, and a [`Sentinel::restart`] reuses it, which
//! is what a real sentinel restart does (it comes back knowing the topology).
//!
//! Sentinel never logs `Ready to accept connections`; it is ready when `PING`
//! answers. Debian ships `redis-sentinel` as a separate package, so when that
//! binary is missing we run `redis-server --sentinel`, which is the same thing.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;

use crate::host::on_free_port;
use crate::process::{Readiness, Spec, Supervisor, dir_with_config};
use crate::server::quote;
use crate::{Error, RedisServer, find_binary};

/// How to configure a [`Sentinel`].
#[derive(Clone)]
pub struct SentinelConfig {
    /// `None` picks a free port (and retries on a lost race).
    pub port: Option<u16>,
    /// The service (master) name, e.g. `mymaster`.
    pub service: String,
    /// The primary to monitor: host (IP, or a name Sentinel will resolve) and port.
    pub primary: (String, u16),
    /// Sentinels that must agree the primary is down.
    pub quorum: u32,
    /// `down-after-milliseconds`: silence before the primary counts as down.
    pub down_after_ms: u64,
    /// `failover-timeout`.
    pub failover_timeout_ms: u64,
    /// `auth-pass`: the data nodes' password.
    pub auth_pass: Option<String>,
}

impl SentinelConfig {
    /// Watch `primary` as `service` with quorum 1, `down-after-milliseconds
    /// 1000` and `failover-timeout 5000`: fast enough for tests and chaos runs
    /// (Sentinel's defaults, 30 s and 3 min, are for production).
    pub fn new(service: impl Into<String>, primary: (impl Into<String>, u16)) -> Self {
        SentinelConfig {
            port: None,
            service: service.into(),
            primary: (primary.0.into(), primary.1),
            quorum: 1,
            down_after_ms: 1000,
            failover_timeout_ms: 5000,
            auth_pass: None,
        }
    }

    /// [`new`](Self::new) for a local server, taking its port and password.
    pub fn monitoring(service: impl Into<String>, primary: &RedisServer) -> Self {
        let mut config = Self::new(service, ("127.0.0.1", primary.port()));
        config.auth_pass = primary.config().password.clone();
        config
    }

    fn validate(&self) -> Result<(), Error> {
        let service_ok = !self.service.is_empty()
            && self
                .service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !service_ok {
            return Err(Error::InvalidConfig(format!(
                "sentinel service name {:?} must be non-empty letters, digits, `-`, `_` or `.`",
                self.service
            )));
        }
        if self.quorum == 0 || self.down_after_ms == 0 || self.failover_timeout_ms == 0 {
            return Err(Error::InvalidConfig(
                "sentinel quorum, down_after_ms and failover_timeout_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn render(&self, dir: &std::path::Path, port: u16) -> String {
        let name = &self.service;
        let (host, primary_port) = &self.primary;
        let mut conf = vec![
            "# Written by localredis; Sentinel rewrites this file.".to_string(),
            format!("port {port}"),
            "bind 127.0.0.1".into(),
            "daemonize no".into(),
            "logfile \"\"".into(),
            format!("dir {}", quote(&dir.to_string_lossy())),
            "protected-mode no".into(),
        ];
        if host.parse::<IpAddr>().is_err() {
            // Sentinel refuses host names unless told to resolve them.
            conf.push("sentinel resolve-hostnames yes".into());
        }
        conf.extend([
            format!(
                "sentinel monitor {name} {} {primary_port} {}",
                quote(host),
                self.quorum
            ),
            format!(
                "sentinel down-after-milliseconds {name} {}",
                self.down_after_ms
            ),
            format!(
                "sentinel failover-timeout {name} {}",
                self.failover_timeout_ms
            ),
        ]);
        if let Some(pass) = &self.auth_pass {
            conf.push(format!("sentinel auth-pass {name} {}", quote(pass)));
        }
        conf.push(String::new());
        conf.join("\n")
    }
}

impl fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("port", &self.port)
            .field("service", &self.service)
            .field("primary", &self.primary)
            .field("quorum", &self.quorum)
            .field("down_after_ms", &self.down_after_ms)
            .field("failover_timeout_ms", &self.failover_timeout_ms)
            .field("auth_pass", &self.auth_pass.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A running Sentinel. Same lifecycle and drop behaviour as [`RedisServer`].
pub struct Sentinel {
    config: SentinelConfig,
    process: Supervisor,
}

impl Sentinel {
    /// Write a writable `sentinel.conf` into a new temporary directory, spawn
    /// the sentinel and wait (≤ 10 s) until it answers `PING`.
    ///
    /// # Errors
    ///
    /// As [`RedisServer::start`]; [`Error::BinaryMissing`] only if neither
    /// `redis-sentinel` nor `redis-server` is installed.
    pub fn start(config: SentinelConfig) -> Result<Self, Error> {
        config.validate()?;
        let (program, mode_flag) = match find_binary("redis-sentinel") {
            Ok(path) => (path, None),
            Err(missing) => match find_binary("redis-server") {
                Ok(path) => (path, Some("--sentinel")),
                Err(_) => return Err(missing),
            },
        };
        let process = on_free_port(config.port, |port| {
            let (dir, conf_path) =
                dir_with_config("sentinel", "sentinel.conf", |dir| config.render(dir, port))?;
            let mut args = vec![OsString::from(conf_path)];
            args.extend(mode_flag.map(OsString::from));
            let secrets = config.auth_pass.iter().flat_map(|p| [p.clone(), quote(p)]);
            Supervisor::launch(Spec {
                what: format!("redis-sentinel 127.0.0.1:{port}"),
                program: program.clone(),
                args,
                dir,
                log_name: "sentinel.log",
                port,
                password: None,
                secrets: secrets.collect(),
                readiness: Readiness::Ping,
            })
        })?;
        Ok(Sentinel { config, process })
    }

    /// `redis://127.0.0.1:PORT` (Sentinel itself has no password here).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &SentinelConfig {
        &self.config
    }

    crate::lifecycle_methods!();
}

impl fmt::Debug for Sentinel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentinel")
            .field("process", &self.process)
            .field("config", &self.config)
            .finish()
    }
}
