//! A table of rows that are not runs (calibrate's: each condition's sides and their ratio),
//! described by [`TableColumn`]s and rendered here for every format that writes a table: the
//! text table, Markdown and CSV (see `export`). Its cells are made once, for a person and
//! as plain numbers, so a column change reaches every format.

use std::fmt::Write;

use super::columns::TableColumn;

/// One cell: for a person (text, Markdown) and as a plain number (CSV; empty when absent).
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub human: String,
    pub plain: String,
}

/// A header of a [`Table`]: what the text table and Markdown show (`None`: CSV only), the
/// CSV field (`None`: not in the CSV), and whether the cells are aligned right.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    pub name: Option<&'static str>,
    pub key: Option<&'static str>,
    pub numeric: bool,
}

/// A table of its own, with the lines around it and the result file's record of it.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Lines above the table: what ran where, how to read it.
    pub caption: Vec<String>,
    pub heads: Vec<Head>,
    /// A cell per head in each row.
    pub rows: Vec<Vec<Cell>>,
    /// Lines below the table.
    pub notes: Vec<String>,
    /// Set when a signal cut it short (the text table says so).
    pub partial: bool,
    /// The result file's fields besides `gilbench`, `provenance` and `runs` (calibrate's
    /// `calibrate`).
    pub record: serde_json::Map<String, serde_json::Value>,
}

impl Table {
    /// A table of `rows`, a cell per column of `columns`.
    pub fn of<R>(columns: &[TableColumn<R>], rows: &[R]) -> Table {
        Table {
            heads: columns
                .iter()
                .map(|c| Head {
                    name: c.name,
                    key: c.key,
                    numeric: c.numeric,
                })
                .collect(),
            rows: rows
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .map(|c| Cell {
                            human: (c.human)(r),
                            plain: (c.plain)(r),
                        })
                        .collect()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The shown columns (text, Markdown, HTML): their index and head.
    pub(crate) fn shown(&self) -> impl Iterator<Item = (usize, &'static str, bool)> + '_ {
        self.heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.name.map(|n| (i, n, h.numeric)))
    }

    /// The table for a terminal: the caption, the columns aligned, the notes.
    pub fn text(&self) -> String {
        let shown: Vec<_> = self.shown().collect();
        let mut lines = vec![shown.iter().map(|(_, n, _)| (*n).to_owned()).collect()];
        for r in &self.rows {
            lines.push(shown.iter().map(|(i, _, _)| r[*i].human.clone()).collect());
        }
        let numeric: Vec<bool> = shown.iter().map(|(_, _, n)| *n).collect();
        let mut o = String::new();
        for c in &self.caption {
            let _ = writeln!(o, "{c}");
        }
        o.push_str(&aligned(&lines, |i| numeric[i]));
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        if self.partial {
            o.push_str("note: interrupted: the table covers the runs finished so far\n");
        }
        o
    }

    /// The table in Markdown, with gilbench's marker first.
    pub fn markdown(&self) -> String {
        let mut o = format!("<!-- gilbench {} -->\n", env!("CARGO_PKG_VERSION"));
        for c in &self.caption {
            let _ = write!(o, "{c}\n\n");
        }
        let shown: Vec<_> = self.shown().collect();
        let names: Vec<&str> = shown.iter().map(|(_, n, _)| *n).collect();
        let numeric: Vec<bool> = shown.iter().map(|(_, _, n)| *n).collect();
        o.push_str(&markdown_head(&names, &numeric));
        for r in &self.rows {
            let cells: Vec<String> = shown.iter().map(|(i, _, _)| r[*i].human.clone()).collect();
            o.push_str(&markdown_row(&cells));
        }
        for n in &self.notes {
            let _ = write!(o, "\n{n}\n");
        }
        o
    }

    /// The CSV header: the columns that have a key.
    pub fn csv_header(&self) -> String {
        let keys: Vec<&str> = self.heads.iter().filter_map(|h| h.key).collect();
        keys.join(",")
    }

    /// A line per row, plain numbers.
    pub fn csv(&self) -> String {
        let mut o = self.csv_header();
        o.push('\n');
        for r in &self.rows {
            let fields: Vec<String> = (self.heads.iter().zip(r))
                .filter(|(h, _)| h.key.is_some())
                .map(|(_, c)| csv_field(&c.plain))
                .collect();
            o.push_str(&fields.join(","));
            o.push('\n');
        }
        o
    }
}

/// `lines` (the header first) as a text table: columns two spaces apart, each as wide as its
/// widest cell, aligned right where `right(column)`, no trailing spaces.
pub fn aligned(lines: &[Vec<String>], right: impl Fn(usize) -> bool) -> String {
    let n = lines.first().map_or(0, Vec::len);
    let table = super::fit::Table {
        lines: lines.to_vec(),
        min_width: vec![0; n],
        left: (0..n).map(|i| !right(i)).collect(),
        gap: 2,
    };
    table.render(&(0..n).collect::<Vec<_>>())
}

/// A Markdown table's header and alignment lines.
pub fn markdown_head(names: &[&str], numeric: &[bool]) -> String {
    let align: String = numeric
        .iter()
        .map(|n| if *n { "---:|" } else { "---|" })
        .collect();
    format!("| {} |\n|{align}\n", names.join(" | "))
}

/// A Markdown table's row, `|` escaped in the cells.
pub fn markdown_row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", cells.join(" | "))
}

/// A CSV field, quoted when it must be.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
