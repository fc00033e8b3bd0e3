//! Durations as people write them: `5ms`, `250us`, `2s`, `1.5s`, `100ns`, `1m`.

use std::time::Duration;

/// Parses a non-negative duration with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("'{s}' is not a duration (write it like 5ms, 250us, 2s)");
    if num.is_empty() {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "" => return Err(format!("'{s}' has no unit (write it like 5ms, 250us, 2s)")),
        _ => return Err(bad()),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("'{s}' is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Microseconds, compactly: `12.5us`, `1.20ms`, `2.50s`.
pub fn us(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2}ms", x / 1e3)
    } else {
        format!("{x:.1}us")
    }
}

/// Formats a duration compactly in the unit that reads best.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        "0s".into()
    } else if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("{}us", ns / 1_000)
    } else if ns < 1_000 {
        format!("{ns}ns")
    } else {
        format!("{:.3}us", ns as f64 / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("5ms").unwrap(), Duration::from_millis(5));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.1ms").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("0us").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_junk() {
        for s in ["", "5", "ms", "5parsecs", "-5ms", "5 ms s", "1e3ms", "5ms5"] {
            assert!(parse_duration(s).is_err(), "{s:?} should not parse");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["5ms", "250us", "2s", "100ns"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
