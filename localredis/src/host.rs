//! What the host must provide: Redis executables on `PATH` and free ports.
//!
//! Binaries are looked up once per start, not cached, so a test run that
//! installs Redis half-way (or a changed `PATH`) is seen. A missing binary is
//! an [`Error::BinaryMissing`] with the install command, because the person who
//! reads it is usually setting up a fresh machine.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// A port on 127.0.0.1 that was free a moment ago.
///
/// It binds port 0, reads the port the kernel chose and closes the socket, so
/// another process may take it before Redis binds it. Callers retry on
/// [`Error::PortInUse`]; [`RedisServer::start`](crate::RedisServer::start) and
/// [`Sentinel::start`](crate::Sentinel::start) do so themselves when no port
/// was given.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Find an executable by name on `PATH` (or check it, if `name` contains `/`).
///
/// # Errors
///
/// [`Error::BinaryMissing`] with an install hint for the Redis executables.
pub fn find_binary(name: &str) -> Result<PathBuf, Error> {
    let missing = || Error::BinaryMissing {
        name: name.to_string(),
        hint: install_hint(name),
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(missing())
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(missing)
}

/// For tests: the binary's path, or why the test should be skipped.
///
/// Returns `Err(reason)` when `name` is missing so the test can print
/// `skipped: <reason>` and return. Under CI (`CI=true` or `CI=1`) a missing
/// binary is a broken CI image, not a reason to skip, so this panics instead.
///
/// # Panics
///
/// When the binary is missing and `CI` is `true` or `1`.
pub fn require_binary_for_test(name: &str) -> Result<PathBuf, String> {
    match find_binary(name) {
        Ok(path) => Ok(path),
        Err(err) => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            if in_ci {
                panic!("{err} (CI is set, so a missing binary fails the run instead of skipping)");
            }
            Err(err.to_string())
        }
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The install command for each Redis executable. Debian splits them across
/// packages (`redis-cli` is in `redis-tools`, Sentinel in `redis-sentinel`);
/// Homebrew ships all of them in `redis`.
fn install_hint(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name);
    let debian_package = match base {
        "redis-server" => "redis-server",
        "redis-sentinel" => "redis-sentinel",
        "redis-cli" | "redis-benchmark" => "redis-tools",
        _ => return format!("install `{name}` or add its directory to PATH"),
    };
    format!(
        "install it with `apt-get install {debian_package}` (Debian/Ubuntu) or `brew install redis` \
         (macOS), or use an existing server instead (REDIS_URL / --redis-url)"
    )
}

/// How many ports [`on_free_port`] tries before giving up.
const PORT_ATTEMPTS: usize = 3;

/// Run `start` on `fixed` or, when `None`, on a free port, picking a new one
/// (up to 3 in all) when another process wins the race for it.
pub(crate) fn on_free_port<T>(
    fixed: Option<u16>,
    mut start: impl FnMut(u16) -> Result<T, Error>,
) -> Result<T, Error> {
    let attempts = if fixed.is_some() { 1 } else { PORT_ATTEMPTS };
    let mut attempt = 1;
    loop {
        let port = match fixed {
            Some(port) => port,
            None => free_port().map_err(|e| Error::io("finding a free port on 127.0.0.1", e))?,
        };
        match start(port) {
            Err(Error::PortInUse { .. }) if attempt < attempts => attempt += 1,
            result => return result,
        }
    }
}
