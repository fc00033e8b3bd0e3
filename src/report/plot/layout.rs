//! Where a chart's point labels and its legend go, in pixels: designs crowd into the same
//! corner of the trade-off chart (every fair GIL keeps the CPU thread's work and none of the
//! echo thread's), and labels drawn at one fixed offset there print over each other.
//!
//! Text is not measured (the SVG backend has no font): a label's width is estimated from its
//! length at 0.6 em a character, wider than sans-serif's average, so that estimated boxes
//! that do not overlap leave rendered text apart.

/// An axis-aligned box in pixels, `x0..x1` by `y0..y1` (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn new(x0: i32, y0: i32, x1: i32, y1: i32) -> Rect {
        Rect {
            x0: x0.min(x1),
            y0: y0.min(y1),
            x1: x0.max(x1),
            y1: y0.max(y1),
        }
    }

    /// A `w` by `h` box with its top left corner at `(x, y)`.
    pub fn sized(x: i32, y: i32, (w, h): (i32, i32)) -> Rect {
        Rect::new(x, y, x + w, y + h)
    }

    /// A box of `r` pixels every way around `(x, y)`.
    pub fn around((x, y): (i32, i32), r: i32) -> Rect {
        Rect::new(x - r, y - r, x + r, y + r)
    }

    /// The area the two boxes share (0 when apart or only touching).
    pub fn overlap(&self, o: &Rect) -> i64 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0) as i64;
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0) as i64;
        w * h
    }

    pub fn inside(&self, area: &Rect) -> bool {
        self.x0 >= area.x0 && self.y0 >= area.y0 && self.x1 <= area.x1 && self.y1 <= area.y1
    }
}

/// A text's estimated box at `font_px`: 0.6 em a character, the line's height and a pixel.
pub(crate) fn text_size(text: &str, font_px: f64) -> (i32, i32) {
    let w = text.chars().count() as f64 * 0.6 * font_px;
    (w.ceil() as i32, font_px.ceil() as i32 + 1)
}

/// Where one label went: its top left corner relative to its point, and whether it sits away
/// from the point (a leader line should join them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    pub dx: i32,
    pub dy: i32,
    pub leader: bool,
}

impl Placed {
    /// The end of the leader line at the label: the middle of its side facing the point.
    pub fn leader_end(&self, (w, h): (i32, i32)) -> (i32, i32) {
        let x = if self.dx < 0 {
            self.dx + w + 2
        } else {
            self.dx - 2
        };
        (x, self.dy + h / 2)
    }
}

/// How far from its point's centre a label may sit before a leader line joins them.
const NEAR: f64 = 12.0;

/// The offsets tried for a `w` by `h` label: right of the point (8 to 152 px) and left of it,
/// just above and just below the dot, and at heights in steps of about half a line up to
/// some 24 lines above and below.
fn candidates((w, h): (i32, i32)) -> impl Iterator<Item = (i32, i32)> {
    let step = h / 2 + 1;
    let dys = [-h - 4, 4]
        .into_iter()
        .chain((-48..=48).map(move |j| -h / 2 + j * step));
    let gaps = (0..=12).map(|i| 8 + 12 * i);
    let dxs: Vec<i32> = gaps.clone().chain(gaps.map(move |g| -g - w)).collect();
    dys.flat_map(move |dy| dxs.clone().into_iter().map(move |dx| (dx, dy)))
}

/// The distance from a point (the origin) to the nearest pixel of a label box at an offset.
fn distance(r: &Rect) -> f64 {
    let nearest = |a: i32, b: i32| {
        if a > 0 {
            a
        } else if b < 0 {
            -b
        } else {
            0
        }
    };
    let (x, y) = (nearest(r.x0, r.x1), nearest(r.y0, r.y1));
    f64::from(x).hypot(f64::from(y))
}

/// What a chart's labels must keep clear of (`hard`: the legend, the points, and each label
/// once placed) and may cross at a price (`soft`: lines and error bars, as pieces).
pub(crate) struct Obstacles {
    pub hard: Vec<Rect>,
    pub soft: Vec<Rect>,
}

