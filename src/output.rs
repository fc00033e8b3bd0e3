//! Writing output files safely: to a temporary file in the same directory, then renamed into
//! place, so a crash never leaves a truncated file; and an existing file is replaced only
//! with `--force` or when gilbench wrote it.

use std::io::Write;
use std::path::Path;

/// The marks by which gilbench recognises its own files.
const MARKS: [&str; 6] = [
    "\"gilbench\"",
    "<!-- gilbench",
    "scenario,label,lock,",
    "#[gilbench",
    "Value     Percentile TotalCount",
    "\"traceEvents\"",
];

/// Whether the file at `path` looks written by gilbench (checked on its first 4 KiB).
fn ours(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 4096];
    let n = std::io::Read::read(&mut f, &mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    MARKS.iter().any(|m| head.contains(m))
}

/// Writes `data` to `path` atomically. Refuses to replace a file gilbench did not write,
/// unless `force`.
pub fn write_file(path: &Path, data: &[u8], force: bool) -> Result<(), String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!("{shown} is a directory"));
    }
    if path.exists() && !force && !ours(path) {
        return Err(format!(
            "{shown} exists and was not written by gilbench; pass --force to replace it"
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {shown}: directory {} does not exist",
            dir.display()
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {shown}: {e}"));
    }
    Ok(())
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

    #[test]
    fn replaces_only_its_own_files_unless_forced() {
        let dir = std::env::temp_dir().join(format!("gilbench-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.json");
        std::fs::write(&p, "precious").unwrap();
        assert!(write_file(&p, b"{\"gilbench\": 1}", false)
            .unwrap_err()
            .contains("--force"));
        write_file(&p, b"{\"gilbench\": 1}", true).unwrap();
        write_file(&p, b"{\"gilbench\": 2}", false).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"gilbench\": 2}");
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));
    }
}
