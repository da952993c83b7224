// The inbox needs a store whose transaction the consumer's writes can join: the memory store has none.
use idempotent_runtime::{MemoryStore, TransactionalReceiver};

fn main() {
    let _inbox = TransactionalReceiver::new(MemoryStore::new());
}
