//! Writing output files safely: to a temporary file in the same directory, then renamed into
//! place, so a crash never leaves a truncated file; an existing file is replaced only when it
//! is a regular file and gilbench wrote it (recognised by content gilbench controls), or with
//! `--force`. Anything else (a directory, a device such as /dev/null, a FIFO, a socket) is
//! never replaced. A symbolic link is followed: the file it points to is what is checked and
//! replaced, and the link stays.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::report::export::{Probe, Shape, ALL};

/// Whether the regular file at `path` was written by gilbench, judged by content gilbench
/// controls: the [`Mark`](crate::report::export::Mark) some format declares, e.g. a result
/// JSON (a top-level object whose `gilbench` is a string and `runs` an array) or a trace
/// (`traceEvents` an array and `otherData.gilbench` a string), both parsed whole; a CSV whose
/// first line is exactly gilbench's header; Markdown, an interval log, an SVG plot or an
/// HTML page whose first line is gilbench's marker; an `.hgrm` with HdrHistogram's header
/// first and gilbench's marker last. A file that merely mentions "gilbench" is not ours.
pub fn ours(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut r = BufReader::new(f);
    let mut first = Vec::new();
    if (&mut r).take(4096).read_until(b'\n', &mut first).is_err() {
        return false;
    }
    let Ok(first) = std::str::from_utf8(&first) else {
        return false;
    };
    let rest = std::cell::RefCell::new(Some(r));
    // The last non-empty line, reading at most 1 MiB past the first line.
    let last = || -> Option<String> {
        let mut text = String::new();
        rest.borrow_mut()
            .take()?
            .take(1 << 20)
            .read_to_string(&mut text)
            .ok()?;
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_owned)
    };
    let shape: std::cell::OnceCell<Option<Rc<Shape>>> = std::cell::OnceCell::new();
    // The whole file as JSON, its arrays skipped, never kept.
    let json = || -> Option<Rc<Shape>> {
        shape
            .get_or_init(|| {
                let f = std::fs::File::open(path).ok()?;
                serde_json::from_reader::<_, Shape>(BufReader::with_capacity(1 << 16, f))
                    .ok()
                    .map(Rc::new)
            })
            .clone()
    };
    let probe = Probe {
        first: first.trim_end_matches(['\n', '\r']),
        last: &last,
        json: &json,
    };
    // calibrate's CSV has a header of its own.
    [
        crate::calibrate::CSV_HEADER,
        crate::calibrate::BULK_CSV_HEADER,
    ]
    .contains(&probe.first)
        || ALL.iter().any(|e| e.mark().matches(&probe))
}

