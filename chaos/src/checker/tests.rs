//! The status rule on its own; every check failing and passing on real histories is shown by
//! `chaos/tests/histories.rs`.

use super::*;
use serde_json::json;

#[test]
fn a_check_that_judged_nothing_never_passes() {
    let c = Check::new("x", Some("≤ 0".into()), 0, json!(0), true);
    assert_eq!(c.status, Status::NotChecked);
    assert!(
        c.fails_run(),
        "an expected check with no evidence fails the run"
    );
    let measured_only = Check::new("x", None, 10, json!(3), false);
    assert_eq!(measured_only.status, Status::NotChecked);
    assert!(!measured_only.fails_run());
    assert_eq!(
        Check::new("x", Some("≤ 0".into()), 5, json!(1), false).status,
        Status::Fail
    );
    assert_eq!(
        Check::new("x", Some("≤ 0".into()), 5, json!(0), true).status,
        Status::Pass
    );
}
