//! End-to-end checks against the real `redis-server` / `redis-sentinel` /
//! `redis-cli` on PATH. Each test skips (prints `skipped: …`) when a binary is
//! missing, except under `CI=true`, where a missing binary fails the run.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use localredis::resp::{Connection, Reply};
use localredis::{
    Cluster, Error, Persistence, RedisServer, Sentinel, SentinelConfig, ServerConfig, TlsFiles,
    find_binary, require_binary_for_test,
};

/// True if every binary is present; otherwise prints why the test is skipped.
fn have(binaries: &[&str]) -> bool {
    for name in binaries {
        if let Err(reason) = require_binary_for_test(name) {
            eprintln!("skipped: {reason}");
            return false;
        }
    }
    true
}

/// Poll `check` every 20 ms until it returns `Some`, for at most `timeout`.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn text(reply: Result<Reply, Error>) -> String {
    reply
        .expect("command failed")
        .as_str()
        .expect("not a text reply")
        .to_string()
}

fn process_exists(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok()
}

#[test]
fn server_starts_answers_ping_and_cleans_up_on_drop() {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(ServerConfig::default()).expect("start");
    assert_eq!(text(server.command(&["PING"])), "PONG");
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert!(server.log_path().exists());
    let conf = std::fs::read_to_string(server.dir().join("redis.conf")).unwrap();
    assert!(
        conf.contains("save \"\"") && conf.contains("appendonly no"),
        "{conf}"
    );

    let (pid, dir) = (server.pid().expect("pid"), server.dir().to_path_buf());
    drop(server);
    assert!(!dir.exists(), "temp dir left behind");
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived its handle"
    );
}

#[test]
fn password_and_acl_users_are_configured_and_redacted() {
    if !have(&["redis-server"]) {
        return;
    }
    let password = r#"s3cret "quoted" pass\"#;
    let server = RedisServer::start(
        ServerConfig::default()
            .password(password)
            .acl_user("alice", "wonder land"),
    )
    .expect("start");

    let mut anonymous = Connection::open(addr(server.port()), Duration::from_secs(2)).unwrap();
    match anonymous.command(&["PING"]) {
        Err(Error::Redis { message, .. }) => assert!(message.starts_with("NOAUTH"), "{message}"),
        other => panic!("expected NOAUTH, got {other:?}"),
    }
    assert_eq!(text(server.command(&["PING"])), "PONG");

    let mut alice = Connection::open(addr(server.port()), Duration::from_secs(2)).unwrap();
    assert_eq!(text(alice.command(&["AUTH", "alice", "wonder land"])), "OK");
    assert_eq!(text(alice.command(&["ACL", "WHOAMI"])), "alice");

    assert_eq!(
        server.url(),
        format!(
            "redis://:s3cret%20%22quoted%22%20pass%5C@127.0.0.1:{}",
            server.port()
        )
    );
    let debug = format!("{server:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("wonder"),
        "{debug}"
    );
}

#[test]
fn kill_then_restart_keeps_saved_data_and_stop_does_a_final_save() {
    if !have(&["redis-server"]) {
        return;
    }
    let mut server = RedisServer::start(ServerConfig::default().persistence(Persistence::Rdb {
        save: "3600 1".into(),
    }))
    .expect("start");
    let port = server.port();
    assert_eq!(text(server.command(&["SET", "saved", "yes"])), "OK");
    assert_eq!(text(server.command(&["SAVE"])), "OK");
    assert_eq!(text(server.command(&["SET", "unsaved", "lost"])), "OK");

    server.kill().expect("kill");
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(matches!(server.command(&["PING"]), Err(Error::Io { .. })));
    assert!(matches!(server.pause(), Err(Error::NotRunning { .. })));

    server.restart().expect("restart");
    assert_eq!(server.port(), port);
    assert_eq!(text(server.command(&["GET", "saved"])), "yes");
    assert_eq!(server.command(&["GET", "unsaved"]).unwrap(), Reply::Nil);

    // SIGTERM makes Redis save before exiting when save points are configured.
    assert_eq!(text(server.command(&["SET", "at-shutdown", "kept"])), "OK");
    server.stop().expect("stop");
    assert!(!server.is_running());
    server.restart().expect("second restart");
    assert_eq!(text(server.command(&["GET", "at-shutdown"])), "kept");
}

