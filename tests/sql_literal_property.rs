//! Property (issues 24 and 29): whatever value of a type the PostgreSQL store writes as a literal (into
//! `EXECUTE name(...)`, its default statements), a real server reads it back unchanged, and the literal never
//! ends early, in every session an application could have set up on the pool it shares with the store:
//! `standard_conforming_strings` on and off, `client_encoding` UTF8, SJIS (whose two-byte characters can swallow a
//! backslash) and LATIN1, with `backslash_quote = on`.
//!
//! Each value is run twice per session: as `SELECT <literal>, 'sentinel'` and as `EXECUTE p(<literal>)` of
//! `PREPARE p(type) AS SELECT $1, 'sentinel'`. Both must answer exactly two columns, the sentinel second. Text
//! comes back through `convert_to(.., 'UTF8')`, as bytes no session setting converts.

mod support;

use std::fmt::Debug;

use idempotent_runtime::__sql_literal;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, NoTls};

use support::postgres::{TestSchema, database_url};

/// Random cases per session.
const CASES: u32 = 256;

/// The sessions, as the `SET` an application could have run on a pooled connection.
const SESSIONS: [&str; 5] = [
    "SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; SET backslash_quote = on",
    "SET client_encoding = 'UTF8'; SET standard_conforming_strings = off; SET backslash_quote = on",
    "SET client_encoding = 'SJIS'; SET standard_conforming_strings = on; SET backslash_quote = on",
    "SET client_encoding = 'SJIS'; SET standard_conforming_strings = off; SET backslash_quote = on",
    "SET client_encoding = 'LATIN1'; SET standard_conforming_strings = off; SET backslash_quote = on",
];

/// How each type comes back: `$1` is the value. Text as its UTF-8 bytes, which no `client_encoding` converts.
const PROBES: [(&str, &str); 12] = [
    ("bool", "$1"),
    ("int2", "$1"),
    ("int4", "$1"),
    ("int8", "$1"),
    ("float8", "$1"),
    ("text", "pg_catalog.convert_to($1, 'UTF8')"),
    ("bytea", "$1"),
    (
        "text[]",
        "ARRAY(SELECT pg_catalog.convert_to(e, 'UTF8') FROM pg_catalog.unnest($1) WITH ORDINALITY AS u(e, n) ORDER BY n)",
    ),
    ("bytea[]", "$1"),
    ("int8[]", "$1"),
    ("float8[]", "$1"),
    ("bool[]", "$1"),
];

/// One value of each type the writer writes.
#[derive(Debug, Clone)]
struct Values {
    flag: Option<bool>,
    small: i16,
    int: i32,
    big: Option<i64>,
    float: f64,
    text: Option<String>,
    bytes: Vec<u8>,
    texts: Vec<Option<String>>,
    blobs: Vec<Option<Vec<u8>>>,
    bigs: Vec<Option<i64>>,
    floats: Vec<Option<f64>>,
    flags: Vec<Option<bool>>,
}

/// Text of any characters but NUL (which `text` cannot hold), weighted towards those that end or escape a literal
/// and those whose bytes mean something else in SJIS.
fn text() -> impl Strategy<Value = String> {
    let character = prop_oneof![
        3 => prop_oneof![Just('\''), Just('\\'), Just('"'), Just('E'), Just('$'), Just('-'), Just(';'), Just('\n')],
        2 => prop_oneof![Just('\u{81}'), Just('\u{9f}'), Just('é'), Just('ソ'), Just('表'), Just('\u{10ffff}')],
        3 => proptest::char::range(' ', '~'),
        2 => any::<char>().prop_filter("text holds no NUL", |character| *character != '\0'),
    ];
    proptest::collection::vec(character, 0..24).prop_map(String::from_iter)
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0), Just(f64::MIN_POSITIVE / 4.0)],
    ]
}

