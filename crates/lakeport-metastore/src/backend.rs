//! The seam between the metastore's operations, written once (`catalog`, `registry`,
//! `ingest`), and the two SQL backends. A backend gives three things:
//!
//! - a [`Backend`] that runs one call's work as one transaction (SQLite: a closure on a
//!   blocking thread behind its connection permit; PostgreSQL: a pooled connection, retried
//!   on transient failures);
//! - a [`Conn`] that runs a statement with bound values and returns plain [`Cell`] rows;
//! - a [`Dialect`] for the SQL that truly differs.
//!
//! Every statement is written once with `$n` placeholders; SQLite runs them as `?n`.

use std::future::Future;
use std::pin::Pin;

use lakeport_domain::Doc;
use lakeport_domain::ids::{BatchId, DatasetId};

use crate::MetastoreError;
use crate::sql::{Bind, Dialect, Statement};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs each metastore call's work in one transaction (`write`) or on one connection
/// (`read`). `work` may run more than once when a backend retries a transient failure.
pub trait Backend: Send + Sync + 'static {
    type Conn: Conn;

    fn write<T, F>(
        &self,
        doing: &'static str,
        work: F,
    ) -> impl Future<Output = Result<T, MetastoreError>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut Self::Conn) -> BoxFuture<'c, Result<T, MetastoreError>>
            + Send
            + 'static;

    fn read<T, F>(
        &self,
        doing: &'static str,
        work: F,
    ) -> impl Future<Output = Result<T, MetastoreError>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut Self::Conn) -> BoxFuture<'c, Result<T, MetastoreError>>
            + Send
            + 'static;
}

/// A connection inside a call's transaction.
pub trait Conn: Send {
    type Dialect: Dialect + FixedSql;

    /// Runs a fixed statement (prepared once per connection) and returns its rows.
    fn query(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> impl Future<Output = Result<Vec<Vec<Cell>>, MetastoreError>> + Send;

    /// Runs a fixed statement and returns how many rows it changed.
    fn execute(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> impl Future<Output = Result<u64, MetastoreError>> + Send;

    /// Runs a statement built for one request (its text varies with the request).
    fn query_built(
        &mut self,
        doing: &'static str,
        statement: &Statement,
    ) -> impl Future<Output = Result<Vec<Vec<Cell>>, MetastoreError>> + Send;

    /// The name of the unique constraint a failed write violated (empty when the backend
    /// cannot name it), or `None` when the failure was something else.
    fn unique_violation(err: &MetastoreError) -> Option<&str>;
}

/// Which row lock a read takes inside a write transaction. SQLite has one writer and
/// needs none; PostgreSQL locks what it reads to rewrite.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    /// `FOR SHARE`: the row may not change until the transaction ends.
    Share,
    /// `FOR UPDATE`: the row is about to be rewritten.
    Update,
}

/// The parts of the fixed statements that differ between the backends.
pub trait FixedSql {
    /// Whether rows are locked (`FOR UPDATE`); without, statements that only lock are skipped.
    const LOCKS: bool;
    /// The columns a document is written to, and their values from the text at `$n`.
    fn doc_columns() -> &'static str;
    fn doc_values(placeholder: &str) -> String;
    /// `column = value` assignments writing the document text at `$n`.
    fn set_doc(placeholder: &str) -> String;
    /// True when the text at `$n` occurs in the text of `column`.
    fn contains(column: &str, placeholder: &str) -> String;
    /// The clause that takes `lock` on the rows a `SELECT` returns.
    fn lock(lock: Lock) -> &'static str;
    /// The clause that locks the row a job claim returns and skips rows others hold.
    const SKIP_LOCKED: &'static str;
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Real(f64),
    Path(&'a [String]),
}

/// A value that binds to a placeholder.
pub trait ToParam: Sync {
    fn param(&self) -> Param<'_>;
}

impl ToParam for &str {
    fn param(&self) -> Param<'_> {
        Param::Text(self)
    }
}

impl ToParam for String {
    fn param(&self) -> Param<'_> {
        Param::Text(self)
    }
}

impl ToParam for i64 {
    fn param(&self) -> Param<'_> {
        Param::Int(*self)
    }
}

impl ToParam for BatchId {
    fn param(&self) -> Param<'_> {
        Param::Text(self.as_str())
    }
}

impl ToParam for DatasetId {
    fn param(&self) -> Param<'_> {
        Param::Text(self.as_str())
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn param(&self) -> Param<'_> {
        self.as_ref().map_or(Param::Null, ToParam::param)
    }
}

