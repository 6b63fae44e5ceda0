//! `loadgen run` as an operator runs it: the real binary against real redis-server processes
//! (started here with `localredis`), checking exit codes, results files, invariants, and that
//! nothing secret is ever printed. Durations are cut short with `--duration`/`--set`; nothing here
//! asserts a throughput or a latency.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use localredis::{RedisServer, ServerConfig};

#[test]
fn a_run_against_a_password_protected_server_writes_every_file_and_no_secret() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default().password("s3cret-pw")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let url = server.url();
    let mut args = vec![
        "run",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--out",
    ];
    let out_s = out.path().display().to_string();
    args.push(&out_s);
    args.extend(QUICK);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let dir = results_dir(&stdout);
    assert!(dir.starts_with(out.path()));
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("smoke-") && name.ends_with('Z'), "{name}");
    for f in [
        "summary.json",
        "report.md",
        "report.html",
        "goose-report.html",
        "latency.svg",
        "latency-page_view.hgrm",
        "latency-page_view-service.hgrm",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    let s = summary(&dir);
    assert_eq!(s["schema_version"], 2);
    assert!(s["ops"]["all"]["count"].as_u64().unwrap() > 0);
    assert!(
        s["ops"]["page_view"]["response"]["p99_us"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        s["environment"]["calibration"]["ops_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        s["environment"]["redis_version"]
            .as_str()
            .unwrap()
            .starts_with(|c: char| c.is_ascii_digit())
    );
    assert!(
        !s["series"]["throughput"]["page_view"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        s["redis"]["bytes_per_key"]["session"]["mean_bytes"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        s["redis"]["commandstats"]["evalsha"]["calls"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(s["slo"]["passed"], true);
    assert!(s["target"]["url"].as_str().unwrap().contains("***"));
    // The password appears nowhere: not in any results file, not on stdout or stderr.
    assert!(!stdout.contains("s3cret-pw") && !stderr.contains("s3cret-pw"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let body = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        assert!(!body.contains("s3cret-pw"), "password in {}", p.display());
    }
    let hgrm = std::fs::read_to_string(dir.join("latency-page_view.hgrm")).unwrap();
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(
        std::fs::read_to_string(dir.join("latency.svg"))
            .unwrap()
            .contains("<polyline")
    );
}

#[test]
fn without_a_url_a_throwaway_server_is_started_and_removed() {
    let Some(()) = redis_available() else { return };
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let mut args = vec!["run", "scenarios/load/smoke.toml", "--out", &out_s];
    args.extend(QUICK);
    // The controlled slowdown a regression gate's self-test uses.
    args.extend(["--inject-delay", "5ms"]);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let port = throwaway_port(&stderr);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server on {port} outlived loadgen"
    );
    let s = summary(&results_dir(&stdout));
    assert_eq!(s["target"]["throwaway"], true);
    assert_eq!(s["run"]["inject_delay_us"], 5000);
    let p50 = s["ops"]["page_view"]["service"]["p50_us"].as_u64().unwrap();
    assert!(
        p50 >= 5000,
        "the injected 5 ms is inside the service time: p50 {p50} µs"
    );
}

#[test]
fn an_slo_that_cannot_hold_fails_the_run_with_exit_1() {
    let Some(()) = redis_available() else { return };
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let mut args = vec!["run", "scenarios/load/smoke.toml", "--out", &out_s];
    args.extend(QUICK);
    args.extend(["--set", "slo.latency.0.max=1us"]);
    // Paced (open model) this time.
    args.extend(["--rate", "400"]);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("verdict: FAIL: all p99 response time"),
        "{stdout}"
    );
    let s = summary(&results_dir(&stdout));
    assert_eq!(s["slo"]["passed"], false);
    assert_eq!(s["run"]["model"], "open");
    assert_eq!(s["run"]["target_rate"], 400.0);
    let report = std::fs::read_to_string(results_dir(&stdout).join("report.md")).unwrap();
    assert!(report.contains("**FAIL**"));
}

#[test]
fn a_tiny_maxmemory_with_allkeys_lru_reports_lost_sessions() {
    let Some(()) = redis_available() else { return };
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("evict.toml");
    std::fs::write(
        &scenario,
        r#"
[load]
users = 8
duration = "2s"

[keyspace]
users = 3000
sessions_per_user = 2
payload = 2048

[mix]
page_view = 90
api_call = 10

[redis]
maxmemory = "4mb"
maxmemory_policy = "allkeys-lru"
"#,
    )
    .unwrap();
    let out_s = dir.path().join("results").display().to_string();
    let o = run(&["run", &scenario.display().to_string(), "--out", &out_s]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    let s = summary(&results_dir(&stdout));
    let lost = s["invariants"]["lost_sessions"].as_u64().unwrap();
    assert!(lost > 0, "{}", s["invariants"]);
    assert!(s["redis"]["deltas"]["evicted_keys"].as_f64().unwrap() > 0.0);
    assert!(stdout.contains("verdict: FAIL: lost sessions"), "{stdout}");
}

#[test]
fn ctrl_c_stops_the_run_writes_results_and_removes_the_server() {
    let Some(()) = redis_available() else { return };
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let mut child = loadgen(&[
        "run",
        "scenarios/load/smoke.toml",
        "--duration",
        "60s",
        "--out",
        &out_s,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait (bounded) until the load is running, as a person would before pressing Ctrl-C.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("running:") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadgen never started the load:\n{seen}");
        }
        seen.push_str(&line);
    }
    let port = throwaway_port(&seen);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let started = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopping took {:?}",
        started.elapsed()
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(130), "{stdout}");
    let s = summary(&results_dir(&stdout));
    assert_eq!(s["run"]["interrupted"], true);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server on {port} outlived loadgen"
    );
}

#[test]
fn a_scenario_that_never_reads_a_session_reports_lost_sessions_as_not_checked() {
    let Some(()) = redis_available() else { return };
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let args = [
        "run",
        "scenarios/load/ratelimit-abuse.toml",
        "--out",
        &out_s,
        "--duration",
        "2s",
        "--set",
        "load.warmup=0s",
    ];
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{stdout}\n{stderr}");
    let s = summary(&results_dir(&stdout));
    let verdict = |id: &str| {
        s["slo"]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} verdict"))
    };
    // Logins create sessions; nothing reads or destroys one: nothing was judged.
    let lost = verdict("lost_sessions");
    assert_eq!(lost["status"], "not_checked", "{lost}");
    assert_eq!(lost["checked"], 0, "{lost}");
    // The limiter was judged, on every decision.
    let over = verdict("ratelimit_over_admissions");
    assert!(over["checked"].as_u64().unwrap() > 0, "{over}");
    assert!(stdout.contains("not checked: lost sessions"), "{stdout}");
    // Required, the same run fails.
    let mut args = args.to_vec();
    args.extend(["--set", "slo.require=[\"lost_sessions\"]"]);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("lost sessions not checked (required)"),
        "{stdout}"
    );
}

/// goose builds an HTTP client per user even though loadgen never speaks HTTP; where it cannot
/// (no root certificates, as in an image built FROM scratch without them) every user fails to
/// start. That is no verdict: exit 3 naming goose, not a FAIL over zero operations.
#[test]
fn a_generator_that_cannot_start_its_users_is_an_error_not_a_verdict() {
    let Some(()) = redis_available() else { return };
    let out = tempfile::tempdir().unwrap();
    let empty = out.path().join("no-certificates.pem");
    std::fs::write(&empty, "").unwrap();
    let o = loadgen(
        &[
            &["run", "scenarios/load/smoke.toml", "--out"][..],
            &[out.path().to_str().unwrap()],
            &QUICK,
        ]
        .concat(),
    )
    .env("SSL_CERT_FILE", &empty)
    .env("SSL_CERT_DIR", out.path().join("absent"))
    .output()
    .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("goose could not run the load, nothing was measured"),
        "{stderr}"
    );
    assert!(!stdout.contains("verdict:"), "{stdout}");
}

/// `load.connections = K` spreads the users over K connections of their own: a run with 3 opens
/// exactly 2 more connections to the server than the same run with 1 (everything else loadgen
/// connects for is the same in both), and both measure the load. 0 is refused naming the field.
#[test]
fn load_connections_opens_that_many_connections_for_the_load() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let url = server.url();
    let received = || -> u64 {
        let info = server.command(&["INFO", "stats"]).unwrap();
        let info = info.as_str().unwrap_or_default().to_string();
        info.lines()
            .find_map(|l| {
                l.strip_prefix("total_connections_received:")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap()
    };
    let out = tempfile::tempdir().unwrap();
    let mut opened = Vec::new();
    for k in ["1", "3"] {
        let before = received();
        let set = format!("load.connections={k}");
        let o = run(&[
            &[
                "run",
                "scenarios/load/smoke.toml",
                "--redis-url",
                &url,
                "--set",
                &set,
            ][..],
            &["--out", out.path().to_str().unwrap()],
            &QUICK,
        ]
        .concat());
        let (stdout, stderr) = text(&o);
        assert!(
            o.status.code().is_some_and(|c| c <= 1),
            "{stdout}\n{stderr}"
        );
        let plural = if k == "1" { "" } else { "s" };
        assert!(
            stderr.contains(&format!("on {k} connection{plural},")),
            "{stderr}"
        );
        let s = summary(&results_dir(&stdout));
        assert!(s["ops"]["all"]["count"].as_u64().unwrap() > 0);
        // Each loadgen run also closes its connections; count what it opened.
        opened.push(received() - before);
    }
    assert_eq!(
        opened[1],
        opened[0] + 2,
        "connections opened with 1 and 3: {opened:?}"
    );

    let o = run(&[
        "run",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--set",
        "load.connections=0",
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("load.connections") && stderr.contains("from 1 to"),
        "{stderr}"
    );
}
