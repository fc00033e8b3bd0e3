//! Writing output files safely: to a temporary file in the same directory, then renamed into
//! place, so a crash never leaves a truncated file; an existing file is replaced only when it
//! is a regular file that the caller's [`Replace`] allows: one gilbench wrote, or any with
//! `--force`. Anything else (a directory, a device such as /dev/null, a FIFO, a socket) is
//! never replaced. A symbolic link is followed: the file it points to is what is checked and
//! replaced, and the link stays.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Which existing regular files an output may replace; anything else is never replaced.
/// The rule is passed in because what gilbench wrote is known only to the formats, and they
/// sit above this module and write through it (see `report::export::replace`).
#[derive(Clone, Copy, Debug)]
pub enum Replace {
    /// Any regular file (`--force`).
    Any,
    /// Only a file this recognises as written by gilbench (`report::export::ours`).
    Only(fn(&Path) -> bool),
}

impl Replace {
    /// Whether the regular file at `path` may be replaced.
    fn allows(self, path: &Path) -> bool {
        match self {
            Replace::Any => true,
            Replace::Only(ours) => ours(path),
        }
    }
}

/// What kind of file system object `m` is, for messages.
pub(crate) fn kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a file"
    } else {
        "not a regular file"
    }
}

/// The directory a file path lives in (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` with every existing leading part resolved (symbolic links followed, `.`/`..`
/// folded), for telling whether two outputs name the same file. The part that does not
/// exist yet is appended as written.
pub fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let mut rest = Vec::new();
    let mut base = path.to_path_buf();
    while let Some(n) = base.file_name() {
        rest.push(n.to_os_string());
        base = parent_of(&base);
        if let Ok(b) = std::fs::canonicalize(&base) {
            base = b;
            break;
        }
    }
    for n in rest.into_iter().rev() {
        base.push(n);
    }
    // Lexically fold what is left of `.`/`..` in the part that does not exist.
    let mut out = PathBuf::new();
    for c in base.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Checks that `path` may be written as an output file and returns the file to write (the
/// target of a symbolic link): its directory exists; it is absent, or a regular file that
/// `replace` allows. Never opens anything but a regular file.
pub fn check_target(path: &Path, replace: Replace) -> Result<PathBuf, String> {
    let shown = path.display();
    if std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).ends_with(b"/") {
        return Err(format!(
            "{shown} ends in '/', which names a directory; give a file name"
        ));
    }
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)
            .map_err(|e| format!("{shown} is a symbolic link that cannot be followed ({e})"))?,
        _ => path.to_path_buf(),
    };
    let dir = parent_of(&target);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "cannot write {shown}: {} is not a directory",
                dir.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "cannot write {shown}: directory {} does not exist",
                dir.display()
            ))
        }
        Err(e) => return Err(format!("cannot write {shown}: {}: {e}", dir.display())),
    }
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_file() => {
            if !replace.allows(&target) {
                return Err(format!(
                    "{shown} exists and was not written by gilbench; pass --force to replace it"
                ));
            }
        }
        Ok(m) => {
            return Err(format!(
                "{shown} is {}; gilbench replaces only regular files, even with --force",
                kind(&m)
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot write {shown}: {e}")),
    }
    Ok(target)
}

/// Whether a file can be created in `dir`: one is created there and removed.
fn probe_dir(dir: &Path, shown: &Path) -> Result<(), String> {
    tempfile::Builder::new()
        .prefix(".gilbench-probe.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            // The kind, not the error: tempfile's names the random probe file.
            format!(
                "cannot write {}: {}: {}",
                shown.display(),
                dir.display(),
                e.kind()
            )
        })
}

/// Checks, before anything runs, that `path` can be written as an output file (see
/// [`check_target`]) and that its directory takes new files. Returns the resolved path.
pub fn check_file(path: &Path, replace: Replace) -> Result<PathBuf, String> {
    let target = check_target(path, replace)?;
    probe_dir(&parent_of(&target), path)?;
    Ok(resolve(&target))
}

/// Checks, before anything runs, that `dir` can take a set of output files: an existing
/// directory that takes new files, or one that can be created (its nearest existing
/// ancestor is a directory that takes new entries; nothing is created yet). Returns the
/// resolved path.
pub fn check_dir(dir: &Path) -> Result<PathBuf, String> {
    let shown = dir.display();
    let mut up = dir.to_path_buf();
    loop {
        match std::fs::metadata(&up) {
            Ok(m) if m.is_dir() => {
                probe_dir(&up, dir)?;
                return Ok(resolve(dir));
            }
            Ok(m) if up == dir => {
                return Err(format!(
                    "{shown} exists and is {}, not a directory",
                    kind(&m)
                ))
            }
            Ok(_) => {
                return Err(format!(
                    "cannot create {shown}: {} is not a directory",
                    up.display()
                ))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) && parent_of(&up) != up =>
            {
                up = parent_of(&up);
            }
            Err(e) => return Err(format!("cannot create {shown}: {}: {e}", up.display())),
        }
    }
}

/// Checks, before anything runs, the files already in an output directory that would bear
/// gilbench's names (`*.{ext}`): each must be one gilbench may replace (see
/// [`check_target`]), so a user's file, or a link to one, named like an output is found
/// before the run, not after it. A directory not made yet holds none.
pub fn check_dir_files(dir: &Path, ext: &str, replace: Replace) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == ext) {
            check_target(&p, replace)
                .map_err(|m| format!("{m} (gilbench writes its own .{ext} files there)"))?;
        }
    }
    Ok(())
}