impl ToParam for Bind {
    fn param(&self) -> Param<'_> {
        match self {
            Bind::Text(text) => Param::Text(text),
            Bind::Int(int) => Param::Int(*int),
            Bind::Real(real) => Param::Real(*real),
            Bind::Path(path) => Param::Path(path),
        }
    }
}

/// A value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
}

/// A value read from a [`Cell`].
pub trait FromCell: Sized {
    fn from_cell(cell: Cell) -> Option<Self>;
}

impl FromCell for String {
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl FromCell for i64 {
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::Int(int) => Some(int),
            _ => None,
        }
    }
}

impl FromCell for bool {
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::Bool(flag) => Some(flag),
            // SQLite has no boolean type.
            Cell::Int(int) => Some(int != 0),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::Null => Some(None),
            cell => T::from_cell(cell).map(Some),
        }
    }
}

/// A row read as a tuple of [`FromCell`] values (or one value).
pub trait FromRow: Sized {
    fn from_row(row: Vec<Cell>) -> Option<Self>;
}

macro_rules! from_row {
    ($($single:ty),*; $(($($t:ident),+))*) => {
        $(impl FromRow for $single {
            fn from_row(row: Vec<Cell>) -> Option<Self> {
                <$single>::from_cell(row.into_iter().next()?)
            }
        })*
        $(impl<$($t: FromCell),+> FromRow for ($($t,)+) {
            fn from_row(row: Vec<Cell>) -> Option<Self> {
                let mut cells = row.into_iter();
                Some(($($t::from_cell(cells.next()?)?,)+))
            }
        })*
    };
}

from_row!(String, i64, bool, Option<String>; (A, B) (A, B, C) (A, B, C, D) (A, B, C, D, E) (A, B, C, D, E, F) (A, B, C, D, E, F, G) (A, B, C, D, E, F, G, H) (A, B, C, D, E, F, G, H, I));

fn unexpected_row(doing: &'static str) -> MetastoreError {
    MetastoreError::Backend {
        doing,
        source: "a row did not have the expected columns".into(),
    }
}

/// Runs a fixed statement and reads its rows as `T`.
pub async fn fetch<C: Conn, T: FromRow>(
    conn: &mut C,
    doing: &'static str,
    sql: &str,
    params: &[&dyn ToParam],
) -> Result<Vec<T>, MetastoreError> {
    let rows = conn.query(doing, sql, params).await?;
    rows.into_iter()
        .map(|row| T::from_row(row).ok_or_else(|| unexpected_row(doing)))
        .collect()
}

/// Runs a fixed statement and reads its first row, if any, as `T`.
pub async fn fetch_opt<C: Conn, T: FromRow>(
    conn: &mut C,
    doing: &'static str,
    sql: &str,
    params: &[&dyn ToParam],
) -> Result<Option<T>, MetastoreError> {
    let rows = conn.query(doing, sql, params).await?;
    rows.into_iter()
        .next()
        .map(|row| T::from_row(row).ok_or_else(|| unexpected_row(doing)))
        .transpose()
}

/// Runs a fixed statement that always returns one row.
pub async fn fetch_one<C: Conn, T: FromRow>(
    conn: &mut C,
    doing: &'static str,
    sql: &str,
    params: &[&dyn ToParam],
) -> Result<T, MetastoreError> {
    fetch_opt(conn, doing, sql, params)
        .await?
        .ok_or_else(|| unexpected_row(doing))
}

/// Runs a built statement and reads its rows as `T`.
pub async fn fetch_built<C: Conn, T: FromRow>(
    conn: &mut C,
    doing: &'static str,
    statement: &Statement,
) -> Result<Vec<T>, MetastoreError> {
    let rows = conn.query_built(doing, statement).await?;
    rows.into_iter()
        .map(|row| T::from_row(row).ok_or_else(|| unexpected_row(doing)))
        .collect()
}

pub fn parse_doc(text: &str) -> Result<Doc, MetastoreError> {
    serde_json::from_str(text).map_err(|err| MetastoreError::Backend {
        doing: "decoding a stored document",
        source: Box::new(err),
    })
}

pub fn encode_doc(doc: &Doc) -> Result<String, MetastoreError> {
    serde_json::to_string(doc).map_err(|err| MetastoreError::Backend {
        doing: "encoding a document",
        source: Box::new(err),
    })
}
