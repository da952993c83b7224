//! The floor of a layer that must work behind a transaction-mode pooler (`pooler_safe_floor_new`,
//! `pooler_safe_floor_replay`): the floor's statements ([`crate::floor`]), sent the cheapest way measured that
//! stays correct when each round trip may reach another backend.
//!
//! tokio-postgres can only run a protocol-level named statement under the name `prepare` gave it (`s<N>` from a
//! process-wide counter), which another backend may not know or may know as another process's statement. So the
//! statements are prepared per backend with SQL `PREPARE`, under fixed names, and run with `EXECUTE name(<literal
//! arguments>)` through the simple query protocol (one `Query` message; `EXECUTE` takes no bound parameters).
//! Per statement this cost PostgreSQL no more CPU than the same `EXECUTE` sent as an unnamed extended-protocol
//! statement, and far less than an unnamed statement planned every time (`docs/bench/statement-cpu.txt`). Results
//! come back as text. A backend that lacks a statement answers `26000`; it is prepared there and run again.
//!
//! No layer that is correct behind such a pooler can do less per request with tokio-postgres, so its ratio to the
//! floor (named statements, direct connections only) bounds what the library's pooler-safe way can reach.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

use crate::app::floor_answer;
use crate::floor::{
    FLOOR_CLAIM_SQL, FLOOR_COMPLETE_SQL, FLOOR_LEASE_SECS, FLOOR_READ_SQL, FLOOR_TTL_SECS, Floor, Identity, not_stored,
    storable,
};

pub(crate) const POOLER_SAFE_FLOOR_PATH: &str = "/pooler_safe_floor";

/// A floor statement under the name each backend prepares it with.
struct Shared {
    name: &'static str,
    types: &'static str,
    sql: &'static str,
}

const CLAIM: Shared = Shared {
    name: "bench_pooler_safe_claim",
    types: "bytea, bytea, text, text, bytea, int8, float8, float8",
    sql: FLOOR_CLAIM_SQL,
};

const COMPLETE: Shared = Shared {
    name: "bench_pooler_safe_complete",
    types: "bytea, bytea, text, text, int8, float8, int2, text[], bytea[], bytea",
    sql: FLOOR_COMPLETE_SQL,
};

const READ: Shared = Shared { name: "bench_pooler_safe_read", types: "bytea, bytea, text, text", sql: FLOOR_READ_SQL };

impl Floor {
    /// Runs `statement` with `arguments` (SQL literals, comma-separated) through the simple query protocol,
    /// preparing it first on a backend that does not have it.
    async fn execute_shared(&self, statement: &Shared, arguments: &str) -> Result<Vec<SimpleQueryMessage>, String> {
        let client = self.pool.get().await.map_err(|error| error.to_string())?;
        let execute = format!("EXECUTE {}({arguments})", statement.name);
        let messages = match client.simple_query(&execute).await {
            Err(error) if error.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME) => {
                let prepare = format!("PREPARE {}({}) AS {}", statement.name, statement.types, statement.sql);
                match client.batch_execute(&prepare).await {
                    Err(error) if error.code() != Some(&SqlState::DUPLICATE_PSTATEMENT) => {
                        return Err(error.to_string());
                    }
                    _ => {}
                }
                client.simple_query(&execute).await
            }
            messages => messages,
        };
        messages.map_err(|error| error.to_string())
    }
}

/// `pooler_safe_floor_new`: `floor_new`'s claim and completion, each one `EXECUTE`.
pub(crate) async fn pooler_safe_floor_new(request: HttpRequest, body: Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let token = fastrand::i64(..);
    let identity = primary_key(&id);

    let mut claim = identity.clone();
    claim.push_str(", ");
    push_bytea(&mut claim, &id.fingerprint);
    claim.push_str(&format!(", '{token}'::int8, '{FLOOR_LEASE_SECS:?}'::float8, '{FLOOR_TTL_SECS:?}'::float8"));
    match floor.execute_shared(&CLAIM, &claim).await.map(|messages| changed(&messages)) {
        Ok(1) => {}
        Ok(_) => return HttpResponse::Conflict().finish(),
        Err(error) => return HttpResponse::ServiceUnavailable().body(error),
    }

    let (head, bytes) = match floor_answer(&body) {
        Ok(answer) => answer,
        Err(status) => return HttpResponse::build(status).finish(),
    };
    let mut complete = identity;
    complete.push_str(&format!(", '{token}'::int8, '{FLOOR_TTL_SECS:?}'::float8, '{}'::int2", head.status().as_u16()));
    let stored: Vec<_> = head.headers().iter().filter(|(name, _)| storable(name)).collect();
    complete.push_str(", ARRAY[");
    for (index, (name, _)) in stored.iter().enumerate() {
        if index > 0 {
            complete.push_str(", ");
        }
        push_text(&mut complete, name.as_str());
    }
    complete.push_str("]::text[], ARRAY[");
    for (index, (_, value)) in stored.iter().enumerate() {
        if index > 0 {
            complete.push_str(", ");
        }
        push_bytea(&mut complete, value.as_bytes());
    }
    complete.push_str("]::bytea[], ");
    push_bytea(&mut complete, &bytes);
    if let Some(answer) =
        not_stored(floor.execute_shared(&COMPLETE, &complete).await.map(|messages| changed(&messages)))
    {
        return answer;
    }
    head.set_body(bytes).map_into_boxed_body()
}

