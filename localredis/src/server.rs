//! `redis-server` processes: the config a caller describes, and the handle.
//!
//! A [`ServerConfig`] is rendered into a `redis.conf` inside the server's own
//! temporary directory. Everything that ties the process to *this* handle is
//! fixed by us and cannot be overridden through [`ServerConfig::extra`]:
//! `bind 127.0.0.1`, the port, `dir`, `daemonize no`, and `logfile ""` (the log
//! goes to stdout, which we redirect to `redis.log`, so the early "bad
//! directive" errors that Redis prints before it opens a log file land in the
//! same place). Persistence is off unless asked for (`save ""`, `appendonly
//! no`), so a throwaway server writes nothing and a crashed one comes back
//! empty — exactly what a test expects.
//!
//! User-supplied values are written double-quoted with Redis's escapes, so a
//! password with spaces or quotes cannot break (or inject) a directive.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use crate::host::on_free_port;
use crate::process::{Readiness, Spec, Supervisor, dir_with_config};
use crate::{Error, TlsFiles, find_binary, free_port};

/// Directives localredis owns; see the module docs.
const OWNED_DIRECTIVES: &[&str] = &[
    "port",
    "tls-port",
    "bind",
    "dir",
    "logfile",
    "daemonize",
    "cluster-config-file",
    "cluster-port",
];

/// What a server writes to disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: `save ""`, `appendonly no`. A restart starts empty.
    #[default]
    None,
    /// RDB snapshots; `save` is the `save` directive's value, e.g. `"900 1 300 10"`.
    /// `SAVE`/`BGSAVE` and a graceful [`RedisServer::stop`] also write it.
    Rdb {
        /// Pairs of `<seconds> <changes>`, or empty for manual saves only.
        save: String,
    },
    /// Append-only file with `appendfsync` = `always`, `everysec` or `no`.
    Aof {
        /// The fsync policy.
        fsync: String,
    },
}

/// How to configure a [`RedisServer`]. `Default` is a plain server without
/// password or persistence on a free port. Fields are public; the methods of
/// the same names set them in a chain.
#[derive(Clone, Default)]
pub struct ServerConfig {
    /// `None` picks a free port (and retries on a lost race).
    pub port: Option<u16>,
    /// `requirepass` for the default user (and `masterauth` for a replica).
    pub password: Option<String>,
    /// ACL users: `user NAME on >PASS ~* &* +@all`.
    pub acl_users: Vec<(String, String)>,
    /// `maxmemory`, e.g. `"64mb"`.
    pub maxmemory: Option<String>,
    /// `maxmemory-policy`, e.g. `"allkeys-lru"`.
    pub maxmemory_policy: Option<String>,
    /// RDB / AOF / nothing.
    pub persistence: Persistence,
    /// `replicaof HOST PORT`.
    pub replica_of: Option<(String, u16)>,
    /// `cluster-enabled yes`, with its node file in the server's directory.
    pub cluster: bool,
    /// Serve TLS on the port (`tls-port`, with `port 0`).
    pub tls: Option<TlsFiles>,
    /// Any other directive, written verbatim as `KEY VALUE` after ours (so it
    /// overrides ours), e.g. `("appendfsync", "always")`. Values are not
    /// quoted: multi-word values work as Redis parses them.
    pub extra: Vec<(String, String)>,
}

