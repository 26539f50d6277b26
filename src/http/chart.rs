//! The dashboard's chart, drawn on the server as SVG (no chart library, nothing from the
//! internet): site load, EV load and EV budget of a zone over the last hours, in amperes
//! on the most loaded phase.

use std::fmt::Write;

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use chrono_tz::Tz;

/// One sample of the chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartPoint {
    pub at: DateTime<Utc>,
    /// Everything the zone's meter sees; `None` without a meter.
    pub site_load: Option<f64>,
    pub ev_load: f64,
    pub budget: f64,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 26.0;
/// Samples further apart than this are not joined (the controller was stopped).
const GAP: Duration = Duration::minutes(3);

const BUDGET_COLOUR: &str = "#b45309";

/// One line of the chart.
struct Series {
    name: &'static str,
    colour: &'static str,
    dash: &'static str,
    value: fn(&ChartPoint) -> Option<f64>,
}

const SITE_COLOUR: &str = "#1d4ed8";
const EV_COLOUR: &str = "#15803d";

/// A step for the y axis giving 3 to 6 grid lines up to `max`.
fn y_step(max: f64) -> f64 {
    for step in [
        1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0,
    ] {
        if max / step <= 6.0 {
            return step;
        }
    }
    (max / 5.0).ceil()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `points` between `from` and `to`, hours labelled in `timezone`.
pub fn chart_svg(
    points: &[ChartPoint],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: &str,
    timezone: Tz,
) -> String {
    let span = (to - from).num_seconds().max(1) as f64;
    let points: Vec<&ChartPoint> = points
        .iter()
        .filter(|p| p.at >= from && p.at <= to)
        .collect();
    let max = points
        .iter()
        .flat_map(|p| [p.site_load.unwrap_or(0.0), p.ev_load, p.budget])
        .filter(|v| v.is_finite())
        .fold(10.0_f64, f64::max);
    let step = y_step(max);
    let top = (max / step).ceil() * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: DateTime<Utc>| LEFT + plot_w * ((t - from).num_seconds() as f64 / span);
    let y = |v: f64| TOP + plot_h * (1.0 - (v.clamp(0.0, top) / top));

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="system-ui, sans-serif" font-size="11"><title>Zone {zone}: site load, EV load and EV budget (A, most loaded phase)</title><rect width="100%" height="100%" fill="#ffffff"/>"##,
        zone = escape(zone)
    );
    // Grid and y labels.
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let gy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#4b5563">{v} A</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            gy + 4.0
        );
        v += step;
    }
    // A vertical line each hour, labelled (local time) every `every` hours.
    let every = if (to - from).num_hours() > 12 { 3 } else { 1 };
    let mut tick = from.duration_trunc(Duration::hours(1)).unwrap_or(from);
    while tick <= to {
        if tick >= from {
            let local = tick.with_timezone(&timezone);
            let tx = x(tick);
            let _ = write!(
                svg,
                r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{:.1}" stroke="#f3f4f6"/>"##,
                HEIGHT - BOTTOM
            );
            if local.hour() % every == 0 {
                let _ = write!(
                    svg,
                    r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#4b5563">{}</text>"##,
                    HEIGHT - 8.0,
                    local.format("%H:%M")
                );
            }
        }
        tick += Duration::hours(1);
    }
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#9ca3af"/>"##,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM
    );
    // The three series, broken where samples are missing.
    let series = [
        Series {
            name: "EV budget",
            colour: BUDGET_COLOUR,
            dash: r#" stroke-dasharray="6 4""#,
            value: |p| Some(p.budget),
        },
        Series {
            name: "site load",
            colour: SITE_COLOUR,
            dash: "",
            value: |p| p.site_load,
        },
        Series {
            name: "EV load",
            colour: EV_COLOUR,
            dash: "",
            value: |p| Some(p.ev_load),
        },
    ];
    for Series {
        colour,
        dash,
        value,
        ..
    } in &series
    {
        let mut segment: Vec<String> = Vec::new();
        let mut last: Option<DateTime<Utc>> = None;
        let flush = |segment: &mut Vec<String>, svg: &mut String| {
            if segment.len() > 1 {
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
                    segment.join(" ")
                );
            }
            segment.clear();
        };
        for p in &points {
            match value(p) {
                Some(v) if v.is_finite() => {
                    if last.is_some_and(|l| p.at - l > GAP) {
                        flush(&mut segment, &mut svg);
                    }
                    segment.push(format!("{:.1},{:.1}", x(p.at), y(v)));
                    last = Some(p.at);
                }
                _ => flush(&mut segment, &mut svg),
            }
        }
        flush(&mut segment, &mut svg);
    }
    // Legend.
    let mut lx = LEFT;
    for Series {
        name, colour, dash, ..
    } in &series
    {
        let _ = write!(
            svg,
            r##"<line x1="{lx:.1}" y1="14" x2="{:.1}" y2="14" stroke="{colour}" stroke-width="3"{dash}/><text x="{:.1}" y="18" fill="#111827">{name}</text>"##,
            lx + 22.0,
            lx + 27.0
        );
        lx += 110.0;
    }
    if points.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#6b7280" font-size="14">No samples yet: one is taken every minute.</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc)
            + Duration::minutes(minutes)
    }

    fn point(minutes: i64, ev: f64) -> ChartPoint {
        ChartPoint {
            at: at(minutes),
            site_load: Some(ev + 10.0),
            ev_load: ev,
            budget: 40.0,
        }
    }

    #[test]
    fn a_gap_in_the_samples_breaks_the_lines() {
        let joined = [point(0, 5.0), point(1, 6.0), point(2, 7.0)];
        let svg = chart_svg(&joined, at(0), at(60), "main", Tz::UTC);
        assert_eq!(svg.matches("<polyline").count(), 3);
        let broken = [point(0, 5.0), point(1, 6.0), point(30, 7.0), point(31, 7.0)];
        let svg = chart_svg(&broken, at(0), at(60), "main", Tz::UTC);
        assert_eq!(svg.matches("<polyline").count(), 6);
    }

    #[test]
    fn no_samples_says_so_and_names_are_escaped() {
        let svg = chart_svg(&[], at(0), at(60), "<main>", Tz::UTC);
        assert!(svg.contains("No samples yet"));
        assert!(svg.contains("&lt;main&gt;"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn the_y_axis_covers_the_largest_value() {
        assert_eq!(y_step(63.0), 20.0);
        assert_eq!(y_step(10.0), 2.0);
        let svg = chart_svg(
            &[point(0, 90.0), point(1, 95.0)],
            at(0),
            at(60),
            "m",
            Tz::UTC,
        );
        assert!(svg.contains(">120 A<"), "{svg}");
    }
}
