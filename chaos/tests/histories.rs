//! The checker can fail: every check is shown passing on a real recorded history
//! (`chaos/tests/histories/*.json`, trimmed by `trim.py`) and failing on a copy of it mutated to
//! break exactly that check. The mutations are functions here rather than more files: each says
//! in one line what it changes, and the originals stay the only large files.
//!
//! No Redis, no Docker: the checker is a pure function of the history. The last tests run the
//! real `chaos check` binary on a history file (exit 0), a mutated copy (exit 1) and a bad file
//! (exit 2, naming the field).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use chaos::checker::{Status, Verdict, judge};
use chaos::history::{FaultEvent, Op, OpKind, Outcome, SentinelEvent};
use chaos::recorded::Recorded;
use chaos::ttl::Probe;
use support::{chaos_command, outcome};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/histories/{name}.json"))
}

fn load(name: &str) -> Recorded {
    Recorded::load(&path(name)).unwrap_or_else(|e| panic!("{}", e.0))
}

fn status(v: &Verdict, check: &str) -> Status {
    v.check(check)
        .unwrap_or_else(|| panic!("no check {check}"))
        .status
}

/// The primary fault of a history (kill, stop, pause).
fn fault(h: &Recorded) -> FaultEvent {
    h.faults
        .iter()
        .find(|f| f.role == "primary" && f.error.is_none())
        .expect("a fault on the primary")
        .clone()
}

/// When the history's restart had completed.
fn restart_done(h: &Recorded) -> f64 {
    h.faults
        .iter()
        .find(|f| f.action == "restart")
        .expect("a restart")
        .done_ms
}

fn first_switch(h: &Recorded) -> (f64, u16) {
    let e = h
        .sentinel_events
        .iter()
        .find(|e| e.event == "+switch-master")
        .expect("a failover");
    let new = e.detail.split(' ').nth(4).unwrap().parse().unwrap();
    (e.at_ms, new)
}

fn ok_write(o: &Op) -> bool {
    o.kind.is_write() && o.outcome == Outcome::Ok && o.note.is_none()
}

// The mutations: each breaks one promise in a real history.

/// Writes never come back after the fault (an outage lasting to the end of the run).
fn outage_to_end(h: &mut Recorded) {
    let landed = fault(h).done_ms;
    h.ops.retain(|o| o.invoke_ms < landed || !ok_write(o));
}

/// The run cut 2.1 s after the fault: no write after the fault landed, none needed to "resume"
/// (issue 11: the old checker measured a 1.95 ms gap on exactly this).
fn truncated_after_fault(h: &mut Recorded) {
    let cut = fault(h).at_ms + 2100.0;
    h.ops.retain(|o| o.complete_ms <= cut);
    h.end_ms = cut;
}

/// The old primary keeps acknowledging writes after the promotion: two primaries at once.
fn two_primaries(h: &mut Recorded) {
    let (promoted, _) = first_switch(h);
    let old = h.initial_primary_port;
    for o in h
        .ops
        .iter_mut()
        .filter(|o| ok_write(o) && o.complete_ms > promoted)
        .take(5)
    {
        o.node_port = Some(old);
    }
}

/// One acknowledged write of `kind` is not found by the final reads.
fn lose(kind: OpKind) -> impl Fn(&mut Recorded) {
    move |h: &mut Recorded| {
        let i = h
            .writes
            .iter()
            .position(|w| w.kind == kind)
            .expect("a write of that kind");
        h.final_state.lost_writes.push(i);
        if kind == OpKind::TokenRevoke {
            h.final_state.revocations_valid_again.push(i);
        }
    }
}

/// A short session acknowledged well before the fault is missing at mid-life after it.
fn expired_early_across_failover(h: &mut Recorded) {
    let at = fault(h).at_ms;
    let sessions = h.sessions.clone();
    let p = h
        .probes
        .iter_mut()
        .find(|p| {
            p.probe == Probe::Midlife
                && p.at_ms > at
                && sessions[p.session].acked_ms < at - 500.0
                && p.present == Some(true)
        })
        .expect("a short session spanning the fault");
    p.present = Some(false);
    p.pttl_ms = None;
}

/// A short session acknowledged after the restart is missing at mid-life: no fault excuses it.
fn expired_early_after_restart(h: &mut Recorded) {
    let restart = restart_done(h);
    let sessions = h.sessions.clone();
    let p = h
        .probes
        .iter_mut()
        .find(|p| {
            p.probe == Probe::Midlife
                && sessions[p.session].acked_ms > restart
                && p.present == Some(true)
        })
        .expect("a short session created after the restart");
    p.present = Some(false);
    p.pttl_ms = None;
}

/// A short session's remaining TTL at mid-life is longer than its life allows.
fn ttl_extended(h: &mut Recorded) {
    let ttl = h.experiment.workload.short_session_ttl.as_millis() as i64;
    let p = h
        .probes
        .iter_mut()
        .find(|p| p.probe == Probe::Midlife && p.present == Some(true))
        .unwrap();
    p.pttl_ms = Some(ttl + 5000);
}

