//! Reading an attendee list: CSV with a header row, or JSON Lines (one job-args object per
//! line), each row turned into the JSON object a GenerateBadge job's args would be, so that
//! [`badge_from_args`](crate::badge_args::badge_from_args) reads it exactly as it reads a job.
//!
//! Memory is bounded per row: a row is read into buffers of [`MAX_ROW_BYTES`] and
//! [`MAX_COLUMNS`], and a longer one is skipped to its end and reported, never held whole.
//! Every bad row becomes a [`Row`] with its line number and reason; only an unreadable file
//! or a header without the columns job args need is an [`InputError`].

use std::io::BufRead;
use std::path::Path;
use std::str::FromStr;

use csv_core::ReadRecordResult;
use serde_json::{Map, Value};

/// The most bytes one row (a CSV record, or a JSON line) may take. A badge prints at most
/// 256 characters of name and company and a 128-character id, so 64 KiB holds any real row
/// many times over, while a runaway one (a missing closing quote, a binary file) is cut off
/// at that instead of filling memory.
pub const MAX_ROW_BYTES: usize = 64 * 1024;

/// The most columns a CSV file may have.
pub const MAX_COLUMNS: usize = 256;

/// The columns every CSV attendee list needs: the keys of a GenerateBadge job's args.
pub const REQUIRED_COLUMNS: [&str; 4] = ["id", "name", "company", "type"];

/// How an attendee list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values (RFC 4180) with a header row naming the columns.
    Csv,
    /// One JSON object per line, each a job's args.
    JsonLines,
}

impl Format {
    /// The format a file's extension names: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &Path) -> Option<Format> {
        path.extension()?.to_str()?.parse().ok()
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::JsonLines),
            _ => Err(format!("{text:?} is not csv or jsonl")),
        }
    }
}

/// One row of the list: the line it starts on (1-based; a CSV header is line 1) and the
/// job args it holds, or why it holds none.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The line the row starts on.
    pub line: u64,
    /// The row as job args, or what is wrong with it.
    pub args: Result<Value, String>,
}

/// Why a list cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading failed.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV header lacks a column every row needs, or is not a header.
    #[error("line 1: {0}")]
    Header(String),
}

/// Reads every row of `input`. `columns` are the columns a CSV header must have besides
/// [`REQUIRED_COLUMNS`] (those the layout requires, the sort key).
pub fn read_rows(
    input: impl BufRead,
    format: Format,
    columns: &[String],
) -> Result<Vec<Row>, InputError> {
    match format {
        Format::Csv => csv_rows(input, columns),
        Format::JsonLines => json_rows(input),
    }
}

/// One CSV record, read into bounded buffers.
enum Record {
    Fields(Vec<Vec<u8>>),
    TooLong,
    TooManyColumns,
}

/// A CSV parser over a reader, one bounded record at a time.
struct CsvRecords<R> {
    input: R,
    parser: csv_core::Reader,
    output: Vec<u8>,
    ends: Vec<usize>,
    /// Lines read so far.
    lines: u64,
}

impl<R: BufRead> CsvRecords<R> {
    fn new(input: R) -> Self {
        CsvRecords {
            input,
            parser: csv_core::Reader::new(),
            output: vec![0; MAX_ROW_BYTES],
            ends: vec![0; MAX_COLUMNS],
            lines: 0,
        }
    }

