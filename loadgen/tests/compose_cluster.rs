//! The compose file's `cluster` profile, as an operator would use it: six nodes and the one-shot
//! init on free ports, then `loadgen doctor` and `loadgen run` through the cluster URL. Proves the
//! profile makes a healthy cluster (every slot served, each primary with a replica) that the tools
//! accept, and leaves nothing behind (`down -v` in a guard).

mod common;

use std::net::{Ipv4Addr, TcpListener};

use common::compose::{Project, compose_ready};
use common::*;

/// Six ports whose cluster-bus twins (+10000) are free too.
fn cluster_ports() -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..200 {
        if ports.len() == 6 {
            break;
        }
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55_000
            && let Ok(bus) = TcpListener::bind((Ipv4Addr::LOCALHOST, p + 10_000))
        {
            ports.push(p);
            held.push(bus);
        }
        held.push(l);
    }
    assert_eq!(ports.len(), 6, "six free port pairs");
    ports
}

#[test]
fn the_cluster_profile_makes_a_cluster_the_tools_accept() {
    let Some(()) = redis_available() else { return };
    let Some(()) = compose_ready() else { return };
    let ports = cluster_ports();
    let password = "compose-cluster-test-pw";
    let mut env = vec![
        ("REDIS_PASSWORD".to_string(), password.to_string()),
        ("REDIS_IMAGE".into(), "authority-redis:local".into()),
        ("CLUSTER_NODE_TIMEOUT".into(), "2000".into()),
    ];
    for (i, p) in ports.iter().enumerate() {
        env.push((format!("CLUSTER_{i}_PORT"), p.to_string()));
    }
    let project = Project {
        name: format!("authority-cluster-test-{}", std::process::id()),
        profile: "cluster",
        env,
    };

    // `run` starts the six nodes, waits for them to be healthy, and runs the init in the foreground.
    let init = project.compose(&["run", "--rm", "cluster-init"]);
    let (stdout, stderr) = text(&init);
    assert!(init.status.success(), "cluster-init: {stdout}\n{stderr}");
    assert!(stdout.contains("cluster ready"), "{stdout}");

    let url = format!(
        "redis://:{password}@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        ports[0], ports[1], ports[2]
    );
    let o = run(&["doctor", "--redis-url", &url, "--format", "json"]);
    let (stdout, stderr) = text(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{stdout}\n{stderr}");
    assert!(!stdout.contains(password) && !stderr.contains(password));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("doctor --format json");
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for bad in [
        "cluster-state",
        "cluster-slots-uncovered",
        "cluster-primary-without-replica",
    ] {
        assert!(!checks.contains(&bad), "{bad} in {checks:?}");
    }
    assert!(
        checks.contains(&"cluster-require-full-coverage"),
        "{checks:?}"
    );

    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "scenarios/load/smoke.toml", "--redis-url", &url];
    let out_s = out.path().display().to_string();
    args.extend(["--out", &out_s]);
    args.extend(QUICK);
    let o = run(&args);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let s = summary(&results_dir(&stdout));
    assert_eq!(s["target"]["kind"], "cluster");
    assert_eq!(s["redis"]["nodes"].as_array().unwrap().len(), 3);
    drop(project);
}