impl ServerConfig {
    /// Serve on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Require this password (`requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }
    /// Add an ACL user with full access.
    pub fn acl_user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.acl_users.push((name.into(), password.into()));
        self
    }
    /// Set `maxmemory`.
    pub fn maxmemory(mut self, limit: impl Into<String>) -> Self {
        self.maxmemory = Some(limit.into());
        self
    }
    /// Set `maxmemory-policy`.
    pub fn maxmemory_policy(mut self, policy: impl Into<String>) -> Self {
        self.maxmemory_policy = Some(policy.into());
        self
    }
    /// Choose what is persisted.
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = persistence;
        self
    }
    /// Replicate from `host:port`.
    pub fn replica_of(mut self, host: impl Into<String>, port: u16) -> Self {
        self.replica_of = Some((host.into(), port));
        self
    }
    /// Enable cluster mode.
    pub fn cluster(mut self, enabled: bool) -> Self {
        self.cluster = enabled;
        self
    }
    /// Serve TLS with these files.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }
    /// Add a directive, written verbatim.
    pub fn directive(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// Reject configs Redis would refuse or that would escape localredis's control.
    fn validate(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        match &self.persistence {
            Persistence::Rdb { save }
                if !save
                    .split_whitespace()
                    .all(|w| w.bytes().all(|b| b.is_ascii_digit()))
                    || save.split_whitespace().count() % 2 != 0 =>
            {
                return invalid(format!(
                    "Persistence::Rdb save {save:?} must be pairs of `<seconds> <changes>`, \
                     e.g. \"900 1 300 10\", or empty"
                ));
            }
            Persistence::Aof { fsync }
                if !["always", "everysec", "no"].contains(&fsync.as_str()) =>
            {
                return invalid(format!(
                    "Persistence::Aof fsync {fsync:?} must be `always`, `everysec` or `no`"
                ));
            }
            _ => {}
        }
        for (key, value) in &self.extra {
            let key_ok =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !key_ok || value.contains(['\n', '\r']) {
                return invalid(format!(
                    "extra directive {key:?} must be one word and its value one line"
                ));
            }
            if OWNED_DIRECTIVES.contains(&key.to_ascii_lowercase().as_str()) {
                return invalid(format!(
                    "extra directive `{key}` is managed by localredis (use the `port` field; \
                     bind, dir and logging are fixed so the handle can find the process)"
                ));
            }
        }
        Ok(())
    }

    /// The `redis.conf` text for a server on `port` in `dir`.
    fn render(&self, dir: &Path, port: u16, bus_port: Option<u16>) -> String {
        let mut conf = vec![
            "# Written by localredis; see ServerConfig.".to_string(),
            "bind 127.0.0.1".into(),
            "daemonize no".into(),
            "logfile \"\"".into(),
            format!("dir {}", quote(&dir.to_string_lossy())),
            format!(
                "protected-mode {}",
                if self.password.is_some() { "yes" } else { "no" }
            ),
        ];
        match &self.tls {
            None => conf.push(format!("port {port}")),
            Some(tls) => conf.extend([
                "port 0".to_string(),
                format!("tls-port {port}"),
                format!("tls-cert-file {}", quote(&tls.cert.to_string_lossy())),
                format!("tls-key-file {}", quote(&tls.key.to_string_lossy())),
                format!("tls-ca-cert-file {}", quote(&tls.ca_cert.to_string_lossy())),
                // Clients verify the server; requiring client certificates too
                // would make every caller manage them for no test value.
                "tls-auth-clients no".into(),
                "tls-replication yes".into(),
                "tls-cluster yes".into(),
            ]),
        }
        match &self.persistence {
            Persistence::None => conf.extend(["save \"\"".into(), "appendonly no".into()]),
            Persistence::Rdb { save } => {
                conf.extend([format!("save {}", quote(save)), "appendonly no".into()]);
            }
            Persistence::Aof { fsync } => conf.extend([
                "save \"\"".into(),
                "appendonly yes".into(),
                format!("appendfsync {}", quote(fsync)),
            ]),
        }
        if let Some(password) = &self.password {
            conf.push(format!("requirepass {}", quote(password)));
            conf.push(format!("masterauth {}", quote(password)));
        }
        for (name, password) in &self.acl_users {
            let pass = format!(">{password}");
            conf.push(format!(
                "user {} on {} ~* &* +@all",
                quote(name),
                quote(&pass)
            ));
        }
        if let Some(limit) = &self.maxmemory {
            conf.push(format!("maxmemory {}", quote(limit)));
        }
        if let Some(policy) = &self.maxmemory_policy {
            conf.push(format!("maxmemory-policy {}", quote(policy)));
        }
        if let Some((host, primary_port)) = &self.replica_of {
            conf.push(format!("replicaof {} {primary_port}", quote(host)));
        }
        if self.cluster {
            conf.push("cluster-enabled yes".into());
            let nodes = dir.join("nodes.conf");
            conf.push(format!(
                "cluster-config-file {}",
                quote(&nodes.to_string_lossy())
            ));
        }
        if let Some(bus_port) = bus_port {
            // An explicit bus port (Redis ≥ 7.0) instead of the default
            // port + 10000, which overflows for ports above 55535 — and free
            // ports come from the ephemeral range, 32768 and up.
            conf.push(format!("cluster-port {bus_port}"));
        }
        conf.extend(self.extra.iter().map(|(k, v)| format!("{k} {v}")));
        conf.push(String::new());
        conf.join("\n")
    }

    /// Strings to mask in log tails: raw and as written in the config.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let passwords = self
            .password
            .iter()
            .chain(self.acl_users.iter().map(|(_, p)| p));
        passwords.flat_map(|p| [p.clone(), quote(p)]).collect()
    }

    /// The `user:password@` part of a URL, percent-encoded.
    pub(crate) fn url_userinfo(&self) -> String {
        self.password
            .as_deref()
            .map(|p| format!(":{}@", percent_encode(p)))
            .unwrap_or_default()
    }

    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<(&str, &str)> = self
            .acl_users
            .iter()
            .map(|(u, _)| (u.as_str(), "***"))
            .collect();
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| {
                let secret = ["pass", "auth", "user"].iter().any(|s| k.contains(s));
                (k.as_str(), if secret { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("ServerConfig")
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("acl_users", &users)
            .field("maxmemory", &self.maxmemory)
            .field("maxmemory_policy", &self.maxmemory_policy)
            .field("persistence", &self.persistence)
            .field("replica_of", &self.replica_of)
            .field("cluster", &self.cluster)
            .field("tls", &self.tls)
            .field("extra", &extra)
            .finish()
    }
}

/// A running `redis-server` child with its own temporary directory.
///
/// Dropping it kills the process (`SIGKILL`), reaps it and removes the
/// directory. The lifecycle methods are the fault-injection primitives used by
/// `chaos`; each returns once the signal is delivered (and, for `kill`/`stop`,
/// the process reaped), and [`restart`](Self::restart) returns once the server
/// is ready again.
pub struct RedisServer {
    config: ServerConfig,
    process: Supervisor,
}

impl RedisServer {
    /// Write `redis.conf` into a new temporary directory, spawn `redis-server`
    /// and wait (≤ 10 s) until it is ready. With `port: None` a free port is
    /// picked, and a lost race for it is retried up to 3 times.
    ///
    /// # Errors
    ///
    /// [`Error::BinaryMissing`], [`Error::InvalidConfig`], [`Error::PortInUse`],
    /// [`Error::Exited`] or [`Error::StartTimeout`] (these two with the log tail).
    pub fn start(config: ServerConfig) -> Result<Self, Error> {
        config.validate()?;
        let program = find_binary("redis-server")?;
        on_free_port(config.port, |port| Self::start_on(&program, &config, port))
    }

    fn start_on(program: &Path, config: &ServerConfig, port: u16) -> Result<Self, Error> {
        let bus_port = if config.cluster {
            let port_error = |e| Error::io("finding a free port on 127.0.0.1", e);
            // Loop in case the kernel hands the same port out twice in a row.
            let mut bus = free_port().map_err(port_error)?;
            while bus == port {
                bus = free_port().map_err(port_error)?;
            }
            Some(bus)
        } else {
            None
        };
        let (dir, conf_path) = dir_with_config("server", "redis.conf", |dir| {
            config.render(dir, port, bus_port)
        })?;
        let process = Supervisor::launch(Spec {
            what: format!("redis-server 127.0.0.1:{port}"),
            program: program.to_path_buf(),
            args: vec![OsString::from(conf_path)],
            dir,
            log_name: "redis.log",
            port,
            password: config.password.clone(),
            secrets: config.secrets(),
            readiness: if config.tls.is_some() {
                Readiness::ServerTls
            } else {
                Readiness::ServerPing
            },
        })?;
        Ok(RedisServer {
            config: config.clone(),
            process,
        })
    }

    /// `redis://[:password@]127.0.0.1:PORT`, or `rediss://…` for TLS. The
    /// password is percent-encoded.
    pub fn url(&self) -> String {
        format!(
            "{}://{}127.0.0.1:{}",
            self.config.scheme(),
            self.config.url_userinfo(),
            self.port()
        )
    }

    /// The configuration it was started with (`port` as given, not as picked).
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    crate::lifecycle_methods!();
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("process", &self.process)
            .field("config", &self.config)
            .finish()
    }
}

