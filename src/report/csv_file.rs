//! One CSV file from outside, read so that no content can hang, flood or fool the reader:
//! only a regular file is opened (a FIFO would block forever, a directory has no rows), a
//! UTF-8 byte-order mark is skipped while UTF-16 and NUL bytes are refused, and no record
//! may grow past [`MAX_RECORD_BYTES`], so memory stays bounded whatever the file holds (a
//! 2 GB file without a line break is refused after its first MiB, not read whole).
//!
//! Records are split by `csv_core` (the csv crate's own state machine, so quoting is read
//! exactly as before) into buffers that are reused from one record to the next.

use std::fs::{File, FileType};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Index;
use std::path::{Path, PathBuf};

use super::error::ReportError;

/// The longest CSV record (one row, quoted line breaks included) any reader accepts.
/// Locust rows are well under 10 KiB (a long URL as the name); a traceback can be tens
/// of KiB. Longer is a file without line breaks or an unbalanced quote.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// How a refused record is described: "record longer than 1 MiB (...)".
pub(crate) fn record_too_long() -> String {
    format!(
        "record longer than {} MiB (a line without its line break, or an unbalanced quote?)",
        MAX_RECORD_BYTES / (1024 * 1024)
    )
}

/// Why a file has NUL bytes, said once for every reader.
pub(crate) const NUL_BYTES: &str = "NUL bytes: not UTF-8 text (UTF-16 without a byte-order \
                                    mark, or binary data?); expected a Locust CSV in UTF-8";

/// What a path is when it is not a regular file; `None` for a regular file.
fn not_regular(file_type: &FileType) -> Option<&'static str> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
    }
    Some("not a regular file")
}

/// Opens `path` only if it is a regular file (symlinks followed): the type is checked
/// before opening, since opening a FIFO blocks until someone writes to it.
pub(crate) fn open_regular(path: &Path) -> Result<File, ReportError> {
    let meta = std::fs::metadata(path).map_err(|e| ReportError::io(path, e))?;
    if let Some(kind) = not_regular(&meta.file_type()) {
        return Err(ReportError::NotAFile {
            path: path.to_owned(),
            kind,
        });
    }
    File::open(path).map_err(|e| ReportError::io(path, e))
}

/// Opens a text file: a regular file whose first bytes are not a UTF-16/32 byte-order
/// mark; a UTF-8 one is skipped. Returns the file positioned after it, and its length.
pub(crate) fn open_text(path: &Path) -> Result<(File, u64), ReportError> {
    let mut file = open_regular(path)?;
    let mut head = [0_u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReportError::io(path, e)),
        }
    }
    let encoding = match &head[..filled] {
        [0xef, 0xbb, 0xbf, ..] => None,
        [0xff, 0xfe, 0, 0] => Some("UTF-32LE text (byte-order mark FF FE 00 00)"),
        [0, 0, 0xfe, 0xff] => Some("UTF-32BE text (byte-order mark 00 00 FE FF)"),
        [0xff, 0xfe, ..] => Some("UTF-16LE text (byte-order mark FF FE)"),
        [0xfe, 0xff, ..] => Some("UTF-16BE text (byte-order mark FE FF)"),
        _ => None,
    };
    if let Some(encoding) = encoding {
        return Err(ReportError::malformed(
            path,
            1,
            format!(
                "{encoding}: expected UTF-8, as Locust writes it (convert with \
                 `iconv -f UTF-16 -t UTF-8`)"
            ),
        ));
    }
    let skip = if head[..filled].starts_with(&[0xef, 0xbb, 0xbf]) {
        3
    } else {
        0
    };
    file.seek(SeekFrom::Start(skip))
        .map_err(|e| ReportError::io(path, e))?;
    Ok((file, skip))
}

/// One record: its unescaped fields, the line it starts on, and whether a line break
/// ended it (a last line without one is incomplete: a file still being written?).
#[derive(Debug, Default)]
pub(crate) struct Record {
    bytes: Vec<u8>,
    used: usize,
    ends: Vec<usize>,
    fields: usize,
    line: u64,
    complete: bool,
}

impl Record {
    pub(crate) fn len(&self) -> usize {
        self.fields
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.fields).map(|i| &self[i])
    }

    /// The 1-based line the record starts on.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// False for a last record that the end of the file cut (no line break after it).
    pub(crate) fn complete(&self) -> bool {
        self.complete
    }

    pub(crate) fn has_nul(&self) -> bool {
        memchr::memchr(0, &self.bytes[..self.used]).is_some()
    }

    /// True for a line with nothing but blanks.
    pub(crate) fn is_blank(&self) -> bool {
        self.fields == 1 && self[0].trim_ascii().is_empty()
    }
}

