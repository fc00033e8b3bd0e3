//! Which columns a text table shows, and laying it out within a width: by default a compact
//! set that fits the terminal (at most [`MAX_WIDTH`]), dropping the lowest-priority columns
//! of a narrower terminal and saying which; `--columns all` or a list shows exactly those.
//! The exports keep every column.

/// The widest a default text table is, whatever the terminal.
pub const MAX_WIDTH: usize = 120;

/// The columns asked for (`--columns`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Choice {
    /// The compact set, fitted to the width.
    #[default]
    Default,
    /// Every column, however wide.
    All,
    /// These columns (keys or names), however wide.
    Named(Vec<String>),
}

impl Choice {
    /// `all`, or a comma list of column keys or names.
    pub fn parse(raw: &str) -> Choice {
        match raw.trim() {
            "all" => Choice::All,
            "default" => Choice::Default,
            list => Choice::Named(list.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }

    /// Bad input when a name is no column of the table: one line listing the names.
    pub fn check(&self, keys: &[String], names: &[&str]) -> Result<(), String> {
        let Choice::Named(list) = self else {
            return Ok(());
        };
        match list.iter().find(|n| find(keys, names, n).is_none()) {
            Some(bad) => Err(format!(
                "--columns {bad}: no such column; the columns are all, default, {}",
                keys.join(", ")
            )),
            None => Ok(()),
        }
    }
}

/// The index of the column whose key or name (any case) is `wanted`.
fn find(keys: &[String], names: &[&str], wanted: &str) -> Option<usize> {
    let wanted = wanted.to_lowercase();
    (0..keys.len()).find(|&i| keys[i] == wanted || names[i].to_lowercase() == wanted)
}

/// How a text table is shown: which columns, within what width.
#[derive(Clone, Debug)]
pub struct View {
    pub choice: Choice,
    /// The widest the default table may be.
    pub width: usize,
}

impl Default for View {
    fn default() -> Self {
        View {
            choice: Choice::Default,
            width: MAX_WIDTH,
        }
    }
}

impl View {
    /// `--columns` as given, within the terminal's width.
    pub fn new(columns: Option<&str>) -> View {
        View {
            choice: columns.map(Choice::parse).unwrap_or_default(),
            width: terminal_width(),
        }
    }

    /// Which of a table's columns (`keys`, `names`) to consider, in table order: every one
    /// for `all`, those named, or those of `default`. Unknown names were checked before.
    pub fn wanted(
        &self,
        keys: &[String],
        names: &[&str],
        default: &dyn Fn(usize) -> bool,
    ) -> Vec<usize> {
        match &self.choice {
            Choice::All => (0..keys.len()).collect(),
            Choice::Default => (0..keys.len()).filter(|&i| default(i)).collect(),
            Choice::Named(list) => {
                let mut v: Vec<usize> = list.iter().filter_map(|n| find(keys, names, n)).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        }
    }

    /// Table `t` laid out: the default set fitted to the width, dropping columns in
    /// `drop_order` (keys, the first first) and saying which; a chosen set whole. `keys` and
    /// `names` are the table's columns'.
    pub fn lay_out(
        &self,
        t: &Table,
        keys: &[String],
        names: &[&str],
        drop_order: &[&str],
    ) -> String {
        let order: Vec<usize> = match self.choice {
            Choice::Default => drop_order
                .iter()
                .filter_map(|k| keys.iter().position(|x| x == k))
                .collect(),
            _ => Vec::new(),
        };
        let (kept, dropped) = t.fit(&order, self.width);
        let mut o = t.render(&kept);
        if !dropped.is_empty() {
            let names: Vec<&str> = dropped.iter().map(|&i| names[i]).collect();
            o += &dropped_line(&names, self.width);
        }
        o
    }
}

/// The width of the terminal on stdout (`COLUMNS`, else asked of the terminal), at most
/// [`MAX_WIDTH`]; [`MAX_WIDTH`] when unknown (e.g. piped).
pub fn terminal_width() -> usize {
    let env = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    let asked = || terminal_size::terminal_size().map(|(w, _)| usize::from(w.0));
    env.or_else(asked).unwrap_or(MAX_WIDTH).min(MAX_WIDTH)
}

/// A text table: a header line and rows, a cell per column.
pub struct Table {
    pub lines: Vec<Vec<String>>,
    /// Each column's least width, and whether it is aligned left.
    pub min_width: Vec<usize>,
    pub left: Vec<bool>,
    /// Between two cells.
    pub gap: usize,
}

impl Table {
    fn widths(&self) -> Vec<usize> {
        (0..self.min_width.len())
            .map(|i| {
                let w = self.lines.iter().map(|l| l[i].chars().count()).max();
                w.unwrap_or(0).max(self.min_width[i])
            })
            .collect()
    }

    /// The width of the columns `kept`.
    fn width_of(&self, widths: &[usize], kept: &[usize]) -> usize {
        kept.iter().map(|&i| widths[i]).sum::<usize>() + self.gap * kept.len().saturating_sub(1)
    }

    /// Drops columns in `drop_order` (indices, the first dropped first) until the table
    /// fits `width`; returns the columns kept and those dropped.
    pub fn fit(&self, drop_order: &[usize], width: usize) -> (Vec<usize>, Vec<usize>) {
        let widths = self.widths();
        let mut kept: Vec<usize> = (0..widths.len()).collect();
        let mut dropped = Vec::new();
        for &d in drop_order {
            if self.width_of(&widths, &kept) <= width {
                break;
            }
            kept.retain(|&i| i != d);
            dropped.push(d);
        }
        (kept, dropped)
    }

    /// The lines of the columns `kept`, padded to their widths.
    pub fn render(&self, kept: &[usize]) -> String {
        let widths = self.widths();
        let gap = " ".repeat(self.gap);
        let mut o = String::new();
        for l in &self.lines {
            let cells: Vec<String> = kept
                .iter()
                .map(|&i| match self.left[i] {
                    true => format!("{:<w$}", l[i], w = widths[i]),
                    false => format!("{:>w$}", l[i], w = widths[i]),
                })
                .collect();
            o += cells.join(&gap).trim_end();
            o.push('\n');
        }
        o
    }
}

/// The line under a table that dropped columns to fit, naming them (wrapped to the width).
pub fn dropped_line(names: &[&str], width: usize) -> String {
    let mut pieces: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    pieces[0] = format!("not shown, to fit {width} columns: {}", pieces[0]);
    let text = wrap(&pieces, ", ", width);
    let hint = "(--columns all shows every column)";
    let last = text.lines().last().unwrap_or_default().chars().count();
    let gap = if last + 1 + hint.len() > width {
        "\n"
    } else {
        " "
    };
    format!("{text}{gap}{hint}\n")
}

/// `pieces` joined by `sep`, a new line (in place of the separator) where the next piece
/// would pass `width`.
pub fn wrap(pieces: &[String], sep: &str, width: usize) -> String {
    let mut o = String::new();
    let mut line = 0;
    for (i, p) in pieces.iter().enumerate() {
        let w = p.chars().count();
        if i > 0 && line + sep.len() + w > width {
            o += sep.trim_end();
            o.push('\n');
            line = 0;
        } else if i > 0 {
            o += sep;
            line += sep.len();
        }
        o += p;
        line += w;
    }
    o
}

/// A repeated cell compactly: the unit the median and both ends share is written once,
/// `22.8us (22.5-23.6)` for `22.8us (22.5us-23.6us)`.
pub fn compact(median: &str, min: &str, max: &str) -> String {
    fn unit(s: &str) -> &str {
        s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
    }
    let u = unit(median);
    let shared = !u.is_empty() && unit(min) == u && unit(max) == u;
    let bare = |s: &str| {
        if shared {
            s[..s.len() - u.len()].to_owned()
        } else {
            s.to_owned()
        }
    };
    format!("{median} ({}-{})", bare(min), bare(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_unit_is_written_once() {
        assert_eq!(compact("22.8us", "22.5us", "23.6us"), "22.8us (22.5-23.6)");
        assert_eq!(compact("26.1k", "0", "34.4k"), "26.1k (0-34.4k)");
        assert_eq!(compact("766us", "648us", "1.25ms"), "766us (648us-1.25ms)");
        assert_eq!(compact("179", "0", "266"), "179 (0-266)");
    }

    #[test]
    fn names_are_checked_and_parsed() {
        let keys = vec!["a_b".to_owned(), "c".to_owned()];
        let names = ["A b", "c"];
        assert_eq!(Choice::parse("all"), Choice::All);
        assert!(Choice::parse("a b, C").check(&keys, &names).is_ok());
        let e = Choice::parse("a_b,zz").check(&keys, &names).unwrap_err();
        assert_eq!(
            e,
            "--columns zz: no such column; the columns are all, default, a_b, c"
        );
    }
}