/// Double-quote `value` the way Redis's config parser (`sdssplitargs`) reads it.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for byte in value.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    out
}

/// Percent-encode everything but RFC 3986 unreserved characters (for userinfo).
pub(crate) fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_sdssplitargs_would_misread() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(quote("x\ny"), r#""x\x0ay""#);
        assert_eq!(quote("é"), r#""\xc3\xa9""#);
    }

    #[test]
    fn url_password_is_percent_encoded() {
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }

    #[test]
    fn debug_redacts_passwords() {
        let cfg = ServerConfig::default()
            .password("hunter2")
            .acl_user("alice", "wonderland")
            .directive("masterauth", "other-secret");
        let debug = format!("{cfg:?}");
        for secret in ["hunter2", "wonderland", "other-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("alice"));
    }

    #[test]
    fn validation_rejects_owned_directives_and_bad_persistence() {
        let owned = ServerConfig::default().directive("port", "1");
        assert!(matches!(owned.validate(), Err(Error::InvalidConfig(_))));
        let injected = ServerConfig::default().directive("maxclients", "10\nport 1");
        assert!(matches!(injected.validate(), Err(Error::InvalidConfig(_))));
        let save = ServerConfig::default().persistence(Persistence::Rdb { save: "900".into() });
        assert!(matches!(save.validate(), Err(Error::InvalidConfig(_))));
        let fsync = ServerConfig::default().persistence(Persistence::Aof {
            fsync: "sometimes".into(),
        });
        assert!(matches!(fsync.validate(), Err(Error::InvalidConfig(_))));
        let ok = ServerConfig::default().persistence(Persistence::Rdb {
            save: String::new(),
        });
        assert!(ok.validate().is_ok());
    }
}