impl Index<usize> for Record {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// Streams the records of one file.
pub(crate) struct CsvReader {
    path: PathBuf,
    input: BufReader<File>,
    core: csv_core::Reader,
    next_line: u64,
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

impl CsvReader {
    /// Opens a CSV file (see [`open_text`]).
    pub(crate) fn open(path: &Path) -> Result<Self, ReportError> {
        let (file, _) = open_text(path)?;
        Ok(Self {
            path: path.to_owned(),
            input: BufReader::with_capacity(64 * 1024, file),
            core: csv_core::Reader::new(),
            next_line: 1,
        })
    }

    /// Reads the next record into `record`; false at the end of the file. Blank lines
    /// between records are skipped (and counted).
    pub(crate) fn read(&mut self, record: &mut Record) -> Result<bool, ReportError> {
        loop {
            let path = &self.path;
            let buf = self
                .input
                .fill_buf()
                .map_err(|e| ReportError::io(path, e))?;
            if buf.is_empty() {
                return Ok(false);
            }
            let skip = buf
                .iter()
                .position(|b| *b != b'\n' && *b != b'\r')
                .unwrap_or(buf.len());
            self.next_line += newlines(&buf[..skip]);
            let more = skip == buf.len();
            self.input.consume(skip);
            if !more {
                break;
            }
        }
        record.line = self.next_line;
        record.used = 0;
        record.fields = 0;
        if record.bytes.len() < 1024 {
            record.bytes.resize(1024, 0);
        }
        if record.ends.len() < 32 {
            record.ends.resize(32, 0);
        }
        self.core.reset();
        let mut consumed = 0_usize;
        loop {
            let path = &self.path;
            let buf = self
                .input
                .fill_buf()
                .map_err(|e| ReportError::io(path, e))?;
            let at_end = buf.is_empty();
            let (result, nin, nout, nend) = self.core.read_record(
                buf,
                &mut record.bytes[record.used..],
                &mut record.ends[record.fields..],
            );
            self.next_line += newlines(&buf[..nin]);
            self.input.consume(nin);
            consumed += nin;
            record.used += nout;
            record.fields += nend;
            if consumed > MAX_RECORD_BYTES {
                return Err(ReportError::malformed(
                    &self.path,
                    record.line,
                    record_too_long(),
                ));
            }
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    let doubled = record.bytes.len() * 2;
                    record.bytes.resize(doubled, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let doubled = record.ends.len() * 2;
                    record.ends.resize(doubled, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    record.complete = !at_end;
                    return Ok(true);
                }
                csv_core::ReadRecordResult::End => return Ok(false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &[u8]) -> Result<Vec<(u64, bool, Vec<String>)>, ReportError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text).unwrap();
        let mut reader = CsvReader::open(&path)?;
        let mut record = Record::default();
        let mut out = Vec::new();
        while reader.read(&mut record)? {
            let fields = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            out.push((record.line(), record.complete(), fields));
        }
        Ok(out)
    }

    #[test]
    fn lines_quotes_crlf_and_blank_lines() {
        let got = records(b"a,b\r\n\r\n\"x\ny\",\"q\"\"\"\r\nlast,row").unwrap();
        assert_eq!(
            got,
            vec![
                (1, true, vec!["a".into(), "b".into()]),
                (3, true, vec!["x\ny".into(), "q\"".into()]),
                (5, false, vec!["last".into(), "row".into()]),
            ]
        );
        let got = records(b"\xef\xbb\xbfh\n1\n").unwrap();
        assert_eq!(got[0].2, vec!["h".to_string()]);
        assert_eq!(got[1], (2, true, vec!["1".into()]));
    }

    #[test]
    fn a_record_over_the_cap_is_refused_with_its_line() {
        let mut text = b"h\nok\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        let error = records(&text).unwrap_err().to_string();
        assert!(
            error.contains("x.csv:3: record longer than 1 MiB"),
            "{error}"
        );
        // an unbalanced quote swallows the rest of the file into one record
        let mut text = b"h\n\"open\n".to_vec();
        for _ in 0..MAX_RECORD_BYTES / 8 {
            text.extend_from_slice(b"1,2,3,4\n");
        }
        let error = records(&text).unwrap_err().to_string();
        assert!(error.contains("x.csv:2: record longer"), "{error}");
    }

    #[test]
    fn utf16_is_refused_by_its_byte_order_mark() {
        for bom in [&b"\xff\xfe"[..], b"\xfe\xff", b"\xff\xfe\0\0"] {
            let mut text = bom.to_vec();
            text.extend_from_slice(b"h\0");
            let error = records(&text).unwrap_err().to_string();
            assert!(
                error.contains("x.csv:1: UTF-") && error.contains("expected UTF-8"),
                "{error}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let error = CsvReader::open(dir.path()).err().unwrap().to_string();
        assert!(error.contains("a directory"), "{error}");
        let fifo = dir.path().join("pipe.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // opening it would block this test forever
            let error = CsvReader::open(&fifo).err().unwrap().to_string();
            assert!(
                error.contains("pipe.csv") && error.contains("FIFO"),
                "{error}"
            );
        }
    }
}
