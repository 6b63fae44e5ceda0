//! The scenario file: what load to put on which keyspace, in which mix, and what counts as a pass.
//!
//! A scenario is TOML with `deny_unknown_fields` everywhere, because a misspelt key that is
//! silently ignored turns a capacity test into a test of the defaults. Loading happens in two
//! steps ([`source`]): serde checks shape and types (its errors carry the span of the offending
//! value), then [`Scenario::validate`] checks meaning (zero weights, zero durations, percentiles
//! outside 0–100...). Both kinds of error are reported as `file:line:col: message` with the
//! expected form, and a value that came from `--set` is blamed on that `--set`.
//!
//! Everything has a default except `load.duration` and `mix`: a scenario states how long it runs
//! and what it does; the keyspace, TTLs and rate-limit rules default to the OAuth server's own
//! (60 min idle sessions, 24 h absolute, signin 5/min...).

mod schema;
mod source;
mod validate;
mod values;

pub use schema::*;
pub use source::{ScenarioError, load, load_with, parse, parse_with};
pub use validate::{Invalid, MAX_ACCOUNTS};
pub use values::{Distribution, Dur, Payload, parse_size};
