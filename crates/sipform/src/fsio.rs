//! Durable, private file writes shared by every writer of a file that may hold ids or tokens
//! (the state file, saved plans): owner-only permissions, atomic replacement, fsync, and folders
//! only the owner can enter. Modes are set at creation, so no umask (even 000) widens them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether an error (or one of its causes) is the process or the system running out of file
/// descriptors (`EMFILE`, `ENFILE`: "Too many open files"). That passes when connections
/// close, so it is transient everywhere, never a reason to park a restaurant (issue 25, item
/// 10).
pub(crate) fn out_of_file_descriptors(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // ENFILE and EMFILE on Linux and the BSDs.
            if matches!(io.raw_os_error(), Some(23 | 24)) {
                return true;
            }
        }
        let text = err.to_string();
        if text.contains("Too many open files") || text.contains("os error 24") {
            return true;
        }
        next = err.source();
    }
    false
}

/// Opens `path` for writing with mode 0600 (owner only) on Unix.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Creates `dir` and its missing parents with mode 0700 (owner only) on Unix; folders that
/// exist already are left as they are.
pub(crate) fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The marker in the name of [`write_atomic`]'s temporary files: `.<name>.tmp.<pid>.<random>`.
const TMP_MARKER: &str = ".tmp.";

/// Writes `bytes` to `path` atomically and durably, with mode 0600.
///
/// The temporary file beside `path` gets a name no other write uses (so a leftover of a
/// crashed run can never block this one) and is removed when the write fails (a full disk
/// leaves no half-written copies behind).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes)).map(|_| ())
}

/// [`write_atomic`] of what `fill` writes, streamed through a buffer: a document of hundreds of
/// megabytes (the state of 100,000 restaurants) is never held whole. Returns its length.
pub(crate) fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let dir = parent_dir(path);
    let (tmp, file) = create_temp(&dir, &file_name(path))?;
    let written = (|| {
        let mut w = Counted {
            inner: std::io::BufWriter::with_capacity(1 << 16, file),
            len: 0,
        };
        fill(&mut w)?;
        let len = w.len;
        let file = w.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        Ok(len)
    })();
    let len = match written {
        Ok(len) => len,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // The rename is durable only once the folder is.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(len)
}

/// A writer that counts what goes through it.
struct Counted<W> {
    inner: W,
    len: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Removes the temporary files [`write_atomic`] left beside `path` when a process died mid
/// write. Call it only while holding a lock that keeps every other writer of `path` out.
/// Returns how many were removed.
pub(crate) fn remove_stale_temps(path: &Path) -> usize {
    let prefix = format!(".{}{TMP_MARKER}", file_name(path));
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into())
}

/// A new private file `.<name>.tmp.<pid>.<random>` in `dir`, never one that exists already.
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut attempt = 0;
    loop {
        let tmp = dir.join(format!(
            ".{name}{TMP_MARKER}{}.{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match opts.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_file_descriptors_is_recognised_through_causes() {
        for code in [23, 24] {
            let e = std::io::Error::from_raw_os_error(code);
            assert!(out_of_file_descriptors(&e), "{e}");
            let wrapped = std::io::Error::other(e);
            assert!(out_of_file_descriptors(&wrapped));
        }
        let other = std::io::Error::from_raw_os_error(13);
        assert!(!out_of_file_descriptors(&other), "EACCES is not");
    }

    fn temps(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(TMP_MARKER))
            .collect()
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The rename cannot replace a folder that holds something: the write fails after its
        // temporary file was written.
        let target = dir.path().join("s.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"x").unwrap();
        assert!(write_atomic(&target, b"{}").is_err());
        assert_eq!(temps(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_leftover_temporary_file_never_blocks_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.json");
        // What a crashed run of this very process id would have left, in a shape that cannot
        // be opened for writing: the next write must not need that name.
        let old_style = dir
            .path()
            .join(format!(".s.json.tmp.{}", std::process::id()));
        fs::create_dir(&old_style).unwrap();
        fs::write(old_style.join("x"), b"x").unwrap();
        let crashed = dir.path().join(".s.json.tmp.1.0000abcd");
        fs::write(&crashed, b"half").unwrap();
        write_atomic(&target, b"{}").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        assert_eq!(remove_stale_temps(&target), 1);
        assert!(!crashed.exists());
        assert!(old_style.exists(), "only files are removed");
        assert!(target.exists());
    }

    #[cfg(unix)]
    #[test]
    fn folders_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        create_private_dir_all(&deep).unwrap();
        for d in [dir.path().join("a"), deep] {
            let mode = fs::metadata(&d).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}: {mode:o}", d.display());
        }
    }
}
