//! The `REDIS_URL` grammar: one string in, a typed [`RedisUrl`] out.
//!
//! The OAuth server's "Redis Caching" guide lets an operator describe every deployment with a single
//! `REDIS_URL`, including forms no URL library understands: a Sentinel group
//! (`redis://s1:26379,s2:26379/mymaster`) and a Cluster seed list (`redis://n1:6379,n2:6379`). redis-rs
//! only parses single-host URLs, so this module owns the whole grammar and later hands redis-rs one
//! address per node (see [`crate::connection`]).
//!
//! ```text
//! url       = scheme "://" [ userinfo "@" ] hostlist [ "/" path ] [ "?" options ]
//! scheme    = "redis" | "rediss"                       ; topology from the shape of the rest
//!           | "redis+sentinel" | "rediss+sentinel"     ; explicit, unambiguous aliases
//!           | "redis+cluster"  | "rediss+cluster"
//! userinfo  = [ username ] [ ":" password ]            ; percent-encoded
//! hostlist  = host [ ":" port ] *( "," host [ ":" port ] ) ; IPv6 in brackets: [::1]:6379
//! path      = db                                       ; standalone: redis://h:6379/1
//!           | service [ "/" db ]                       ; sentinel:   redis://s1,s2/mymaster/2
//! options   = connect_timeout=<ms> & response_timeout=<ms>
//!           & sentinel_username=<name> & sentinel_password=<pw>
//!           & sentinel_quorum=<n>                      ; sentinels that must agree on the primary
//! ```
//!
//! How the topology is chosen, without an explicit scheme: a non-numeric path is a Sentinel service
//! name (one or more sentinels); several hosts and no service name is a Cluster; otherwise one
//! standalone server. Default ports are 6379 for data nodes and 26379 for sentinels.
//!
//! Passwords never leave this module in clear text by accident: they are held in a [`Secret`] whose
//! `Debug` and `Display` print `***`, [`RedisUrl`]'s `Display` redacts them, and no [`UrlError`] ever
//! quotes the user-info part of the input.

use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde::Serialize;

/// Default port of a Redis data node (standalone, replica, cluster node).
pub const DEFAULT_PORT: u16 = 6379;
/// Default port of a Redis Sentinel.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// A string that must never be printed: URL passwords, tokens, session ids.
///
/// `Debug`, `Display` and `Serialize` all write `***`; the only way to the value is [`Secret::expose`],
/// which makes every place that needs the clear text easy to find in review.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear text. Call only to hand it to Redis, never to format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// One `host:port` of the host list. `host` holds an IPv6 address without its brackets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `host:port,host:port,...` as in the URL's host list.
pub fn join_nodes(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(Node::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What kind of deployment the URL names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Topology {
    /// One server (possibly a replica's primary that never fails over).
    Standalone { node: Node, db: i64 },
    /// A primary found through Sentinel by its service name; `db` applies to the data nodes.
    Sentinel {
        sentinels: Vec<Node>,
        service: String,
        db: i64,
    },
    /// A Redis Cluster seed list; cluster mode only has database 0.
    Cluster { nodes: Vec<Node> },
}

impl Topology {
    /// Short name used in reports and logs: `standalone`, `sentinel`, `cluster`.
    pub fn kind(&self) -> &'static str {
        match self {
            Topology::Standalone { .. } => "standalone",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster { .. } => "cluster",
        }
    }
}

/// Settings carried in the URL's query string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
pub struct UrlOptions {
    /// `connect_timeout=<ms>`: how long to wait for a TCP/TLS connection and handshake.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub connect_timeout: Option<Duration>,
    /// `response_timeout=<ms>`: how long to wait for the reply to one command.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub response_timeout: Option<Duration>,
    /// `sentinel_username=`: ACL user for the sentinels themselves (the URL's user-info is for the data nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_username: Option<String>,
    /// `sentinel_password=`: password for the sentinels (`requirepass` in sentinel.conf).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_password: Option<Secret>,
    /// `sentinel_quorum=<n>`: how many sentinels must name the same primary at the newest config
    /// epoch before the handle writes to it. Default: a majority of the sentinels in the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_quorum: Option<usize>,
}

mod opt_ms {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }
}

