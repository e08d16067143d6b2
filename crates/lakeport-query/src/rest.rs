//! The engine behind the Query Service's REST API (spec §11.4): parses a statement into a
//! SELECT, a CREATE TABLE AS SELECT or an INSERT INTO, and runs a SELECT over the tenant's
//! tables, counting its rows or writing them as JSON Lines for a CTAS or INSERT INTO batch.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::{
    CreateTableOptions, Expr, ObjectName, SqlOption, Statement as SqlStatement, TableObject,
    Value as SqlValue,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::StreamExt as _;
use lakeport_api::query::{
    Parsed, QueryEngine, ResultFiles, Sample, SelectOutcome, SqlError, Statement,
};
use lakeport_domain::tenant::Tenant;
use serde_json::{Map, Value, json};

use crate::QueryService;

/// Returns the SQLSTATE of a DataFusion failure (spec §11.5).
pub fn sqlstate(err: &DataFusionError) -> &'static str {
    match err.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::SchemaError(..) => "42703",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::External(_) => "58000",
        DataFusionError::Internal(_) => "XX000",
        DataFusionError::Plan(message) => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("table") && lower.contains("not found") {
                "42P01"
            } else if lower.contains("invalid function")
                || lower.contains("function") && lower.contains("not found")
            {
                "42883"
            } else if lower.contains("no field named") || lower.contains("column") {
                "42703"
            } else {
                "42000"
            }
        }
        DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => "22000",
        _ => "XX000",
    }
}

/// A DataFusion error as the SQLSTATE and message a client gets; a full memory pool
/// (53200) or spill directory (53100, which DataFusion reports as an I/O error) names the
/// setting that bounds it.
pub(crate) fn df_error(err: &DataFusionError) -> SqlError {
    let message = err.to_string();
    if message.contains("disk space during the spilling process has exceeded") {
        return SqlError::new(
            "53100",
            format!(
                "the query needs more spill disk than this server gives its queries (query.max_spill_bytes): {message}"
            ),
        );
    }
    let code = sqlstate(err);
    if code == "53200" {
        return SqlError::new(
            code,
            format!(
                "the query needs more memory than this server gives its queries (query.max_memory_bytes): {message}"
            ),
        );
    }
    SqlError::new(code, message)
}

fn name_of(name: &ObjectName) -> Result<String, SqlError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|part| part.as_ident())
        .map(|ident| {
            // Unquoted identifiers fold to lower case, as PostgreSQL (and the table names)
            // have them.
            if ident.quote_style.is_some() {
                ident.value.clone()
            } else {
                ident.value.to_ascii_lowercase()
            }
        })
        .collect();
    match parts.as_slice() {
        [table] => Ok(table.clone()),
        [schema, table] if schema == "public" => Ok(table.clone()),
        _ => Err(SqlError::new(
            "42602",
            format!("{name} is not a table name of this sandbox; name the table alone"),
        )),
    }
}

fn option_text(value: &Expr) -> Option<String> {
    match value {
        Expr::Value(value) => match &value.value {
            SqlValue::SingleQuotedString(text) | SqlValue::DoubleQuotedString(text) => {
                Some(text.clone())
            }
            SqlValue::Boolean(flag) => Some(flag.to_string()),
            _ => None,
        },
        Expr::Identifier(ident) => Some(ident.value.clone()),
        _ => None,
    }
}

/// Returns the tables a statement reads, CTE names left out; names with a schema or
/// catalog (`information_schema.tables`) are not datasets and are left out too.
fn tables_read(query: &datafusion::sql::sqlparser::ast::Query) -> Result<Vec<String>, SqlError> {
    let wrapped = datafusion::sql::parser::Statement::Statement(Box::new(SqlStatement::Query(
        Box::new(query.clone()),
    )));
    let (tables, _ctes) = resolve_table_references(&wrapped, true).map_err(|err| df_error(&err))?;
    // Table functions (`generate_series(1, 10)`) are relations too, not tables.
    static TABLE_FUNCTIONS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let functions = TABLE_FUNCTIONS.get_or_init(|| {
        datafusion::prelude::SessionContext::new()
            .state()
            .table_functions()
            .keys()
            .cloned()
            .collect()
    });
    Ok(tables
        .into_iter()
        .filter(|table| !functions.iter().any(|name| name == table.table()))
        .filter_map(|table| match table {
            TableReference::Bare { table } => Some(crate::snapshot::base_table(&table).to_owned()),
            TableReference::Partial { schema, table } if schema.as_ref() == "public" => {
                Some(crate::snapshot::base_table(&table).to_owned())
            }
            _ => None,
        })
        .collect())
}