/// Writes `path` atomically with what `fill` writes (buffered): to a temporary file in the
/// same directory, synced, then renamed into place. `fill` returns `false` to abandon the
/// write (e.g. on a signal): nothing is replaced. The temporary file is removed on every
/// path but a kill. Returns whether the file was written.
pub fn write_with(
    path: &Path,
    replace: Replace,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<bool>,
) -> Result<bool, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let target = check_target(path, replace)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let prefix = format!(".{name}.");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(parent_of(&target))
        .map_err(|e| format!("cannot write {shown}: {}", e.kind()))?;
    let done = (|| -> std::io::Result<bool> {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        if !fill(&mut w)? {
            return Ok(false);
        }
        w.flush()?;
        drop(w);
        tmp.as_file().sync_all()?;
        Ok(true)
    })()
    .map_err(|e| format!("cannot write {shown}: {e}"))?;
    if !done {
        return Ok(false);
    }
    tmp.persist(&target)
        .map_err(|e| format!("cannot write {shown}: {}", e.error))?;
    Ok(true)
}

/// Writes `data` to `path` atomically (see [`write_with`]).
pub fn write_file(path: &Path, data: &[u8], replace: Replace) -> Result<(), String> {
    write_with(path, replace, |w| w.write_all(data).map(|()| true)).map(|_| ())
}

/// Creates `dir` (and parents) for a set of output files.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{} exists and is not a directory", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// The part of an output file name (`--hgrm`, `--hlog`, `--plot`) that a scenario name or row
/// label becomes: ASCII letters, digits, `-` and `.` (but not first) kept, anything else `_`. Not injective,
/// so an experiment rejects rows whose labels it maps alike (`experiment::sweep_rows`). Here,
/// below both, as experiments and the report formats name files alike.
pub fn file_part(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            // A leading dot would hide the file (`name = ".."` gave `.._latency.svg`).
            if c.is_ascii_alphanumeric() || c == '-' || (c == '.' && i > 0) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_part_is_never_hidden_nor_a_path() {
        assert_eq!(file_part("convoy-echo"), "convoy-echo");
        assert_eq!(file_part(".."), "_.");
        assert_eq!(file_part("../../tmp/x"), "_._.._tmp_x");
        assert_eq!(file_part("a.b c"), "a.b_c");
    }

    /// Stands in for `report::export::ours` (tested beside it): a file starting "ours".
    fn ours(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|t| t.starts_with(b"ours"))
    }

    const OURS: Replace = Replace::Only(ours);

    fn tmp_names(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn replaces_only_its_own_files_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, "precious").unwrap();
        assert!(write_file(&p, b"ours 1", OURS)
            .unwrap_err()
            .contains("--force"));
        write_file(&p, b"ours 1", Replace::Any).unwrap();
        write_file(&p, b"ours 2", OURS).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "ours 2");
        assert!(tmp_names(dir.path()).is_empty());
    }

    #[test]
    fn never_replaces_anything_but_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for p in [fifo.as_path(), sub.as_path()] {
            let e = write_file(p, b"x", Replace::Any).unwrap_err();
            assert!(e.contains("only regular files"), "{e}");
            assert!(check_file(p, Replace::Any).is_err());
        }
        // Only checked, never written: a broken check must not replace /dev/null as root.
        let e = check_file(Path::new("/dev/null"), Replace::Any).unwrap_err();
        assert!(e.contains("character device"), "{e}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert!(tmp_names(dir.path()).is_empty());
    }

    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        std::fs::write(&real, "ours\n").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file(&link, b"new", OURS).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert_eq!(resolve(&link), resolve(&real));
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert!(check_target(&dangling, Replace::Any).is_err());
    }

    #[test]
    fn an_abandoned_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let wrote = write_with(&p, OURS, |w| {
            w.write_all(&[b'x'; 100_000])?;
            Ok(false)
        })
        .unwrap();
        assert!(!wrote && !p.exists());
        let e = write_with(&p, OURS, |w| {
            w.write_all(b"x")?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(e.contains("boom"));
        assert!(!p.exists());
        assert!(tmp_names(dir.path()).is_empty());
    }

    #[test]
    fn resolve_names_one_file_one_way() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("a")).unwrap();
        assert_eq!(resolve(&d.join("a/../x.json")), resolve(&d.join("x.json")));
        assert_eq!(resolve(&d.join("./a/x")), resolve(&d.join("a/x")));
        assert_eq!(
            resolve(&d.join("new/sub")),
            d.canonicalize().unwrap().join("new/sub")
        );
    }

    #[test]
    fn check_dir_needs_a_directory_it_can_fill() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert!(check_dir(&f).unwrap_err().contains("not a directory"));
        assert!(check_dir(&f.join("sub"))
            .unwrap_err()
            .contains("not a directory"));
        check_dir(&dir.path().join("new/deeper")).unwrap();
        assert!(!dir.path().join("new").exists());
        assert!(check_file(&f.join("x.json"), OURS)
            .unwrap_err()
            .contains("not a directory"));
        assert!(check_file(&dir.path().join("missing/x.json"), OURS)
            .unwrap_err()
            .contains("does not exist"));
        assert!(tmp_names(dir.path()).is_empty());
    }
}
