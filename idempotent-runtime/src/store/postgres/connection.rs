//! The pooled connection of an open transaction: it goes back to the pool only after an explicit `COMMIT` or
//! `ROLLBACK`. Dropped in any other state (a cancelled claim, a `Tx` kept past its request, no runtime to roll
//! back on), it is taken out of the pool and closed, so PostgreSQL rolls the transaction back and no other
//! borrower ever runs inside it.

use std::ops::Deref;

/// A connection that may be inside a transaction.
pub(crate) struct TransactionConnection {
    client: Option<deadpool_postgres::Client>,
}

impl TransactionConnection {
    pub(crate) fn new(client: deadpool_postgres::Client) -> Self {
        Self { client: Some(client) }
    }

    /// The transaction ended (`COMMIT` or `ROLLBACK` succeeded): the connection may serve others again.
    pub(crate) fn into_pooled(mut self) -> Option<deadpool_postgres::Client> {
        self.client.take()
    }
}

impl Deref for TransactionConnection {
    type Target = deadpool_postgres::Client;

    fn deref(&self) -> &deadpool_postgres::Client {
        // Only `into_pooled`, which consumes `self`, and `drop` take the client out.
        self.client.as_ref().expect("the connection is present until the transaction ends")
    }
}

impl Drop for TransactionConnection {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // State unknown: never reuse. Closing the connection makes PostgreSQL roll the transaction back.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}
