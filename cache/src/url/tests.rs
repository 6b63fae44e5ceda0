//! Table-driven vectors for the REDIS_URL grammar: every form the guide lists, the edge cases around
//! them, and the refusals with the message an operator sees.

use super::*;

fn node(host: &str, port: u16) -> Node {
    Node {
        host: host.into(),
        port,
    }
}

fn standalone(host: &str, port: u16, db: i64) -> Topology {
    Topology::Standalone {
        node: node(host, port),
        db,
    }
}

/// (input, tls, username, password, topology)
#[allow(clippy::type_complexity)]
#[rustfmt::skip]
fn valid_vectors() -> Vec<(
    &'static str,
    bool,
    Option<&'static str>,
    Option<&'static str>,
    Topology,
)> {
    let sentinels3 = vec![
        node("sentinel1", 26379),
        node("sentinel2", 26379),
        node("sentinel3", 26379),
    ];
    let cluster3 = vec![
        node("node1", 6379),
        node("node2", 6379),
        node("node3", 6379),
    ];
    vec![
        ("redis://localhost:6379", false, None, None, standalone("localhost", 6379, 0)),
        ("redis://localhost", false, None, None, standalone("localhost", 6379, 0)),
        ("redis://localhost/", false, None, None, standalone("localhost", 6379, 0)),
        ("redis://:password@localhost:6379", false, None, Some("password"), standalone("localhost", 6379, 0)),
        ("redis://user:password@host:6379", false, Some("user"), Some("password"), standalone("host", 6379, 0)),
        ("redis://localhost:6379/1", false, None, None, standalone("localhost", 6379, 1)),
        ("redis://localhost:6379/15", false, None, None, standalone("localhost", 6379, 15)),
        ("rediss://user:password@redis.example.com:6380", true, Some("user"), Some("password"), standalone("redis.example.com", 6380, 0)),
        ("redis://[::1]:6379", false, None, None, standalone("::1", 6379, 0)),
        ("redis://[::1]", false, None, None, standalone("::1", 6379, 0)),
        ("redis://[2001:db8::7]:7000/2", false, None, None, standalone("2001:db8::7", 7000, 2)),
        ("redis://:p%40ss%3Aw%2Frd@h:1", false, None, Some("p@ss:w/rd"), standalone("h", 1, 0)),
        ("redis://us%65r:pa%20ss@h", false, Some("user"), Some("pa ss"), standalone("h", 6379, 0)),
        ("redis://:p@ss@h:6379", false, None, Some("p@ss"), standalone("h", 6379, 0)),
        ("redis://user@h", false, Some("user"), None, standalone("h", 6379, 0)),
        ("REDIS://LOCALHOST:6379", false, None, None, standalone("localhost", 6379, 0)),
        ("redis://127.0.0.1:6379", false, None, None, standalone("127.0.0.1", 6379, 0)),
        ("redis://sentinel1:26379,sentinel2:26379,sentinel3:26379/mymaster", false, None, None, Topology::Sentinel { sentinels: sentinels3.clone(), service: "mymaster".into(), db: 0 }),
        ("redis://sentinel1,sentinel2,sentinel3/mymaster/2", false, None, None, Topology::Sentinel { sentinels: sentinels3.clone(), service: "mymaster".into(), db: 2 }),
        ("redis://s1:26379/mymaster", false, None, None, Topology::Sentinel { sentinels: vec![node("s1", 26379)], service: "mymaster".into(), db: 0 }),
        ("redis+sentinel://:pw@s1:5000,s2/my-master_1.x", false, None, Some("pw"), Topology::Sentinel { sentinels: vec![node("s1", 5000), node("s2", 26379)], service: "my-master_1.x".into(), db: 0 }),
        ("rediss+sentinel://u:p@[::1]:26379,[::2]/mymaster/3", true, Some("u"), Some("p"), Topology::Sentinel { sentinels: vec![node("::1", 26379), node("::2", 26379)], service: "mymaster".into(), db: 3 }),
        ("redis://node1:6379,node2:6379,node3:6379", false, None, None, Topology::Cluster { nodes: cluster3.clone() }),
        ("redis://node1,node2,node3", false, None, None, Topology::Cluster { nodes: cluster3.clone() }),
        ("redis+cluster://node1:6379", false, None, None, Topology::Cluster { nodes: vec![node("node1", 6379)] }),
        ("rediss+cluster://:pw@node1:6379,node2:6379,node3:6379", true, None, Some("pw"), Topology::Cluster { nodes: cluster3 }),
    ]
}

