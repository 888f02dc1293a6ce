//! `weir bench --plot`: throughput and peak RSS per mode as an SVG chart,
//! written directly (no plotting crate).

use super::ModeResult;
use weir_core::memory::format_bytes;

/// A chart panel: its title (with unit), the value per mode, and how to
/// label a value.
type Panel = (&'static str, fn(&ModeResult) -> f64, fn(f64) -> String);

/// An SVG chart of bench results: input throughput and peak RSS per mode,
/// as two bar panels (written directly, no plotting crate).
///
/// ```text
///  title
///  input rows per second (rows/s)      peak resident memory (bytes)
///  3 M ┤ ██                            512 MiB ┤       ██
///  2 M ┤ ██ ██                         256 MiB ┤ ██ ██ ██
///    0 ┼─██─██─██─                           0 ┼─██─██─██─
///       scan batch pipelined  (mode)
///            2.1x slower than scan
/// ```
/// Each panel has a y axis with ticks and unit labels, the value over each
/// bar, and under the engine modes how many times slower than the bare
/// scan of the same files their run was (`vs_scan`, time ratio).
pub fn plot_svg(results: &[ModeResult], title: &str) -> String {
    let (w, h) = (760.0_f64, 360.0_f64);
    let (left, gap, right) = (70.0_f64, 90.0_f64, 20.0_f64);
    let (top, bottom) = (60.0_f64, h - 80.0);
    let panel = (w - left - gap - right) / 2.0;
    let colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        w / 2.0,
        escape(title)
    );
    let panels: [Panel; 2] = [
        (
            "input rows per second (rows/s)",
            |r| r.rows_per_sec,
            |v| format!("{} rows/s", weir_engine::format::rate(v).trim_end()),
        ),
        (
            "peak resident memory (bytes)",
            |r| r.peak_rss as f64,
            |v| format_bytes(v as u64),
        ),
    ];
    for (p, (name, value, label)) in panels.iter().enumerate() {
        let x0 = left + p as f64 * (panel + gap);
        let max = results.iter().map(value).fold(0.0_f64, f64::max);
        let ticks = ticks(max);
        let scale_max = ticks.last().copied().unwrap_or(1.0).max(1e-9);
        let y = |v: f64| bottom - (bottom - top) * v / scale_max;
        let bar = panel / results.len().max(1) as f64;
        // panel title, y axis with ticks, x axis
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{name}</text>\n\
             <line x1=\"{x0}\" y1=\"{top}\" x2=\"{x0}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
             <line x1=\"{x0}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"black\"/>\n",
            x0 + panel / 2.0,
            top - 22.0,
            x0 + panel
        ));
        for t in &ticks {
            svg.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{x0}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\">{}</text>\n",
                x0 - 4.0,
                y(*t),
                y(*t),
                x0 - 6.0,
                y(*t) + 3.0,
                escape(&label(*t)),
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">mode</text>\n",
            x0 + panel / 2.0,
            bottom + 50.0
        ));
        for (i, r) in results.iter().enumerate() {
            let v = value(r);
            let height = bottom - y(v);
            let x = x0 + i as f64 * bar + bar * 0.15;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                bottom - height,
                bar * 0.7,
                colors[i % colors.len()],
                x + bar * 0.35,
                bottom - height - 4.0,
                escape(&label(v)),
                x + bar * 0.35,
                bottom + 16.0,
                escape(&r.mode),
            ));
            if let (0, Some(ratio)) = (p, r.vs_scan.filter(|_| r.mode != "scan")) {
                svg.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>\n",
                    x + bar * 0.35,
                    bottom + 31.0,
                    escape(&vs_scan_words(ratio)),
                ));
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// A time ratio to the bare scan in words: `2.10x slower than scan`.
pub fn vs_scan_words(ratio: f64) -> String {
    if ratio >= 1.0 {
        format!("{ratio:.2}x slower than scan")
    } else {
        format!("{:.2}x faster than scan", 1.0 / ratio.max(1e-9))
    }
}

/// Round tick values from 0 to at least `max` (1, 2 or 5 times a power of
/// ten apart, at most 6 ticks).
fn ticks(max: f64) -> Vec<f64> {
    if max.is_nan() || max <= 0.0 || max.is_infinite() {
        return vec![0.0, 1.0];
    }
    let raw = max / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod plot_tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_largest_value() {
        assert_eq!(ticks(2e6), vec![0.0, 5e5, 1e6, 1.5e6, 2e6]);
        assert_eq!(ticks(7.0), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(vs_scan_words(0.5), "2.00x faster than scan");
    }

    #[test]
    fn the_chart_has_a_bar_and_a_label_per_mode_and_panel() {
        let r = |mode: &str, rate: f64, rss: u64| ModeResult {
            mode: mode.into(),
            parallelism: 1,
            seconds: 1.0,
            rows_per_sec: rate,
            rows_per_sec_per_core: rate,
            checkpoints: None,
            rows_in: 10,
            rows_out: 1,
            rows_out_per_sec: 1.0,
            latency_p50_ms: None,
            latency_p99_ms: None,
            peak_rss: rss,
            peak_memory: 0,
            spilled_bytes: 0,
            vs_scan: None,
            identical: None,
            difference: None,
        };
        let mut slow = r("pipelined", 1e6, 2 << 20);
        slow.vs_scan = Some(2.5);
        let svg = plot_svg(&[r("batch", 2e6, 1 << 20), slow], "a<b");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 4, "{svg}");
        for axis in [
            "input rows per second (rows/s)",
            "peak resident memory (bytes)",
            ">mode<",
        ] {
            assert!(svg.contains(axis), "{axis}");
        }
        // y ticks with units, and the ratio to the scan under engine modes
        assert!(
            svg.contains(">2.00 M rows/s<") && svg.contains(">2.0 MiB<"),
            "{svg}"
        );
        assert!(svg.contains(">2.50x slower than scan<"), "{svg}");
        assert_eq!(svg.matches(">pipelined</text>").count(), 2);
        assert!(svg.contains("a&lt;b"));
        // the larger value gets the taller bar in each panel
        let heights: Vec<f64> = svg
            .lines()
            .filter(|l| l.starts_with("<rect x="))
            .map(|l| {
                l.split("height=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(
            heights[0] > heights[1] && heights[3] > heights[2],
            "{heights:?}"
        );
    }
}
