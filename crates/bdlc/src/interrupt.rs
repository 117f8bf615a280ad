//! Ctrl-C: the process's one handler, which stops a running sampler or optimiser (keeping what it
//! has) instead of ending the process while inference runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What Ctrl-C does. Outside inference it ends the process (exit code 130), as it would without
/// a handler; while inference runs (`bdlc infer`, the REPL) the first press asks the sampler or
/// optimiser to stop and keep what it has, and a second press ends the process.
pub struct Interrupt {
    /// Set by Ctrl-C while stopping is allowed; samplers and optimisers poll it.
    pub stop: AtomicBool,
    stoppable: AtomicBool,
}

impl Interrupt {
    /// Installs the process's one Ctrl-C handler.
    pub fn install() -> Arc<Interrupt> {
        let interrupt = Arc::new(Interrupt {
            stop: AtomicBool::new(false),
            stoppable: AtomicBool::new(false),
        });
        let handler = Arc::clone(&interrupt);
        // Without a handler (a restricted environment) Ctrl-C simply ends the process.
        let _ = ctrlc::set_handler(move || {
            let stoppable = handler.stoppable.load(Ordering::SeqCst);
            if !stoppable || handler.stop.swap(true, Ordering::SeqCst) {
                // Not in the middle of a write: every file left ends with a whole row.
                crate::output::end_process_between_writes(130);
            }
        });
        interrupt
    }

    /// Lets Ctrl-C stop a run instead of ending the process (or goes back to ending it).
    pub fn set_stoppable(&self, stoppable: bool) {
        self.stoppable.store(stoppable, Ordering::SeqCst);
    }

    /// Forgets an earlier Ctrl-C, before the next run starts.
    pub fn reset(&self) {
        self.stop.store(false, Ordering::SeqCst);
    }
}
