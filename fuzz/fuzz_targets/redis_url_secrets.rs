//! `redis_url_secrets`: no `UrlError` message quotes the password, whatever surrounds it.
//!
//! The fuzzer chooses the middle of a password and the text after the `@`; the target wraps that
//! middle between two marker strings, `redis://user:<M1><middle><M2>@<rest>`, so the password
//! starts with M1 and ends with M2 wherever the middle puts `/`, `?`, `#`, `,` or `:` (the
//! characters an operator forgets to percent-encode). If the URL is refused, the error message must
//! contain neither marker: an error is printed to logs and terminals, the password must not be.
#![no_main]

use cache::url::RedisUrl;
use libfuzzer_sys::fuzz_target;

const M1: &str = "Q1secr";
const M2: &str = "Q2secr";

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (middle, rest) = input.split_once('@').unwrap_or((&input, "localhost"));
    // Markers elsewhere in the input would make an honest echo of the host look like a leak.
    if middle.contains(['@'])
        || [M1, M2]
            .iter()
            .any(|m| rest.contains(m) || middle.contains(m))
    {
        return;
    }
    let url = format!("redis://user:{M1}{middle}{M2}@{rest}");
    if let Err(e) = RedisUrl::parse(&url) {
        let message = e.to_string();
        for marker in [M1, M2] {
            assert!(
                !message.contains(marker),
                "error message quotes the password: {message:?} for {url:?}"
            );
        }
        let debug = format!("{e:?}");
        for marker in [M1, M2] {
            assert!(
                !debug.contains(marker),
                "error Debug quotes the password: {debug}"
            );
        }
    }
});