/// Places each label (`sizes[i]`) near its point (`points[i]`), in order, at the offset
/// inside `area` that overlaps nothing hard and costs least: its distance from the point plus
/// a pixel for every 4 px² of soft obstacle it covers. Where every offset overlaps something
/// hard (a crowd with no room left), the one overlapping least. A label further than 12 px
/// from its point gets a leader.
pub(crate) fn place_labels(
    points: &[(i32, i32)],
    sizes: &[(i32, i32)],
    mut obstacles: Obstacles,
    area: Rect,
) -> Vec<Placed> {
    obstacles
        .hard
        .extend(points.iter().map(|&p| Rect::around(p, 6)));
    let mut placed = Vec::with_capacity(points.len());
    for (&(x, y), &size) in points.iter().zip(sizes) {
        let covered = |set: &[Rect], r: &Rect| -> i64 { set.iter().map(|o| o.overlap(r)).sum() };
        let mut best: Option<((i64, f64), Placed, Rect)> = None;
        let mut offsets: Vec<(f64, (i32, i32))> = candidates(size)
            .map(|(dx, dy)| (distance(&Rect::sized(dx, dy, size)), (dx, dy)))
            .collect();
        offsets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (near, (dx, dy)) in offsets {
            // Nearest first: once a clear place costs no more than this distance alone, no
            // further offset can cost less.
            if best
                .as_ref()
                .is_some_and(|((hard, c), _, _)| *hard == 0 && *c <= near)
            {
                break;
            }
            let here = Rect::sized(x + dx, y + dy, size);
            if !here.inside(&area) {
                continue;
            }
            let cost = (
                covered(&obstacles.hard, &here),
                near + covered(&obstacles.soft, &here) as f64 / 4.0,
            );
            if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
                let leader = near > NEAR;
                best = Some((cost, Placed { dx, dy, leader }, here));
            }
        }
        let (label, here) = best.map_or_else(
            || {
                let first = Placed {
                    dx: 8,
                    dy: -size.1 / 2,
                    leader: false,
                };
                (first, Rect::sized(x + 8, y - size.1 / 2, size))
            },
            |(_, p, r)| (p, r),
        );
        obstacles.hard.push(here);
        placed.push(label);
    }
    placed
}

/// Pieces of the segment from `a` to `b`, a 4 px box every 4 px along it: an obstacle a
/// label can be priced for crossing.
pub(crate) fn segment_boxes(a: (i32, i32), b: (i32, i32)) -> Vec<Rect> {
    let (dx, dy) = (f64::from(b.0 - a.0), f64::from(b.1 - a.1));
    let steps = (dx.hypot(dy) / 4.0).ceil().max(1.0) as i32;
    (0..=steps)
        .map(|i| {
            let t = f64::from(i) / f64::from(steps);
            let at = (a.0 + (dx * t) as i32, a.1 + (dy * t) as i32);
            Rect::around(at, 2)
        })
        .collect()
}

/// A legend's corner of the plotting area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Corner {
    UpperRight,
    LowerLeft,
    LowerRight,
    UpperLeft,
}

impl Corner {
    /// The box a `w` by `h` legend takes in this corner of `area`, `margin` pixels in.
    pub fn rect(self, area: &Rect, (w, h): (i32, i32), margin: i32) -> Rect {
        let left = (area.x0 + margin, area.x0 + margin + w);
        let right = (area.x1 - margin - w, area.x1 - margin);
        let top = (area.y0 + margin, area.y0 + margin + h);
        let bottom = (area.y1 - margin - h, area.y1 - margin);
        let ((x0, x1), (y0, y1)) = match self {
            Corner::UpperRight => (right, top),
            Corner::LowerLeft => (left, bottom),
            Corner::LowerRight => (right, bottom),
            Corner::UpperLeft => (left, top),
        };
        Rect::new(x0, y0, x1, y1)
    }
}

