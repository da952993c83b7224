//! A result row read by column name, whether the server sent it in binary (the extended protocol) or as text (a
//! shared statement through the simple query protocol): the claim and the read decide from either the same way.

use bytes::Bytes;
use tokio_postgres::{Row, SimpleQueryRow};

use super::rows::{corrupt, decode_failed};
use super::statement::{Rows, text};
use crate::record::StoredResponse;
use crate::store::StoreError;

/// The columns the store reads from a record's row.
pub(super) trait ResultRow {
    fn boolean(&self, column: &str) -> Result<bool, StoreError>;
    fn int8(&self, column: &str) -> Result<i64, StoreError>;
    fn text(&self, column: &str) -> Result<&str, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    /// The stored response: `status`, `header_names`, `header_values` and `body`.
    fn response(&self) -> Result<StoredResponse, StoreError>;
}

impl Rows {
    pub(super) fn first(&self) -> Option<&dyn ResultRow> {
        match self {
            Rows::Binary(rows) => rows.first().map(|row| row as &dyn ResultRow),
            Rows::Text(rows) => rows.first().map(|row| row as &dyn ResultRow),
        }
    }
}

impl ResultRow for Row {
    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        self.try_get(column).map_err(decode_failed)
    }

    fn int8(&self, column: &str) -> Result<i64, StoreError> {
        self.try_get(column).map_err(decode_failed)
    }

    fn text(&self, column: &str) -> Result<&str, StoreError> {
        self.try_get(column).map_err(decode_failed)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.try_get(column).map_err(decode_failed)
    }

    fn response(&self) -> Result<StoredResponse, StoreError> {
        let status: i16 = self.try_get("status").map_err(decode_failed)?;
        let names: Vec<&str> = self.try_get("header_names").map_err(decode_failed)?;
        let values: Vec<&[u8]> = self.try_get("header_values").map_err(decode_failed)?;
        let body: Option<Vec<u8>> = self.try_get("body").map_err(decode_failed)?;
        StoredResponse::from_parts(i64::from(status), &names, &values, body.map(Bytes::from))
            .map_err(|error| corrupt(error.0))
    }
}

impl ResultRow for SimpleQueryRow {
    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        let value = non_null(self, column)?;
        text::boolean(value).ok_or_else(|| unreadable(column, value))
    }

    fn int8(&self, column: &str) -> Result<i64, StoreError> {
        let value = non_null(self, column)?;
        value.parse().map_err(|_| unreadable(column, value))
    }

    fn text(&self, column: &str) -> Result<&str, StoreError> {
        non_null(self, column)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        let value = non_null(self, column)?;
        text::bytea(value).ok_or_else(|| unreadable(column, value))
    }

    fn response(&self) -> Result<StoredResponse, StoreError> {
        let status = self.int8("status")?;
        let names = text::array(non_null(self, "header_names")?)
            .ok_or_else(|| corrupt("the stored header names are not a text array"))?;
        let values = text::array(non_null(self, "header_values")?)
            .and_then(|values| values.iter().map(|value| text::bytea(value)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| corrupt("the stored header values are not a bytea array"))?;
        let body = match self.try_get("body").map_err(decode_failed)? {
            Some(body) => {
                Some(Bytes::from(text::bytea(body).ok_or_else(|| corrupt("the stored body is not a bytea"))?))
            }
            None => None,
        };
        StoredResponse::from_parts(status, &names, &values, body).map_err(|error| corrupt(error.0))
    }
}

fn non_null<'a>(row: &'a SimpleQueryRow, column: &str) -> Result<&'a str, StoreError> {
    row.try_get(column).map_err(decode_failed)?.ok_or_else(|| corrupt(format!("column {column} is NULL")))
}

/// A value the server would not have written for the column's type. Only its length is told: a value may be part
/// of a stored response.
fn unreadable(column: &str, value: &str) -> StoreError {
    corrupt(format!("column {column} holds text that is not its type's output ({} bytes)", value.len()))
}