/// A parsed `REDIS_URL`.
///
/// `Display` prints a canonical URL with the password replaced by `***`, so it is safe for logs and
/// reports. [`RedisUrl::to_unredacted_string`] prints the same URL with the password, for round trips.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedisUrl {
    /// `rediss://`: TLS with certificate and host-name verification.
    pub tls: bool,
    /// ACL user name (`redis://user:password@...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `requirepass` or the ACL user's password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    pub topology: Topology,
    pub options: UrlOptions,
}

/// Why a `REDIS_URL` was refused. Messages name the part that is wrong and the expected form, and
/// never quote the user-info (user name and password) of the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("REDIS_URL is empty: expected e.g. redis://localhost:6379")]
    Empty,
    #[error(
        "REDIS_URL contains whitespace or a control character: remove it (percent-encode it inside a password)"
    )]
    Whitespace,
    #[error("REDIS_URL has no scheme: expected it to start with redis:// or rediss://")]
    MissingScheme,
    #[error(
        "REDIS_URL scheme `{0}` is not supported: expected redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster"
    )]
    UnknownScheme(String),
    #[error("REDIS_URL mixes schemes in its host list (`{0}`): give the scheme once, at the start")]
    MixedSchemes(String),
    #[error(
        "REDIS_URL host #{position} is empty: expected host[:port] (percent-encode `/`, `?`, `#` or `@` inside a password)"
    )]
    EmptyHost { position: usize },
    #[error("REDIS_URL host `{host}` is not valid: {reason}")]
    BadHost { host: String, reason: &'static str },
    #[error(
        "REDIS_URL port `{port}` of host `{host}` is not valid: expected a number from 1 to 65535"
    )]
    BadPort { host: String, port: String },
    #[error("REDIS_URL database `{0}` is not valid: expected a number from 0 to 2147483647")]
    BadDb(String),
    #[error(
        "REDIS_URL names a database ({0}) for a Redis Cluster: cluster mode only has database 0, remove the `/{0}`"
    )]
    DbWithCluster(String),
    #[error(
        "REDIS_URL uses redis+sentinel:// without a service name: expected redis+sentinel://s1:26379,s2:26379/mymaster"
    )]
    SentinelWithoutService,
    #[error(
        "REDIS_URL uses redis+cluster:// with a path (`/{0}`): expected redis+cluster://n1:6379,n2:6379 with no path"
    )]
    ClusterWithPath(String),
    #[error(
        "REDIS_URL sentinel service name `{0}` is not valid: expected letters, digits, `-`, `_` or `.`, not starting with a digit (e.g. mymaster)"
    )]
    BadServiceName(String),
    #[error("REDIS_URL path `/{0}` is not valid: expected /<db>, /<service> or /<service>/<db>")]
    BadPath(String),
    #[error(
        "REDIS_URL has an `@` after a `/`, `?` or `://`: if the user name or password contains `/`, `?`, `#`, `:` or `@`, percent-encode them (e.g. `/` as %2F, `@` as %40)"
    )]
    UnencodedUserinfo,
    #[error("REDIS_URL {0} is not valid percent-encoded UTF-8")]
    BadEncoding(&'static str),
    #[error(
        "REDIS_URL option `{0}` is not known: expected connect_timeout, response_timeout, sentinel_username, sentinel_password or sentinel_quorum"
    )]
    UnknownOption(String),
    #[error("REDIS_URL option `{key}` is not valid: expected {expected}")]
    BadOption { key: String, expected: &'static str },
    #[error(
        "REDIS_URL has a `#fragment`, which is not supported (TLS verification cannot be turned off by URL)"
    )]
    Fragment,
    #[error(
        "REDIS_URL sentinel options are set but the URL is not a Sentinel URL: expected redis://s1:26379,s2:26379/mymaster"
    )]
    SentinelOptionsWithoutSentinel,
}

