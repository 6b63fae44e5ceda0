//! `loadgen capacity`'s answer as data ([`CapacityReport`]: bytes per session, token and counter,
//! what the scenario needs, what fits in a `maxmemory`) and as Markdown. The same report is part of
//! `summary.json` (`memory_projection`), `sweep.json` and `evict.json`.
//!
//! The figures come from `engine::capacity` (measured on the real server); the model they are fed
//! into is [`MemoryModel`], kept here as data so that a report read back later shows the inputs
//! its projection was computed from.

use std::collections::BTreeMap;

use serde::Serialize;

use super::fmt::{bytes as human_bytes, count};
use super::markdown::{Align, Table};

/// Bumped on incompatible changes to the report's JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// Fraction of `maxmemory` kept free for what Redis counts besides keys (see `engine::capacity`).
pub const DEFAULT_HEADROOM: f64 = 0.10;

/// Counts of the three kinds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Counts {
    pub sessions: u64,
    pub tokens: u64,
    pub counters: u64,
}

impl Counts {
    /// `unit × f`, each kind rounded down.
    pub fn scaled(unit: [f64; 3], f: f64) -> Counts {
        let [s, t, c] = unit.map(|u| (u * f).floor().max(0.0) as u64);
        Counts {
            sessions: s,
            tokens: t,
            counters: c,
        }
    }

    /// `[sessions, tokens, counters]`.
    pub fn as_array(&self) -> [f64; 3] {
        [
            self.sessions as f64,
            self.tokens as f64,
            self.counters as f64,
        ]
    }
}

/// Per item of one kind, as measured.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct KindCost {
    /// `used_memory` growth per item, the keyspace tables excluded.
    pub bytes: f64,
    /// Keys per item: 1 for a token or a counter; for a session, its key plus its share of the
    /// user's index (`1 + 1/sessions_per_user` for new users).
    pub keys: f64,
}

/// The measured inputs of the memory model (`engine::capacity::model` explains the model).
#[derive(Clone, Debug, Serialize)]
pub struct MemoryModel {
    /// `used_memory` with none of the store's keys and empty keyspace tables.
    pub base: f64,
    /// Keys that are not the store's (other data), which the tables must also hold.
    pub other_keys: f64,
    /// Session, token, rate-limit counter.
    pub kinds: [KindCost; 3],
}

/// What was measured, per kind, with `MEMORY USAGE` beside it.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub model: MemoryModel,
    /// Items written per kind.
    pub samples: usize,
    /// Mean `MEMORY USAGE` of the sample's main keys per kind (session key, token, counter).
    pub memory_usage_bytes: BTreeMap<&'static str, f64>,
    /// Store keys under the prefix before sampling, by kind (subtracted from the base).
    pub store_keys_before: BTreeMap<String, u64>,
    /// Keys (others', never the samples) that expired during the whole measurement; a phase
    /// they disturbed beyond the bound was measured again.
    pub expired_during: u64,
    /// The base computed from the snapshot came out below the empty server's
    /// `used_memory_startup` (keys expired between the SCAN and the snapshot) and was raised to it.
    pub base_clamped: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Headroom {
    pub fraction: f64,
    pub repl_backlog_bytes: u64,
    /// `fraction × maxmemory + repl_backlog_bytes`.
    pub bytes: u64,
    pub why: &'static str,
}

/// What fits in one `maxmemory`.
#[derive(Clone, Debug, Serialize)]
pub struct Projection {
    pub maxmemory_bytes: u64,
    /// Where `maxmemory` came from: `--maxmemory`, `CONFIG GET maxmemory`, `scenario`.
    pub maxmemory_source: String,
    pub headroom: Headroom,
    /// `maxmemory − headroom`: what the keys may use.
    pub usable_bytes: u64,
    /// The scenario's keyspace scaled to fit (same proportions), within the headroom.
    pub mix: Counts,
    /// How many times the scenario's keyspace fits within the headroom (≥ 1: it fits).
    pub scenario_fits_times: f64,
    /// Each kind alone, within the headroom.
    pub alone: Counts,
    /// Each kind alone at `maxmemory` itself: where Redis starts evicting or refusing writes.
    pub alone_at_maxmemory: Counts,
}

