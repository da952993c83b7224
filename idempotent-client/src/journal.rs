//! The caller's record of (operation, key), so a caller that crashes mid-call resumes with the same key.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::error::BoxError;

/// Names a call as one operation of the caller's ("pay invoice 42"), so a [`KeyJournal`] can give it the same
/// key after a restart. Attach it with `RequestBuilder::with_extension(Operation::new("..."))`.
///
/// A call without an operation gets a fresh key and no journal entry: two calls to the same URL are two
/// operations unless the caller says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation(String);

impl Operation {
    /// The operation with this name, unique among the caller's operations.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Where the caller keeps the key of each operation it started, durably (a table, a file).
///
/// For a call with an [`Operation`], the middleware asks [`KeyJournal::saved_key`] first (a previous run started
/// it: resume with its key), saves the key with [`KeyJournal::started`] before the first send (a failure stops
/// the call: nothing is sent with a key that could be lost), and calls [`KeyJournal::finished`] once the server
/// gave a final answer. A call that gave up stays journaled, to be resumed.
#[async_trait]
pub trait KeyJournal: Send + Sync + 'static {
    /// The key saved for `operation` by a call that did not finish, if any.
    async fn saved_key(&self, operation: &str) -> Result<Option<String>, BoxError>;
    /// Saves `key` for `operation`; called before the first send, and must be durable when it returns.
    async fn started(&self, operation: &str, key: &str) -> Result<(), BoxError>;
    /// The server answered `operation` for good: its key may be forgotten.
    async fn finished(&self, operation: &str, key: &str) -> Result<(), BoxError>;
}

/// A [`KeyJournal`] in this process's memory: for tests and demos (it does not survive a crash).
#[derive(Debug, Default)]
pub struct MemoryJournal {
    keys: Mutex<HashMap<String, String>>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The operations started and not finished, with their keys.
    pub fn pending(&self) -> HashMap<String, String> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl KeyJournal for MemoryJournal {
    async fn saved_key(&self, operation: &str) -> Result<Option<String>, BoxError> {
        Ok(self.keys.lock().unwrap_or_else(PoisonError::into_inner).get(operation).cloned())
    }

    async fn started(&self, operation: &str, key: &str) -> Result<(), BoxError> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).insert(operation.to_owned(), key.to_owned());
        Ok(())
    }

    async fn finished(&self, operation: &str, key: &str) -> Result<(), BoxError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.get(operation).is_some_and(|saved| saved == key) {
            keys.remove(operation);
        }
        Ok(())
    }
}