    /// The next record and the line it starts on, or `None` at the end. A record too long
    /// for the buffers is read to its end and dropped.
    fn next(&mut self) -> std::io::Result<Option<(u64, Record)>> {
        // The parser skips blank lines itself; skipping them here first makes the line
        // counted so far the one before the record's first byte.
        loop {
            let input = self.input.fill_buf()?;
            let blank = input
                .iter()
                .take_while(|&&b| matches!(b, b'\n' | b'\r'))
                .count();
            if blank == 0 {
                break;
            }
            self.lines += newlines(&input[..blank]);
            self.input.consume(blank);
        }
        let line = self.lines + 1;
        let (mut nout, mut nend) = (0, 0);
        let mut overflow = None;
        loop {
            let input = self.input.fill_buf()?;
            let (result, nin, out, end) =
                self.parser
                    .read_record(input, &mut self.output[nout..], &mut self.ends[nend..]);
            self.lines += newlines(&input[..nin]);
            self.input.consume(nin);
            nout += out;
            nend += end;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    overflow.get_or_insert(Record::TooLong);
                    nout = 0;
                }
                ReadRecordResult::OutputEndsFull => {
                    overflow.get_or_insert(Record::TooManyColumns);
                    nend = 0;
                }
                ReadRecordResult::Record => {
                    if let Some(overflow) = overflow {
                        return Ok(Some((line, overflow)));
                    }
                    let mut start = 0;
                    let fields = self.ends[..nend]
                        .iter()
                        .map(|&end| {
                            let field = self.output[start..end].to_vec();
                            start = end;
                            field
                        })
                        .collect();
                    return Ok(Some((line, Record::Fields(fields))));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn csv_rows(input: impl BufRead, columns: &[String]) -> Result<Vec<Row>, InputError> {
    let mut records = CsvRecords::new(input);
    let header = match records.next()? {
        Some((_, Record::Fields(fields))) => fields
            .into_iter()
            .map(|f| String::from_utf8(f).map(|name| name.trim().to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| InputError::Header("the header is not UTF-8".into()))?,
        Some(_) => {
            return Err(InputError::Header(format!(
                "the header is longer than {MAX_ROW_BYTES} bytes or {MAX_COLUMNS} columns"
            )));
        }
        None => return Err(InputError::Header("the file is empty".into())),
    };
    let wanted = REQUIRED_COLUMNS
        .iter()
        .copied()
        .chain(columns.iter().map(String::as_str));
    for column in wanted {
        if !header.iter().any(|h| h == column) {
            return Err(InputError::Header(format!(
                "the header ({}) has no column {column:?}",
                header.join(",")
            )));
        }
    }
    let mut rows = Vec::new();
    while let Some((line, record)) = records.next()? {
        let args = match record {
            Record::Fields(fields) => csv_args(&header, fields),
            Record::TooLong => Err(format!("the row is longer than {MAX_ROW_BYTES} bytes")),
            Record::TooManyColumns => Err(format!("the row has more than {MAX_COLUMNS} fields")),
        };
        rows.push(Row { line, args });
    }
    Ok(rows)
}

/// A CSV record as job args: every column a string. An empty cell of a column other than
/// [`REQUIRED_COLUMNS`] is left out, as a job would leave out a field it has not got.
fn csv_args(header: &[String], fields: Vec<Vec<u8>>) -> Result<Value, String> {
    if fields.len() != header.len() {
        return Err(format!(
            "the row has {} fields, the header {}",
            fields.len(),
            header.len()
        ));
    }
    let mut args = Map::new();
    for (column, field) in header.iter().zip(fields) {
        let text = String::from_utf8(field).map_err(|e| {
            format!(
                "column {column:?} is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        if text.is_empty() && !REQUIRED_COLUMNS.contains(&column.as_str()) {
            continue;
        }
        args.insert(column.clone(), Value::String(text));
    }
    Ok(Value::Object(args))
}

fn json_rows(mut input: impl BufRead) -> Result<Vec<Row>, InputError> {
    let mut rows = Vec::new();
    let mut buffer = Vec::new();
    let mut line = 0;
    loop {
        line += 1;
        let Some(complete) = bounded_line(&mut input, &mut buffer)? else {
            return Ok(rows);
        };
        let args = if !complete {
            Err(format!("the line is longer than {MAX_ROW_BYTES} bytes"))
        } else {
            match std::str::from_utf8(&buffer) {
                Err(e) => Err(format!("the line is not UTF-8 (byte {})", e.valid_up_to())),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => serde_json::from_str(text).map_err(|e| format!("not JSON: {e}")),
            }
        };
        rows.push(Row { line, args });
    }
}

/// Reads one line into `buffer` (without its `\n`), keeping at most [`MAX_ROW_BYTES`]: `None`
/// at the end of input, `Some(false)` when the line was longer (the rest of it is skipped).
fn bounded_line(input: &mut impl BufRead, buffer: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buffer.clear();
    let mut complete = true;
    let mut read_any = false;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(read_any.then_some(complete));
        }
        read_any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        if buffer.len() + chunk.len() <= MAX_ROW_BYTES {
            buffer.extend_from_slice(chunk);
        } else {
            complete = false;
            buffer.clear();
        }
        input.consume(used);
        if done {
            return Ok(Some(complete));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csv(text: &[u8]) -> Vec<Row> {
        read_rows(text, Format::Csv, &[]).unwrap()
    }

    #[test]
    fn csv_rows_are_job_args_with_their_lines() {
        let rows = csv(
            b"id,name,company,type,pronouns\n1,Ada,\"Engines, Ltd\",speaker,\n\n2,\"Multi\nLine\",,press,they/them\n3,Bob,X,attendee,\r\n",
        );
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4, 6]);
        assert_eq!(
            rows[0].args,
            Ok(json!({"id": "1", "name": "Ada", "company": "Engines, Ltd", "type": "speaker"}))
        );
        assert_eq!(rows[1].args.as_ref().unwrap()["pronouns"], "they/them");
        assert_eq!(rows[1].args.as_ref().unwrap()["name"], "Multi\nLine");
    }

    #[test]
    fn bad_csv_rows_are_reported_and_the_rest_read() {
        let mut text =
            b"id,name,company,type\n1,Ada,,x\n2,Bob,,x,extra\n3,\xff\xfe,,x\n4,\"".to_vec();
        text.extend(std::iter::repeat_n(b'a', MAX_ROW_BYTES * 3));
        text.extend(b"\",,x\n5,Cy,,x\n");
        let rows = csv(&text);
        let summary: Vec<(u64, Result<(), String>)> = rows
            .iter()
            .map(|r| (r.line, r.args.as_ref().map(|_| ()).map_err(Clone::clone)))
            .collect();
        assert_eq!(
            summary,
            [
                (2, Ok(())),
                (3, Err("the row has 5 fields, the header 4".into())),
                (4, Err("column \"name\" is not UTF-8 (byte 0)".into())),
                (
                    5,
                    Err(format!("the row is longer than {MAX_ROW_BYTES} bytes"))
                ),
                (6, Ok(())),
            ]
        );
    }

    #[test]
    fn a_header_without_a_needed_column_is_refused() {
        let error = read_rows(&b"id,name,type\n1,Ada,x\n"[..], Format::Csv, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: the header (id,name,type) has no column \"company\""
        );
        let error = read_rows(
            &b"id,name,company,type\n"[..],
            Format::Csv,
            &["pronouns".to_string()],
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("no column \"pronouns\""),
            "{error}"
        );
    }

    #[test]
    fn json_lines_are_read_with_bounded_lines() {
        let mut text = b"{\"id\":\"1\",\"name\":\"Ada\"}\n\n{oops\n".to_vec();
        text.extend(std::iter::repeat_n(b' ', MAX_ROW_BYTES + 1));
        text.extend(b"\n\xc3\x28\n{\"id\":2}");
        let rows = read_rows(&text[..], Format::JsonLines, &[]).unwrap();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 3, 4, 5, 6]);
        assert_eq!(rows[0].args, Ok(json!({"id": "1", "name": "Ada"})));
        assert!(rows[1].args.as_ref().unwrap_err().starts_with("not JSON"));
        assert_eq!(
            rows[2].args,
            Err(format!("the line is longer than {MAX_ROW_BYTES} bytes"))
        );
        assert_eq!(rows[3].args, Err("the line is not UTF-8 (byte 0)".into()));
        assert_eq!(rows[4].args, Ok(json!({"id": 2})));
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::from_path(Path::new("a.CSV")), Some(Format::Csv));
        assert_eq!(
            Format::from_path(Path::new("a.ndjson")),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
    }
}
