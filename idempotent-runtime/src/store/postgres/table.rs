//! Where the records table lives: `idempotency_records` in the connection's `search_path`, or in a schema the
//! store names. Naming the schema in every statement needs no session state (`SET search_path`) and no startup
//! option (`options=-csearch_path=...`), neither of which survives a transaction-mode pooler.
//!
//! The schema is any string, and it is written into statements that run in the application's sessions, whatever
//! their `standard_conforming_strings` and `client_encoding`. So everything written here is printable ASCII whose
//! meaning no setting changes: the identifier in double quotes (`"` doubled), in the Unicode escape form
//! (`U&"..."`) when the name is not printable ASCII; the name as a string literal in the escape syntax (`E'...'`,
//! backslashes and quotes doubled), or as its UTF-8 bytes in hex decoded by the server when it is not printable
//! ASCII (as the statements' literal writer does).

use std::fmt::Write as _;

/// The records table, as statements name it.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    /// The schema, if the store names one (else the connection's `search_path` decides).
    schema: Option<String>,
    /// The name as `to_regclass` reads it: `idempotency_records` or `"schema".idempotency_records`.
    qualified: String,
    /// The name as SQL text: `idempotency_records`, `"schema".idempotency_records` or `U&"sch\00e9ma"....`.
    sql: String,
}

/// The table's name within its schema.
pub(crate) const TABLE_NAME: &str = "idempotency_records";

impl Table {
    /// The table found through the connection's `search_path`.
    pub(crate) fn in_search_path() -> Self {
        Self { schema: None, qualified: TABLE_NAME.to_owned(), sql: TABLE_NAME.to_owned() }
    }

    /// The table in `schema` (any name: it is quoted).
    pub(crate) fn in_schema(schema: &str) -> Self {
        Self {
            schema: Some(schema.to_owned()),
            qualified: format!("\"{}\".{TABLE_NAME}", schema.replace('"', "\"\"")),
            sql: format!("{}.{TABLE_NAME}", quote_identifier(schema)),
        }
    }

    /// The name as `to_regclass` reads it (a value, not SQL text): `idempotency_records` or
    /// `"schema".idempotency_records`.
    pub(crate) fn qualified_name(&self) -> &str {
        &self.qualified
    }

    /// The schema, quoted for SQL.
    pub(crate) fn quoted_schema(&self) -> Option<String> {
        self.schema.as_deref().map(quote_identifier)
    }

    /// `template` with, in one pass (a schema name that spells a placeholder stays as it is):
    ///
    /// - `{table}` replaced by the table's SQL name;
    /// - `'{table_literal}'`, quotes included, by a string literal of the name as `to_regclass` reads it (for
    ///   `'{table_literal}'::regclass`);
    /// - `{schema_prefix}` by the schema and a dot (or nothing), which qualifies the schema's other objects as
    ///   the table is.
    pub(crate) fn render(&self, template: &str) -> String {
        let schema_prefix = self.quoted_schema().map(|schema| format!("{schema}.")).unwrap_or_default();
        let placeholders = [
            ("'{table_literal}'", string_literal(&self.qualified)),
            ("{table}", self.sql.clone()),
            ("{schema_prefix}", schema_prefix),
        ];
        let mut out = String::with_capacity(template.len() + 4 * self.sql.len());
        let mut rest = template;
        'text: while let Some(character) = rest.chars().next() {
            for (placeholder, value) in &placeholders {
                if let Some(after) = rest.strip_prefix(placeholder) {
                    out.push_str(value);
                    rest = after;
                    continue 'text;
                }
            }
            out.push(character);
            rest = &rest[character.len_utf8()..];
        }
        out
    }
}

fn is_printable_ascii(text: &str) -> bool {
    text.bytes().all(|byte| (b' '..=b'~').contains(&byte))
}

