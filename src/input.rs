//! Reading the files gilbench is given (a scenario, a saved result): only regular files, at
//! most a size limit, and a signal stops the read. A FIFO, a device such as /dev/zero or a
//! directory is refused before anything is read from it, and opening never blocks (a FIFO
//! with no writer would block `open` until one came).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::output::kind;
use crate::signals;

/// Why an input could not be read.
#[derive(Debug)]
pub enum InputError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// Not a regular file: what it is ("a FIFO", "a character device", ...).
    NotRegular(&'static str),
    /// Larger than the limit: its size in bytes.
    TooBig(u64),
    /// A signal came while it was read.
    Interrupted,
}

impl InputError {
    /// The reason, for a message that names the file: "no such file", "a FIFO, not a
    /// regular file", ...
    pub fn reason(&self, limit: u64) -> String {
        match self {
            InputError::Io(e) => match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".into(),
                std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                _ => e.to_string(),
            },
            InputError::NotRegular(k) => format!("{k}, not a regular file"),
            InputError::TooBig(n) => format!(
                "{} MiB or more, larger than the {} MiB gilbench reads",
                n >> 20,
                limit >> 20
            ),
            InputError::Interrupted => "interrupted by a signal while reading it".into(),
        }
    }
}

/// Reads at most this much at a time between looks at the signal flag.
const CHUNK: usize = 1 << 20;

/// The bytes of the regular file at `path`, if it holds at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(InputError::Io)?;
    let m = f.metadata().map_err(InputError::Io)?;
    if !m.is_file() {
        return Err(InputError::NotRegular(kind(&m)));
    }
    if m.len() > limit {
        return Err(InputError::TooBig(m.len()));
    }
    // The size can change under us: never read past the limit.
    let mut r = f.take(limit + 1);
    let mut out = Vec::with_capacity(m.len() as usize);
    loop {
        if signals::caught().is_some() {
            return Err(InputError::Interrupted);
        }
        let n = (&mut r)
            .take(CHUNK as u64)
            .read_to_end(&mut out)
            .map_err(InputError::Io)?;
        if out.len() as u64 > limit {
            return Err(InputError::TooBig(out.len() as u64));
        }
        if n == 0 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path, which outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (p, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            match read_regular(p, 1 << 20) {
                Err(InputError::NotRegular(k)) => assert_eq!(k, what, "{}", p.display()),
                other => panic!("{}: {other:?}", p.display()),
            }
        }
    }

    #[test]
    fn reads_a_regular_file_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'x'; 3 * CHUNK + 5]).unwrap();
        assert_eq!(read_regular(&p, 4 << 20).unwrap().len(), 3 * CHUNK + 5);
        assert!(matches!(
            read_regular(&p, 1 << 20),
            Err(InputError::TooBig(_))
        ));
    }
}
