//! How results were made: the command line, the gilbench version, the machine (CPU model,
//! cores, kernel) and the date. Kept in the result JSON (`provenance`) so that `report`
//! shows where saved results came from; shown at the top of the HTML page.

use serde::{Deserialize, Serialize};

/// The machine results were measured on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `/proc/cpuinfo`'s model name.
    pub cpu: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// The kernel: `uname -s -r`.
    pub kernel: String,
    /// `uname -m`.
    pub arch: String,
}

/// One gilbench command: which, where, when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub gilbench: String,
    /// The command line, word by word.
    pub command: Vec<String>,
    /// When it started, `YYYY-MM-DD HH:MM:SS UTC`.
    pub date: String,
    pub machine: Machine,
}

/// What outputs say about themselves: how the results were made and, when that is another
/// command (`report`), the command writing them now.
#[derive(Clone, Debug, Default)]
pub struct About {
    /// How the results were made; `None` for a result file that did not record it.
    pub recorded: Option<Provenance>,
    /// This command.
    pub current: Provenance,
}

impl About {
    /// Results made by this command.
    pub fn fresh(current: Provenance) -> About {
        About {
            recorded: Some(current.clone()),
            current,
        }
    }

    /// Whether the results were made by another command (re-rendered by `report`).
    pub fn rerendered(&self) -> bool {
        self.recorded.as_ref() != Some(&self.current)
    }
}

impl Provenance {
    /// This process: its command line, now, this machine.
    pub fn now() -> Provenance {
        Provenance {
            gilbench: env!("CARGO_PKG_VERSION").to_owned(),
            command: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            date: utc(std::time::SystemTime::now()),
            machine: Machine::this(),
        }
    }

    /// The command line as a shell would take it (words quoted where needed).
    pub fn command_line(&self) -> String {
        self.command
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Machine {
    /// The machine this runs on.
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim() == "model name")
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let (kernel, arch) = uname();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel,
            arch,
        }
    }

    /// One line: `AMD EPYC 7B13, 2 cores, Linux 6.1.0 x86_64`.
    pub fn line(&self) -> String {
        format!(
            "{}, {} core{}, {} {}",
            self.cpu,
            self.cores,
            if self.cores == 1 { "" } else { "s" },
            self.kernel,
            self.arch
        )
    }
}

/// (`sysname release`, `machine`) from `uname(2)`.
fn uname() -> (String, String) {
    // SAFETY: utsname is plain data for which all-zero bytes are a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname for the call to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown kernel".into(), String::new());
    }
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (
        format!("{} {}", field(&u.sysname), field(&u.release)),
        field(&u.machine),
    )
}

/// `t` as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `w` quoted for a POSIX shell when it needs it.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
    if plain {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(utc(t), "2000-02-29 01:02:03 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        assert_eq!(utc(t), "2026-11-30 00:53:20 UTC");
    }

    #[test]
    fn the_command_line_quotes_what_a_shell_would_split() {
        let p = Provenance {
            command: vec![
                "gilbench".into(),
                "sweep".into(),
                "--set".into(),
                "interval=1ms,5ms".into(),
                "my file.toml".into(),
                "it's".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            p.command_line(),
            "gilbench sweep --set interval=1ms,5ms 'my file.toml' 'it'\\''s'"
        );
    }

    #[test]
    fn this_machine_is_described() {
        let m = Machine::this();
        assert!(m.cores >= 1);
        assert!(m.kernel.starts_with("Linux "), "{}", m.kernel);
        assert!(!m.cpu.is_empty());
    }
}
