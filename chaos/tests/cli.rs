//! The command line's contract with operators and CI: exit codes and error messages that name
//! the field, without starting any Redis.

use std::process::Command;

fn chaos(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .output()
        .expect("run chaos");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_bad_experiment_file_is_a_usage_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"bad\"\nduration = \"5s\"\n[topology]\nkind = \"sentinel\"\nquorum = 7\n",
    )
    .unwrap();
    let (code, text) = chaos(&["run", file.to_str().unwrap(), "--backend", "process"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("topology.quorum"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    std::fs::write(&file, "name = \"bad\"\nduration = \"soon\"\n").unwrap();
    let (code, text) = chaos(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("duration"), "{text}");
}

#[test]
fn missing_files_and_flags_are_usage_errors() {
    let (code, text) = chaos(&["run", "/nonexistent/x.toml"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("/nonexistent/x.toml"), "{text}");
    let (code, _) = chaos(&["run", "x.toml", "--backend", "kubernetes"]);
    assert_eq!(code, 2);
    let (code, _) = chaos(&["suite", "/nonexistent-dir"]);
    assert_eq!(code, 2);
}

#[test]
fn every_shipped_experiment_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/chaos");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            chaos::Experiment::load(&path).unwrap_or_else(|e| panic!("{}", e.0));
            n += 1;
        }
    }
    assert!(n >= 9, "expected the issue's nine experiments, found {n}");
}