/// Characters escaped when printing user names and passwords back into a URL.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b',');

#[derive(Clone, Copy, PartialEq, Eq)]
enum Forced {
    None,
    Sentinel,
    Cluster,
}

impl std::str::FromStr for RedisUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RedisUrl::parse(s)
    }
}

impl RedisUrl {
    /// Parses any `REDIS_URL` form the guide lists (see the module docs for the grammar).
    pub fn parse(input: &str) -> Result<RedisUrl, UrlError> {
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Whitespace);
        }
        let (scheme, rest) = input.split_once("://").ok_or(UrlError::MissingScheme)?;
        // An `@` that is not in the authority means user-info with an unencoded `/`, `?` or `://`:
        // refuse before any later error could quote a piece of the password.
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if rest[authority_end..].contains('@') || rest.contains("://") && rest.contains('@') {
            return Err(UrlError::UnencodedUserinfo);
        }
        let (tls, forced) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, Forced::None),
            "rediss" => (true, Forced::None),
            "redis+sentinel" => (false, Forced::Sentinel),
            "rediss+sentinel" => (true, Forced::Sentinel),
            "redis+cluster" => (false, Forced::Cluster),
            "rediss+cluster" => (true, Forced::Cluster),
            // Never echo something that looks like it could carry credentials.
            other if other.contains('@') || other.contains(':') => {
                return Err(UrlError::MissingScheme);
            }
            // Echo only what looks like a scheme, so a mistyped URL cannot leak a secret here.
            other
                if other.len() <= 16
                    && other.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
            {
                return Err(UrlError::UnknownScheme(other.to_string()));
            }
            _ => return Err(UrlError::UnknownScheme("(not shown)".to_string())),
        };
        if let Some(i) = rest.find("://") {
            let before = rest[..i].rsplit([',', '@', '/']).next().unwrap_or_default();
            let looks_like_scheme = before.len() <= 16
                && before
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+');
            return Err(UrlError::MixedSchemes(if looks_like_scheme {
                before.to_string()
            } else {
                "(not shown)".to_string()
            }));
        }
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        // The authority ends at the first `/` after the user-info. A raw `@` belongs to the
        // user-info only before that `/`; the last `@` wins so an unencoded `@` in a password works.
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = parse_userinfo(userinfo)?;
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let (service, db) = parse_path(path)?;

        let sentinel = match forced {
            Forced::Sentinel => {
                if service.is_none() {
                    return Err(UrlError::SentinelWithoutService);
                }
                true
            }
            Forced::Cluster => {
                if !path.is_empty() {
                    return Err(UrlError::ClusterWithPath(path.to_string()));
                }
                false
            }
            Forced::None => service.is_some(),
        };
        let default_port = if sentinel {
            DEFAULT_SENTINEL_PORT
        } else {
            DEFAULT_PORT
        };
        let nodes = parse_hostlist(hostlist, default_port)?;
        let cluster = forced == Forced::Cluster || (!sentinel && nodes.len() > 1);

        let topology = if sentinel {
            Topology::Sentinel {
                sentinels: nodes,
                service: service.unwrap_or_default(),
                db: db.unwrap_or(0),
            }
        } else if cluster {
            if let Some(db) = db {
                return Err(UrlError::DbWithCluster(db.to_string()));
            }
            Topology::Cluster { nodes }
        } else {
            let node = nodes
                .into_iter()
                .next()
                .ok_or(UrlError::EmptyHost { position: 1 })?;
            Topology::Standalone {
                node,
                db: db.unwrap_or(0),
            }
        };
        let options = parse_options(query)?;
        if !sentinel
            && (options.sentinel_password.is_some()
                || options.sentinel_username.is_some()
                || options.sentinel_quorum.is_some())
        {
            return Err(UrlError::SentinelOptionsWithoutSentinel);
        }
        if let (Some(quorum), Topology::Sentinel { sentinels, .. }) =
            (options.sentinel_quorum, &topology)
            && quorum > sentinels.len()
        {
            return Err(UrlError::BadOption {
                key: "sentinel_quorum".into(),
                expected: "a number from 1 to the number of sentinels in the URL",
            });
        }
        Ok(RedisUrl {
            tls,
            username,
            password,
            topology,
            options,
        })
    }

    /// The canonical URL with the password in clear text. Use only to hand the URL to another
    /// process that needs it; never log the result.
    pub fn to_unredacted_string(&self) -> String {
        self.render(false)
    }

    fn render(&self, redact: bool) -> String {
        let mut out = String::new();
        out.push_str(if self.tls { "rediss" } else { "redis" });
        // A one-node seed list is only a cluster when the scheme says so.
        if matches!(&self.topology, Topology::Cluster { nodes } if nodes.len() == 1) {
            out.push_str("+cluster");
        }
        out.push_str("://");
        if self.username.is_some() || self.password.is_some() {
            if let Some(user) = &self.username {
                out.extend(utf8_percent_encode(user, USERINFO));
            }
            if let Some(pw) = &self.password {
                out.push(':');
                if redact {
                    out.push_str("***");
                } else {
                    out.extend(utf8_percent_encode(pw.expose(), USERINFO));
                }
            }
            out.push('@');
        }
        match &self.topology {
            Topology::Standalone { node, db } => {
                out.push_str(&node.to_string());
                if *db != 0 {
                    out.push_str(&format!("/{db}"));
                }
            }
            Topology::Sentinel {
                sentinels,
                service,
                db,
            } => {
                out.push_str(&join_nodes(sentinels));
                out.push('/');
                out.push_str(service);
                if *db != 0 {
                    out.push_str(&format!("/{db}"));
                }
            }
            Topology::Cluster { nodes } => out.push_str(&join_nodes(nodes)),
        }
        let mut query = Vec::new();
        if let Some(d) = self.options.connect_timeout {
            query.push(format!("connect_timeout={}", d.as_millis()));
        }
        if let Some(d) = self.options.response_timeout {
            query.push(format!("response_timeout={}", d.as_millis()));
        }
        if let Some(u) = &self.options.sentinel_username {
            query.push(format!(
                "sentinel_username={}",
                utf8_percent_encode(u, USERINFO)
            ));
        }
        if let Some(p) = &self.options.sentinel_password {
            let shown = if redact {
                "***".to_string()
            } else {
                utf8_percent_encode(p.expose(), USERINFO).to_string()
            };
            query.push(format!("sentinel_password={shown}"));
        }
        if let Some(q) = self.options.sentinel_quorum {
            query.push(format!("sentinel_quorum={q}"));
        }
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query.join("&"));
        }
        out
    }

    /// The database number used on data nodes (always 0 for a cluster).
    pub fn db(&self) -> i64 {
        match &self.topology {
            Topology::Standalone { db, .. } | Topology::Sentinel { db, .. } => *db,
            Topology::Cluster { .. } => 0,
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(true))
    }
}

