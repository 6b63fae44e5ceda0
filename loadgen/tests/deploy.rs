//! The orchestration files a scale-out run relies on, read as the orchestrator reads them: the
//! Kubernetes manifests (`deploy/kubernetes/loadgen.yaml`) and the Compose `loadgen` profile. The
//! fields checked are the ones the workers depend on — an Indexed Job (else no
//! `JOB_COMPLETION_INDEX`), parallelism = completions = `LOADGEN_WORKERS` (else shards are
//! missing or the merge refuses the set), `REDIS_URL` from a Secret (never a literal password),
//! the shared results volume mounted where both the workers and the merge look, and Compose
//! workers numbered 0..N−1 once each. A field that breaks one of these fails here, named.

mod common;

use serde_yaml::Value;

fn k8s() -> Vec<Value> {
    let path = common::root().join("deploy/kubernetes/loadgen.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn by_name<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name}"))
}

/// The violations of what the workers rely on, in words (empty = fine).
fn problems(docs: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let job = by_name(docs, "Job", "loadgen-workers");
    let spec = &job["spec"];
    if spec["completionMode"] != "Indexed" {
        out.push("spec.completionMode must be Indexed (JOB_COMPLETION_INDEX)".to_string());
    }
    let c = &spec["template"]["spec"]["containers"][0];
    let n = env(c, "LOADGEN_WORKERS")["value"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok());
    if spec["parallelism"].as_u64() != n || spec["completions"].as_u64() != n {
        out.push(format!(
            "parallelism {:?} and completions {:?} must equal LOADGEN_WORKERS {n:?}",
            spec["parallelism"], spec["completions"]
        ));
    }
    if env(c, "REDIS_URL")["valueFrom"]["secretKeyRef"]["key"] != "REDIS_URL" {
        out.push("REDIS_URL must come from a Secret (secretKeyRef)".into());
    }
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if args.first() != Some(&"run") || !args.contains(&"/results/workers") {
        out.push(format!("workers must run into /results/workers: {args:?}"));
    }
    let merge = by_name(docs, "Job", "loadgen-merge");
    let m = &merge["spec"]["template"]["spec"]["containers"][0];
    let margs: Vec<&str> = m["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if margs.first() != Some(&"merge") || !margs.contains(&"/results/workers") {
        out.push(format!("the merge must read /results/workers: {margs:?}"));
    }
    for (who, pod) in [("workers", spec), ("merge", &merge["spec"])] {
        let claim = pod["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "results")
            .map(|v| v["persistentVolumeClaim"]["claimName"].clone());
        if claim != Some(Value::from("loadgen-results")) {
            out.push(format!(
                "{who}: the results volume must be the shared claim"
            ));
        }
    }
    out
}

#[test]
fn the_kubernetes_manifests_give_every_worker_what_it_relies_on() {
    let docs = k8s();
    assert_eq!(problems(&docs), Vec::<String>::new());
    let pvc = by_name(&docs, "PersistentVolumeClaim", "loadgen-results");
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");

    // Each check fails on a manifest built to break it.
    let mut broken = docs.clone();
    let job = broken
        .iter_mut()
        .find(|d| d["metadata"]["name"] == "loadgen-workers")
        .unwrap();
    job["spec"]["completionMode"] = Value::from("NonIndexed");
    job["spec"]["parallelism"] = Value::from(2);
    job["spec"]["template"]["spec"]["containers"][0]["env"][2] =
        serde_yaml::from_str("{name: REDIS_URL, value: 'redis://:pw@redis:6379'}").unwrap();
    let p = problems(&broken);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("Indexed") && p[1].contains("parallelism") && p[2].contains("Secret"));
}

#[test]
fn the_compose_profile_numbers_its_workers_once_each() {
    let text = std::fs::read_to_string(common::root().join("docker-compose.yml")).unwrap();
    let c: Value = serde_yaml::from_str(&text).unwrap();
    let services = c["services"].as_mapping().unwrap();
    let mut indexes: Vec<String> = services
        .iter()
        .filter_map(|(_, s)| s["environment"]["LOADGEN_WORKER"].as_str())
        .map(str::to_string)
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0/3", "1/3", "2/3"]);
    let merge = &c["services"]["loadgen-merge"];
    assert_eq!(merge["profiles"][0], "loadgen");
    assert_eq!(merge["command"][0], "merge");
}
