//! How gilbench recognises a file it wrote, so that an output replaces only its own files
//! unless `--force`: each format's [`Mark`] checked against the file's first line, its last
//! non-empty line or its JSON shape. It lives beside the formats that declare the marks;
//! `output` writes with whatever rule [`replace`] hands it.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Mark, ALL};
use crate::calibrate::{BULK_CSV_HEADER, CSV_HEADER};
use crate::output::Replace;

/// What an output may replace: any regular file with `--force`, else only one gilbench
/// wrote ([`ours`]).
pub fn replace(force: bool) -> Replace {
    if force {
        Replace::Any
    } else {
        Replace::Only(ours)
    }
}

/// Whether the regular file at `path` was written by gilbench, judged by content gilbench
/// controls: the [`Mark`] some format declares, e.g. a result JSON (a top-level object whose
/// `gilbench` is a string and `runs` an array) or a trace (`traceEvents` an array and
/// `otherData.gilbench` a string), both parsed over a bounded prefix; a CSV whose first line is exactly
/// gilbench's header; Markdown, an interval log, an SVG plot or an HTML page whose first line
/// is gilbench's marker; an `.hgrm` with HdrHistogram's header first and gilbench's marker
/// last. A file that merely mentions "gilbench" is not ours.
pub fn ours(path: &Path) -> bool {
    Probe::open(path).is_some_and(|p| {
        // calibrate's CSV has a header of its own.
        [CSV_HEADER, BULK_CSV_HEADER].contains(&p.first.as_str())
            || ALL.iter().any(|e| e.mark().matches(&p))
    })
}

/// What a JSON value is, as far as marks look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Str,
    Array,
    Object,
    Other,
}

/// The values seen in a JSON text, by path (object keys joined by `.`, two levels deep),
/// recorded as the parse goes: a parse cut short by the bounded read still tells what the
/// text held up to there. Array elements are skipped, never kept.
type Seen = RefCell<BTreeMap<String, Shape>>;

/// The value at `path`, recorded into `seen`.
struct At<'s> {
    path: String,
    seen: &'s Seen,
}

impl At<'_> {
    fn record(&self, s: Shape) {
        self.seen.borrow_mut().insert(self.path.clone(), s);
    }
}

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for At<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.record(Shape::Str);
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.record(Shape::Other);
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.record(Shape::Other);
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.record(Shape::Other);
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.record(Shape::Other);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.record(Shape::Other);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.record(Shape::Array);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.record(Shape::Object);
        let depth = self.path.matches('.').count() + usize::from(!self.path.is_empty());
        while let Some(k) = map.next_key::<String>()? {
            if depth >= 2 {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let path = if self.path.is_empty() {
                k
            } else {
                format!("{}.{k}", self.path)
            };
            map.next_value_seed(At {
                path,
                seen: self.seen,
            })?;
        }
        Ok(())
    }
}

/// How much of a JSON file is parsed to recognise it: a result or trace names itself in its
/// first bytes, and a 500 MB trace must not take seconds to recognise.
const JSON_PREFIX: u64 = 1 << 20;

/// Whether `line` is `{open}VERSION{close}` with a version of digits and dots (e.g. `0.1.0`,
/// a `-pre` or `+build` suffix allowed).
pub fn versioned(line: &str, open: &str, close: &str) -> bool {
    line.strip_prefix(open)
        .and_then(|r| r.strip_suffix(close))
        .is_some_and(|v| {
            !v.is_empty()
                && v.split(['-', '+']).next().is_some_and(|core| {
                    core.split('.')
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                && !v.contains(char::is_whitespace)
        })
}

/// What [`Mark`]s are checked against: a file's first line, and on demand its last
/// non-empty line and its JSON shape (each read at most once).
struct Probe<'a> {
    path: &'a Path,
    first: String,
    /// The reader past the first line, until the last line is wanted.
    rest: Cell<Option<BufReader<File>>>,
    last: OnceCell<Option<String>>,
    json: OnceCell<Option<BTreeMap<String, Shape>>>,
}

impl<'a> Probe<'a> {
    /// Opens `path` and reads its first line (at most 4 KiB); `None` if it cannot be read or
    /// is not UTF-8.
    fn open(path: &'a Path) -> Option<Self> {
        let mut r = BufReader::new(File::open(path).ok()?);
        let mut first = Vec::new();
        (&mut r).take(4096).read_until(b'\n', &mut first).ok()?;
        let first = String::from_utf8(first).ok()?;
        Some(Probe {
            path,
            first: first.trim_end_matches(['\n', '\r']).to_owned(),
            rest: Cell::new(Some(r)),
            last: OnceCell::new(),
            json: OnceCell::new(),
        })
    }

    /// The last non-empty line, reading at most 1 MiB past the first line.
    fn last(&self) -> Option<&str> {
        self.last
            .get_or_init(|| {
                let mut text = String::new();
                self.rest
                    .take()?
                    .take(1 << 20)
                    .read_to_string(&mut text)
                    .ok()?;
                text.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_owned)
            })
            .as_deref()
    }

    /// The file as JSON, parsed over its first [`JSON_PREFIX`] bytes only (its arrays
    /// skipped, never kept). A file that short must parse whole; a longer one must end
    /// with `}` (a cut-off copy is not ours).
    fn json(&self) -> Option<&BTreeMap<String, Shape>> {
        self.json
            .get_or_init(|| {
                let mut f = File::open(self.path).ok()?;
                let len = f.metadata().ok()?.len();
                let seen = Seen::default();
                let head = BufReader::with_capacity(1 << 16, (&mut f).take(JSON_PREFIX));
                let parsed = At {
                    path: String::new(),
                    seen: &seen,
                }
                .deserialize(&mut serde_json::Deserializer::from_reader(head));
                let whole = len <= JSON_PREFIX;
                if (whole && parsed.is_err()) || (!whole && !ends_with_brace(&mut f, len)) {
                    return None;
                }
                Some(seen.into_inner())
            })
            .as_ref()
    }
}

