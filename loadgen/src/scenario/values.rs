//! Scenario values that are more than a number: durations, payload sizes and key-choice
//! distributions, each written the way an operator would type it (`"10s"`, `"256..2048"`,
//! `"zipf(1.1)"`) and read back the same way in `--dry-run` and `summary.json`.
//!
//! Each type deserializes itself so a wrong value is refused *at its position in the file* with
//! the expected form spelled out; serde's generic "data did not match any variant" would name
//! neither.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as text: `"500ms"`, `"10s"`, `"2m"`, `"1h 30m"` (humantime syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

const DUR_EXPECTED: &str = "a duration like \"10s\", \"500ms\", \"2m\" or \"1h\"";

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DUR_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                if s.trim_start().starts_with('-') {
                    return Err(E::custom(format!(
                        "`{s}` is negative: expected {DUR_EXPECTED}, greater than zero"
                    )));
                }
                humantime::parse_duration(s).map(Dur).map_err(|e| {
                    E::custom(format!(
                        "`{s}` is not a duration ({e}): expected {DUR_EXPECTED}"
                    ))
                })
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{n} has no unit: expected {DUR_EXPECTED} (e.g. \"{}s\")",
                    n.max(1)
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{n} has no unit: expected {DUR_EXPECTED}"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Size of the application data stored in each session: fixed, or uniform in a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Fixed(usize),
    Range { min: usize, max: usize },
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Fixed(256)
    }
}

impl Payload {
    pub fn max(&self) -> usize {
        match *self {
            Payload::Fixed(n) => n,
            Payload::Range { max, .. } => max,
        }
    }
}

const PAYLOAD_EXPECTED: &str = "a byte count like 512 or a range like \"256..2048\"";

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(PAYLOAD_EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Payload, E> {
                usize::try_from(n)
                    .map(Payload::Fixed)
                    .map_err(|_| E::custom(format!("{n} is negative: expected {PAYLOAD_EXPECTED}")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Payload, E> {
                Ok(Payload::Fixed(n as usize))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Payload, E> {
                let bad = || E::custom(format!("`{s}` is not valid: expected {PAYLOAD_EXPECTED}"));
                let (a, b) = s.split_once("..").ok_or_else(bad)?;
                let min = a.trim().parse().map_err(|_| bad())?;
                let max = b.trim().parse().map_err(|_| bad())?;
                if min > max {
                    return Err(E::custom(format!(
                        "`{s}` has its minimum above its maximum: expected {PAYLOAD_EXPECTED}"
                    )));
                }
                Ok(Payload::Range { min, max })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Payload::Fixed(n) => s.serialize_u64(n as u64),
            Payload::Range { min, max } => s.serialize_str(&format!("{min}..{max}")),
        }
    }
}

/// A size as `redis.conf` writes it: `1048576`, `64mb`, `1gb`; `k`/`m`/`g` are powers of 1000 and
/// `kb`/`mb`/`gb` powers of 1024, case-insensitive (Redis's `memtoull`). The error quotes the input
/// and spells out the expected form.
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let expected = "expected a size like 64mb, 1gb or 1048576 (bytes; kb/mb/gb are 1024-based, k/m/g 1000-based, as in redis.conf)";
    let lower = raw.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{raw}` is not a size: {expected}"));
    }
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("`{raw}`: unknown unit `{unit}`: {expected}")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("`{raw}` is too large: {expected}"))
}

/// How keys (accounts, client IPs, endpoints) are chosen from their population.
///
/// - `uniform`: every key equally likely;
/// - `zipf(s)`: rank k has weight 1/k^s — a few hot accounts, a long tail (s ≈ 1 is typical web
///   traffic; larger s is hotter);
/// - `gaussian(f)`: normal around the middle of the population with standard deviation
///   f × population, a "hot band" rather than hot head.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Distribution {
    #[default]
    Uniform,
    Zipf(f64),
    Gaussian(f64),
}

const DIST_EXPECTED: &str = "\"uniform\", \"zipf(<s>)\" with s > 0 (e.g. \"zipf(1.1)\") or \"gaussian(<stddev as a fraction of the population>)\" (e.g. \"gaussian(0.1)\")";

impl std::str::FromStr for Distribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a distribution: expected {DIST_EXPECTED}");
        let t = s.trim();
        if t == "uniform" {
            return Ok(Distribution::Uniform);
        }
        let (name, rest) = t.split_once('(').ok_or_else(bad)?;
        let arg: f64 = rest
            .strip_suffix(')')
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if !arg.is_finite() || arg <= 0.0 {
            return Err(bad());
        }
        match name.trim() {
            "zipf" => Ok(Distribution::Zipf(arg)),
            "gaussian" => Ok(Distribution::Gaussian(arg)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform => f.write_str("uniform"),
            Distribution::Zipf(s) => write!(f, "zipf({s})"),
            Distribution::Gaussian(s) => write!(f, "gaussian({s})"),
        }
    }
}

impl<'de> Deserialize<'de> for Distribution {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Distribution;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DIST_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Distribution, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for Distribution {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_redis_conf() {
        assert_eq!(parse_size("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_size("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        for bad in ["", "mb", "64 tb", "-1mb", "1.5gb", "99999999999999999999gb"] {
            assert!(
                parse_size(bad).unwrap_err().contains("expected a size"),
                "{bad}"
            );
        }
    }

    #[test]
    fn distributions_round_trip_and_refuse_nonsense() {
        for s in ["uniform", "zipf(1.1)", "gaussian(0.1)"] {
            assert_eq!(s.parse::<Distribution>().unwrap().to_string(), s);
        }
        for bad in [
            "zipf",
            "zipf()",
            "zipf(-1)",
            "zipf(0)",
            "pareto(1)",
            "gaussian(x)",
        ] {
            let err = bad.parse::<Distribution>().unwrap_err();
            assert!(err.contains("expected \"uniform\""), "{err}");
        }
    }

    #[derive(Deserialize)]
    struct T {
        d: Dur,
        p: Payload,
    }

    #[test]
    fn durations_and_payloads_parse_with_clear_errors() {
        let t: T = toml::from_str("d = \"1m 30s\"\np = \"10..20\"").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(90));
        assert_eq!(t.p, Payload::Range { min: 10, max: 20 });
        assert_eq!(t.d.to_string(), "1m 30s");
        let e = toml::from_str::<T>("d = 10\np = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("has no unit"), "{e}");
        let e = toml::from_str::<T>("d = \"-5s\"\np = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("negative"), "{e}");
        let e = toml::from_str::<T>("d = \"5s\"\np = \"20..10\"")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("minimum above"), "{e}");
    }
}
