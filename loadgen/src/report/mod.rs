//! Results as data first, pictures second: the schema of every file loadgen writes, and the
//! renderers that turn it into Markdown, SVG, HTML and console text.
//!
//! This is the bottom layer of the crate (see `lib.rs`): the types here are plain data that know
//! nothing of goose or Redis. The engine fills them, the commands hand them to the binary, and the
//! renderers read only them, so a JSON file, its Markdown and its chart cannot disagree. Nothing
//! secret reaches any of them: target URLs arrive redacted, tokens and session ids are never part
//! of a result, and error texts come from `cache`, whose errors never carry them.
//!
//! | module | file(s) |
//! |---|---|
//! | [`summary`] | `summary.json` of `loadgen run` (the schema) |
//! | [`run`] | `report.md`, `latency.svg`, `latency-<op>.hgrm`, the console summary |
//! | [`html`] | `report.html`, `sweep.html`: the Markdown reports as self-contained pages |
//! | [`sweep`] | `sweep.json`, `sweep.md`, `sweep.svg` (and `sweep.html`) |
//! | [`evict`] | `evict.json`, `evict.md` |
//! | [`capacity`] | `loadgen capacity`'s report (also inside the three above) |
//! | [`doctor`] | `loadgen doctor`'s findings |
//! | [`compare`] | `loadgen compare`'s Markdown and JSON |
//! | [`read`] | reading `summary.json` back |
//! | [`workers`] | a scale-out worker's shard and a merged run's workers (in `summary.json`) |
//! | [`hlog`] | `latency.hlog`: HdrHistogram interval logs, written and read |
//! | [`hgrm`], [`chart`], [`markdown`], [`console`], [`fmt`] | the pieces the renderers share |

pub mod capacity;
pub(crate) mod chart;
pub mod compare;
pub(crate) mod console;
pub mod doctor;
pub mod evict;
pub mod fmt;
pub mod hgrm;
pub mod hlog;
pub mod html;
pub(crate) mod markdown;
pub mod read;
pub mod run;
pub mod summary;
pub mod sweep;
pub mod workers;

pub use summary::{SCHEMA_VERSION, Summary};