#[test]
fn pause_makes_ping_time_out_and_resume_brings_it_back() {
    if !have(&["redis-server"]) {
        return;
    }
    let mut server = RedisServer::start(ServerConfig::default()).expect("start");
    server.pause().expect("pause");
    assert!(server.is_running(), "a paused process is still running");
    let timeout = Duration::from_millis(300);
    // The kernel completes the handshake for a stopped process; the reply never comes.
    let mut conn = Connection::open(addr(server.port()), timeout).expect("connect while paused");
    match conn.command(&["PING"]) {
        Err(Error::Timeout { after, .. }) => assert_eq!(after, timeout),
        other => panic!("expected a timeout from a paused server, got {other:?}"),
    }
    server.resume().expect("resume");
    // The queued PING is answered once the process runs again.
    let mut conn = Connection::open(addr(server.port()), Duration::from_secs(2)).unwrap();
    assert_eq!(text(conn.command(&["PING"])), "PONG");

    // A graceful stop works on a paused process too (SIGTERM + SIGCONT).
    server.pause().expect("pause again");
    server.stop().expect("stop while paused");
    assert!(!server.is_running());
}

#[test]
fn replica_follows_primary() {
    if !have(&["redis-server"]) {
        return;
    }
    let primary = RedisServer::start(ServerConfig::default().password("pw")).expect("primary");
    let replica = RedisServer::start(
        ServerConfig::default()
            .password("pw")
            .replica_of("127.0.0.1", primary.port()),
    )
    .expect("replica");
    eventually("master_link_status:up", Duration::from_secs(10), || {
        let info = text(replica.command(&["INFO", "replication"]));
        info.contains("master_link_status:up").then_some(())
    });
    assert_eq!(text(primary.command(&["SET", "k", "v"])), "OK");
    eventually("the write to replicate", Duration::from_secs(5), || {
        (replica.command(&["GET", "k"]).ok()? == Reply::Bulk(b"v".to_vec())).then_some(())
    });
}

#[test]
fn sentinel_sees_the_primary_and_survives_restart() {
    if !have(&["redis-server"]) {
        return;
    }
    let primary =
        RedisServer::start(ServerConfig::default().password("sentinel-secret")).expect("primary");
    let mut sentinel =
        Sentinel::start(SentinelConfig::monitoring("mymaster", &primary)).expect("sentinel");
    let expected = Reply::Array(vec![
        Reply::Bulk(b"127.0.0.1".to_vec()),
        Reply::Bulk(primary.port().to_string().into_bytes()),
    ]);
    let ask = |s: &Sentinel| s.command(&["SENTINEL", "get-master-addr-by-name", "mymaster"]);
    assert_eq!(ask(&sentinel).unwrap(), expected);
    assert!(
        !format!("{sentinel:?}").contains("sentinel-secret"),
        "password in Debug"
    );

    sentinel.restart().expect("restart sentinel");
    assert_eq!(ask(&sentinel).unwrap(), expected);
    let rewritten = std::fs::read_to_string(sentinel.dir().join("sentinel.conf")).unwrap();
    assert!(
        rewritten.contains("sentinel myid"),
        "not rewritten: {rewritten}"
    );
}

#[test]
fn cluster_of_three_reaches_state_ok() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let cluster = Cluster::start(3, ServerConfig::default()).expect("cluster");
    assert_eq!(cluster.nodes.len(), 3);
    for node in &cluster.nodes {
        assert!(text(node.command(&["CLUSTER", "INFO"])).contains("cluster_state:ok"));
    }
    let hosts: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    assert_eq!(cluster.url(), format!("redis://{}", hosts.join(",")));
}

