//! The bad-input catalogue: one table of malformed, hostile and oversized inputs for every entry
//! point of the `cache` crate, each with the error an operator must see.
//!
//! Every row states the expected outcome (error variant + a substring of its message, or "accepted"
//! for inputs that look hostile but are harmless by design, such as a token with `\r\n`: tokens are
//! hashed before they reach a key), and the part of its input that is secret (a password, a token, a
//! session id). The suite checks, for every row:
//! - it does not panic (each row runs in its own task; a panic is reported with the row's name);
//! - the outcome matches the row;
//! - neither the error's `Display` nor its `Debug` contains the secret.
//!
//! After the table, an audit walks every key the rows left in Redis (with `SCAN`) and checks each one
//! against the key grammar of `cache::keys`, so no row managed to forge a key outside it.
//!
//! The inputs cover: `REDIS_URL` strings (parse and connect), session ids, user ids, key prefixes,
//! tokens, client IPs and endpoints (key-forging attempts), rate-limit rules, oversized session
//! payloads, and hostile server state (keys of the wrong type, values this crate never wrote).
//! All failures are collected and reported together, so one run shows every broken row.
//!
//! The tables are kept one row per line (`#[rustfmt::skip]`): the file is the catalogue, and a row
//! per line is what makes it readable and reviewable. It is over 500 lines for the same reason.

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cache::ratelimit::Degraded;
use cache::{
    Algorithm, Error, FailureMode, IpPolicy, KeySchema, NewSession, RateLimiter, Redis, RedisUrl,
    Rule, SessionConfig, SessionId, SessionStore, TokenCache,
};
use localredis::resp::Reply;
use localredis::{RedisServer, ServerConfig};
use support::*;

/// A password used in every password-bearing row; it must never be printed.
const PW: &str = "Hunter2Secret";
/// Key prefix of this suite, so the key audit sees only what the rows wrote.
const PREFIX: &str = "badinput";

/// What a row expects.
#[derive(Clone, Debug)]
enum Expect {
    /// An error whose variant name (as printed by [`variant`]) starts with `variant` and whose
    /// message contains `message`.
    Err {
        variant: &'static str,
        message: &'static str,
    },
    /// Accepted: the input looks hostile but is harmless by design.
    Ok,
}

const ACCEPTED: Expect = Expect::Ok;

fn err(variant: &'static str, message: &'static str) -> Expect {
    Expect::Err { variant, message }
}

/// The input of one row, and which entry point it goes to.
#[derive(Clone)]
enum Probe {
    /// `RedisUrl::parse`.
    Url(String),
    /// `Redis::connect` to a URL that parses (wrong password, nothing listening, bad db...).
    Connect(String),
    /// `SessionId::parse` (the only way an id from a cookie reaches the store).
    SessionId(String),
    /// `KeySchema::new`.
    Prefix(String),
    /// `SessionStore::create` for this user id, with `data_bytes` of payload, under `config`.
    CreateSession {
        user_id: String,
        data_bytes: usize,
        config: SessionConfig,
    },
    /// `SessionStore::update` of a live session with `data_bytes` of payload.
    UpdateSession {
        data_bytes: usize,
    },
    /// `SessionStore::destroy_all_for_user`.
    DestroyAll(String),
    /// `SessionStore::new` with this config.
    SessionConfig(SessionConfig),
    /// `TokenCache::put` (with claims valid for an hour) / `get` / `revoke`.
    TokenPut(String),
    TokenGet(String),
    TokenRevoke(String),
    /// `TokenCache::put` with claims that expired a minute ago.
    TokenPutExpired(String),
    /// `TokenCache::put` with claims expiring in 30 days (beyond the default 24 h maximum).
    TokenPutFar(String),
    /// `RateLimiter::check` on the suite's limiter (rules: signin, token).
    Check {
        ip: String,
        endpoint: String,
    },
    /// `RateLimiter::new` with one rule.
    NewLimiter {
        endpoint: String,
        rule: Rule,
    },
    /// Hostile server state: plant a value with one raw command (`{key}` is replaced by the key
    /// the operation will touch), then run the operation.
    Hostile {
        plant: Vec<String>,
        op: Op,
    },
}

/// Keys an index forged by someone with write access to Redis may list; log-out-everywhere must
/// never delete them (the audit at the end checks that they still exist).
const FORGED_TOKEN_KEY: &str =
    "badinput:token:0000000000000000000000000000000000000000000000000000000000000000";
const FORGED_OTHER_USER: &str = "badinput:session:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.4102444800000.{bbbbbbbbbbbbbbbbbbbbbb}";