fn values() -> impl Strategy<Value = Values> {
    let elements = 0..6;
    (
        (any::<Option<bool>>(), any::<i16>(), any::<i32>(), any::<Option<i64>>(), float()),
        (proptest::option::weighted(0.9, text()), proptest::collection::vec(any::<u8>(), 0..48)),
        (
            proptest::collection::vec(proptest::option::weighted(0.8, text()), elements.clone()),
            proptest::collection::vec(
                proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..16)),
                elements.clone(),
            ),
            proptest::collection::vec(any::<Option<i64>>(), elements.clone()),
            proptest::collection::vec(proptest::option::weighted(0.8, float()), elements.clone()),
            proptest::collection::vec(any::<Option<bool>>(), elements),
        ),
    )
        .prop_map(|((flag, small, int, big, float), (text, bytes), (texts, blobs, bigs, floats, flags))| Values {
            flag,
            small,
            int,
            big,
            float,
            text,
            bytes,
            texts,
            blobs,
            bigs,
            floats,
            flags,
        })
}

/// A connection in `session`, with each probe prepared as `probe_<index>`.
async fn connect(session: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls).await.expect("connect");
    tokio::spawn(connection);
    client.batch_execute(session).await.unwrap_or_else(|error| panic!("{session}: {error}"));
    for (index, (sql_type, expression)) in PROBES.iter().enumerate() {
        let prepare = format!("PREPARE probe_{index}({sql_type}) AS SELECT {expression}, 'sentinel'");
        client.batch_execute(&prepare).await.unwrap_or_else(|error| panic!("{prepare}: {error}"));
    }
    client
}

/// Writes `value` as the store would, runs it both ways, and compares what comes back with `expected`.
async fn round_trip<T, R>(client: &Client, probe: usize, value: &T, ty: Type, expected: &R) -> Result<(), TestCaseError>
where
    T: ToSql + Sync,
    R: for<'a> FromSql<'a> + Debug + Same,
{
    let literal = __sql_literal::write(value, &ty, usize::MAX)
        .ok_or_else(|| TestCaseError::fail(format!("{ty} is written as a literal")))?;
    __sql_literal::check(&literal).map_err(TestCaseError::fail)?;
    let (_, expression) = PROBES[probe];
    let statements = [
        format!("SELECT {}, 'sentinel'", expression.replace("$1", &literal)),
        format!("EXECUTE probe_{probe}({literal})"),
    ];
    for statement in statements {
        let rows = client
            .query(&statement, &[])
            .await
            .map_err(|error| TestCaseError::fail(format!("{statement}: {error}")))?;
        prop_assert_eq!(rows.len(), 1, "{}", statement);
        let row = &rows[0];
        prop_assert_eq!(row.len(), 2, "the literal ended early: {}", statement);
        prop_assert_eq!(row.get::<_, &str>(1), "sentinel", "{}", statement);
        let back: R = row.try_get(0).map_err(|error| TestCaseError::fail(format!("{statement}: {error}")))?;
        prop_assert!(back.same(expected), "{} came back as {:?}, not {:?}", statement, back, expected);
    }
    Ok(())
}

/// Equality, with a NaN equal to any NaN (PostgreSQL keeps one NaN) and -0.0 apart from 0.0.
trait Same {
    fn same(&self, other: &Self) -> bool;
}

impl Same for f64 {
    fn same(&self, other: &Self) -> bool {
        (self.is_nan() && other.is_nan()) || self.to_bits() == other.to_bits()
    }
}

macro_rules! same_by_eq {
    ($($ty:ty),*) => {$(impl Same for $ty { fn same(&self, other: &Self) -> bool { self == other } })*};
}
same_by_eq!(bool, i16, i32, i64, Vec<u8>);

impl<T: Same> Same for Option<T> {
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(one), Some(other)) => one.same(other),
            (one, other) => one.is_none() && other.is_none(),
        }
    }
}

impl<T: Same> Same for Vec<T> {
    fn same(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(one, other)| one.same(other))
    }
}

fn utf8(text: &Option<String>) -> Option<Vec<u8>> {
    text.as_ref().map(|text| text.as_bytes().to_vec())
}

