//! Spawning children that cannot outlive this process.
//!
//! A test that panics, or a harness that is itself `kill -9`ed by a chaos run,
//! must not leave Redis servers behind holding ports and temp directories.
//! `Drop` covers the first case only; on Linux the child also asks the kernel
//! to `SIGKILL` it when its parent dies (`prctl(PR_SET_PDEATHSIG)`, set between
//! `fork` and `exec`).
//!
//! # Why a dedicated spawner thread
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
//! when the process does. A server started from a tokio `spawn_blocking` task
//! (how `loadgen` calls this blocking API) would be killed when that pool
//! thread retires after ~10 s idle, and one started from a short-lived
//! `std::thread` would die with it. So on Linux every child is forked by one
//! long-lived thread that lives as long as the process, and the death signal
//! means what we want: "the process died".
//!
//! Children also get their own process group, so a Ctrl-C in the terminal
//! (`SIGINT` to the foreground group, which Redis treats as "shut down") stops
//! only the parent; the parent's `Drop` or death then takes the children down.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Spawn `cmd` in its own process group, tied to this process's lifetime where
/// the OS allows it.
pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        linux::die_with_parent(&mut cmd);
        linux::spawn_from_spawner_thread(cmd)
    }
    #[cfg(not(target_os = "linux"))]
    {
        cmd.spawn()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};
    use std::sync::OnceLock;
    use std::sync::mpsc::{self, Sender};
    use std::thread;

    type Job = (Command, Sender<io::Result<Child>>);

    /// The spawner thread's inbox; `None` if that thread could not be started.
    static SPAWNER: OnceLock<Option<Sender<Job>>> = OnceLock::new();

    /// Arrange for the child to get `SIGKILL` when its parent goes away.
    pub(super) fn die_with_parent(cmd: &mut Command) {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and calls
        // only async-signal-safe functions (prctl, getppid); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) == -1
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl; then the
                // signal will never come, so give up now.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }

    /// Fork from the long-lived spawner thread (see the module docs).
    pub(super) fn spawn_from_spawner_thread(mut cmd: Command) -> io::Result<Child> {
        let spawner = SPAWNER.get_or_init(|| {
            let (jobs, inbox) = mpsc::channel::<Job>();
            thread::Builder::new()
                .name("localredis-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in inbox {
                        // The caller may have given up; nothing to do then.
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .ok()
                .map(|_| jobs)
        });
        let Some(jobs) = spawner else {
            // No spawner thread (thread creation failed): spawning here still
            // works, the child just dies with the calling thread.
            return cmd.spawn();
        };
        let (reply, answer) = mpsc::channel();
        if let Err(mpsc::SendError((returned, _))) = jobs.send((cmd, reply)) {
            cmd = returned;
            return cmd.spawn();
        }
        answer
            .recv()
            .map_err(|_| io::Error::other("localredis spawner thread exited"))?
    }
}