fn decode(part: &str, what: &'static str) -> Result<String, UrlError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError::BadEncoding(what))
}

fn parse_userinfo(userinfo: Option<&str>) -> Result<(Option<String>, Option<Secret>), UrlError> {
    let Some(userinfo) = userinfo else {
        return Ok((None, None));
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let user = decode(user, "user name")?;
    let password = password
        .map(|p| decode(p, "password"))
        .transpose()?
        .filter(|p| !p.is_empty())
        .map(Secret);
    Ok(((!user.is_empty()).then_some(user), password))
}

fn parse_db(s: &str) -> Result<i64, UrlError> {
    match s.parse::<u32>() {
        Ok(db) if db <= i32::MAX as u32 => Ok(db as i64),
        _ => Err(UrlError::BadDb(s.to_string())),
    }
}

fn looks_numeric(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
}

/// `""` → nothing; `"3"` → db 3; `"mymaster"` → service; `"mymaster/2"` → service + db.
fn parse_path(path: &str) -> Result<(Option<String>, Option<i64>), UrlError> {
    if path.is_empty() {
        return Ok((None, None));
    }
    let mut parts = path.split('/');
    let first = parts.next().unwrap_or_default();
    let second = parts.next();
    if parts.next().is_some() {
        return Err(UrlError::BadPath(path.to_string()));
    }
    if looks_numeric(first) {
        if second.is_some() {
            return Err(UrlError::BadPath(path.to_string()));
        }
        return Ok((None, Some(parse_db(first)?)));
    }
    let service = decode(first, "sentinel service name")?;
    // A name that decodes to something numeric (`%30`) would print back as a db number.
    if service.is_empty()
        || looks_numeric(&service)
        || !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(UrlError::BadServiceName(service));
    }
    let db = second.map(parse_db).transpose()?;
    Ok((Some(service), db))
}

