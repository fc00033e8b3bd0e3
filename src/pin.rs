//! Pinning interpreter threads to cores with core_affinity.
//!
//! `spread` puts GIL threads round-robin over the cores this process may use, `single` puts
//! them all on the first, `none` leaves placement to the OS, and a list (`0,1`) names cores.
//! Pinning degrades with a note, never an error, when the OS will not tell or will not pin.

use std::fmt;
use std::str::FromStr;

/// How to place interpreter threads on cores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinMode {
    Spread,
    Single,
    None,
    List(Vec<usize>),
}

impl FromStr for PinMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "spread" => Ok(PinMode::Spread),
            "single" => Ok(PinMode::Single),
            "none" => Ok(PinMode::None),
            list => {
                let cores: Result<Vec<usize>, _> =
                    list.split(',').map(|c| c.trim().parse::<usize>()).collect();
                match cores {
                    Ok(c) if !c.is_empty() => {
                        let mut seen = c.clone();
                        seen.sort_unstable();
                        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
                            return Err(format!("'{s}' names core {} twice", w[0]));
                        }
                        Ok(PinMode::List(c))
                    }
                    _ => Err(format!(
                        "pin '{s}' is not spread, single, none or a core list like 0,1"
                    )),
                }
            }
        }
    }
}

impl fmt::Display for PinMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinMode::Spread => f.write_str("spread"),
            PinMode::Single => f.write_str("single"),
            PinMode::None => f.write_str("none"),
            PinMode::List(c) => {
                let s: Vec<String> = c.iter().map(|c| c.to_string()).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// Where each thread goes, and what the user should know about it.
#[derive(Clone, Debug, Default)]
pub struct PinPlan {
    /// One entry per GIL thread, in spawn order.
    pub cores: Vec<Option<usize>>,
    /// A core no GIL thread uses, for a helper such as the load generator.
    pub spare: Option<usize>,
    pub notes: Vec<String>,
}

/// The cores this process may run on, if the OS says. Read once, at the first call: the OS
/// reports the *calling thread's* mask, which pinning narrows, so a later call from a pinned
/// thread would see only its own core.
pub fn available_cores() -> Option<Vec<usize>> {
    static CORES: std::sync::OnceLock<Option<Vec<usize>>> = std::sync::OnceLock::new();
    CORES
        .get_or_init(|| {
            let mut ids: Vec<usize> = core_affinity::get_core_ids()?
                .into_iter()
                .map(|c| c.id)
                .collect();
            ids.sort_unstable();
            (!ids.is_empty()).then_some(ids)
        })
        .clone()
}

/// Plans the placement of `threads` GIL threads. A core that does not exist is an error.
pub fn plan(mode: &PinMode, threads: usize) -> Result<PinPlan, String> {
    let mut p = PinPlan {
        cores: vec![None; threads],
        ..Default::default()
    };
    if *mode == PinMode::None {
        return Ok(p);
    }
    let Some(avail) = available_cores() else {
        if let PinMode::List(c) = mode {
            return Err(format!(
                "cannot pin to cores {}: the OS does not report which cores this process may use",
                PinMode::List(c.clone())
            ));
        }
        p.notes
            .push("the OS does not report the usable cores; threads are not pinned".into());
        return Ok(p);
    };
    let chosen: Vec<usize> = match mode {
        PinMode::Spread => avail.clone(),
        PinMode::Single => vec![avail[0]],
        PinMode::List(list) => {
            if let Some(bad) = list.iter().find(|c| !avail.contains(c)) {
                let have: Vec<String> = avail.iter().map(|c| c.to_string()).collect();
                return Err(format!(
                    "core {bad} does not exist or is not usable here (usable cores: {})",
                    have.join(",")
                ));
            }
            list.clone()
        }
        PinMode::None => unreachable!(),
    };
    for (i, c) in p.cores.iter_mut().enumerate() {
        *c = Some(chosen[i % chosen.len()]);
    }
    if *mode == PinMode::Spread && threads > avail.len() {
        p.notes.push(format!(
            "{threads} GIL threads on {} cores: spread wraps around, so some threads share a core",
            avail.len()
        ));
    }
    let used: Vec<usize> = p.cores.iter().flatten().copied().collect();
    p.spare = avail.iter().copied().find(|c| !used.contains(c));
    Ok(p)
}

/// Pins the calling thread to `core`; false if the OS refused.
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!("spread".parse::<PinMode>().unwrap(), PinMode::Spread);
        assert_eq!("0,1".parse::<PinMode>().unwrap(), PinMode::List(vec![0, 1]));
        assert!("0,x".parse::<PinMode>().is_err());
        let e = "0,1,0".parse::<PinMode>().unwrap_err();
        assert!(e.contains("names core 0 twice"), "{e}");
        assert!("".parse::<PinMode>().is_err());
    }

    #[test]
    fn spread_wraps_with_a_note() {
        let n = available_cores().map_or(1, |c| c.len());
        let p = plan(&PinMode::Spread, n + 1).unwrap();
        assert_eq!(p.cores.len(), n + 1);
        assert_eq!(p.cores[0], p.cores[n]);
        assert!(p.notes.iter().any(|m| m.contains("wraps around")));
    }

    #[test]
    fn nonexistent_core_is_an_error() {
        assert!(plan(&PinMode::List(vec![99_999]), 1)
            .unwrap_err()
            .contains("99999"));
    }
}
