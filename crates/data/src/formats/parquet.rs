//! Parquet: reading with the `parquet` crate's arrow reader in record batches, and the
//! Parquet export writer.
//!
//! Arrow types map to column types: signed and unsigned integers → integer (a `u64` value
//! above `i64::MAX` is rejected at coercion), float16/32/64 → float, boolean, utf8 /
//! large utf8 / utf8 view → text, date32/date64 → date, timestamps of any unit and zone →
//! timestamp (UTC, microseconds). Other types (lists, structs, binary, decimals) are an
//! error naming the column. The export writer uses int64, float64, boolean, utf8, date32
//! and timestamp(microsecond, "UTC").

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, TimeUnit};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;

use super::{Fields, Item, Record, RecordReader, RowWriter};
use crate::canonical::date_to_days;
use crate::error::DataError;
use crate::value::{ColumnType, Row, Schema, Value};

const BATCH_ROWS: usize = 8192;

fn column_type(dt: &DataType) -> Option<ColumnType> {
    Some(match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Float,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::Text,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Timestamp(_, _) => ColumnType::Timestamp,
        _ => return None,
    })
}

/// Streaming Parquet reader.
pub struct ParquetReader {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    columns: Vec<String>,
    types: Vec<ColumnType>,
    batch: Option<RecordBatch>,
    pos: usize,
    row: u64,
    total_rows: u64,
    file_len: u64,
}

fn bad(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Format(format!(
        "{}: not a readable Parquet file (truncated or corrupt?): {e}",
        path.display()
    ))
}

impl ParquetReader {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = File::open(path)
            .map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if file_len == 0 {
            return Err(DataError::Invalid(format!(
                "{}: no rows (the file is empty)",
                path.display()
            )));
        }
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(path, e))?;
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let schema = builder.schema().clone();
        let mut columns = Vec::new();
        let mut types = Vec::new();
        for f in schema.fields() {
            let ty = column_type(f.data_type()).ok_or_else(|| {
                DataError::Format(format!(
                    "{}: column {} has the unsupported Parquet type {}",
                    path.display(),
                    crate::infer::quote_short(f.name()),
                    f.data_type()
                ))
            })?;
            columns.push(f.name().clone());
            types.push(ty);
        }
        let reader = builder
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| bad(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            columns,
            types,
            batch: None,
            pos: 0,
            row: 0,
            total_rows,
            file_len,
        })
    }
}

