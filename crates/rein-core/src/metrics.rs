//! Metrics logging: one CSV row per logging interval, flushed as it is written so that a
//! crashed run keeps its history.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `metrics.csv` with a fixed header.
pub struct CsvLogger {
    out: BufWriter<File>,
    columns: Vec<String>,
    path: PathBuf,
}

impl CsvLogger {
    /// Creates (truncates) `path` and writes the header.
    pub fn create(path: &Path, columns: &[&str]) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "{}", columns.join(","))?;
        out.flush()?;
        Ok(Self {
            out,
            columns: columns.iter().map(|s| s.to_string()).collect(),
            path: path.to_path_buf(),
        })
    }

    /// Reopens an existing `path` for a resumed run: keeps the header and the first
    /// `keep_rows` rows (those written before the checkpoint), drops any later ones, and
    /// appends from there.
    pub fn resume(path: &Path, columns: &[&str], keep_rows: usize) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let mut lines = text.lines();
        let header = columns.join(",");
        if lines.next() != Some(header.as_str()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: header differs from {header:?}", path.display()),
            ));
        }
        let mut kept = header.clone();
        kept.push('\n');
        for line in lines.take(keep_rows) {
            kept.push_str(line);
            kept.push('\n');
        }
        write_atomic(path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            out: BufWriter::new(file),
            columns: columns.iter().map(|s| s.to_string()).collect(),
            path: path.to_path_buf(),
        })
    }

    /// Appends one row (one value per column).
    pub fn log(&mut self, values: &[f64]) -> std::io::Result<()> {
        if values.len() != self.columns.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{}: row has {} values for {} columns",
                    self.path.display(),
                    values.len(),
                    self.columns.len()
                ),
            ));
        }
        let row: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        writeln!(self.out, "{}", row.join(","))?;
        self.out.flush()
    }
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, then
/// renamed over `path`, so a crash leaves either the old or the new file, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}{TEMPORARY_INFIX}{}", std::process::id()));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    // A failed write (a full disk, a read-only directory) leaves the old file as it was and
    // no half-written temporary behind.
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// What [`write_atomic`] puts between a file's name and the writer's pid in its temporary
/// file (`.checkpoint.safetensors.tmp1234`).
pub const TEMPORARY_INFIX: &str = ".tmp";

/// Whether `name` is a temporary file of [`write_atomic`]'s (`.NAME.tmpPID`): a process
/// killed while writing leaves one.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(TEMPORARY_INFIX)
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporary_behind() {
        let dir = std::env::temp_dir().join(format!("rein-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // Renaming onto a directory fails: the old content stays, no temporary remains.
        let blocked = dir.join("sub");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(write_atomic(&blocked, b"three").is_err());
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| is_temporary(n)), "{names:?}");
        assert!(is_temporary(".checkpoint.safetensors.tmp1234"));
        assert!(!is_temporary("checkpoint.safetensors"));
        assert!(!is_temporary(".x.tmp"));
        assert!(!is_temporary(".x.tmpabc"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_rows_must_match_header() {
        let dir = std::env::temp_dir().join(format!("rein-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.csv");
        let mut log = CsvLogger::create(&p, &["a", "b"]).unwrap();
        log.log(&[1.0, 2.5]).unwrap();
        assert!(log.log(&[1.0]).is_err());
        drop(log);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n1,2.5\n");
        write_atomic(&dir.join("x.json"), b"{}").unwrap();
        assert_eq!(std::fs::read(dir.join("x.json")).unwrap(), b"{}");
    }
}
