//! Secrets never leave loadgen (issue 6): with a password-bearing `REDIS_URL` against a real
//! redis-server that requires it, `loadgen run` (the smoke scenario, shortened) and
//! `loadgen doctor` (text and JSON) are run, and every byte they printed (stdout, stderr) and wrote
//! (the whole results directory, recursively: JSON, Markdown, HTML, SVG, hgrm) is searched for:
//!
//! - the password, raw and percent-encoded (upper- and lower-case hex);
//! - every session id the run created, read back from Redis after the run as
//!   `loadgen:session:<id>` keys (ids are the one secret loadgen generates that Redis shows);
//! - a session id planted without a TTL under `authority:session:`, where `doctor` counts
//!   immortal keys;
//! - anything shaped like an access token or the random part of a session id (43 URL-safe
//!   base64 characters on their own): tokens are stored only as SHA-256 hashes, so the ones the
//!   run generated cannot be read back, and their shape is what can be looked for.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use localredis::{RedisServer, ServerConfig};

/// Characters that need percent-encoding in user-info, so the encoded form differs from the raw.
const PASSWORD: &str = "lg/Pw:7@Secr#t%x";

/// A syntactically valid session id that no run generates: planted, never to be printed.
const PLANTED_ID: &str = "PLANTEDplantedPLANTEDplantedPLANTEDplanted0.1999999999999";

fn encode(raw: &str, upper: bool) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ if upper => format!("%{b:02X}"),
            _ => format!("%{b:02x}"),
        })
        .collect()
}

/// Everything a run printed or wrote, as (where, text).
fn outputs(name: &str, o: &Output, out_dir: Option<&Path>) -> Vec<(String, String)> {
    let mut all = vec![
        (
            format!("{name} stdout"),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ),
        (
            format!("{name} stderr"),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
    ];
    if let Some(dir) = out_dir {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    let mut text = String::from_utf8_lossy(&bytes).into_owned();
                    if path.extension().is_some_and(|e| e == "hlog") {
                        text = without_histograms(&text);
                    }
                    all.push((path.display().to_string(), text));
                }
            }
        }
    }
    all
}

/// An HdrHistogram interval log without its encoded histograms (the last field of each interval
/// line): they are compressed counts, base64 that forms 43-character "token-shaped" runs by
/// chance (CI saw four in one run). Comments, tags and times are still searched.
fn without_histograms(hlog: &str) -> String {
    hlog.lines()
        .map(|l| match l.rsplit_once(',') {
            Some((head, _)) if !l.starts_with('#') => head,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Maximal runs of URL-safe base64 characters exactly 43 long: a 256-bit token or the random
/// part of a session id.
fn token_shaped(text: &str) -> Vec<&str> {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.split(|c: char| !b64(c))
        .filter(|run| run.len() == 43)
        .collect()
}

/// The session ids under `prefix:session:`, read with `SCAN`.
fn session_ids(server: &RedisServer, prefix: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut cursor = "0".to_string();
    let pattern = format!("{prefix}:session:*");
    loop {
        let reply = server
            .command(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])
            .unwrap();
        let page = reply.as_array().unwrap();
        cursor = page[0].as_str().unwrap().to_string();
        for key in page[1].as_array().unwrap() {
            let key = key.as_str().unwrap();
            ids.insert(key[pattern.len() - 1..].to_string());
        }
        if cursor == "0" {
            return ids;
        }
    }
}

#[test]
fn run_and_doctor_never_print_or_write_the_password_tokens_or_session_ids() {
    let Some(()) = redis_available() else { return };
    let started = Instant::now();
    let server = RedisServer::start(ServerConfig::default().password(PASSWORD)).unwrap();
    let url = server.url();
    assert!(url.contains(&encode(PASSWORD, true)), "{url}");
    server
        .command(&["SET", &format!("authority:session:{PLANTED_ID}"), "{}"])
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let mut args = vec![
        "run",
        "scenarios/load/smoke.toml",
        "--out",
        &out_s,
        "--set",
        "keyspace.users=200",
    ];
    args.extend(QUICK);
    let run = loadgen(&args).env("REDIS_URL", &url).output().unwrap();
    let (stdout, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    let results = results_dir(&stdout);
    assert!(results.join("summary.json").is_file());
    let mut printed = outputs("run", &run, Some(out.path()));

    let doctor = loadgen(&["doctor"])
        .env("REDIS_URL", &url)
        .output()
        .unwrap();
    let doctor_json = loadgen(&["doctor", "--format", "json", "--redis-url", &url])
        .output()
        .unwrap();
    for (name, o) in [("doctor", &doctor), ("doctor --format json", &doctor_json)] {
        let (stdout, stderr) = text(o);
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{name}: {stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("authority:* keys have no TTL") || stdout.contains("immortal"),
            "{name} did not audit the planted key: {stdout}"
        );
        printed.extend(outputs(name, o, None));
    }

    let ids = session_ids(&server, "loadgen");
    assert!(ids.len() >= 200, "the run created {} sessions", ids.len());
    let mut forbidden: Vec<(String, String)> = vec![
        ("the password".into(), PASSWORD.into()),
        ("the encoded password".into(), encode(PASSWORD, true)),
        (
            "the lower-case encoded password".into(),
            encode(PASSWORD, false),
        ),
        ("the planted session id".into(), PLANTED_ID.into()),
        (
            "the planted session id's secret".into(),
            PLANTED_ID[..43].into(),
        ),
    ];
    forbidden.extend(
        ids.iter()
            .map(|id| ("a session id".to_string(), id.clone())),
    );
    forbidden.extend(
        ids.iter()
            .map(|id| ("a session id's secret".to_string(), id[..43].to_string())),
    );

    let mut leaks = Vec::new();
    let bytes: usize = printed.iter().map(|(_, t)| t.len()).sum();
    for (place, text) in &printed {
        for (what, secret) in &forbidden {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{place}: {what}"));
            }
        }
        for t in token_shaped(text) {
            leaks.push(format!("{place}: token-shaped `{t}`"));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    assert!(printed.len() >= 8, "read only {printed:?}");
    eprintln!(
        "searched {} outputs ({bytes} bytes) for {} secrets in {:?}",
        printed.len(),
        forbidden.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