#[test]
fn cluster_needs_three_primaries() {
    assert!(matches!(
        Cluster::start(2, ServerConfig::default()),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn tls_server_starts_with_generated_certificates() {
    if !have(&["redis-server"]) {
        return;
    }
    let tls = TlsFiles::generate(&[]).expect("generate certificates");
    for file in [&tls.ca_cert, &tls.cert, &tls.key] {
        assert!(file.exists(), "{} missing", file.display());
    }
    let server = RedisServer::start(ServerConfig::default().tls(tls.clone())).expect("start");
    TcpStream::connect(addr(server.port())).expect("TLS port accepts TCP");
    assert!(server.url().starts_with("rediss://127.0.0.1:"));
    assert!(matches!(
        server.command(&["PING"]),
        Err(Error::TlsUnsupported { .. })
    ));
}

#[test]
fn bad_directive_reports_the_log_tail() {
    if !have(&["redis-server"]) {
        return;
    }
    let err = RedisServer::start(ServerConfig::default().directive("no-such-directive", "yes"))
        .expect_err("redis must refuse an unknown directive");
    match &err {
        Error::Exited { log_tail, .. } => assert!(log_tail.contains("Bad directive"), "{err}"),
        other => panic!("expected Exited, got {other:?}"),
    }
}

#[test]
fn taken_fixed_port_is_reported_as_port_in_use() {
    if !have(&["redis-server"]) {
        return;
    }
    let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = holder.local_addr().unwrap().port();
    match RedisServer::start(ServerConfig::default().port(port)) {
        Err(Error::PortInUse { port: p, .. }) => assert_eq!(p, port),
        other => panic!("expected PortInUse, got {other:?}"),
    }
}

#[test]
fn missing_binary_error_says_how_to_install() {
    let err = find_binary("localredis-no-such-binary").unwrap_err();
    assert!(matches!(err, Error::BinaryMissing { .. }), "{err:?}");
    let err = find_binary("/nonexistent/redis-cli").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("/nonexistent/redis-cli not found on PATH"),
        "{msg}"
    );
    assert!(msg.contains("apt-get install redis-tools"), "{msg}");
    assert!(msg.contains("brew install redis"), "{msg}");
}

#[test]
fn tls_cluster_with_password_reaches_state_ok() {
    if !have(&["redis-server", "redis-cli"]) {
        return;
    }
    let tls = TlsFiles::generate(&[]).expect("generate certificates");
    let base = ServerConfig::default().password("cluster pw").tls(tls);
    let cluster = Cluster::start(3, base).expect("TLS cluster");
    assert!(
        cluster
            .url()
            .starts_with("rediss://:cluster%20pw@127.0.0.1:"),
        "{}",
        cluster.url()
    );
}

#[test]
fn server_outlives_the_thread_that_started_it() {
    if !have(&["redis-server"]) {
        return;
    }
    // PR_SET_PDEATHSIG fires when the forking *thread* exits; localredis forks
    // from a long-lived thread so that this does not kill the server.
    let server = thread::spawn(|| RedisServer::start(ServerConfig::default()))
        .join()
        .expect("thread")
        .expect("start");
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        assert_eq!(text(server.command(&["PING"])), "PONG");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Set in the child process of `servers_die_with_their_parent_process`.
const ORPHAN_ROLE: &str = "LOCALREDIS_TEST_ORPHAN_PARENT";

#[test]
fn servers_die_with_their_parent_process() {
    if std::env::var_os(ORPHAN_ROLE).is_some() {
        // Child role: start a server, report its pid, wait to be SIGKILLed.
        let server = RedisServer::start(ServerConfig::default()).expect("start");
        println!("redis-pid={}", server.pid().expect("pid"));
        std::io::Write::flush(&mut std::io::stdout()).unwrap();
        loop {
            thread::park();
        }
    }
    if !have(&["redis-server"]) || !cfg!(target_os = "linux") {
        return;
    }
    // The child's temp dir cannot be cleaned up by a SIGKILLed process, so
    // point its TMPDIR at ours.
    let tmp = tempfile::tempdir().unwrap();
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "servers_die_with_their_parent_process",
            "--nocapture",
        ])
        .env(ORPHAN_ROLE, "1")
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(parent.stdout.take().unwrap());
    let pid: u32 = std::io::BufRead::lines(stdout)
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("redis-pid=").map(|p| p.parse().unwrap()))
        .expect("child reported no redis pid");
    assert!(process_exists(pid));
    parent.kill().unwrap(); // SIGKILL: no Drop runs in the parent
    parent.wait().unwrap();
    eventually(
        "the orphaned redis-server to die",
        Duration::from_secs(5),
        || (!process_exists(pid)).then_some(()),
    );
}

#[test]
fn proxy_forwards_delays_stalls_and_loses_replies() {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(ServerConfig::default()).expect("start");
    let proxy = localredis::Proxy::start(server.port()).expect("proxy");
    let open = |timeout| Connection::open(addr(proxy.port()), timeout).expect("connect");
    let mut plain = open(Duration::from_secs(2));
    assert_eq!(text(plain.command(&["SET", "k", "1"])), "OK");

    // Delayed replies arrive late but in order.
    proxy.delay_replies(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(text(plain.command(&["GET", "k"])), "1");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    proxy.delay_replies(Duration::ZERO);

    // A lost reply: the command ran, the client sees its connection closed.
    proxy.lose_next_reply();
    assert!(plain.command(&["INCR", "k"]).is_err());
    let mut direct = server.connect().expect("direct");
    assert_eq!(text(direct.command(&["GET", "k"])), "2");

    // Stalled connections stay open and silent; new ones work.
    let mut stalled = open(Duration::from_millis(300));
    assert_eq!(text(stalled.command(&["PING"])), "PONG");
    proxy.stall_open_connections();
    assert!(matches!(
        stalled.command(&["PING"]),
        Err(Error::Timeout { .. })
    ));
    assert_eq!(
        text(open(Duration::from_secs(2)).command(&["PING"])),
        "PONG"
    );
}
