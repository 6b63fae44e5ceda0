//! Prints how a `REDIS_URL` is understood: `cargo run -p cache --example redis-url -- '<URL>'`.
//!
//! Output is the parsed topology as JSON with the password shown as `***`; on a parse error the
//! message goes to stderr and the exit code is 2.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(input), None) = (args.next(), args.next()) else {
        eprintln!("usage: redis-url '<REDIS_URL>'");
        return ExitCode::from(2);
    };
    match cache::RedisUrl::parse(&input) {
        Ok(url) => {
            let mut json = serde_json::to_value(&url).unwrap_or_default();
            json["redacted"] = serde_json::Value::String(url.to_string());
            match serde_json::to_string_pretty(&json) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: cannot print JSON: {e}");
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
