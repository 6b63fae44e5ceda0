//! One module per subcommand. Each takes its options already resolved and typed (the CLI builds
//! them), reports progress through [`crate::engine::progress::Progress`], honours the cancellation
//! token it is given, and returns its result as a value with the exit code its verdict maps to.
//! None of them prints, reads the environment or imports another command: what two commands share
//! lives in the engine (a sweep and an eviction run both step attacks with
//! [`crate::engine::stepper`]; `run`, `sweep` and `evict` all add [`crate::engine::capacity`]'s
//! projection).
//!
//! | command | question it answers |
//! |---|---|
//! | [`run`] | does this deployment meet the scenario's SLOs and keep the stores' promises? |
//! | [`sweep`] | where is the knee: the highest offered load that still meets the SLO? |
//! | [`capacity`] | how many sessions, tokens and counters fit in a `maxmemory`? |
//! | [`evict`] | is this `maxmemory` + eviction policy safe for sessions and rate limits? |
//! | [`compare`] | did this change make us slower (the CI regression gate)? |
//! | [`doctor`] | can we reach it, and is it configured for sessions and rate limits? |

pub(crate) mod capacity;
pub(crate) mod compare;
pub(crate) mod doctor;
pub(crate) mod evict;
pub(crate) mod run;
pub(crate) mod sweep;