/// `name` as a quoted identifier in printable ASCII: `"..."`, or `U&"..."` with the other characters as Unicode
/// escapes (accepted whatever `standard_conforming_strings` says, unlike `U&'...'`).
fn quote_identifier(name: &str) -> String {
    if is_printable_ascii(name) {
        return format!("\"{}\"", name.replace('"', "\"\""));
    }
    let mut quoted = String::from("U&\"");
    for character in name.chars() {
        match character {
            '"' => quoted.push_str("\"\""),
            '\\' => quoted.push_str("\\\\"),
            ' '..='~' => quoted.push(character),
            _ => match u16::try_from(u32::from(character)) {
                Ok(unit) => write!(quoted, "\\{unit:04x}").expect("a String takes any write"),
                Err(_) => write!(quoted, "\\+{:06x}", u32::from(character)).expect("a String takes any write"),
            },
        }
    }
    quoted.push('"');
    quoted
}

/// `text` as a string literal in printable ASCII that reads the same in every session: the escape syntax, or
/// the text's UTF-8 bytes in hex decoded by the server.
fn string_literal(text: &str) -> String {
    if is_printable_ascii(text) {
        return format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"));
    }
    let mut literal = String::from("pg_catalog.convert_from(pg_catalog.decode('");
    for byte in text.bytes() {
        write!(literal, "{byte:02x}").expect("a String takes any write");
    }
    literal.push_str("', 'hex'), 'UTF8')");
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plain_and_qualified_names() {
        let template = "SELECT '{table_literal}'::regclass FROM {table}";
        assert_eq!(
            Table::in_search_path().render(template),
            "SELECT E'idempotency_records'::regclass FROM idempotency_records"
        );
        assert_eq!(
            Table::in_schema("billing").render(template),
            "SELECT E'\"billing\".idempotency_records'::regclass FROM \"billing\".idempotency_records"
        );
    }

    #[test]
    fn qualifies_the_schemas_other_objects_as_the_table() {
        let template = "SELECT {schema_prefix}f() FROM {table}";
        assert_eq!(Table::in_search_path().render(template), "SELECT f() FROM idempotency_records");
        assert_eq!(
            Table::in_schema("billing").render(template),
            "SELECT \"billing\".f() FROM \"billing\".idempotency_records"
        );
    }

    #[test]
    fn quotes_any_schema_name() {
        let table = Table::in_schema("we\"ird'name");
        assert_eq!(
            table.render("{table} '{table_literal}'"),
            "\"we\"\"ird'name\".idempotency_records E'\"we\"\"ird''name\".idempotency_records'"
        );
    }

    #[test]
    fn a_backslash_cannot_end_the_literal_whatever_standard_conforming_strings_says() {
        let table = Table::in_schema("a\\'b");
        assert_eq!(table.render("'{table_literal}'"), "E'\"a\\\\''b\".idempotency_records'");
        assert_eq!(table.render("{table}"), "\"a\\'b\".idempotency_records");
        assert_eq!(table.qualified_name(), "\"a\\'b\".idempotency_records");
    }

    #[test]
    fn a_schema_that_spells_a_placeholder_is_substituted_once() {
        let table = Table::in_schema("x{schema_prefix}{table}'{table_literal}'");
        let quoted = "\"x{schema_prefix}{table}'{table_literal}'\"";
        assert_eq!(table.render("{schema_prefix}f()"), format!("{quoted}.f()"));
        assert_eq!(table.render("FROM {table}"), format!("FROM {quoted}.idempotency_records"));
        assert_eq!(
            table.render("'{table_literal}'"),
            "E'\"x{schema_prefix}{table}''{table_literal}''\".idempotency_records'"
        );
    }

    #[test]
    fn a_schema_that_is_not_printable_ascii_is_written_in_ascii() {
        let table = Table::in_schema("sché\"ma\\😀");
        assert_eq!(table.render("{table}"), "U&\"sch\\00e9\"\"ma\\\\\\+01f600\".idempotency_records");
        assert_eq!(table.quoted_schema().unwrap(), "U&\"sch\\00e9\"\"ma\\\\\\+01f600\"");
        let hex: String = "\"sché\"\"ma\\😀\".idempotency_records".bytes().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            table.render("'{table_literal}'"),
            format!("pg_catalog.convert_from(pg_catalog.decode('{hex}', 'hex'), 'UTF8')")
        );
        assert!(is_printable_ascii(&table.render("{schema_prefix} {table} '{table_literal}'")));
    }
}