/// Store operations for [`Probe::Hostile`] rows.
#[derive(Clone, Copy, Debug)]
enum Op {
    SessionGet,
    SessionCreate,
    SessionDestroy,
    DestroyAll,
    TokenGet,
    TokenPut,
    TokenRevoke,
    Check(Algorithm),
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Inputs can be 20 KiB; print their shape, not all their bytes.
        let short = |s: &str| {
            let t: String = s.chars().take(40).collect();
            if s.len() > 40 {
                format!("{t:?}… ({} bytes)", s.len())
            } else {
                format!("{t:?}")
            }
        };
        match self {
            Probe::Url(s) => write!(f, "parse {}", short(s)),
            Probe::Connect(s) => write!(f, "connect {}", short(s)),
            Probe::SessionId(s) => write!(f, "session id {}", short(s)),
            Probe::Prefix(p) => write!(f, "prefix {}", short(p)),
            Probe::CreateSession {
                user_id,
                data_bytes,
                ..
            } => write!(f, "create for {} with {data_bytes} B", short(user_id)),
            Probe::UpdateSession { data_bytes } => write!(f, "update with {data_bytes} B"),
            Probe::DestroyAll(u) => write!(f, "destroy all of {}", short(u)),
            Probe::SessionConfig(c) => write!(f, "session config {c:?}"),
            Probe::TokenPut(t) => write!(f, "token put {}", short(t)),
            Probe::TokenGet(t) => write!(f, "token get {}", short(t)),
            Probe::TokenRevoke(t) => write!(f, "token revoke {}", short(t)),
            Probe::TokenPutExpired(t) => write!(f, "expired token put {}", short(t)),
            Probe::TokenPutFar(t) => write!(f, "30-day token put {}", short(t)),
            Probe::Check { ip, endpoint } => write!(f, "check {} {}", short(ip), short(endpoint)),
            Probe::NewLimiter { endpoint, rule } => {
                write!(f, "limiter {} {rule:?}", short(endpoint))
            }
            Probe::Hostile { plant, op } => write!(f, "{op:?} after {plant:?}"),
        }
    }
}

impl Probe {
    fn needs_redis(&self) -> bool {
        !matches!(self, Probe::Url(_) | Probe::SessionId(_) | Probe::Prefix(_))
    }
}

struct Row {
    name: String,
    probe: Probe,
    expect: Expect,
    /// Must appear in neither the error's `Display` nor its `Debug`.
    secret: Option<String>,
}

fn row(name: String, probe: Probe, expect: Expect) -> Row {
    Row {
        name,
        probe,
        expect,
        secret: None,
    }
}

/// The variant of an error as `Outer::Inner` (e.g. `Url::BadPort`, `Invalid`), from its `Debug`.
fn variant(e: &Error) -> String {
    fn head(debug: String) -> String {
        debug
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    }
    match e {
        Error::Url(u) => format!("Url::{}", head(format!("{u:?}"))),
        other => head(format!("{other:?}")),
    }
}

fn id_of(len: usize, fill: char) -> String {
    std::iter::repeat_n(fill, len).collect()
}

fn rule(limit: u32, window_ms: u64, algorithm: Algorithm) -> Rule {
    Rule {
        limit,
        window: Duration::from_millis(window_ms),
        algorithm,
    }
}

/// `REDIS_URL` rows: (name, input, expected `UrlError` variant, message substring). `{PW}` in an
/// input stands for [`PW`], which the error must not show.
#[rustfmt::skip]
const URL_ROWS: &[(&str, &str, &str, &str)] = &[
    ("empty", "", "Empty", "is empty"),
    ("leading space", " redis://localhost", "Whitespace", "whitespace"),
    ("CRLF injection after the password", "redis://:{PW}@localhost\r\nFLUSHALL", "Whitespace", "control character"),
    ("no scheme", "localhost:6379", "MissingScheme", "start with redis://"),
    ("http scheme", "http://localhost:6379", "UnknownScheme", "`http` is not supported"),
    ("credentials where the scheme goes", "admin:{PW}@localhost://x", "MissingScheme", "start with redis://"),
    ("long garbage scheme", "{PW}{PW}{PW}://localhost", "UnknownScheme", "(not shown)"),
    ("second scheme in the host list", "redis://h1:6379,redis://h2:6379", "MixedSchemes", "give the scheme once"),
    ("`://` inside an unencoded password", "redis://:{PW}://x@localhost", "UnencodedUserinfo", "percent-encode"),
    ("password but no host", "redis://:{PW}@", "EmptyHost", "host #1 is empty"),
    ("empty second host", "redis://h1,,h3", "EmptyHost", "host #2 is empty"),
    ("port 0", "redis://:{PW}@localhost:0", "BadPort", "from 1 to 65535"),
    ("port 65536", "redis://localhost:65536", "BadPort", "from 1 to 65535"),
    ("port not a number", "redis://localhost:6379x", "BadPort", "`6379x`"),
    ("unbracketed IPv6", "redis://::1:6379", "BadHost", "in brackets"),
    ("unclosed IPv6 bracket", "redis://[::1:6379", "BadHost", "closing `]`"),
    ("bracketed non-IPv6", "redis://[localhost]:6379", "BadHost", "IPv6 address inside"),
    ("host with a glob", "redis://redis*.internal:6379", "BadHost", "expected a DNS name"),
    ("negative db", "redis://localhost/-1", "BadDb", "from 0 to 2147483647"),
    ("db overflow", "redis://localhost/2147483648", "BadDb", "`2147483648`"),
    ("three path segments", "redis://localhost/a/b/c", "BadPath", "expected /<db>"),
    ("db with a cluster seed list", "redis://n1,n2/3", "DbWithCluster", "only has database 0"),
    ("sentinel scheme without service", "redis+sentinel://s1:26379", "SentinelWithoutService", "without a service name"),
    ("cluster scheme with a path", "redis+cluster://n1/0", "ClusterWithPath", "with no path"),
    ("service name with a glob", "redis://s1,s2/my*master", "BadServiceName", "expected letters, digits"),
    // An unencoded `/` or `?` in the user-info ends the authority early: what follows is read as
    // host, port, path or options. None of it may be quoted back; the message says what to encode.
    ("unencoded `/` in user:password", "redis://admin:pass/{PW}@localhost:6379", "", "percent-encode"),
    ("unencoded `/` in the password", "redis://:pass/{PW}@localhost:6379", "", "percent-encode"),
    ("unencoded `/` in the password, digits next", "redis://:x/1{PW}@localhost:6379", "", "percent-encode"),
    ("unencoded `?` in the password", "redis://admin:{PW}?x@localhost:6379", "", "percent-encode"),
    ("unencoded `?` in the user name", "redis://{PW}?:x@localhost:6379", "", "percent-encode"),
    ("password not UTF-8 once decoded", "redis://:{PW}%ff@localhost", "BadEncoding", "password is not valid"),
    ("unknown option", "redis://localhost?timeout=5", "UnknownOption", "`timeout` is not known"),
    ("secret pasted as an option", "redis://localhost?{PW}", "UnknownOption", "(not shown)"),
    ("zero timeout", "redis://localhost?connect_timeout=0", "BadOption", "milliseconds from 1 to 3600000"),
    ("fragment to disable TLS checks", "rediss://localhost#insecure", "Fragment", "cannot be turned off"),
    ("sentinel password on a standalone URL", "redis://localhost?sentinel_password={PW}", "SentinelOptionsWithoutSentinel", "not a Sentinel URL"),
];