/// What kind of file system object `m` is, for messages.
fn kind(m: &std::fs::Metadata) -> &'static str {
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
/// gilbench wrote (or `force`). Never opens anything but a regular file.
pub fn check_target(path: &Path, force: bool) -> Result<PathBuf, String> {
    let shown = path.display();
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
            if !force && !ours(&target) {
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
pub fn check_file(path: &Path, force: bool) -> Result<PathBuf, String> {
    let target = check_target(path, force)?;
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

/// Writes `path` atomically with what `fill` writes (buffered): to a temporary file in the
/// same directory, synced, then renamed into place. `fill` returns `false` to abandon the
/// write (e.g. on a signal): nothing is replaced. The temporary file is removed on every
/// path but a kill. Returns whether the file was written.
pub fn write_with(
    path: &Path,
    force: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<bool>,
) -> Result<bool, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let target = check_target(path, force)?;
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
pub fn write_file(path: &Path, data: &[u8], force: bool) -> Result<(), String> {
    write_with(path, force, |w| w.write_all(data).map(|()| true)).map(|_| ())
}

/// Creates `dir` (and parents) for a set of output files.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{} exists and is not a directory", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::csv::header as csv_header;
    use crate::report::export::hgrm::HGRM_HEADER;

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
        let ours_json = "{\"gilbench\": \"0.1.0\", \"runs\": []}";
        std::fs::write(&p, "precious").unwrap();
        assert!(write_file(&p, ours_json.as_bytes(), false)
            .unwrap_err()
            .contains("--force"));
        write_file(&p, ours_json.as_bytes(), true).unwrap();
        write_file(&p, b"{\"gilbench\": \"0.1.0\", \"runs\": [1]}", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"gilbench\": \"0.1.0\", \"runs\": [1]}"
        );
        assert!(tmp_names(dir.path()).is_empty());
    }

    #[test]
    fn recognises_its_files_by_their_content_not_a_mention() {
        let dir = tempfile::tempdir().unwrap();
        let csv = csv_header();
        let cases: &[(&str, bool)] = &[
            ("{\"gilbench\": \"0.1.0\", \"runs\": [{\"a\": 1}]}\n", true),
            (
                "{\"otherData\":{\"gilbench\":\"0.1.0\"},\"traceEvents\":[{\"ph\":\"B\"}]}",
                true,
            ),
            (&format!("{csv}\na,b\n"), true),
            (&format!("{}\na,b\n", crate::calibrate::CSV_HEADER), true),
            (&format!("{}\na,b\n", crate::calibrate::BULK_CSV_HEADER), true),
            ("<!-- gilbench 0.1.0 html report -->\n<!DOCTYPE html>\n", true),
            // The header before idle_while_wanted.
            ("scenario,label,lock,repeat,partial,wall_s,requests_per_sec,latency_p50_us,latency_p99_us,latency_p999_us,cpu_ticks_per_sec,switches,forced_drops,ctx_switches,transfer_s\n", true),
            // The header before transfer_received.
            ("scenario,label,lock,repeat,partial,wall_s,requests_per_sec,requests_vs_alone,latency_p50_us,latency_p99_us,p99_vs_alone,latency_p999_us,cpu_ticks_per_sec,cpu_kept,switches,forced_drops,ctx_switches,idle_while_wanted,transfer_s,transfer_vs_alone\n", true),
            ("<!-- gilbench 0.1.0 -->\n| run |\n", true),
            (
                "#[gilbench 0.1.0 interval log; values in nanoseconds]\n#[StartTime: 1]\n",
                true,
            ),
            ("<!-- gilbench plot -->\n<svg>\n", true),
            (
                &format!("{HGRM_HEADER}\n\n#[Mean = 1]\n#[gilbench 0.1.0 percentile distribution; values in microseconds]\n"),
                true,
            ),
            // Mentions, near misses, and a cut-off copy.
            ("[package]\nname = \"gilbench\"\nversion = \"0.1.0\"\n", false),
            ("# gilbench\n\nA README quoting \"gilbench\" and \"traceEvents\".\n", false),
            ("{\"gilbench\": \"0.1.0\"}", false),
            ("{\"gilbench\": 1, \"runs\": []}", false),
            ("{\"name\": \"gilbench\", \"runs\": []}", false),
            ("{\"gilbench\": \"0.1.0\", \"runs\": [", false),
            ("{\"traceEvents\": []}", false),
            (&format!("{csv},extra\n"), false),
            ("<!DOCTYPE html>\n<!-- gilbench 0.1.0 html report -->\n", false),
            ("<!-- gilbench 0.1.0 html report and more -->\n", false),
            ("<!-- gilbench is great -->\n", false),
            (&format!("{HGRM_HEADER}\n#[Mean = 1]\n"), false),
            ("", false),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, text).unwrap();
            assert_eq!(ours(&p), *want, "{text:?}");
        }
    }

    #[test]
    fn every_writer_s_output_is_recognised() {
        use crate::report::export::{self, Context, Dest, Outcome, Target, ALL};
        let dir = tempfile::tempdir().unwrap();
        let mut runs = vec![export::sample_run("a"), export::sample_run("b")];
        let epoch = std::time::Instant::now();
        runs[0].trace = Some(crate::trace::Timeline {
            threads: vec![crate::trace::ThreadTrace {
                name: "cpu-0".into(),
                buf: crate::trace::TraceBuf::new(epoch, 16),
            }],
            end_ns: 1000,
            measured_from_ns: 0,
            meta: serde_json::json!({"scenario": "s", "lock": "timed"}),
        });
        let about = crate::report::about::About::default();
        let printed = std::cell::RefCell::new(Vec::new());
        let say = |t: &str| printed.borrow_mut().push(t.to_owned());
        let cx = Context {
            runs: &runs,
            sweep_key: None,
            force: false,
            about: &about,
            written: &[],
            say: &say,
            note: &|_| {},
        };
        for e in ALL {
            let to = match e.target() {
                Target::File | Target::FileOrStdout => Dest::File(dir.path().join(e.flag())),
                Target::Dir { .. } => Dest::Dir(dir.path().join(e.flag())),
            };
            assert_eq!(e.write(&cx, &to).unwrap(), Outcome::Written, "{}", e.flag());
            let files: Vec<PathBuf> = match &to {
                Dest::Dir(d) => std::fs::read_dir(d)
                    .unwrap()
                    .map(|f| f.unwrap().path())
                    .collect(),
                _ => vec![to.path().unwrap().to_owned()],
            };
            assert!(!files.is_empty(), "{}", e.flag());
            for f in files {
                assert!(ours(&f), "--{} {}", e.flag(), f.display());
                // And again: its own file is replaced without --force.
            }
            assert_eq!(e.write(&cx, &to).unwrap(), Outcome::Written, "{}", e.flag());
            if e.target() == Target::FileOrStdout {
                assert_eq!(e.write(&cx, &Dest::Stdout).unwrap(), Outcome::Printed);
            }
        }
        assert_eq!(printed.borrow().len(), 2);
        // Empty results too.
        let cx = Context { runs: &[], ..cx };
        for e in ALL
            .iter()
            .filter(|e| e.target() != Target::Dir { ext: "hgrm" })
        {
            let p = dir.path().join(format!("empty-{}", e.flag()));
            let to = match e.target() {
                Target::Dir { .. } => continue,
                _ => Dest::File(p.clone()),
            };
            if e.write(&cx, &to).unwrap() == Outcome::Written {
                assert!(ours(&p), "--{} with no runs", e.flag());
            }
        }
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
            let e = write_file(p, b"x", true).unwrap_err();
            assert!(e.contains("only regular files"), "{e}");
            assert!(check_file(p, true).is_err());
        }
        // Only checked, never written: a broken check must not replace /dev/null as root.
        let e = check_file(Path::new("/dev/null"), true).unwrap_err();
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
        std::fs::write(&real, format!("{}\n", csv_header())).unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file(&link, b"new", false).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert_eq!(resolve(&link), resolve(&real));
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert!(check_target(&dangling, true).is_err());
    }

    #[test]
    fn an_abandoned_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let wrote = write_with(&p, false, |w| {
            w.write_all(&[b'x'; 100_000])?;
            Ok(false)
        })
        .unwrap();
        assert!(!wrote && !p.exists());
        let e = write_with(&p, false, |w| {
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
        assert!(check_file(&f.join("x.json"), false)
            .unwrap_err()
            .contains("not a directory"));
        assert!(check_file(&dir.path().join("missing/x.json"), false)
            .unwrap_err()
            .contains("does not exist"));
        assert!(tmp_names(dir.path()).is_empty());
    }
}