fn parse_hostlist(hostlist: &str, default_port: u16) -> Result<Vec<Node>, UrlError> {
    hostlist
        .split(',')
        .enumerate()
        .map(|(i, entry)| parse_node(entry, i + 1, default_port))
        .collect()
}

fn parse_node(entry: &str, position: usize, default_port: u16) -> Result<Node, UrlError> {
    if entry.is_empty() {
        return Err(UrlError::EmptyHost { position });
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(|| UrlError::BadHost {
            host: entry.to_string(),
            reason: "an IPv6 address needs a closing `]`",
        })?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::BadHost {
                host: entry.to_string(),
                reason: "expected an IPv6 address inside `[...]`",
            });
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| UrlError::BadHost {
                host: entry.to_string(),
                reason: "expected `:port` after `]`",
            })?),
        };
        (addr.to_string(), port)
    } else {
        if entry.matches(':').count() > 1 {
            return Err(UrlError::BadHost {
                host: entry.to_string(),
                reason: "an IPv6 address must be written in brackets, e.g. [::1]:6379",
            });
        }
        let (host, port) = match entry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        };
        if host.is_empty() {
            return Err(UrlError::EmptyHost { position });
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(UrlError::BadHost {
                host: host.to_string(),
                reason: "expected a DNS name, an IPv4 address or [IPv6] (an unbracketed IPv6 address needs [ ])",
            });
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(UrlError::BadPort {
                    host,
                    port: p.to_string(),
                });
            }
        },
    };
    Ok(Node { host, port })
}

fn parse_ms(key: &str, value: &str) -> Result<Duration, UrlError> {
    match value.parse::<u64>() {
        Ok(ms) if ms > 0 && ms <= 3_600_000 => Ok(Duration::from_millis(ms)),
        _ => Err(UrlError::BadOption {
            key: key.to_string(),
            expected: "milliseconds from 1 to 3600000",
        }),
    }
}

fn parse_options(query: Option<&str>) -> Result<UrlOptions, UrlError> {
    let mut options = UrlOptions::default();
    let Some(query) = query else {
        return Ok(options);
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "connect_timeout" => options.connect_timeout = Some(parse_ms(key, value)?),
            "response_timeout" => options.response_timeout = Some(parse_ms(key, value)?),
            "sentinel_username" => {
                options.sentinel_username = Some(decode(value, "sentinel_username")?)
            }
            "sentinel_password" => {
                options.sentinel_password = Some(Secret(decode(value, "sentinel_password")?))
            }
            "sentinel_quorum" => match value.parse::<usize>() {
                Ok(q) if q >= 1 => options.sentinel_quorum = Some(q),
                _ => {
                    return Err(UrlError::BadOption {
                        key: key.to_string(),
                        expected: "a number from 1 to the number of sentinels in the URL",
                    });
                }
            },
            // Echo only what looks like an option name, so a pasted secret is never repeated.
            other
                if other.len() <= 32
                    && other.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
            {
                return Err(UrlError::UnknownOption(other.to_string()));
            }
            _ => return Err(UrlError::UnknownOption("(not shown)".to_string())),
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests;