fn cell(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    let v = match a.data_type() {
        DataType::Int8 => Value::Integer(a.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => Value::Integer(a.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => Value::Integer(a.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => Value::Integer(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::Integer(a.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => Value::Integer(a.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => Value::Integer(a.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => return Some(a.as_primitive::<UInt64Type>().value(i).to_string()),
        DataType::Float16 => Value::Float(a.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Float32 => Value::Float(a.as_primitive::<Float32Type>().value(i).into()),
        DataType::Float64 => Value::Float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Value::Boolean(a.as_boolean().value(i)),
        DataType::Utf8 => return Some(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => return Some(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => return Some(a.as_string_view().value(i).to_string()),
        DataType::Date32 => Value::Date(a.as_primitive::<Date32Type>().value_as_date(i)?),
        DataType::Date64 => Value::Date(a.as_primitive::<Date64Type>().value_as_date(i)?),
        DataType::Timestamp(unit, _) => {
            let dt = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value_as_datetime(i),
                TimeUnit::Millisecond => a
                    .as_primitive::<TimestampMillisecondType>()
                    .value_as_datetime(i),
                TimeUnit::Microsecond => a
                    .as_primitive::<TimestampMicrosecondType>()
                    .value_as_datetime(i),
                TimeUnit::Nanosecond => a
                    .as_primitive::<TimestampNanosecondType>()
                    .value_as_datetime(i),
            }?;
            Value::Timestamp(dt.and_utc())
        }
        _ => return None,
    };
    super::value_to_text(&v)
}

impl RecordReader for ParquetReader {
    fn columns(&self) -> Option<&[String]> {
        Some(&self.columns)
    }

    fn declared_types(&self) -> Option<&[ColumnType]> {
        Some(&self.types)
    }

    fn next_item(&mut self) -> Result<Option<Item>, DataError> {
        loop {
            if let Some(batch) = &self.batch {
                if self.pos < batch.num_rows() {
                    let i = self.pos;
                    self.pos += 1;
                    let fields = batch
                        .columns()
                        .iter()
                        .map(|c| cell(c.as_ref(), i))
                        .collect();
                    let number = self.row;
                    self.row += 1;
                    return Ok(Some(Item::Record(Record {
                        number,
                        fields: Fields::Positional(fields),
                        raw: None,
                    })));
                }
            }
            match self.reader.next() {
                None => return Ok(None),
                Some(Err(e)) => return Err(bad(&self.path, e)),
                Some(Ok(b)) => {
                    self.batch = Some(b);
                    self.pos = 0;
                }
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        if self.total_rows == 0 {
            return self.file_len;
        }
        (self.file_len as u128 * self.row as u128 / self.total_rows as u128) as u64
    }
}

fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Integer => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// Parquet export writer.
pub struct ParquetWriter {
    writer: ArrowWriter<File>,
    schema: Schema,
    arrow: arrow_schema::SchemaRef,
    path: PathBuf,
}

impl ParquetWriter {
    pub fn create(path: &Path, schema: &Schema) -> Result<Self, DataError> {
        let fields: Vec<Field> = schema
            .columns
            .iter()
            .map(|c| Field::new(c.name.clone(), arrow_type(c.ty), c.nullable))
            .collect();
        let arrow = Arc::new(arrow_schema::Schema::new(fields));
        let file = File::create(path)
            .map_err(|e| DataError::io(format!("creating {}", path.display()), e))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let writer = ArrowWriter::try_new(file, arrow.clone(), Some(props))
            .map_err(|e| DataError::Format(format!("writing {}: {e}", path.display())))?;
        Ok(Self {
            writer,
            schema: schema.clone(),
            arrow,
            path: path.to_path_buf(),
        })
    }

    fn column(&self, idx: usize, ty: ColumnType, rows: &[Row]) -> Result<ArrayRef, DataError> {
        let mismatch = |v: &Value| {
            DataError::Invalid(format!(
                "column {} of type {ty} holds {v:?}",
                crate::infer::quote_short(&self.schema.columns[idx].name)
            ))
        };
        let get = |r: &Row| r.get(idx).unwrap_or(&Value::Null).clone();
        Ok(match ty {
            ColumnType::Integer => Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| match get(r) {
                        Value::Null => Ok(None),
                        Value::Integer(v) => Ok(Some(v)),
                        v => Err(mismatch(&v)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            ColumnType::Float => Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| match get(r) {
                        Value::Null => Ok(None),
                        Value::Float(v) => Ok(Some(v)),
                        Value::Integer(v) => Ok(Some(v as f64)),
                        v => Err(mismatch(&v)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            ColumnType::Boolean => Arc::new(BooleanArray::from(
                rows.iter()
                    .map(|r| match get(r) {
                        Value::Null => Ok(None),
                        Value::Boolean(v) => Ok(Some(v)),
                        v => Err(mismatch(&v)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            ColumnType::Text => Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| match get(r) {
                        Value::Null => Ok(None),
                        Value::Text(v) => Ok(Some(v.into_string())),
                        v => Err(mismatch(&v)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            ColumnType::Date => Arc::new(Date32Array::from(
                rows.iter()
                    .map(|r| match get(r) {
                        Value::Null => Ok(None),
                        Value::Date(d) => Ok(Some(date_to_days(d))),
                        v => Err(mismatch(&v)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            ColumnType::Timestamp => Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter()
                        .map(|r| match get(r) {
                            Value::Null => Ok(None),
                            Value::Timestamp(t) => Ok(Some(t.timestamp_micros())),
                            v => Err(mismatch(&v)),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )
                .with_timezone("UTC"),
            ),
        })
    }
}

impl RowWriter for ParquetWriter {
    fn write_rows(&mut self, rows: &[Row]) -> Result<(), DataError> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns = self
            .schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| self.column(i, c.ty, rows))
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(self.arrow.clone(), columns)
            .map_err(|e| DataError::Invalid(format!("building a Parquet batch: {e}")))?;
        self.writer
            .write(&batch)
            .map_err(|e| DataError::Format(format!("writing {}: {e}", self.path.display())))
    }

    fn finish(self: Box<Self>) -> Result<(), DataError> {
        let path = self.path.clone();
        self.writer
            .close()
            .map_err(|e| DataError::Format(format!("writing {}: {e}", path.display())))?;
        Ok(())
    }
}

/// Writes `rows` of `schema` to a Parquet file at `path`; returns the number of rows.
pub fn write_parquet<I>(path: &Path, schema: &Schema, rows: I) -> Result<u64, DataError>
where
    I: IntoIterator<Item = Result<Row, DataError>>,
{
    super::export(super::Format::Parquet, path, schema, rows)
}
