//! How to reach one Redis node: the options a caller decides at the edge ([`ConnectOptions`]), the
//! redis-rs connection details for a node of a parsed URL, TCP and TLS settings.
//!
//! Below every topology: the handle ([`crate::connection`]), the Sentinel primary
//! ([`crate::sentinel`]) and its watcher all build their node connections here, so none of them
//! imports another to reach a node.

use std::sync::Once;
use std::time::Duration;

use redis::io::tcp::TcpSettings;
use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo,
    TlsCertificates,
};

use crate::url::{Node, RedisUrl};

/// How to connect, beyond what the URL says. Built once at the edge (CLI, config file), then passed in.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// TCP + TLS + AUTH handshake budget per node. Default 1 s (the URL's `connect_timeout` wins).
    pub connect_timeout: Duration,
    /// How long one command may wait for its reply. Default 1 s (the URL's `response_timeout` wins).
    /// A command that times out is reported as indeterminate: it may have been applied.
    pub response_timeout: Duration,
    /// PEM bundle of CA certificates to trust for `rediss://` instead of the public web roots
    /// (a private CA, as most Redis TLS deployments use).
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Sentinel only: subscribe to `+switch-master` on every sentinel, so the handle stops writing
    /// to the old primary as soon as any sentinel announces a failover and moves once a quorum
    /// confirms the new one, not only when the old primary fails a request. Default on.
    /// (How many sentinels must agree is the URL's `sentinel_quorum`, default a majority.)
    pub watch_switch_master: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            tls_ca_pem: None,
            watch_switch_master: true,
        }
    }
}

impl ConnectOptions {
    /// The options with the URL's query settings applied on top.
    pub fn merged_with(&self, url: &RedisUrl) -> ConnectOptions {
        let mut o = self.clone();
        if let Some(t) = url.options.connect_timeout {
            o.connect_timeout = t;
        }
        if let Some(t) = url.options.response_timeout {
            o.response_timeout = t;
        }
        o
    }
}

/// rustls needs a process-wide crypto provider when more than one is compiled in; we ship `ring`.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the program installed one first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Connection details for one data node, as redis-rs wants them.
pub(crate) fn node_info(
    url: &RedisUrl,
    node: &Node,
    db: i64,
) -> redis::RedisResult<ConnectionInfo> {
    let addr = if url.tls {
        ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(node.host.clone(), node.port)
    };
    let mut redis = RedisConnectionInfo::default().set_db(db);
    if let Some(user) = &url.username {
        redis = redis.set_username(user);
    }
    if let Some(pw) = &url.password {
        redis = redis.set_password(pw.expose());
    }
    Ok(addr
        .into_connection_info()?
        .set_redis_settings(redis)
        .set_tcp_settings(tcp_settings()))
}

/// TCP_NODELAY on: every store operation is one small request whose latency we care about.
pub(crate) fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// A redis-rs client for one node, trusting `tls_ca_pem` if given.
pub(crate) fn client_for(
    info: ConnectionInfo,
    opts: &ConnectOptions,
) -> redis::RedisResult<Client> {
    match (
        &opts.tls_ca_pem,
        matches!(info.addr(), ConnectionAddr::TcpTls { .. }),
    ) {
        (Some(ca), true) => Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            },
        ),
        _ => Client::open(info),
    }
}