/// `pooler_safe_floor_replay`: `floor_replay`'s `SELECT` as one `EXECUTE`, its text decoded.
pub(crate) async fn pooler_safe_floor_replay(
    request: HttpRequest,
    body: Bytes,
    floor: web::Data<Floor>,
) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let messages = match floor.execute_shared(&READ, &primary_key(&id)).await {
        Ok(messages) => messages,
        Err(error) => return HttpResponse::ServiceUnavailable().body(error),
    };
    let Some(row) = messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    }) else {
        return HttpResponse::NotFound().finish();
    };
    let column = |index: usize| row.get(index).unwrap_or_default();
    if bytea(column(0)).as_deref() != Some(id.fingerprint.as_slice()) {
        return HttpResponse::UnprocessableEntity().finish();
    }
    let status = column(1).parse().ok().and_then(|status| StatusCode::from_u16(status).ok());
    let (Some(status), Some(names), Some(values), Some(stored_body)) =
        (status, array(column(2)), array(column(3)), bytea(column(4)))
    else {
        return HttpResponse::InternalServerError().finish();
    };
    let mut response = HttpResponse::build(status);
    for (name, value) in names.iter().zip(&values) {
        let value = bytea(value).and_then(|value| HeaderValue::from_bytes(&value).ok());
        let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), value) else {
            return HttpResponse::InternalServerError().finish();
        };
        response.append_header((name, value));
    }
    response.insert_header(("idempotent-replayed", HeaderValue::from_static("true")));
    response.body(stored_body)
}

/// `$1` to `$4` of every floor statement, the record's primary key, as literals.
fn primary_key(id: &Identity) -> String {
    let mut literals = String::with_capacity(320);
    push_bytea(&mut literals, &id.key_hash);
    literals.push_str(", ");
    push_bytea(&mut literals, &id.scope_hash);
    literals.push_str(", ");
    push_text(&mut literals, &id.method);
    literals.push_str(", ");
    push_text(&mut literals, &id.route);
    literals
}

/// The rows an `INSERT` or `UPDATE` changed.
fn changed(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .find_map(|message| match message {
            SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
            _ => None,
        })
        .unwrap_or(0)
}

/// A text literal in the escape syntax, whose meaning does not depend on `standard_conforming_strings`.
fn push_text(out: &mut String, text: &str) {
    out.push_str("E'");
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            character => out.push(character),
        }
    }
    out.push('\'');
}

fn push_bytea(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("E'\\\\x");
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out.push_str("'::bytea");
}

/// A `bytea` in PostgreSQL's text output (`bytea_output = hex`, the default): `\x` and two hex digits a byte.
fn bytea(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("\\x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |digit: u8| char::from(digit).to_digit(16).and_then(|value| u8::try_from(value).ok());
    digits.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

/// The elements of a one-dimensional array in PostgreSQL's text output, without NULLs: `{a,"b c","d\"e"}`.
fn array(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut elements = Vec::new();
    let mut characters = inner.chars().peekable();
    while characters.peek().is_some() {
        let mut element = String::new();
        if characters.peek() == Some(&'"') {
            characters.next();
            loop {
                match characters.next()? {
                    '"' => break,
                    '\\' => element.push(characters.next()?),
                    character => element.push(character),
                }
            }
        } else {
            while let Some(&character) = characters.peek() {
                if character == ',' {
                    break;
                }
                element.push(character);
                characters.next();
            }
        }
        elements.push(element);
        match characters.next() {
            None | Some(',') => {}
            Some(_) => return None,
        }
    }
    Some(elements)
}