/// A short session still there after T + tolerance.
fn resurrected(h: &mut Recorded) {
    let p = h
        .probes
        .iter_mut()
        .find(|p| p.probe == Probe::AfterExpiry && p.present == Some(false))
        .unwrap();
    p.present = Some(true);
    p.pttl_ms = Some(1000);
}

/// A write acknowledged after the crash and restart, then lost: never within the promise.
fn lost_after_restart(h: &mut Recorded) {
    let restart = restart_done(h);
    let i = h
        .writes
        .iter()
        .position(|w| w.acked_ms > restart + 500.0)
        .unwrap();
    h.final_state.lost_writes.push(i);
}

/// A rate-limit counter whose PTTL outlives its 10 s window.
fn counter_outlives_window(h: &mut Recorded) {
    let o = h
        .ops
        .iter_mut()
        .find(|o| o.kind == OpKind::RateLimitCheck && o.pttl_ms.is_some())
        .unwrap();
    o.pttl_ms = Some(10_500);
}

fn key_without_ttl(h: &mut Recorded) {
    h.final_state.keys_without_ttl = 1;
}

/// The restarted old primary never reports `role:slave`.
fn never_rejoins(h: &mut Recorded) {
    let f = h
        .faults
        .iter_mut()
        .find(|f| f.action == "rejoined-as-replica")
        .unwrap();
    f.action = "rejoin-timeout".into();
    f.error = Some("still not a replica 20 s after coming back".into());
}

/// Sentinel fails over although the experiment says it cannot (one sentinel left).
fn unexpected_failover(h: &mut Recorded) {
    let at = fault(h).at_ms + 1500.0;
    let old = h.initial_primary_port;
    h.sentinel_events.push(SentinelEvent {
        at_ms: at,
        sentinel: "sentinel-0".into(),
        event: "+switch-master".into(),
        detail: format!("mymaster 127.0.0.1 {old} 127.0.0.1 1"),
    });
}

/// No TTL probe was recorded at all: the TTL checks judged nothing.
fn no_probes(h: &mut Recorded) {
    h.probes.clear();
}

/// A lost write acknowledged 5 s after the fault, when only 1 s is allowed.
fn lost_late_after_fault(h: &mut Recorded) {
    h.experiment.expect.max_loss_after_fault = Some(Duration::from_secs(1));
    let late = fault(h).done_ms + 5000.0;
    let i = h.writes.iter().position(|w| w.acked_ms > late).unwrap();
    h.final_state.lost_writes.push(i);
}

fn with_loss_bound(h: &mut Recorded) {
    h.experiment.expect.max_loss_after_fault = Some(Duration::from_secs(1));
}

/// The experiment says this fault must show a loss (a partitioned primary), and it did.
fn loss_expected(h: &mut Recorded) {
    h.experiment.expect.min_acked_writes_lost = Some(1);
    lose(OpKind::SessionCreate)(h);
}

/// The same run, seeing no loss: the fault was not reproduced.
fn no_loss(h: &mut Recorded) {
    h.final_state.lost_writes.clear();
}

type Mutation = fn(&mut Recorded);

/// (history, check, what the mutation does, the mutation): the check passes on the original (or
/// on the original with only the expectation added) and fails on the mutation.
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, &'static str, &'static str, Mutation, Option<Mutation>)> {
    vec![
        ("primary-kill", "write_gap", "outage to the end of the run", outage_to_end, None),
        ("primary-kill", "write_gap", "history truncated 2.1 s after the kill", truncated_after_fault, None),
        ("primary-kill", "split_brain_writes", "old primary acks 5 writes after the promotion", two_primaries, None),
        ("durable-writes", "split_brain_writes", "old primary acks 5 writes after the promotion", two_primaries, None),
        ("durable-writes", "acked_writes_lost", "a lost acked session create", |h| lose(OpKind::SessionCreate)(h), None),
        ("durable-writes", "acked_writes_lost", "a lost acked update", |h| lose(OpKind::SessionUpdate)(h), None),
        ("durable-writes", "acked_writes_lost", "a lost acked token put", |h| lose(OpKind::TokenPut)(h), None),
        ("durable-writes", "acked_writes_lost", "a lost acked revocation", |h| lose(OpKind::TokenRevoke)(h), None),
        ("sentinel-quorum-loss", "acked_writes_lost", "a lost acked update", |h| lose(OpKind::SessionUpdate)(h), None),
        ("primary-kill", "acked_writes_lost", "a loss expected (min 1) and none seen", no_loss, Some(loss_expected)),
        ("primary-kill", "revocations_kept", "a revoked token validates again", |h| lose(OpKind::TokenRevoke)(h), None),
        ("ttl-across-failover", "revocations_kept", "a revoked token validates again", |h| lose(OpKind::TokenRevoke)(h), None),
        ("ttl-across-failover", "ttl_no_early_expiry", "a session acked before the failover missing after it", expired_early_across_failover, None),
        ("primary-kill", "ttl_no_early_expiry", "a session acked before the kill missing after it", expired_early_across_failover, None),
        ("ttl-across-failover", "ttl_no_early_expiry", "a TTL extended across the failover", ttl_extended, None),
        ("ttl-across-failover", "ttl_no_resurrection", "a session present after T + tolerance", resurrected, None),
        ("restart-aof", "ttl_no_resurrection", "a session present after T + tolerance", resurrected, None),
        ("ttl-across-failover", "ttl_no_early_expiry", "no probes at all: judged nothing", no_probes, None),
        ("restart-aof", "persistence_loss_within_promise", "a write acked after the restart, then lost", lost_after_restart, None),
        ("restart-rdb", "persistence_loss_within_promise", "a write acked after the restart, then lost", lost_after_restart, None),
        ("restart-rdb", "ttl_no_early_expiry", "a session created after the restart missing at mid-life", expired_early_after_restart, None),
        ("primary-kill", "ratelimit_window_kept", "a counter outliving its window", counter_outlives_window, None),
        ("sentinel-quorum-loss", "ratelimit_window_kept", "a counter outliving its window", counter_outlives_window, None),
        ("primary-kill", "no_key_without_ttl", "a key without TTL", key_without_ttl, None),
        ("primary-kill", "old_primary_rejoins_as_replica", "the old primary never rejoins", never_rejoins, None),
        ("sentinel-quorum-loss", "failover", "a failover with one sentinel left", unexpected_failover, None),
        ("primary-kill", "loss_within_lag_after_fault", "a write lost 5 s after the fault (1 s allowed)", lost_late_after_fault, Some(with_loss_bound)),
    ]
}