/// Parses one statement of the REST API (spec §11.3).
pub fn parse_statement(sql: &str) -> Result<Parsed, SqlError> {
    let sql = crate::snapshot::rewrite(sql)?;
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .map_err(|err| SqlError::new("42601", format!("syntax error: {err}")))?;
    let [statement] = statements.as_slice() else {
        return Err(SqlError::new(
            "42601",
            format!(
                "a query holds exactly one statement, this holds {}",
                statements.len()
            ),
        ));
    };
    let source = match statement {
        SqlStatement::Query(query) => Some(query),
        SqlStatement::CreateTable(create) => create.query.as_ref(),
        SqlStatement::Insert(insert) => insert.source.as_ref(),
        _ => None,
    };
    let parsed = match statement {
        SqlStatement::Query(query) => Ok(Statement::Select {
            sql: query.to_string(),
        }),
        SqlStatement::CreateTable(create) => {
            let Some(query) = &create.query else {
                return Err(SqlError::new(
                    "0A000",
                    "CREATE TABLE needs AS SELECT …: datasets get their columns from a query (or from the Catalog and Schema Registry APIs)",
                ));
            };
            let mut schema_title = None;
            if let CreateTableOptions::With(options) = &create.table_options {
                for option in options {
                    if let SqlOption::KeyValue { key, value } = option {
                        match key.value.to_ascii_lowercase().as_str() {
                            "schema" => schema_title = option_text(value),
                            // Rows are always validated (spec §7); Adobe's switch is accepted.
                            "rowvalidation" => {}
                            other => {
                                return Err(SqlError::new(
                                    "22023",
                                    format!(
                                        "CREATE TABLE option {other:?} is not known; the options are schema and rowvalidation"
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            Ok(Statement::CreateTableAs {
                table: name_of(&create.name)?,
                schema_title,
                select: query.to_string(),
            })
        }
        SqlStatement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return Err(SqlError::new("0A000", "INSERT INTO takes a table name"));
            };
            if !insert.columns.is_empty() {
                return Err(SqlError::new(
                    "0A000",
                    "INSERT INTO t (columns) is not supported; name the columns in the SELECT (SELECT a AS x, …)",
                ));
            }
            let Some(source) = &insert.source else {
                return Err(SqlError::new("0A000", "INSERT INTO needs a SELECT"));
            };
            Ok(Statement::InsertInto {
                table: name_of(name)?,
                select: source.to_string(),
            })
        }
        SqlStatement::Update { .. }
        | SqlStatement::Delete(_)
        | SqlStatement::Merge { .. }
        | SqlStatement::AlterTable { .. } => Err(SqlError::new(
            "0A000",
            "UPDATE, DELETE, MERGE and ALTER are not supported: datasets change through batches",
        )),
        other => Err(SqlError::new(
            "0A000",
            format!(
                "the REST API runs SELECT, CREATE TABLE AS SELECT and INSERT INTO; {} statements run over the PostgreSQL wire endpoint",
                other
                    .to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("such")
            ),
        )),
    }?;
    Ok(Parsed {
        statement: parsed,
        tables: match source {
            Some(query) => tables_read(query)?,
            None => Vec::new(),
        },
    })
}

/// Returns the XDM field of an Arrow type (the ad-hoc schema of a CTAS).
fn xdm_field(name: &str, data_type: &DataType) -> Result<Value, SqlError> {
    let field = match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            json!({"type": "string"})
        }
        DataType::Int8 => json!({"type": "integer", "meta:xdmType": "byte"}),
        DataType::Int16 | DataType::UInt8 => json!({"type": "integer", "meta:xdmType": "short"}),
        DataType::Int32 | DataType::UInt16 => json!({"type": "integer", "meta:xdmType": "int"}),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => {
            json!({"type": "integer", "meta:xdmType": "long"})
        }
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => json!({"type": "number"}),
        DataType::Boolean => json!({"type": "boolean"}),
        DataType::Date32 | DataType::Date64 => json!({"type": "string", "format": "date"}),
        DataType::Timestamp(..) => json!({"type": "string", "format": "date-time"}),
        DataType::Struct(fields) => {
            json!({"type": "object", "properties": xdm_properties(fields)?})
        }
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::FixedSizeList(item, _) => {
            json!({"type": "array", "items": xdm_field(name, item.data_type())?})
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(pair) = entries.data_type() else {
                return Err(unsupported(name, data_type));
            };
            let value = pair.get(1).ok_or_else(|| unsupported(name, data_type))?;
            json!({"type": "object", "additionalProperties": xdm_field(name, value.data_type())?})
        }
        DataType::Dictionary(_, value) => xdm_field(name, value)?,
        other => return Err(unsupported(name, other)),
    };
    Ok(field)
}

fn unsupported(name: &str, data_type: &DataType) -> SqlError {
    SqlError::new(
        "0A000",
        format!("column {name:?} is of type {data_type}, which has no XDM equivalent; CAST it"),
    )
}

fn xdm_properties(fields: &Fields) -> Result<Map<String, Value>, SqlError> {
    let mut properties = Map::new();
    for field in fields {
        properties.insert(
            field.name().clone(),
            xdm_field(field.name(), field.data_type())?,
        );
    }
    Ok(properties)
}

/// The type a column is written as: timestamps tagged UTC (so that JSON carries the
/// offset the date-time format needs), dictionaries unpacked, everywhere inside too.
fn written_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some("+00:00".into())),
        DataType::Struct(fields) => DataType::Struct(written_fields(fields)),
        DataType::List(item) => DataType::List(Arc::new(written_field(item))),
        DataType::LargeList(item) => DataType::LargeList(Arc::new(written_field(item))),
        DataType::Dictionary(_, value) => written_type(value),
        other => other.clone(),
    }
}

fn written_field(field: &Field) -> Field {
    field
        .clone()
        .with_data_type(written_type(field.data_type()))
}

fn written_fields(fields: &Fields) -> Fields {
    fields.iter().map(|field| written_field(field)).collect()
}

/// A result batch under `schema`: its columns cast to the written types, renamed as the
/// schema names them.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, SqlError> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<_, _>>()
        .map_err(|err| SqlError::new("22000", format!("converting the result: {err}")))?;
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|err| SqlError::new("22000", format!("converting the result: {err}")))
}