/// The corner for a `size` legend: the first of `order` that covers nothing `occupied`;
/// failing that, the one covering least.
pub(crate) fn legend_corner(
    area: &Rect,
    size: (i32, i32),
    margin: i32,
    occupied: &[Rect],
    order: &[Corner],
) -> Corner {
    let cost = |c: &Corner| {
        let r = c.rect(area, size, margin);
        occupied.iter().map(|o| o.overlap(&r)).sum::<i64>()
    };
    order
        .iter()
        .find(|c| cost(c) == 0)
        .or_else(|| order.iter().min_by_key(|c| cost(c)))
        .copied()
        .unwrap_or(Corner::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: Rect = Rect {
        x0: 90,
        y0: 47,
        x1: 938,
        y1: 569,
    };

    fn boxes(points: &[(i32, i32)], sizes: &[(i32, i32)], placed: &[Placed]) -> Vec<Rect> {
        points
            .iter()
            .zip(sizes)
            .zip(placed)
            .map(|((&(x, y), &s), p)| Rect::sized(x + p.dx, y + p.dy, s))
            .collect()
    }

    fn none() -> Obstacles {
        Obstacles {
            hard: Vec::new(),
            soft: Vec::new(),
        }
    }

    /// Ten labels on one spot in the plotting area's top left corner (the fair GILs of the
    /// history chart): each inside the area, none over another or over a point.
    #[test]
    fn labels_of_points_on_one_spot_do_not_overlap() {
        let points = vec![(92, 60); 10];
        let sizes: Vec<(i32, i32)> = (0..10)
            .map(|i| text_size(&format!("design{i} spin=adaptive"), 12.1))
            .collect();
        let placed = place_labels(&points, &sizes, none(), AREA);
        let b = boxes(&points, &sizes, &placed);
        for (i, r) in b.iter().enumerate() {
            assert!(r.inside(&AREA), "{i}: {r:?}");
            assert_eq!(
                r.overlap(&Rect::around(points[i], 6)),
                0,
                "{i} over its point"
            );
            for (j, o) in b.iter().enumerate().skip(i + 1) {
                assert_eq!(r.overlap(o), 0, "{i} and {j}: {r:?} {o:?}");
            }
        }
        // The first sits beside its point; the crowd needs leaders.
        assert!(!placed[0].leader);
        assert!(
            placed.iter().filter(|p| p.leader).count() >= 6,
            "{placed:?}"
        );
    }

    /// A lone point's label sits level with it, just right of the dot; one that would cover
    /// something hard, or cross a line, goes to the nearest place clear of it.
    #[test]
    fn a_label_goes_beside_its_point_unless_something_is_there() {
        let size = (80, 14);
        let alone = place_labels(&[(400, 300)], &[size], none(), AREA)[0];
        assert_eq!(
            alone,
            Placed {
                dx: 8,
                dy: -7,
                leader: false
            }
        );
        let legend = Rect::new(400, 280, 600, 320);
        let hard = Obstacles {
            hard: vec![legend],
            soft: Vec::new(),
        };
        let moved = place_labels(&[(400, 300)], &[size], hard, AREA)[0];
        let r = Rect::sized(400 + moved.dx, 300 + moved.dy, size);
        assert_eq!(r.overlap(&legend), 0, "{moved:?}");
        assert!(
            moved.dx < 0,
            "left of the point, the nearest free side: {moved:?}"
        );
        // An error bar through the point, level with it: the label goes above or below.
        let bar = segment_boxes((300, 300), (560, 300));
        let soft = Obstacles {
            hard: Vec::new(),
            soft: bar.clone(),
        };
        let off = place_labels(&[(400, 300)], &[size], soft, AREA)[0];
        let r = Rect::sized(400 + off.dx, 300 + off.dy, size);
        assert!(bar.iter().all(|b| b.overlap(&r) == 0), "{off:?}");
        assert!(!off.leader, "{off:?}");
    }

    #[test]
    fn a_segment_is_covered_end_to_end() {
        let pieces = segment_boxes((0, 0), (100, 50));
        for (x, y) in [(0, 0), (50, 25), (100, 50), (26, 13)] {
            let probe = Rect::around((x, y), 1);
            assert!(pieces.iter().any(|p| p.overlap(&probe) > 0), "({x}, {y})");
        }
        assert!(pieces
            .iter()
            .all(|p| p.overlap(&Rect::around((0, 50), 3)) == 0));
    }

    const ORDER: [Corner; 4] = [
        Corner::UpperRight,
        Corner::LowerLeft,
        Corner::LowerRight,
        Corner::UpperLeft,
    ];

    #[test]
    fn the_legend_moves_off_the_points() {
        let size = (400, 60);
        assert_eq!(
            legend_corner(&AREA, size, 5, &[], &ORDER),
            Corner::UpperRight
        );
        // A point under the upper right corner's legend: lower left is free.
        let upper_right = Corner::UpperRight.rect(&AREA, size, 5);
        let dot = Rect::around((upper_right.x0 + 50, upper_right.y0 + 20), 6);
        assert_eq!(
            legend_corner(&AREA, size, 5, &[dot], &ORDER),
            Corner::LowerLeft
        );
        // Every corner taken: the least covered one.
        let all: Vec<Rect> = [Corner::UpperRight, Corner::LowerLeft, Corner::UpperLeft]
            .iter()
            .map(|c| c.rect(&AREA, size, 5))
            .chain([Rect::around(
                Corner::LowerRight.rect(&AREA, size, 5).center(),
                6,
            )])
            .collect();
        assert_eq!(
            legend_corner(&AREA, size, 5, &all, &ORDER),
            Corner::LowerRight
        );
    }

    #[test]
    fn overlap_is_the_shared_area() {
        let a = Rect::new(0, 0, 10, 10);
        assert_eq!(a.overlap(&Rect::new(5, 5, 20, 20)), 25);
        assert_eq!(a.overlap(&Rect::new(10, 0, 20, 10)), 0, "touching");
        assert_eq!(a.overlap(&Rect::new(30, 30, 40, 40)), 0);
    }

    impl Rect {
        fn center(&self) -> (i32, i32) {
            ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)
        }
    }
}
