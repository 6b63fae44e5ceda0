//! `redis_url`: the REDIS_URL grammar (`cache::url`) on arbitrary input.
//!
//! Checks, for every input libFuzzer makes:
//! - `RedisUrl::parse` returns (no panic; libFuzzer's `-timeout` catches a hang);
//! - a URL that parses prints back to one that parses to the *same* value
//!   (`parse → to_unredacted_string → parse`), and that printing is a fixed point;
//! - the redacted `Display` form parses too, to the same value with every password replaced by
//!   `***`: so redaction changes nothing but the secrets.
#![no_main]

use cache::url::{RedisUrl, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The grammar takes &str; lossy decoding lets byte-level mutations still reach it.
    let input = String::from_utf8_lossy(data);
    let Ok(url) = RedisUrl::parse(&input) else {
        return;
    };

    let printed = url.to_unredacted_string();
    let reparsed = RedisUrl::parse(&printed)
        .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
    assert_eq!(
        reparsed, url,
        "round trip changed the value (printed {printed:?})"
    );
    assert_eq!(
        reparsed.to_unredacted_string(),
        printed,
        "printing is not a fixed point"
    );

    let redacted = url.to_string();
    let mut expected = url.clone();
    expected.password = url.password.as_ref().map(|_| Secret::new("***"));
    expected.options.sentinel_password = url
        .options
        .sentinel_password
        .as_ref()
        .map(|_| Secret::new("***"));
    let reparsed = RedisUrl::parse(&redacted)
        .unwrap_or_else(|e| panic!("redacted form {redacted:?} does not parse: {e}"));
    assert_eq!(
        reparsed, expected,
        "redaction changed more than the secrets"
    );
});