/// Rows that need no server: URLs, session ids from cookies, key prefixes.
fn offline_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, input, variant, message) in URL_ROWS {
        let input = input.replace("{PW}", PW);
        let secret = input.contains(PW).then(|| PW.to_string());
        rows.push(Row {
            name: format!("url: {name}"),
            probe: Probe::Url(input),
            expect: err(format!("Url::{variant}").leak(), message),
            secret,
        });
    }
    // Ids from cookies. Every row is invalid whatever the id format (a 43-character secret, with
    // or without a `.deadline` suffix), so the rows check the field, not the format's wording.
    let a = |n| id_of(n, 'a');
    let ids = [
        ("empty", String::new()),
        ("42 characters", a(42)),
        ("44 characters", a(44)),
        ("10 KiB", a(10 * 1024)),
        ("with `:` (key forging)", format!("{}:token", a(37))),
        ("`*` glob", format!("{}*", a(42))),
        ("CRLF command injection", format!("{}\r\nDEL x", a(36))),
        ("standard base64 alphabet", format!("{}+/", a(41))),
        ("base64 padding", format!("{}=", a(42))),
        ("non-ASCII of the right byte length", format!("{}é", a(41))),
        (
            "key suffix after a valid-looking id",
            format!("{}.1:authority:token:x", a(43)),
        ),
        ("glob after a valid-looking id", format!("{}.*", a(43))),
        (
            "the two-part format without a user tag",
            format!("{}.1700000000000", a(43)),
        ),
        (
            "a hash tag of its own",
            format!("{}.1.{{{}}}", a(43), a(20)),
        ),
        (
            "a second hash tag after the user tag",
            format!("{}.1.{}.{{x}}", a(43), a(22)),
        ),
    ];
    for (name, id) in ids {
        // The id is the secret: not even its first 8 characters may be echoed.
        let secret = (id.len() >= 8).then(|| id[..8].to_string());
        rows.push(Row {
            name: format!("session id: {name}"),
            probe: Probe::SessionId(id),
            expect: err("Invalid", "invalid session id: expected"),
            secret,
        });
    }
    let component = "expected printable ASCII";
    #[rustfmt::skip]
    let prefixes = [
        ("empty", String::new(), "key prefix: must not be empty"),
        ("with `:`", "authority:session".into(), component),
        ("glob", "*".into(), component),
        ("65 bytes", id_of(65, 'p'), "is 65 bytes, expected at most 64"),
    ];
    for (name, prefix, message) in prefixes {
        let probe = Probe::Prefix(prefix);
        rows.push(row(
            format!("key prefix: {name}"),
            probe,
            err("Invalid", message),
        ));
    }
    rows
}