/// JSON Lines files in a directory, a new one started once one reaches its size.
struct RollingWriter {
    files: ResultFiles,
    schema: SchemaRef,
    written: Vec<PathBuf>,
    current: Option<CountingWriter>,
    /// Bytes of the files already closed.
    closed_bytes: u64,
}

struct CountingWriter {
    writer: arrow_json::LineDelimitedWriter<Counted>,
    bytes: Arc<AtomicU64>,
}

/// A buffered file that counts the bytes written to it.
struct Counted {
    file: std::io::BufWriter<std::fs::File>,
    bytes: Arc<AtomicU64>,
}

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf)?;
        self.bytes.fetch_add(written as u64, Ordering::Relaxed);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl RollingWriter {
    fn new(files: &ResultFiles, schema: &Schema) -> Self {
        Self {
            files: files.clone(),
            schema: Arc::new(Schema::new(written_fields(schema.fields()))),
            written: Vec::new(),
            current: None,
            closed_bytes: 0,
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, &self.schema)?;
        if self.current.is_none() {
            let path = self
                .files
                .dir
                .join(format!("part-{:05}.json", self.written.len() + 1));
            let file = std::fs::File::create(&path)
                .map_err(|err| SqlError::new("58030", format!("writing the result: {err}")))?;
            self.written.push(path);
            let bytes = Arc::new(AtomicU64::new(0));
            self.current = Some(CountingWriter {
                writer: arrow_json::LineDelimitedWriter::new(Counted {
                    file: std::io::BufWriter::new(file),
                    bytes: Arc::clone(&bytes),
                }),
                bytes,
            });
        }
        let current = self.current.as_mut().expect("opened above");
        current
            .writer
            .write(&batch)
            .map_err(|err| SqlError::new("58030", format!("writing the result: {err}")))?;
        let in_file = current.bytes.load(Ordering::Relaxed);
        if self.closed_bytes + in_file > self.files.max_total_bytes {
            return Err(SqlError::new(
                "54000",
                format!(
                    "the result is over {} bytes, the most a CREATE TABLE AS SELECT or INSERT INTO may write (query.max_result_bytes); select fewer rows or columns",
                    self.files.max_total_bytes
                ),
            ));
        }
        if in_file >= self.files.max_file_bytes {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SqlError> {
        if let Some(mut current) = self.current.take() {
            self.closed_bytes += current.bytes.load(Ordering::Relaxed);
            current
                .writer
                .finish()
                .map_err(|err| SqlError::new("58030", format!("writing the result: {err}")))?;
            current
                .writer
                .into_inner()
                .flush()
                .map_err(|err| SqlError::new("58030", format!("writing the result: {err}")))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl QueryEngine for QueryService {
    fn parse(&self, sql: &str) -> Result<Parsed, SqlError> {
        parse_statement(sql)
    }

    async fn run(
        &self,
        tenant: &Tenant,
        select: &str,
        target: Option<&str>,
        files: Option<&ResultFiles>,
    ) -> Result<SelectOutcome, SqlError> {
        // On the engine's own threads, so that a busy query never holds the threads that
        // serve HTTP and ingestion; dropping this future (a cancel, a time limit) aborts it.
        let task = Task(runtime().spawn(run_select(
            self.tables(),
            tenant.clone(),
            select.to_owned(),
            target.map(str::to_owned),
            files.cloned(),
        )));
        match task.await {
            Ok(outcome) => outcome,
            Err(err) => Err(SqlError::new(
                "XX000",
                format!("the query's task failed: {err}"),
            )),
        }
    }

    async fn sample(
        &self,
        tenant: &Tenant,
        select: &str,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Sample, SqlError> {
        let task = Task(runtime().spawn(sample_select(
            self.tables(),
            tenant.clone(),
            select.to_owned(),
            max_rows,
            max_bytes,
        )));
        match task.await {
            Ok(sample) => sample,
            Err(err) => Err(SqlError::new(
                "XX000",
                format!("the query's task failed: {err}"),
            )),
        }
    }
}

/// The runtime REST queries execute on: as many threads as the machine has cores, apart
/// from the server's own runtime.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, usize::from))
            .thread_name("lakeport-query")
            .enable_all()
            .build()
            .expect("the query runtime starts")
    })
}

/// A task on the query runtime, aborted when dropped.
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for Task<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

async fn run_select(
    tables: crate::Tables,
    tenant: Tenant,
    select: String,
    target: Option<String>,
    files: Option<ResultFiles>,
) -> Result<SelectOutcome, SqlError> {
    let (select, target, files) = (select.as_str(), target.as_deref(), files.as_ref());
    {
        let (context, frame) = plan(&tables, &tenant, select, target).await?;
        let schema: Schema = frame.schema().as_arrow().clone();
        if let Some(target) = target {
            // The target's table exists once its dataset has a batch; before, its columns
            // are checked by the batch's validation.
            if let Ok(provider) = context.table_provider(target).await {
                let columns = provider.schema();
                for field in schema.fields() {
                    if columns.field_with_name(field.name()).is_err() {
                        return Err(SqlError::new(
                            "42703",
                            format!(
                                "column \"{}\" of the SELECT is not a top-level column of table \"{target}\"",
                                field.name()
                            ),
                        ));
                    }
                }
            }
        }
        let properties = match files {
            Some(_) => xdm_properties(schema.fields())?,
            None => Map::new(),
        };
        let mut writer = files.map(|files| RollingWriter::new(files, &schema));
        let mut stream = frame.execute_stream().await.map_err(|err| df_error(&err))?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|err| df_error(&err))?;
            rows += batch.num_rows() as u64;
            if let Some(writer) = writer.as_mut() {
                writer.write(&batch)?;
            }
        }
        let files = match writer {
            Some(mut writer) => {
                writer.close()?;
                writer.written
            }
            None => Vec::new(),
        };
        Ok(SelectOutcome {
            rows,
            properties,
            files,
        })
    }
}

/// Plans a SELECT over the tenant's tables (those it names, and `target`).
async fn plan(
    tables: &crate::Tables,
    tenant: &Tenant,
    select: &str,
    target: Option<&str>,
) -> Result<(SessionContext, DataFrame), SqlError> {
    let context = tables.context(tenant, select, target).await?;
    tables.register_snapshots(&context, tenant, select).await?;
    // Field names in another case take the fields' spelling (as in Adobe's SQL).
    let select = crate::idents::FieldNames::of(&context).await.fold(select);
    let frame = context.sql(&select).await.map_err(|err| df_error(&err))?;
    Ok((context, frame))
}

async fn sample_select(
    tables: crate::Tables,
    tenant: Tenant,
    select: String,
    max_rows: usize,
    max_bytes: usize,
) -> Result<Sample, SqlError> {
    let (_context, frame) = plan(&tables, &tenant, &select, None).await?;
    let schema = frame.schema().as_arrow().clone();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    // Written under positional names, so that repeated column names keep their own values.
    let written = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| written_field(field).with_name(format!("c{i}")))
            .collect::<Vec<_>>(),
    ));
    let mut sample = Sample {
        columns,
        ..Sample::default()
    };
    let mut bytes = 0usize;
    let mut stream = frame.execute_stream().await.map_err(|err| df_error(&err))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|err| df_error(&err))?;
        let wanted = max_rows - sample.rows.len();
        let batch = if batch.num_rows() > wanted {
            sample.truncated = true;
            batch.slice(0, wanted)
        } else {
            batch
        };
        for row in json_rows(&batch, &written)? {
            bytes += row.iter().map(|v| v.to_string().len()).sum::<usize>();
            if bytes > max_bytes {
                sample.truncated = true;
                return Ok(sample);
            }
            sample.rows.push(row);
        }
        if sample.truncated || sample.rows.len() == max_rows {
            // One more row tells whether the result goes on; it is not kept.
            if !sample.truncated {
                sample.truncated = next_row_exists(&mut stream).await?;
            }
            return Ok(sample);
        }
    }
    Ok(sample)
}