/// Whether the last non-blank byte of the file is `}`.
fn ends_with_brace(f: &mut File, len: u64) -> bool {
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(len.saturating_sub(64))).is_ok()
        && f.read_to_end(&mut tail).is_ok()
        && tail.trim_ascii_end().last() == Some(&b'}')
}

impl Mark {
    /// Whether the file `p` describes carries this mark.
    fn matches(&self, p: &Probe<'_>) -> bool {
        match self {
            Mark::FirstLine(lines) => lines.contains(&p.first),
            Mark::Versioned { open, close } => versioned(&p.first, open, close),
            Mark::HeadAndTail { first, open, close } => {
                p.first == *first && p.last().is_some_and(|l| versioned(l, open, close))
            }
            Mark::Json { strings, arrays } => {
                p.first.trim_start().starts_with('{')
                    && p.json().is_some_and(|s| {
                        strings.iter().all(|k| s.get(*k) == Some(&Shape::Str))
                            && arrays.iter().all(|k| s.get(*k) == Some(&Shape::Array))
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::report::export::csv::header as csv_header;
    use crate::report::export::hgrm::HGRM_HEADER;

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

    /// A big trace is recognised from its first MiB and its last bytes: what lies between
    /// is never read (it is junk here, which a whole parse would reject).
    #[test]
    fn a_big_trace_is_recognised_by_a_bounded_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let head = "{\"otherData\":{\"gilbench\":\"0.1.0\"},\"traceEvents\":[";
        let junk = "not json at all ".repeat(1 << 17);
        for (tail, want) in [("]}\n", true), ("", false)] {
            let p = dir.path().join("big.json");
            std::fs::write(&p, format!("{head}{junk}{tail}")).unwrap();
            assert_eq!(ours(&p), want, "tail {tail:?}");
        }
    }

    /// Two sample runs, the first with a (short) timeline, so that every writer has its input.
    fn runs_with_a_trace() -> Vec<crate::result::RunResult> {
        use crate::report::export;
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
        runs
    }

    /// The files a writer wrote to `to`: the file, or each file in the directory.
    fn files_at(to: &crate::report::export::Dest) -> Vec<PathBuf> {
        match to {
            crate::report::export::Dest::Dir(d) => std::fs::read_dir(d)
                .unwrap()
                .map(|f| f.unwrap().path())
                .collect(),
            _ => vec![to.path().unwrap().to_owned()],
        }
    }

    #[test]
    fn every_writer_s_output_is_recognised() {
        use crate::report::export::{Context, Dest, Outcome, Target, ALL};
        let dir = tempfile::tempdir().unwrap();
        let runs = runs_with_a_trace();
        let about = crate::report::about::About::default();
        let printed = std::cell::RefCell::new(Vec::new());
        let say = |t: &str| printed.borrow_mut().push(t.to_owned());
        let cx = Context {
            runs: &runs,
            table: None,
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
            let files = files_at(&to);
            assert!(!files.is_empty(), "{}", e.flag());
            for f in files {
                assert!(ours(&f), "--{} {}", e.flag(), f.display());
            }
            // And again: its own file is replaced without --force.
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
}