#[test]
fn every_check_passes_on_a_real_history_and_fails_on_its_mutation() {
    let mut failures = Vec::new();
    for (name, check, what, mutate, expectation) in cases() {
        let mut original = load(name);
        if let Some(e) = expectation {
            e(&mut original);
        }
        let before = judge(&original);
        let mut broken = original.clone();
        mutate(&mut broken);
        let after = judge(&broken);
        let (b, a) = (status(&before, check), status(&after, check));
        let expected_after = if what.contains("judged nothing") {
            Status::NotChecked
        } else {
            Status::Fail
        };
        if b != Status::Pass || a != expected_after || after.pass {
            failures.push(format!(
                "{name} / {check} / {what}: original {b:?}, mutated {a:?} (run pass: {}) — {:?}",
                after.pass,
                after.check(check).map(|c| &c.measured)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(cases().len() >= 24);
}

#[test]
fn every_original_history_passes_and_every_check_judged_something_somewhere() {
    let names = [
        "primary-kill",
        "ttl-across-failover",
        "sentinel-quorum-loss",
        "restart-aof",
        "restart-rdb",
        "durable-writes",
    ];
    let mut judged = std::collections::BTreeSet::new();
    for name in names {
        let v = judge(&load(name));
        let failed: Vec<_> = v.checks.iter().filter(|c| c.fails_run()).collect();
        assert!(v.pass, "{name}: {failed:#?}");
        for c in &v.checks {
            assert!(
                c.status != Status::Pass || c.checked > 0,
                "{name}: {} passed judging nothing",
                c.name
            );
            if c.status == Status::Pass {
                judged.insert(c.name);
            }
        }
    }
    // Every check passes on at least one real history (with its expectation as shipped) except
    // the partition bound, whose expectation the cases above add.
    for c in judge(&load("primary-kill")).checks {
        assert!(
            judged.contains(c.name) || c.name == "loss_within_lag_after_fault",
            "{} never passed",
            c.name
        );
    }
}

fn chaos_check(file: &std::path::Path) -> (i32, String) {
    outcome(chaos_command().arg("check").arg(file))
}

#[test]
fn chaos_check_judges_a_file_like_chaos_run() {
    let (code, text) = chaos_check(&path("primary-kill"));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("primary-kill [recorded] PASS: failover "),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut broken = load("primary-kill");
    truncated_after_fault(&mut broken);
    let file = dir.path().join("history.json");
    std::fs::write(&file, broken.to_json().unwrap()).unwrap();
    // A run directory works as well as the file.
    let (code, text) = chaos_check(dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAILED write_gap"), "{text}");
    assert!(text.contains("writes never resumed"), "{text}");

    std::fs::write(&file, r#"{"schema_version": 2, "experiment": {}}"#).unwrap();
    let (code, text) = chaos_check(&file);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("missing field `name`"), "{text}");
    std::fs::write(&file, "[]").unwrap();
    let (code, text) = chaos_check(&file);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not a chaos history"), "{text}");
    std::fs::write(&file, r#"{"schema_version": 1}"#).unwrap();
    let (code, text) = chaos_check(&file);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("invalid `schema_version`: expected 2, found 1"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn ops_that_were_never_sent_are_failures_in_the_corpus_run() {
    // Recorded after the fix: "no primary" is `fail`, never indeterminate.
    let h = load("primary-kill");
    let never_sent: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.note.as_deref().is_some_and(|n| n.contains("no primary")))
        .collect();
    assert!(
        !never_sent.is_empty(),
        "the kill left no never-sent op in this history"
    );
    assert!(
        never_sent.iter().all(|o| o.outcome == Outcome::Fail),
        "{never_sent:?}"
    );
}
