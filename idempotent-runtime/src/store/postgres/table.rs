//! Where the records table lives: `idempotency_records` in the connection's `search_path`, or in a schema the
//! store names. Naming the schema in every statement needs no session state (`SET search_path`) and no startup
//! option (`options=-csearch_path=...`), neither of which survives a transaction-mode pooler.

/// The records table, as statements name it.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    /// The schema, if the store names one (else the connection's `search_path` decides).
    schema: Option<String>,
    /// The name as SQL text: `idempotency_records` or `"schema".idempotency_records`.
    qualified: String,
}

/// The table's name within its schema.
pub(crate) const TABLE_NAME: &str = "idempotency_records";

impl Table {
    /// The table found through the connection's `search_path`.
    pub(crate) fn in_search_path() -> Self {
        Self { schema: None, qualified: TABLE_NAME.to_owned() }
    }

    /// The table in `schema` (any name: it is quoted).
    pub(crate) fn in_schema(schema: &str) -> Self {
        Self { schema: Some(schema.to_owned()), qualified: format!("{}.{TABLE_NAME}", quote_identifier(schema)) }
    }

    /// The name as SQL text: `idempotency_records` or `"schema".idempotency_records`.
    pub(crate) fn qualified_name(&self) -> &str {
        &self.qualified
    }

    /// The schema, quoted for SQL.
    pub(crate) fn quoted_schema(&self) -> Option<String> {
        self.schema.as_deref().map(quote_identifier)
    }

    /// `template` with `{table}` replaced by the table's SQL name, `{table_literal}` by that name as a string
    /// literal (for `'...'::regclass`), and `{schema_prefix}` by the schema and a dot (or nothing), which
    /// qualifies the schema's other objects as the table is.
    pub(crate) fn render(&self, template: &str) -> String {
        let schema_prefix = self.quoted_schema().map(|schema| format!("{schema}.")).unwrap_or_default();
        template
            .replace("{table_literal}", &self.qualified.replace('\'', "''"))
            .replace("{table}", &self.qualified)
            .replace("{schema_prefix}", &schema_prefix)
    }
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plain_and_qualified_names() {
        let template = "SELECT '{table_literal}'::regclass FROM {table}";
        assert_eq!(
            Table::in_search_path().render(template),
            "SELECT 'idempotency_records'::regclass FROM idempotency_records"
        );
        assert_eq!(
            Table::in_schema("billing").render(template),
            "SELECT '\"billing\".idempotency_records'::regclass FROM \"billing\".idempotency_records"
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
            "\"we\"\"ird'name\".idempotency_records '\"we\"\"ird''name\".idempotency_records'"
        );
    }
}
