//! Log output captured in memory, for suites that assert what an operator reads in the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A writer for `tracing_subscriber::fmt().with_writer(move || logs.clone())`: every clone appends to one buffer.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Installs the test binary's one global subscriber, writing plain text into a new capture. A global one,
    /// because a thread-local subscriber misses events when another test's thread reaches a call site first.
    pub fn install() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).init();
        logs
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("UTF-8 logs")
    }
}
