//! Process-wide concerns the binary owns: Ctrl-C and goose's log.
//!
//! **Ctrl-C.** The first one cancels the command's [`CancellationToken`]: before the load the
//! command skips it, during an attack the engine trips goose's killswitch and the results so far
//! are written (exit 130). A second one exits at once; a throwaway server still dies with loadgen
//! (`PR_SET_PDEATHSIG`). The handler is installed before goose starts, so goose's own
//! `set_handler` fails (it then only logs) and this one stays in charge, including during seeding.
//!
//! **Goose's log.** Goose logs through the `log` facade and installs a logger that prints to
//! stdout unless one is already installed; this one is installed first, keeps warnings and above,
//! and sends them to stderr, so stdout stays the results.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use super::render;
use crate::error::EXIT_INTERRUPTED;

/// Installs the Ctrl-C handler for `cancel` (once per process; later calls keep the first).
pub(crate) fn cancel_on_ctrl_c(cancel: CancellationToken) {
    static PRESSED: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(move || {
        if PRESSED.swap(true, Ordering::Relaxed) {
            render::interrupt_notice(true);
            std::process::exit(EXIT_INTERRUPTED);
        }
        render::interrupt_notice(false);
        cancel.cancel();
    });
}

struct GooseLog;

impl log::Log for GooseLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            render::goose_log(r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

/// Routes goose's log (warnings and above) to stderr.
pub(crate) fn route_goose_log() {
    static LOG: GooseLog = GooseLog;
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}