#[test]
fn valid_urls_parse_to_their_topology() {
    let vectors = valid_vectors();
    for (input, tls, user, password, topology) in &vectors {
        let url = RedisUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(url.tls, *tls, "{input}: tls");
        assert_eq!(url.username.as_deref(), *user, "{input}: username");
        assert_eq!(
            url.password.as_ref().map(Secret::expose),
            *password,
            "{input}: password"
        );
        assert_eq!(&url.topology, topology, "{input}: topology");
    }
}

#[test]
fn every_valid_url_round_trips_through_its_printer() {
    for (input, ..) in valid_vectors() {
        let url = RedisUrl::parse(input).unwrap();
        let printed = url.to_unredacted_string();
        let again =
            RedisUrl::parse(&printed).unwrap_or_else(|e| panic!("{input} -> {printed}: {e}"));
        assert_eq!(url, again, "{input} -> {printed}");
    }
}

#[test]
fn options_are_parsed_and_printed() {
    let url = RedisUrl::parse(
        "redis://s1,s2/mymaster?connect_timeout=250&response_timeout=1500&sentinel_username=sen&sentinel_password=s%3Acret&sentinel_quorum=2",
    )
    .unwrap();
    assert_eq!(url.options.sentinel_quorum, Some(2));
    assert_eq!(
        url.options.connect_timeout,
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        url.options.response_timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(url.options.sentinel_username.as_deref(), Some("sen"));
    assert_eq!(
        url.options.sentinel_password.as_ref().map(Secret::expose),
        Some("s:cret")
    );
    let shown = url.to_string();
    assert!(
        !shown.contains("s:cret") && !shown.contains("s%3Acret"),
        "{shown}"
    );
    assert_eq!(RedisUrl::parse(&url.to_unredacted_string()).unwrap(), url);
}

#[test]
#[rustfmt::skip]
fn invalid_urls_are_refused_with_the_expected_error() {
    let vectors: Vec<(&str, UrlError)> = vec![
        ("", UrlError::Empty),
        ("localhost:6379", UrlError::MissingScheme),
        ("http://localhost:6379", UrlError::UnknownScheme("http".into())),
        ("unix:///tmp/redis.sock", UrlError::UnknownScheme("unix".into())),
        ("redis://", UrlError::EmptyHost { position: 1 }),
        ("redis://:6379", UrlError::EmptyHost { position: 1 }),
        ("redis://a:6379,,b:6379", UrlError::EmptyHost { position: 2 }),
        ("redis://localhost:0", UrlError::BadPort { host: "localhost".into(), port: "0".into() }),
        ("redis://localhost:65536", UrlError::BadPort { host: "localhost".into(), port: "65536".into() }),
        ("redis://localhost:port", UrlError::BadPort { host: "localhost".into(), port: "port".into() }),
        ("redis://localhost:6379/-1", UrlError::BadDb("-1".into())),
        ("redis://localhost:6379/99999999999", UrlError::BadDb("99999999999".into())),
        ("redis://localhost:6379/1x", UrlError::BadDb("1x".into())),
        ("redis://n1:6379,n2:6379/1", UrlError::DbWithCluster("1".into())),
        ("redis+sentinel://s1:26379", UrlError::SentinelWithoutService),
        ("redis+cluster://n1,n2/mymaster", UrlError::ClusterWithPath("mymaster".into())),
        ("redis://s1/my*master", UrlError::BadServiceName("my*master".into())),
        ("redis://s1/mymaster/1/2", UrlError::BadPath("mymaster/1/2".into())),
        ("redis://h/1/2", UrlError::BadPath("1/2".into())),
        ("redis://a:1,rediss://b:2", UrlError::MixedSchemes("rediss".into())),
        ("redis://localhost:6379?timeout=5", UrlError::UnknownOption("timeout".into())),
        ("redis://localhost?connect_timeout=0", UrlError::BadOption { key: "connect_timeout".into(), expected: "milliseconds from 1 to 3600000" }),
        ("redis://localhost?response_timeout=abc", UrlError::BadOption { key: "response_timeout".into(), expected: "milliseconds from 1 to 3600000" }),
        ("redis://localhost#insecure", UrlError::Fragment),
        ("redis://local host", UrlError::Whitespace),
        ("redis://localhost\r\n", UrlError::Whitespace),
        ("redis://::1:6379", UrlError::BadHost { host: "::1:6379".into(), reason: "an IPv6 address must be written in brackets, e.g. [::1]:6379" }),
        ("redis://[::1:6379", UrlError::BadHost { host: "[::1:6379".into(), reason: "an IPv6 address needs a closing `]`" }),
        ("redis://[nothex]:6379", UrlError::BadHost { host: "[nothex]:6379".into(), reason: "expected an IPv6 address inside `[...]`" }),
        ("redis://:%FF@localhost", UrlError::BadEncoding("password")),
        ("redis://localhost?sentinel_password=x", UrlError::SentinelOptionsWithoutSentinel),
        ("redis://localhost?sentinel_quorum=1", UrlError::SentinelOptionsWithoutSentinel),
        ("redis://s1,s2/mymaster?sentinel_quorum=3", UrlError::BadOption { key: "sentinel_quorum".into(), expected: "a number from 1 to the number of sentinels in the URL" }),
        ("redis://s1,s2/mymaster?sentinel_quorum=0", UrlError::BadOption { key: "sentinel_quorum".into(), expected: "a number from 1 to the number of sentinels in the URL" }),
        ("redis://ho$t:6379", UrlError::BadHost { host: "ho$t".into(), reason: "expected a DNS name, an IPv4 address or [IPv6] (an unbracketed IPv6 address needs [ ])" }),
    ];
    for (input, expected) in vectors {
        match RedisUrl::parse(input) {
            Ok(url) => panic!("{input:?} parsed as {url:?}, expected {expected:?}"),
            Err(e) => assert_eq!(e, expected, "{input:?}"),
        }
    }
}

#[test]
fn passwords_never_appear_in_display_debug_json_or_errors() {
    let secret = "Sup3r-S3cret-Pw";
    let inputs = [
        format!("redis://:{secret}@localhost:6379"),
        format!("rediss://admin:{secret}@redis.example.com:6380/2"),
        format!("redis://:{secret}@s1,s2/mymaster?sentinel_password={secret}"),
        format!("redis://:{secret}@n1,n2,n3"),
    ];
    for input in &inputs {
        let url = RedisUrl::parse(input).unwrap();
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
        ] {
            assert!(!shown.contains(secret), "leaked in {shown}");
        }
        let shown = url.to_string();
        assert!(shown.contains(":***@"), "{shown}");
    }
    let refused = [
        format!("redis://:{secret}@localhost:99999"),
        format!("redis://:{secret}@localhost/-3"),
        format!("redis://:{secret}@n1,n2/4"),
        format!("foo{secret}://x"),
        format!("redis:{secret}@host"),
        format!("redis://:{secret}@host?oops{secret}=1"),
        format!("redis://a,redis://:{secret}@b"),
        format!("redis://:{secret}@h:6379/1/x"),
    ];
    for input in &refused {
        let err = RedisUrl::parse(input).expect_err(input);
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains(secret), "leaked in error {msg}");
    }
}

#[test]
fn display_is_canonical() {
    let cases = [
        ("redis://localhost", "redis://localhost:6379"),
        ("redis://u:p@h/3", "redis://u:***@h:6379/3"),
        (
            "redis://s1,s2/mymaster",
            "redis://s1:26379,s2:26379/mymaster",
        ),
        ("redis://[::1]", "redis://[::1]:6379"),
        ("redis+cluster://n1", "redis+cluster://n1:6379"),
    ];
    for (input, shown) in cases {
        assert_eq!(RedisUrl::parse(input).unwrap().to_string(), shown);
    }
}
