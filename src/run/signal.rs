//! Interruption by SIGINT (Ctrl-C) or SIGTERM: the loop finishes its step, writes a checkpoint and stops; a second
//! signal while that happens ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The number of the signal that asked the run to stop (0: none yet), written by the handlers. A static so the loop
/// can poll it without plumbing; the handlers need it behind an `Arc`.
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// A signal that stops a run cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, job schedulers).
    Terminate,
}

impl Signal {
    /// The process exit code for a run stopped by this signal: 128 + the signal number, as shells report it.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    /// The signal's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Installs the handlers: the first SIGINT or SIGTERM is recorded for [`received`]; a second one (of either
/// kind) exits immediately with 128 + its number, for a user who does not want to wait for the checkpoint.
pub fn install() -> Result<()> {
    let pending = Arc::new(AtomicBool::new(false));
    let which = Arc::clone(RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0))));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&pending))
            .context("cannot install the signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&pending)).context("cannot install the signal handlers")?;
        signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize)
            .context("cannot install the signal handlers")?;
    }
    Ok(())
}

/// The environment variable through which `burnish sweep` gives its runs its process id: a run whose parent is no
/// longer that process (the sweep was killed) stops as if sent SIGTERM. Linux's parent-death signal cannot do this
/// job: it fires again at every reparenting between the dying sweep's threads, and a second signal ends the run
/// without its checkpoint.
pub const PARENT_ENV: &str = "BURNISH_STOP_WITHOUT_PARENT";

/// The parent process named by [`PARENT_ENV`], read once.
fn watched_parent() -> Option<u32> {
    static PARENT: OnceLock<Option<u32>> = OnceLock::new();
    *PARENT.get_or_init(|| std::env::var(PARENT_ENV).ok().and_then(|p| p.trim().parse().ok()))
}

/// The stopping signal received so far, if any (a lost parent under [`PARENT_ENV`] counts as SIGTERM).
pub fn received() -> Option<Signal> {
    #[cfg(unix)]
    if let Some(parent) = watched_parent() {
        if std::os::unix::process::parent_id() != parent {
            return Some(Signal::Terminate);
        }
    }
    match RECEIVED.get().map_or(0, |r| r.load(Ordering::Relaxed)) {
        0 => None,
        s if s == SIGTERM as usize => Some(Signal::Terminate),
        _ => Some(Signal::Interrupt),
    }
}
