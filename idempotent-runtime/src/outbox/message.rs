//! What an outbox row holds: the message a handler enqueues ([`OutboxMessage`]), its deterministic id
//! ([`MessageId`]), and the row as the relay hands it to a publisher ([`OutgoingMessage`]).

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The domain tag of message ids: no other digest of the library starts with it.
const ID_DOMAIN: &[u8] = b"idempotent-outbox";

/// A message to enqueue with [`crate::Tx::enqueue`]: a destination (the AMQP routing key, the NATS subject), the
/// payload bytes, and headers.
///
/// ```
/// use idempotent_runtime::outbox::OutboxMessage;
///
/// let message = OutboxMessage::new("order.created", br#"{"order_id": 42}"#.to_vec())
///     .header("content-type", "application/json");
/// assert_eq!(message.destination(), "order.created");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    destination: String,
    payload: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl OutboxMessage {
    /// A message for `destination` (routing key or subject) carrying `payload`, without headers.
    pub fn new(destination: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self { destination: destination.into(), payload: payload.into(), headers: Vec::new() }
    }

    /// Adds a header, sent with the message (AMQP headers, NATS headers), in the order added.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The destination: the routing key (AMQP) or the subject (NATS).
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The headers, in the order added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The headers as the table's two arrays (names, values).
    pub(crate) fn header_columns(&self) -> (Vec<&str>, Vec<&str>) {
        self.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).unzip()
    }
}

/// A message's id: 32 lowercase hex characters, the first 16 bytes of SHA-256(`"idempotent-outbox"` || the
/// idempotency record's digest || the enqueue's position as a big-endian `u32`), the position counting the
/// enqueues of one transaction from 0.
///
/// The same record and the same position give the same id: a handler that ran again after a rollback enqueues the
/// same ids, and every copy of a message the relay re-sends carries its id, so the consumer's inbox absorbs them.
/// Publishers send it as the AMQP `message_id` and as the NATS `Nats-Msg-Id` and `Idempotency-Key` headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// The id of the message enqueued at `position` (from 0) by the handler of the record whose digest is
    /// `record` ([`crate::store::RecordId::digest`]).
    pub fn derive(record: &Digest, position: u32) -> Self {
        Self::derive_in_generation(record, 0, position)
    }

    /// The id of the message enqueued at `position` by a later life of the record's key: `generation` 0 is
    /// [`MessageId::derive`]; generation `g` > 0 also hashes `g` as a big-endian `u32` after the position.
    /// [`Tx::enqueue`](crate::Tx::enqueue) moves to the next generation when the outbox still holds a row under the
    /// id (the same key used again after its record expired), so the new request's messages are new messages.
    pub fn derive_in_generation(record: &Digest, generation: u32, position: u32) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(ID_DOMAIN);
        hasher.update(record);
        hasher.update(position.to_be_bytes());
        if generation > 0 {
            hasher.update(generation.to_be_bytes());
        }
        let digest: Digest = hasher.finalize().into();
        let mut hex = crate::digest::to_hex(&digest);
        hex.truncate(32);
        Self(hex)
    }

    /// An id as stored in the table (the relay reads it back).
    pub(crate) fn from_stored(id: String) -> Self {
        Self(id)
    }

    /// The id as text: 32 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A committed, unsent row as the relay hands it to a [`super::Publisher`]: the message as it was enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The message's id: publish it as the broker's message id, so consumers deduplicate re-sends.
    pub id: MessageId,
    /// The routing key (AMQP) or subject (NATS).
    pub destination: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The headers, in the order they were added.
    pub headers: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_characters_of_the_record_and_the_position() {
        let record = [7_u8; 32];
        let first = MessageId::derive(&record, 0);
        assert_eq!(first.as_str().len(), 32);
        assert!(first.as_str().bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)));
        assert_eq!(first, MessageId::derive(&record, 0), "the same record and position give the same id");
        assert_ne!(first, MessageId::derive(&record, 1), "another position, another id");
        assert_ne!(first, MessageId::derive(&[8_u8; 32], 0), "another record, another id");
    }

    #[test]
    fn ids_follow_the_documented_formula() {
        let record = [1_u8; 32];
        let mut input = b"idempotent-outbox".to_vec();
        input.extend_from_slice(&record);
        input.extend_from_slice(&3_u32.to_be_bytes());
        let digest: Digest = Sha256::digest(&input).into();
        assert_eq!(MessageId::derive(&record, 3).to_string(), crate::digest::to_hex(&digest)[..32]);
    }

    #[test]
    fn headers_keep_their_order() {
        let message = OutboxMessage::new("d", b"p".to_vec()).header("b", "2").header("a", "1");
        assert_eq!(message.header_columns(), (vec!["b", "a"], vec!["2", "1"]));
    }
}