/// Rows that need a redis-server; `port` is a plain server, `auth_port` one with `requirepass PW`,
/// `free_port` one where nothing listens.
fn online_rows(port: u16, auth_port: u16, free_port: u16) -> Vec<Row> {
    let mut rows = Vec::new();
    #[rustfmt::skip]
    let connects = [
        ("wrong password", format!("redis://:Wrong{PW}@127.0.0.1:{auth_port}"), "Auth", "authentication failed"),
        ("unknown ACL user", format!("redis://mallory:{PW}@127.0.0.1:{auth_port}"), "Auth", "check the password"),
        ("nothing listening", format!("redis://:{PW}@127.0.0.1:{free_port}"), "Unreachable", "cannot connect"),
        ("db the server does not have", format!("redis://127.0.0.1:{port}/4096"), "Command", "DB index is out of range"),
    ];
    for (name, url, variant, message) in connects {
        let secret = url.contains(PW).then(|| PW.to_string());
        rows.push(Row {
            name: format!("connect: {name}"),
            probe: Probe::Connect(url),
            expect: err(variant, message),
            secret,
        });
    }

    // Client IPs and endpoints: every key-forging attempt is refused before a key is built.
    let bad_ip = "expected an IPv4 or IPv6 address";
    let unknown = "no rate-limit rule for it; configured: signin, token";
    #[rustfmt::skip]
    let checks = [
        ("ip with an endpoint appended (key forging)", "1.2.3.4:signin", "signin", bad_ip),
        ("ip with CRLF command injection", "signin\r\nDEL authority:ratelimit", "signin", bad_ip),
        ("ip glob", "*", "signin", bad_ip),
        ("ip empty", "", "signin", bad_ip),
        ("ip with a trailing space", "1.2.3.4 ", "signin", bad_ip),
        ("ip host name", "localhost", "signin", bad_ip),
        ("ip CIDR", "10.0.0.0/8", "signin", bad_ip),
        ("ip with a port", "[2001:db8::1]:443", "signin", bad_ip),
        ("ip with a zone id", "fe80::1%eth0", "signin", bad_ip),
        ("ip octet out of range", "256.1.1.1", "signin", bad_ip),
        ("ip octal-looking octet", "010.1.1.1", "signin", bad_ip),
        ("ip mapped IPv4 with a suffix", "::ffff:1.2.3.4:signin", "signin", bad_ip),
        ("endpoint with `:` (key forging)", "1.2.3.4", "signin:other", unknown),
        ("endpoint glob", "1.2.3.4", "*", unknown),
        ("endpoint with CRLF", "1.2.3.4", "signin\r\nFLUSHALL", unknown),
        ("endpoint in another case", "1.2.3.4", "SIGNIN", unknown),
        ("endpoint empty", "1.2.3.4", "", unknown),
    ];
    for (name, ip, endpoint, message) in checks {
        let probe = Probe::Check {
            ip: ip.into(),
            endpoint: endpoint.into(),
        };
        rows.push(row(
            format!("limiter: {name}"),
            probe,
            err("Invalid", message),
        ));
    }
    let component = "expected printable ASCII";
    #[rustfmt::skip]
    let rules = [
        ("endpoint with `:`", "sign:in", Rule::per_minute(5), component),
        ("endpoint with a space", "sign in", Rule::per_minute(5), component),
        ("limit 0", "signin", rule(0, 1000, Algorithm::Gcra), "limit must be at least 1"),
        ("zero window", "signin", rule(5, 0, Algorithm::SlidingWindow), "window at least 1 ms"),
    ];
    for (name, endpoint, rule, message) in rules {
        let endpoint = endpoint.into();
        let probe = Probe::NewLimiter { endpoint, rule };
        rows.push(row(format!("rule: {name}"), probe, err("Invalid", message)));
    }

    // User ids (they become the index key), session settings and payload sizes.
    let create = |user: &str, data_bytes: usize, max_value_bytes: usize| Probe::CreateSession {
        user_id: user.into(),
        data_bytes,
        config: SessionConfig {
            max_value_bytes,
            ..Default::default()
        },
    };
    let max = SessionConfig::default().max_value_bytes;
    let too_large = "over the configured maximum of 16384 bytes";
    let zero_idle = SessionConfig {
        idle_timeout: Duration::ZERO,
        ..Default::default()
    };
    let eleven_years = SessionConfig {
        absolute_lifetime: Duration::from_secs(11 * 366 * 24 * 3600),
        ..Default::default()
    };
    #[rustfmt::skip]
    let sessions = [
        ("user id with `:` (key forging)", create("alice:session", 10, max), err("Invalid", component)),
        ("user id glob", create("*", 10, max), err("Invalid", component)),
        ("user id with CRLF", create("alice\r\nDEL x", 10, max), err("Invalid", component)),
        ("user id empty", create("", 10, max), err("Invalid", "user_id: must not be empty")),
        ("user id 257 bytes", create(&id_of(257, 'u'), 10, max), err("Invalid", "is 257 bytes, expected at most 256")),
        ("log out everywhere for a glob", Probe::DestroyAll("alice*".into()), err("Invalid", component)),
        ("idle timeout zero", Probe::SessionConfig(zero_idle), err("Invalid", "from 1 ms to 10 years")),
        ("absolute lifetime of 11 years", Probe::SessionConfig(eleven_years), err("Invalid", "from 1 ms to 10 years")),
        ("payload over 16 KiB at create", create("alice", 17 * 1024, max), err("TooLarge", too_large)),
        ("payload over 16 KiB at update", Probe::UpdateSession { data_bytes: 20 * 1024 }, err("TooLarge", too_large)),
        ("payload over a 256 B configured maximum", create("alice", 300, 256), err("TooLarge", "maximum of 256 bytes")),
        ("payload of 8 KiB is fine", create("alice", 8 * 1024, max), ACCEPTED),
    ];
    for (name, probe, expect) in sessions {
        rows.push(row(format!("session: {name}"), probe, expect));
    }

    // Tokens: empty, huge, expired, hostile-looking (harmless: only their hash reaches a key).
    let huge = format!("eyJ{}", id_of(16 * 1024, 'T'));
    let empty = "token: must not be empty";
    #[rustfmt::skip]
    let tokens = [
        ("empty (put)", Probe::TokenPut(String::new()), err("Invalid", empty)),
        ("empty (get)", Probe::TokenGet(String::new()), err("Invalid", empty)),
        ("empty (revoke)", Probe::TokenRevoke(String::new()), err("Invalid", empty)),
        ("over 16 KiB (put)", Probe::TokenPut(huge.clone()), err("TooLarge", "token is 16387 bytes")),
        ("over 16 KiB (get)", Probe::TokenGet(huge.clone()), err("TooLarge", "maximum of 16384")),
        ("over 16 KiB (revoke)", Probe::TokenRevoke(huge), err("TooLarge", "token is")),
        ("claims already expired", Probe::TokenPutExpired("eyJexpired.Tok.Sig".into()), err("Invalid", "already expired")),
        ("claims expiring beyond the longest token lifetime", Probe::TokenPutFar("eyJfar.Tok.Sig".into()), err("Invalid", "raise TokenCache::max_token_lifetime")),
        ("CRLF and a command", Probe::TokenPut("tok\r\nFLUSHALL\r\n".into()), ACCEPTED),
        ("a key pattern", Probe::TokenGet("authority:token:*".into()), ACCEPTED),
    ];
    for (name, probe, expect) in tokens {
        let secret = match &probe {
            Probe::TokenPut(t)
            | Probe::TokenGet(t)
            | Probe::TokenRevoke(t)
            | Probe::TokenPutExpired(t)
            | Probe::TokenPutFar(t) => (t.len() >= 8).then(|| t[..t.len().min(64)].to_string()),
            _ => None,
        };
        rows.push(Row {
            name: format!("token: {name}"),
            probe,
            expect,
            secret,
        });
    }

    // Hostile server state: keys of the wrong type, values this crate never wrote.
    let wrong = "not what this store wrote";
    let claims = "token claims value in Redis";
    let future = r#"{"absolute_expires_ms":99999999999999,"v":99,"user_id":"u","created_ms":1,"last_seen_ms":1}"#;
    let partial = r#"{"absolute_expires_ms":99999999999999,"v":1}"#;
    let fixed = Op::Check(Algorithm::FixedWindow);
    let sliding = Op::Check(Algorithm::SlidingWindow);
    let gcra = Op::Check(Algorithm::Gcra);
    #[rustfmt::skip]
    let hostile: [(&str, &[&str], Op, Expect); 19] = [
        ("session key holding a list", &["RPUSH", "{key}", "x"], Op::SessionGet, err("Corrupt", wrong)),
        ("session key holding non-JSON", &["SET", "{key}", "{not json"], Op::SessionGet, err("Corrupt", "session value in Redis")),
        ("session value from a newer format", &["SET", "{key}", future], Op::SessionGet, err("Corrupt", "newer than this build")),
        ("session value missing fields", &["SET", "{key}", partial], Op::SessionGet, err("Corrupt", "missing field")),
        ("user index holding a string (log out everywhere)", &["SET", "{key}", "x"], Op::DestroyAll, err("Corrupt", wrong)),
        ("user index holding a string (create)", &["SET", "{key}", "x"], Op::SessionCreate, err("Corrupt", wrong)),
        ("user index holding a set (destroy)", &["SADD", "{key}", "x"], Op::SessionDestroy, err("Corrupt", wrong)),
        ("user index listing forged keys is filtered", &["ZADD", "{key}", "1", "*", "2", "x:y", "3", "../../etc", "4", "\r\nDEL", "5", FORGED_TOKEN_KEY, "6", FORGED_OTHER_USER], Op::DestroyAll, ACCEPTED),
        ("token key holding a hash (get)", &["HSET", "{key}", "a", "b"], Op::TokenGet, err("Corrupt", wrong)),
        ("token key holding a list (put)", &["RPUSH", "{key}", "x"], Op::TokenPut, err("Corrupt", wrong)),
        ("token key holding a set (revoke)", &["SADD", "{key}", "x"], Op::TokenRevoke, err("Corrupt", wrong)),
        ("token key holding non-JSON", &["SET", "{key}", "{\"user_id\":"], Op::TokenGet, err("Corrupt", claims)),
        ("token key holding JSON of another shape", &["SET", "{key}", r#"{"user_id":1,"exp":"soon"}"#], Op::TokenGet, err("Corrupt", claims)),
        ("fixed-window counter holding a hash", &["HSET", "{key}", "a", "b"], fixed, err("Corrupt", wrong)),
        ("fixed-window counter holding text", &["SET", "{key}", "many"], fixed, err("Corrupt", wrong)),
        ("sliding-window hash holding a string", &["SET", "{key}", "x"], sliding, err("Corrupt", wrong)),
        ("sliding-window hash with a non-numeric field", &["HSET", "{key}", "now", "1"], sliding, err("Corrupt", wrong)),
        ("GCRA arrival time holding a list", &["RPUSH", "{key}", "x"], gcra, err("Corrupt", wrong)),
        ("GCRA arrival time holding text", &["SET", "{key}", "soon"], gcra, err("Corrupt", wrong)),
    ];
    for (name, plant, op, expect) in hostile {
        let plant = plant.iter().map(|s| s.to_string()).collect();
        let probe = Probe::Hostile { plant, op };
        rows.push(row(format!("hostile reply: {name}"), probe, expect));
    }
    rows
}

/// Everything the online rows share.
struct Ctx {
    server: RedisServer,
    redis: Redis,
    keys: KeySchema,
    sessions: SessionStore,
    tokens: TokenCache,
    limiter: RateLimiter,
}

fn payload(bytes: usize) -> BTreeMap<String, serde_json::Value> {
    [(
        "access_token_ref".to_string(),
        serde_json::json!(id_of(bytes, 'P')),
    )]
    .into_iter()
    .collect()
}

fn session_for(user_id: &str, data_bytes: usize) -> NewSession {
    NewSession {
        user_id: user_id.into(),
        data: payload(data_bytes),
        ..Default::default()
    }
}

/// Runs one probe. `Ok` carries a short description of what was accepted.
async fn run(probe: Probe, ctx: Option<Arc<Ctx>>) -> Result<String, Error> {
    let ctx = || ctx.clone().expect("row needs redis");
    match probe {
        Probe::Url(s) => RedisUrl::parse(&s)
            .map(|u| u.to_string())
            .map_err(Error::from),
        Probe::SessionId(s) => SessionId::parse(&s).map(|_| "parsed".into()),
        Probe::Prefix(p) => KeySchema::new(&p).map(|_| "accepted".into()),
        Probe::SessionConfig(c) => {
            SessionStore::new(ctx().redis.clone(), KeySchema::default(), c).map(|_| "ok".into())
        }
        Probe::Connect(s) => {
            let url = RedisUrl::parse(&s)?;
            let opts = cache::ConnectOptions {
                connect_timeout: Duration::from_millis(500),
                ..Default::default()
            };
            Redis::connect(&url, &opts)
                .await
                .map(|_| "connected".into())
        }
        Probe::CreateSession {
            user_id,
            data_bytes,
            config,
        } => {
            let c = ctx();
            let store = SessionStore::new(c.redis.clone(), c.keys.clone(), config)?;
            store
                .create(session_for(&user_id, data_bytes))
                .await
                .map(|_| "created".into())
        }
        Probe::UpdateSession { data_bytes } => {
            let c = ctx();
            let (id, mut s) = c.sessions.create(session_for("updater", 10)).await?;
            s.data = payload(data_bytes);
            c.sessions.update(&id, &s).await.map(|_| "updated".into())
        }
        Probe::DestroyAll(user) => ctx()
            .sessions
            .destroy_all_for_user(&user)
            .await
            .map(|n| format!("{n} destroyed")),
        Probe::TokenPut(t) => ctx()
            .tokens
            .put(&t, &claims(Duration::from_secs(3600)))
            .await
            .map(|o| format!("{o:?}")),
        Probe::TokenGet(t) => ctx().tokens.get(&t).await.map(|c| format!("{c:?}")),
        Probe::TokenRevoke(t) => ctx()
            .tokens
            .revoke(&t, None)
            .await
            .map(|r| format!("revoked: {r}")),
        Probe::TokenPutExpired(t) => {
            let mut c = claims(Duration::ZERO);
            c.exp -= 60;
            ctx().tokens.put(&t, &c).await.map(|o| format!("{o:?}"))
        }
        Probe::TokenPutFar(t) => {
            let c = claims(Duration::from_secs(30 * 24 * 3600));
            ctx().tokens.put(&t, &c).await.map(|o| format!("{o:?}"))
        }
        Probe::Check { ip, endpoint } => ctx()
            .limiter
            .check(&ip, &endpoint)
            .await
            .map(|d| describe(&d)),
        Probe::NewLimiter { endpoint, rule } => {
            let c = ctx();
            RateLimiter::new(
                c.redis.clone(),
                c.keys.clone(),
                [(endpoint, rule)].into_iter().collect(),
                FailureMode::Closed,
                IpPolicy::default(),
            )
            .map(|_| "built".into())
        }
        Probe::Hostile { plant, op } => hostile_op(&ctx(), &plant, op).await,
    }
}

/// A limiter decision as a row outcome. A degraded decision counts as accepted, and says so.
fn describe(d: &cache::Decision) -> String {
    match &d.degraded {
        None => format!("allowed: {}", d.allowed),
        Some(Degraded::FailedOpen { cause, .. } | Degraded::FailedClosed { cause, .. }) => {
            format!(
                "DEGRADED decision (allowed: {}) because: {cause}",
                d.allowed
            )
        }
    }
}

async fn hostile_op(c: &Ctx, plant: &[String], op: Op) -> Result<String, Error> {
    // Each hostile row gets its own user, token and IP, so rows cannot disturb each other.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let user = format!("hostile-{n}");
    let token = format!("hostile-token-{n}");
    let ip = format!("198.18.0.{n}");
    let (endpoint, limiter_rule) = match op {
        Op::Check(a) => ("signin", rule(5, 60_000, a)),
        _ => ("signin", rule(5, 60_000, Algorithm::FixedWindow)),
    };
    let session_id = if matches!(op, Op::SessionGet | Op::SessionDestroy) {
        Some(c.sessions.create(session_for(&user, 10)).await?.0)
    } else {
        None
    };
    let key = match op {
        Op::SessionGet => c
            .keys
            .session(session_id.as_ref().expect("created").expose()),
        Op::SessionCreate | Op::SessionDestroy | Op::DestroyAll => {
            c.keys.user_sessions(&user).expect("valid user id")
        }
        Op::TokenGet | Op::TokenPut | Op::TokenRevoke => {
            format!("{PREFIX}:token:{}", cache::token::token_hash(&token))
        }
        Op::Check(_) => format!("{PREFIX}:ratelimit:{ip}:{endpoint}"),
    };
    c.server.command(&["DEL", key.as_str()]).expect("DEL");
    let args: Vec<String> = plant.iter().map(|a| a.replace("{key}", &key)).collect();
    c.server.command(&args).expect("plant hostile value");
    // Planted values have no TTL; give them one so the key audit does not blame the store.
    c.server
        .command(&["PEXPIRE", key.as_str(), "600000"])
        .expect("PEXPIRE");
    let result = match op {
        Op::SessionGet => c
            .sessions
            .get(session_id.as_ref().expect("created"))
            .await
            .map(|s| format!("{s:?}")),
        Op::SessionCreate => c
            .sessions
            .create(session_for(&user, 10))
            .await
            .map(|_| "created".into()),
        Op::SessionDestroy => c
            .sessions
            .destroy(session_id.as_ref().expect("created"))
            .await
            .map(|existed| format!("existed: {existed}")),
        Op::DestroyAll => c
            .sessions
            .destroy_all_for_user(&user)
            .await
            .map(|n| format!("{n} destroyed")),
        Op::TokenGet => c.tokens.get(&token).await.map(|x| format!("{x:?}")),
        Op::TokenPut => c
            .tokens
            .put(&token, &claims(Duration::from_secs(3600)))
            .await
            .map(|o| format!("{o:?}")),
        Op::TokenRevoke => c
            .tokens
            .revoke(&token, None)
            .await
            .map(|r| format!("revoked: {r}")),
        Op::Check(_) => {
            let limiter = RateLimiter::new(
                c.redis.clone(),
                c.keys.clone(),
                [(endpoint.to_string(), limiter_rule)].into_iter().collect(),
                FailureMode::Open,
                IpPolicy::default(),
            )?;
            limiter.check(&ip, endpoint).await.map(|d| describe(&d))
        }
    };
    // Secrets of hostile rows: the session id, the key (which holds it) and the token.
    if let Err(e) = &result {
        let shown = format!("{e} {e:?}");
        let mut secrets = vec![token.clone()];
        if let Some(id) = &session_id {
            secrets.extend([id.expose().to_string(), key.clone()]);
        }
        if let Some(s) = secrets.iter().find(|s| shown.contains(s.as_str())) {
            panic!("error shows a secret ({s:?}): {shown}");
        }
    }
    result
}

/// Checks one outcome against its row; `None` when it matches.
fn verdict(row: &Row, outcome: &Result<String, Error>) -> Option<String> {
    if let (Some(secret), Err(e)) = (&row.secret, outcome) {
        let shown = format!("{e}\n{e:?}");
        if shown.contains(secret.as_str()) {
            return Some(format!("error shows the secret part of the input: {e}"));
        }
    }
    match (&row.expect, outcome) {
        (Expect::Ok, Ok(what)) if !what.starts_with("DEGRADED") => None,
        (Expect::Ok, Ok(what)) => Some(format!("expected accepted, got {what}")),
        (Expect::Ok, Err(e)) => Some(format!("expected accepted, got {}: {e}", variant(e))),
        (
            Expect::Err {
                variant: v,
                message,
            },
            Err(e),
        ) => {
            let actual = variant(e);
            let text = e.to_string();
            (!(actual.starts_with(v) && text.contains(message)))
                .then(|| format!("expected {v}* containing {message:?}, got {actual}: {text}"))
        }
        (
            Expect::Err {
                variant: v,
                message,
            },
            Ok(what),
        ) => Some(format!(
            "expected {v}* containing {message:?}, got Ok({})",
            what.chars().take(200).collect::<String>()
        )),
    }
}

/// Every key the suite left must fit the key grammar of `cache::keys`.
fn audit_keys(server: &RedisServer) -> Vec<String> {
    let mut conn = server.connect().expect("connect for SCAN");
    let mut cursor = "0".to_string();
    let mut bad = Vec::new();
    loop {
        let reply = conn
            .command(&[
                "SCAN",
                &cursor,
                "MATCH",
                &format!("{PREFIX}:*"),
                "COUNT",
                "500",
            ])
            .expect("SCAN");
        let parts = reply.as_array().expect("array");
        cursor = parts[0].as_str().expect("cursor").to_string();
        for key in parts[1].as_array().expect("keys") {
            let key = key.as_str().expect("utf-8 key").to_string();
            let rest = key.strip_prefix(&format!("{PREFIX}:")).expect("prefix");
            let tag = |s: &str| {
                s.len() == 22
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            let ok = if let Some(key) = rest.strip_prefix("session:") {
                // `<secret>.<deadline>.{<tag>}` is the key of the id `<secret>.<deadline>.<tag>`.
                key.strip_suffix('}')
                    .and_then(|k| k.rsplit_once(".{"))
                    .is_some_and(|(head, t)| SessionId::parse(&format!("{head}.{t}")).is_ok())
            } else if let Some(index) = rest.strip_prefix("user-sessions:") {
                index
                    .strip_prefix('{')
                    .and_then(|i| i.strip_suffix('}'))
                    .is_some_and(tag)
            } else if let Some(hash) = rest.strip_prefix("token:") {
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
            } else if let Some(r) = rest.strip_prefix("ratelimit:") {
                r.rsplit_once(':').is_some_and(|(ip, endpoint)| {
                    ["signin", "token"].contains(&endpoint)
                        && ip
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|a| a.to_string() == ip)
                })
            } else {
                false
            };
            if !ok {
                bad.push(key);
            }
        }
        if cursor == "0" {
            return bad;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_with_a_clear_error_and_no_secret() {
    let online = have(&["redis-server"]);
    let mut rows = offline_rows();
    let ctx = if online {
        let server = RedisServer::start(ServerConfig::default()).expect("start redis-server");
        let auth = RedisServer::start(ServerConfig::default().password(PW))
            .expect("start redis-server with a password");
        let free = localredis::free_port().expect("free port");
        rows.extend(online_rows(server.port(), auth.port(), free));
        let redis = connect(&server.url()).await;
        let keys = KeySchema::new(PREFIX).unwrap();
        let limiter = RateLimiter::new(
            redis.clone(),
            keys.clone(),
            [
                ("signin".to_string(), Rule::per_minute(5)),
                ("token".to_string(), Rule::per_minute(20)),
            ]
            .into_iter()
            .collect(),
            FailureMode::Closed,
            IpPolicy::default(),
        )
        .unwrap();
        // What a forged index lists exists, so the audit can show log-out-everywhere left it alone.
        for key in [FORGED_TOKEN_KEY, FORGED_OTHER_USER] {
            server
                .command(&["SET", key, "x", "PX", "600000"])
                .expect("SET");
        }
        let ctx = Arc::new(Ctx {
            sessions: SessionStore::new(redis.clone(), keys.clone(), SessionConfig::default())
                .unwrap(),
            tokens: TokenCache::new(redis.clone(), keys.clone()),
            limiter,
            keys,
            redis,
            server,
        });
        Some((ctx, auth))
    } else {
        None
    };

    let (mut failures, mut ran, mut skipped) = (Vec::new(), 0, 0);
    for row in &rows {
        if row.probe.needs_redis() && ctx.is_none() {
            skipped += 1;
            continue;
        }
        let handle = ctx.as_ref().map(|(c, _)| c.clone());
        // Its own task: a panic becomes a JoinError naming the row instead of ending the suite.
        let outcome = tokio::spawn(run(row.probe.clone(), handle)).await;
        ran += 1;
        let problem = match outcome {
            Err(join) => Some(format!("PANICKED: {join}")),
            Ok(outcome) => verdict(row, &outcome),
        };
        if let Some(p) = problem {
            failures.push(format!("- {} [{:?}]: {p}", row.name, row.probe));
        }
    }
    if let Some((ctx, _)) = &ctx {
        let forged = audit_keys(&ctx.server);
        if !forged.is_empty() {
            failures.push(format!("- keys outside the key grammar: {forged:?}"));
        }
        for key in [FORGED_TOKEN_KEY, FORGED_OTHER_USER] {
            if ctx.server.command(&["EXISTS", key]).expect("EXISTS") != Reply::Integer(1) {
                failures.push(format!("- {key}, listed by a forged index, was deleted"));
            }
        }
    }
    println!(
        "bad-input catalogue: {} rows, {ran} run, {skipped} skipped (no redis-server), {} failed",
        rows.len(),
        failures.len()
    );
    assert!(rows.len() >= 50, "the catalogue must keep at least 50 rows");
    assert!(
        failures.is_empty(),
        "{} of {ran} bad-input rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