/// The whole `loadgen capacity` answer.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityReport {
    pub schema_version: u32,
    /// `used_memory` growth per item (keyspace tables apart), from the sample.
    pub bytes_per_session: f64,
    pub bytes_per_token: f64,
    pub bytes_per_counter: f64,
    pub measured: Measurement,
    /// The scenario's own keyspace: every account's sessions and token, and every client IP on
    /// every rate-limited endpoint within one window (an upper bound).
    pub scenario: Counts,
    /// Predicted `used_memory` holding the scenario's keyspace.
    pub scenario_needs_bytes: u64,
    /// Smallest `maxmemory` that holds it with the headroom, rounded up to a MiB.
    pub smallest_safe_maxmemory_bytes: u64,
    pub projection: Option<Projection>,
    pub notes: Vec<String>,
}

/// The report as Markdown (also what `loadgen capacity` prints).
pub fn markdown(r: &CapacityReport) -> String {
    let mu = &r.measured.memory_usage_bytes;
    let mu = |k: &str| mu.get(k).map_or("-".into(), |b| format!("{b:.0} B"));
    let kinds = &r.measured.model.kinds;
    let right = Align::Right;
    let mut t = Table::new(&[
        ("kind", Align::Left),
        ("bytes per item", right),
        ("keys per item", right),
        ("MEMORY USAGE", right),
    ]);
    for (i, (name, key)) in [
        ("session", "session"),
        ("token", "token"),
        ("rate-limit counter", "counter"),
    ]
    .into_iter()
    .enumerate()
    {
        t.row([
            name.to_string(),
            format!("{:.0}", kinds[i].bytes),
            format!("{:.2}", kinds[i].keys),
            mu(key),
        ]);
    }
    let mut o = format!(
        "## Memory per item\n\nMeasured as `used_memory` growth over {} items of each kind written through the real stores (keyspace tables modelled apart); `MEMORY USAGE` of the main key for comparison — it leaves out the `expires` entry, allocator rounding and the user's index.\n\n{}\nBase (empty server, clients, other data): {}.\n\n",
        r.measured.samples,
        t.render(),
        human_bytes(r.measured.model.base),
    );
    let sc = &r.scenario;
    o.push_str(&format!(
        "The scenario's keyspace ({} sessions, {} tokens, up to {} counters) needs **{}**; smallest safe maxmemory with the headroom: **{}**.\n\n",
        count(sc.sessions),
        count(sc.tokens),
        count(sc.counters),
        human_bytes(r.scenario_needs_bytes as f64),
        human_bytes(r.smallest_safe_maxmemory_bytes as f64),
    ));
    if let Some(p) = &r.projection {
        let mut t = Table::new(&[
            ("", Align::Left),
            ("sessions", right),
            ("tokens", right),
            ("counters", right),
        ]);
        let row = |label: String, c: &Counts| {
            [label, count(c.sessions), count(c.tokens), count(c.counters)]
        };
        t.row(row(
            format!("scenario mix (fits {:.2}×)", p.scenario_fits_times),
            &p.mix,
        ))
        .row(row("one kind alone".into(), &p.alone))
        .row(row(
            "one kind alone, at maxmemory (no headroom)".into(),
            &p.alone_at_maxmemory,
        ));
        o.push_str(&format!(
            "## Projection for maxmemory {} ({})\n\nHeadroom {:.0} % + replication backlog {} = {} reserved: {}\n\n{}\n",
            human_bytes(p.maxmemory_bytes as f64),
            p.maxmemory_source,
            p.headroom.fraction * 100.0,
            human_bytes(p.headroom.repl_backlog_bytes as f64),
            human_bytes(p.headroom.bytes as f64),
            p.headroom.why,
            t.render(),
        ));
    }
    for n in &r.notes {
        o.push_str(&format!("- note: {n}\n"));
    }
    o
}