/// Reads on until a row comes (true) or the stream ends (false).
async fn next_row_exists(
    stream: &mut datafusion::physical_plan::SendableRecordBatchStream,
) -> Result<bool, SqlError> {
    while let Some(batch) = stream.next().await {
        if batch.map_err(|err| df_error(&err))?.num_rows() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The rows of a batch as JSON values, one per column of `written`.
fn json_rows(batch: &RecordBatch, written: &SchemaRef) -> Result<Vec<Vec<Value>>, SqlError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let batch = conform(batch, written)?;
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(Vec::new());
    writer
        .write(&batch)
        .and_then(|()| writer.finish())
        .map_err(|err| SqlError::new("22000", format!("converting the result: {err}")))?;
    let objects: Vec<Map<String, Value>> = serde_json::from_slice(&writer.into_inner())
        .map_err(|err| SqlError::new("22000", format!("converting the result: {err}")))?;
    Ok(objects
        .into_iter()
        .map(|mut object| {
            (0..written.fields().len())
                .map(|i| object.remove(&format!("c{i}")).unwrap_or(Value::Null))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(sql: &str, expected: &str) {
        let actual = match parse_statement(sql) {
            Ok(parsed) => format!("{:?} {:?}", parsed.statement, parsed.tables),
            Err(err) => format!("{} {}", err.code, err.message),
        };
        assert_eq!(actual, expected);
    }

    #[test]
    fn statements_are_classified() {
        check("SELECT 1", "Select { sql: \"SELECT 1\" } []");
        check(
            "WITH w AS (SELECT * FROM Events) SELECT * FROM w JOIN public.people p ON true",
            "Select { sql: \"WITH w AS (SELECT * FROM Events) SELECT * FROM w JOIN public.people p ON true\" } [\"events\", \"people\"]",
        );
        check(
            "CREATE TABLE Out_1 WITH (schema='My schema', rowvalidation='false') AS (SELECT a FROM t)",
            "CreateTableAs { table: \"out_1\", schema_title: Some(\"My schema\"), select: \"(SELECT a FROM t)\" } [\"t\"]",
        );
        check(
            "INSERT INTO \"Target\" SELECT a FROM t;",
            "InsertInto { table: \"Target\", select: \"SELECT a FROM t\" } [\"t\"]",
        );
        check(
            "DELETE FROM t",
            "0A000 UPDATE, DELETE, MERGE and ALTER are not supported: datasets change through batches",
        );
        check(
            "SELECT 1; SELECT 2",
            "42601 a query holds exactly one statement, this holds 2",
        );
        assert!(parse_statement("SELEC 1").unwrap_err().code == "42601");
        check(
            "CREATE TABLE t (a int)",
            "0A000 CREATE TABLE needs AS SELECT …: datasets get their columns from a query (or from the Catalog and Schema Registry APIs)",
        );
    }
}
