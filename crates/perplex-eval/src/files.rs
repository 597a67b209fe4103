//! Durable outputs: a file a run writes is either the old one or the whole
//! new one, never half of either.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` through `write` atomically: into `path`'s name with a
/// `.tmp` extension in the same folder, flushed to disk, then renamed over
/// `path` (a rename within a folder is atomic on POSIX file systems). On
/// error the temporary file is removed and `path` is untouched. Errors are
/// the bare I/O errors: the caller names `path`.
///
/// A `path` that exists and is not a regular file (`/dev/stdout`, a pipe, a
/// device) is written in place: renaming over it would replace it.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let mut out = BufWriter::new(std::fs::OpenOptions::new().write(true).open(path)?);
        write(&mut out)?;
        return out.flush();
    }
    let tmp = temporary(path);
    let result = (|| {
        let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A file written under a temporary name and renamed over `path` on
/// [`commit`](AtomicFile::commit): for writers that need to own their
/// output (e.g. a Parquet writer). Dropped uncommitted, the temporary file
/// is removed and `path` is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let tmp = temporary(path);
        let file = BufWriter::new(std::fs::File::create(&tmp)?);
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The file being written.
    pub fn writer(&mut self) -> &mut BufWriter<std::fs::File> {
        self.file.as_mut().expect("open until committed")
    }

    /// Flushes the file to disk and renames it over `path`.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("open until committed");
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn temporary(path: &Path) -> PathBuf {
    path.with_extension("tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_written_in_place_never_replaced() {
        write_atomically(Path::new("/dev/null"), |out| out.write_all(b"gone")).unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
        assert!(!Path::new("/dev/null.tmp").exists());
        let full = write_atomically(Path::new("/dev/full"), |out| out.write_all(b"x"));
        assert_eq!(full.unwrap_err().kind(), std::io::ErrorKind::StorageFull);
    }

    #[test]
    fn an_atomic_file_appears_whole_on_commit_and_not_at_all_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        let mut file = AtomicFile::create(&path).unwrap();
        file.writer().write_all(b"rows").unwrap();
        assert!(!path.exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"rows");
        let mut file = AtomicFile::create(&path).unwrap();
        file.writer().write_all(b"half").unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"rows");
        assert!(!temporary(&path).exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_atomically(&path, |out| out.write_all(b"old")).unwrap();
        let err = write_atomically(&path, |out| {
            out.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!temporary(&path).exists());
    }
}
