//! `loadgen sweep` as an operator runs it: against a given Redis URL, stepping the open-model rate
//! with short steps, checking the table, the knee, the files and the exit codes. Nothing here
//! asserts a throughput figure (CI machines differ); only relations that hold on any machine.

mod common;

use common::*;
use localredis::{RedisServer, ServerConfig};

/// Runs a short sweep of smoke.toml; the results live as long as the returned directory.
fn sweep(extra: &[&str]) -> (tempfile::TempDir, Option<i32>, String, String) {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let mut args = vec![
        "sweep",
        "scenarios/load/smoke.toml",
        "--step-duration",
        "1s",
        "--set",
        "load.warmup=0s",
        "--out",
        &out_s,
    ];
    args.extend(extra);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    (out, o.status.code(), stdout, stderr)
}

fn json(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap()
}

#[test]
fn a_sweep_stopped_by_max_steps_has_no_knee_and_exits_1() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default().maxmemory("64mb")).unwrap();
    let url = server.url();
    let (_out, code, stdout, stderr) = sweep(&[
        "--redis-url",
        &url,
        "--slo",
        "p99<10s",
        "--slo",
        "errors<1%",
        "--start",
        "100",
        "--step",
        "x2",
        "--max-steps",
        "3",
    ]);
    // Every step meets a 10 s p99, so the SLO never broke: no knee, only a floor.
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let dir = results_dir(&stdout);
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("sweep-smoke-"), "{name}");
    let r = json(&dir);
    assert_eq!(r["schema_version"], 2);
    assert_eq!(r["target"]["throwaway"], false);
    assert_eq!(r["by"], "rate");
    let steps = r["steps"].as_array().unwrap();
    // A 10 s p99 holds at 100-400 ops/s anywhere: up to three passing steps, offered 100, 200, 400
    // (fewer if throughput stopped growing first).
    assert!(!steps.is_empty() && steps.len() <= 3, "{steps:?}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["offered"], 100.0 * 2f64.powi(i as i32));
        assert_eq!(s["passed"], true, "{s}");
        assert!(s["achieved"].as_f64().unwrap() > 0.0);
        assert!(s["p50_us"].as_u64().unwrap() <= s["p99_us"].as_u64().unwrap());
        assert!(
            ["server", "none", "generator", "unknown"].contains(&s["bottleneck"].as_str().unwrap()),
            "{s}"
        );
    }
    assert!(r["knee"].is_null(), "{}", r["knee"]);
    let last = &steps[steps.len() - 1];
    let no_knee = &r["no_knee"];
    assert_eq!(
        no_knee["highest_passing_offered"], last["offered"],
        "{no_knee}"
    );
    let stopped = r["stopped_because"].as_str().unwrap();
    assert!(
        stopped.contains("--max-steps 3")
            || stopped.contains("stopped growing")
            || stopped.contains("generator-bound"),
        "{stopped}"
    );
    assert_eq!(
        r["slo"],
        serde_json::json!(["all p99 response time ≤ 10s", "error rate ≤ 1%"])
    );
    // The memory projection measured on the target, for its CONFIG GET maxmemory.
    let p = &r["memory_projection"];
    assert!(p["bytes_per_session"].as_f64().unwrap() > 0.0, "{p}");
    assert_eq!(p["projection"]["maxmemory_bytes"], 64 * 1024 * 1024);
    // The table on stdout, the Markdown and the chart.
    assert!(stdout.contains("knee: none — no knee below "), "{stdout}");
    let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    assert!(
        md.contains("**Knee: none — no knee below") && md.contains("| 1 | step | 100 |"),
        "{md}"
    );
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
    assert!(!svg.contains(">knee ") && svg.trim_end().ends_with("</svg>"));
    assert!(dir.join("goose/step-01.html").is_file());
    // sweep.html: the same tables and the chart inline, nothing fetched from elsewhere.
    let html = std::fs::read_to_string(dir.join("sweep.html")).unwrap();
    assert!(
        html.contains("<table>") && html.contains(svg.trim_end()),
        "{html}"
    );
    assert!(!html.contains("src=") && !html.contains("href="), "{html}");
}

#[test]
fn an_slo_no_step_can_meet_ends_the_sweep_with_exit_1_and_no_knee() {
    let Some(()) = redis_available() else { return };
    let (_out, code, stdout, stderr) = sweep(&["--slo", "p50<1us", "--start", "200"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let r = json(&results_dir(&stdout));
    assert!(r["knee"].is_null(), "{}", r["knee"]);
    assert_eq!(
        r["steps"].as_array().unwrap().len(),
        1,
        "no refinement without a pass"
    );
    assert_eq!(r["steps"][0]["passed"], false);
    assert!(
        r["steps"][0]["failed"][0]
            .as_str()
            .unwrap()
            .starts_with("all p50 response time"),
        "{}",
        r["steps"][0]
    );
    assert!(
        r["stopped_because"]
            .as_str()
            .unwrap()
            .contains("SLO broke at 200 ops/s")
    );
    assert_eq!(r["target"]["throwaway"], true);
    assert!(stdout.contains("knee: none"), "{stdout}");
    assert_eq!(
        r["no_knee"]["reason"], "no step met the SLO",
        "{}",
        r["no_knee"]
    );
}

#[test]
fn bad_sweep_flags_exit_2_naming_the_flag_and_the_form() {
    let cases: [(&[&str], &str); 7] = [
        (&["--slo", "p99<<2ms"], "--slo `p99<<2ms`"),
        (&["--slo", "p99>2ms"], "--slo `p99>2ms`: no `<`"),
        (
            &["--slo", "latency<2ms"],
            "expected `[op:][service:]p<percentile><<duration>`",
        ),
        (
            &["--slo", "p99<2ms", "--step", "2"],
            "--step `2`: unknown form: expected +N",
        ),
        (
            &["--slo", "p99<2ms", "--step-duration", "10"],
            "--step-duration `10`",
        ),
        (
            &["--slo", "p99<2ms", "--min-gain", "lots"],
            "--min-gain `lots`",
        ),
        (
            &["--slo", "p99<2ms", "--start", "0"],
            "--start 0: expected operations per second",
        ),
    ];
    for (args, expected) in cases {
        let mut a = vec!["sweep", "scenarios/load/smoke.toml"];
        a.extend(args);
        let o = run(&a);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{a:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A scenario with no SLO at all and no --slo.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bare.toml");
    std::fs::write(
        &p,
        "[load]\nusers = 2\nduration = \"2s\"\n\n[mix]\npage_view = 1\n",
    )
    .unwrap();
    let o = run(&["sweep", &p.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("no SLO to sweep against"),
        "{}",
        text(&o).1
    );
}
