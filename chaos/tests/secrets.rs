//! Secrets never leave chaos (issue 6): `chaos run` on local processes with a short standalone
//! experiment whose primary is killed and restarted (so connection errors are recorded too), then
//! every byte it printed (stdout, stderr) and wrote (the whole results directory, recursively) is
//! searched for:
//!
//! - the password chaos generates for the run (random per run, never printed). The test learns it
//!   the way an attacker on the host could: the node's `redis.conf`, in the temporary directory
//!   that `TMPDIR` points the run at;
//! - every session id the workload created: with that password the test `SCAN`s the node for
//!   `authority:session:<id>` keys every 100 ms while the run goes on;
//! - any access token: the generator's tokens are `chaos-token-<hex>`, stored only as SHA-256
//!   hashes, so their prefix is what can be looked for; and anything shaped like the random part
//!   of a session id (43 URL-safe base64 characters on their own).

use std::collections::BTreeSet;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cache::KeySchema;
use localredis::resp::Connection;

const EXPERIMENT: &str = r#"
name = "secrets-scan"
description = "a short run whose outputs are searched for secrets"
duration = "3s"

[topology]
kind = "standalone"

[workload]
clients = 2
interval = "10ms"
session_ttl = "600s"
short_session_ttl = "1s"
ttl_tolerance = "1s"
wait_replicas = 0
wait_timeout = "100ms"
response_timeout = "500ms"

[[fault]]
at = "1s"
action = "kill"
target = "primary"

[[fault]]
at = "1500ms"
action = "restart"
target = "faulted"
"#;

/// The data node's port and password, from the `redis.conf` localredis wrote under `tmp`.
fn node_config(tmp: &Path) -> Option<(u16, String)> {
    for entry in std::fs::read_dir(tmp).ok()? {
        let dir = entry.ok()?.path();
        let name = dir.file_name()?.to_string_lossy().into_owned();
        if !name.starts_with("localredis-server-") {
            continue;
        }
        let conf = std::fs::read_to_string(dir.join("redis.conf")).ok()?;
        let value = |key: &str| {
            conf.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().trim_matches('"').to_string())
        };
        return Some((value("port ")?.parse().ok()?, value("requirepass ")?));
    }
    None
}

/// Adds the ids of every `authority:session:<id>` key on the node to `ids`.
fn scan_sessions(port: u16, password: &str, ids: &mut BTreeSet<String>) -> Option<()> {
    let keys = KeySchema::default();
    let (pattern, prefix) = (keys.pattern("session"), keys.session(""));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = Connection::open(addr, Duration::from_millis(200)).ok()?;
    c.command(&["AUTH", password]).ok()?;
    let mut cursor = "0".to_string();
    loop {
        let reply = c
            .command(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])
            .ok()?;
        let [next, keys] = reply.as_array()? else {
            return None;
        };
        cursor = next.as_str()?.to_string();
        for key in keys.as_array()? {
            if let Some(id) = key.as_str().and_then(|k| k.strip_prefix(&prefix)) {
                ids.insert(id.to_string());
            }
        }
        if cursor == "0" {
            return Some(());
        }
    }
}

/// Every file under `dir`, recursively, as (path, text).
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                out.push((path, text));
            }
        }
    }
    out
}

#[test]
fn a_run_never_prints_or_writes_its_password_tokens_or_session_ids() {
    if let Err(reason) = localredis::require_binary_for_test("redis-server") {
        eprintln!("skipped: {reason}");
        return;
    }
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let (nodes, results) = (work.path().join("nodes"), work.path().join("results"));
    std::fs::create_dir(&nodes).unwrap();
    let experiment = work.path().join("secrets-scan.toml");
    std::fs::write(&experiment, EXPERIMENT).unwrap();
    let (stdout_path, stderr_path) = (work.path().join("stdout"), work.path().join("stderr"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .arg("run")
        .arg(&experiment)
        .args(["--backend", "process", "--results"])
        .arg(&results)
        .env("TMPDIR", &nodes)
        .env_remove("REDIS_URL")
        .stdout(Stdio::from(File::create(&stdout_path).unwrap()))
        .stderr(Stdio::from(File::create(&stderr_path).unwrap()))
        .spawn()
        .unwrap();

    let mut node = None;
    let mut ids = BTreeSet::new();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("chaos run did not finish within 30 s");
        }
        if node.is_none() {
            node = node_config(&nodes);
        }
        if let Some((port, password)) = &node {
            scan_sessions(*port, password, &mut ids);
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    let (_, password) = node.expect("the node's redis.conf was never seen");
    assert_eq!(password.len(), 32, "a random hex password");
    assert!(ids.len() >= 20, "saw only {} session ids", ids.len());

    let mut outputs = vec![
        (PathBuf::from("stdout"), stdout),
        (PathBuf::from("stderr"), stderr),
    ];
    outputs.extend(files(&results));
    let names: Vec<String> = outputs
        .iter()
        .filter_map(|(p, _)| Some(p.file_name()?.to_string_lossy().into_owned()))
        .collect();
    for expected in ["report.json", "history.json", "report.md"] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in {names:?}"
        );
    }

    // Hex is unchanged by percent-encoding; the upper-case form is what an encoder might print.
    let mut forbidden = vec![
        password.clone(),
        password.to_uppercase(),
        "chaos-token-".into(),
    ];
    forbidden.extend(ids.iter().cloned());
    forbidden.extend(ids.iter().map(|id| id[..43].to_string()));
    let mut leaks = Vec::new();
    for (place, text) in &outputs {
        for secret in &forbidden {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{}: `{secret}`", place.display()));
            }
        }
        let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        for run in text.split(|c: char| !b64(c)).filter(|r| r.len() == 43) {
            leaks.push(format!("{}: session-id-shaped `{run}`", place.display()));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    let bytes: usize = outputs.iter().map(|(_, t)| t.len()).sum();
    eprintln!(
        "searched {} outputs ({bytes} bytes) for the password and {} session ids in {:?}",
        outputs.len(),
        ids.len(),
        started.elapsed()
    );
}
