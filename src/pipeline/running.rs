//! The pipeline that takes publishes now. Its owner (`Control`) swaps it at start, reload
//! and stop; the publish hook reads it for every publish, and the endpoint at every
//! scrape, each through a shared [`Running`].

use std::sync::Arc;

use parking_lot::RwLock;

use super::Pipeline;

/// The running pipeline, or none while the plugin is stopped.
#[derive(Default)]
pub struct Running(RwLock<Option<Arc<Pipeline>>>);

impl Running {
    /// The pipeline now; a publish holds it for its whole forward, so that a reload
    /// knows when the pipeline it replaced is no longer used.
    #[inline]
    pub fn get(&self) -> Option<Arc<Pipeline>> {
        self.0.read().clone()
    }

    /// Swaps in `next`, returning the pipeline it replaces.
    pub fn replace(&self, next: Option<Arc<Pipeline>>) -> Option<Arc<Pipeline>> {
        std::mem::replace(&mut *self.0.write(), next)
    }
}
