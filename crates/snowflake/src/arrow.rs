//! Snowflake's Arrow result format, read into text values like its JSON
//! format gives them.
//!
//! Snowflake sends an Arrow IPC stream whose field metadata carries the
//! Snowflake type (`logicalType`) and `scale`: a `FIXED` number is an integer
//! (or a 128-bit decimal) to be divided by 10^scale, timestamps are a struct
//! of `epoch` seconds and `fraction` nanoseconds (or an integer scaled by
//! 10^scale), dates count days from the epoch, and text, variants and
//! booleans are what they say.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_ipc::reader::StreamReader;
use arrow_schema::{DataType, Field};

use crate::ColumnType;

/// All rows of an Arrow IPC stream, as text.
pub(crate) fn rows(bytes: &[u8], columns: &[ColumnType]) -> Result<Vec<Vec<Option<String>>>, String> {
    let reader = StreamReader::try_new(bytes, None).map_err(|e| format!("Arrow result: {e}"))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("Arrow result batch: {e}"))?;
        let schema = batch.schema();
        let cols: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let scale = columns.get(i).and_then(|c| c.scale);
                column(a, schema.field(i), scale)
            })
            .collect::<Result<_, _>>()?;
        for r in 0..batch.num_rows() {
            out.push(cols.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(out)
}

/// `v / 10^scale` as decimal text.
fn scaled(v: i128, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

fn column(a: &ArrayRef, field: &Field, rowtype_scale: Option<i64>) -> Result<Vec<Option<String>>, String> {
    let meta_scale = field.metadata().get("scale").and_then(|s| s.parse::<u32>().ok());
    let scale = meta_scale.or(rowtype_scale.map(|s| s as u32)).unwrap_or(0);
    let n = a.len();
    let each = |f: &dyn Fn(usize) -> String| -> Vec<Option<String>> {
        (0..n).map(|i| (!a.is_null(i)).then(|| f(i))).collect()
    };
    Ok(match a.data_type() {
        DataType::Utf8 => each(&|i| a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => each(&|i| a.as_string::<i64>().value(i).to_string()),
        DataType::Boolean => each(&|i| a.as_boolean().value(i).to_string()),
        DataType::Int8 => each(&|i| scaled(i128::from(a.as_primitive::<Int8Type>().value(i)), scale)),
        DataType::Int16 => each(&|i| scaled(i128::from(a.as_primitive::<Int16Type>().value(i)), scale)),
        DataType::Int32 => each(&|i| scaled(i128::from(a.as_primitive::<Int32Type>().value(i)), scale)),
        DataType::Int64 => each(&|i| scaled(i128::from(a.as_primitive::<Int64Type>().value(i)), scale)),
        DataType::Decimal128(_, s) => {
            let s = u32::try_from(*s).unwrap_or(0);
            each(&|i| scaled(a.as_primitive::<Decimal128Type>().value(i), s))
        }
        DataType::Float32 => each(&|i| a.as_primitive::<Float32Type>().value(i).to_string()),
        DataType::Float64 => each(&|i| a.as_primitive::<Float64Type>().value(i).to_string()),
        DataType::Date32 => each(&|i| a.as_primitive::<Date32Type>().value(i).to_string()),
        DataType::Binary => each(&|i| {
            a.as_binary::<i32>()
                .value(i)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
        DataType::Struct(fields) if fields.iter().any(|f| f.name() == "epoch") => {
            // Seconds and nanoseconds, printed as Snowflake's JSON does: seconds.fraction.
            let s = a.as_struct();
            let epoch = s.column_by_name("epoch").ok_or("timestamp without epoch")?;
            let fraction = s.column_by_name("fraction");
            each(&|i| {
                let secs = epoch.as_primitive::<Int64Type>().value(i);
                let nanos = fraction.map_or(0, |f| f.as_primitive::<Int32Type>().value(i));
                format!("{secs}.{nanos:09}")
            })
        }
        DataType::Null => vec![None; n],
        other => {
            return Err(format!(
                "column {}: Arrow type {other} is not read by this client",
                field.name()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_numbers_print_like_snowflake_json() {
        assert_eq!(scaled(12345, 2), "123.45");
        assert_eq!(scaled(-5, 3), "-0.005");
        assert_eq!(scaled(7, 0), "7");
        assert_eq!(scaled(0, 2), "0.00");
    }
}