async fn all_round_trip(client: &Client, values: &Values) -> Result<(), TestCaseError> {
    round_trip(client, 0, &values.flag, Type::BOOL, &values.flag).await?;
    round_trip(client, 1, &values.small, Type::INT2, &values.small).await?;
    round_trip(client, 2, &values.int, Type::INT4, &values.int).await?;
    round_trip(client, 3, &values.big, Type::INT8, &values.big).await?;
    round_trip(client, 4, &values.float, Type::FLOAT8, &values.float).await?;
    round_trip(client, 5, &values.text, Type::TEXT, &utf8(&values.text)).await?;
    round_trip(client, 6, &values.bytes, Type::BYTEA, &values.bytes).await?;
    let texts: Vec<Option<Vec<u8>>> = values.texts.iter().map(utf8).collect();
    round_trip(client, 7, &values.texts, Type::TEXT_ARRAY, &texts).await?;
    round_trip(client, 8, &values.blobs, Type::BYTEA_ARRAY, &values.blobs).await?;
    round_trip(client, 9, &values.bigs, Type::INT8_ARRAY, &values.bigs).await?;
    round_trip(client, 10, &values.floats, Type::FLOAT8_ARRAY, &values.floats).await?;
    round_trip(client, 11, &values.flags, Type::BOOL_ARRAY, &values.flags).await
}

/// Values that broke or could break a literal, checked in every session before the random ones.
fn edge_values() -> Vec<Values> {
    let texts = [
        "",
        "'",
        "\\",
        "\\'",
        "''\\\\",
        "', current_user, '",
        "\u{81}\\', current_user, '",
        "\u{9f}\\\\'') --",
        "ソ\\'",
        "表'",
        "E'\\x41'",
        "$$;$$",
        "\u{10ffff}\u{7f}\n\t",
    ];
    texts
        .iter()
        .map(|text| Values {
            flag: Some(true),
            small: i16::MIN,
            int: i32::MIN,
            big: Some(i64::MIN),
            float: f64::NAN,
            text: Some((*text).to_owned()),
            bytes: text.as_bytes().to_vec(),
            texts: vec![Some((*text).to_owned()), None, Some(String::new())],
            blobs: vec![Some(b"\\'".to_vec()), None],
            bigs: vec![Some(i64::MAX), None],
            floats: vec![Some(f64::NEG_INFINITY), Some(-0.0), None],
            flags: vec![Some(false), None],
        })
        .collect()
}

#[test]
fn every_value_round_trips_and_no_literal_ends_early_in_any_session() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    // Fails loudly, with the fix, when PostgreSQL is unreachable.
    runtime.block_on(async { TestSchema::create().await.drop_schema().await });
    for session in SESSIONS {
        let client = runtime.block_on(connect(session));
        for values in edge_values() {
            if let Err(error) = runtime.block_on(all_round_trip(&client, &values)) {
                panic!("{session}: {values:?}: {error}");
            }
        }
        let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
        let result = runner.run(&values(), |values| runtime.block_on(all_round_trip(&client, &values)));
        if let Err(error) = result {
            panic!("{session}: {error}");
        }
    }
}

#[test]
fn text_holding_nul_is_refused_by_the_server_as_when_bound() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        TestSchema::create().await.drop_schema().await;
        let client = connect(SESSIONS[3]).await;
        let literal = __sql_literal::write(&"a\0b", &Type::TEXT, usize::MAX).expect("written");
        let error = client.query(&format!("EXECUTE probe_5({literal})"), &[]).await.expect_err("no NUL in text");
        assert_eq!(error.code().map(|code| code.code()), Some("22021"), "{error}");
    });
}

#[test]
fn types_the_writer_does_not_know_are_left_to_binding() {
    let now = std::time::SystemTime::now();
    assert_eq!(__sql_literal::write(&now, &Type::TIMESTAMPTZ, usize::MAX), None);
    assert_eq!(__sql_literal::write(&1.5_f32, &Type::FLOAT4, usize::MAX), None);
    assert_eq!(
        __sql_literal::write(&vec![vec![1_i64]], &Type::INT8_ARRAY, usize::MAX),
        None,
        "a value of another type"
    );
}
