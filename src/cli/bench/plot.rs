//! `weir bench --plot`: throughput and peak RSS per mode as an SVG chart,
//! written directly (no plotting crate).

use super::ModeResult;
use crate::memory::format_bytes;

/// A chart panel: its title, the value per mode, and how to label a value.
type Panel = (&'static str, fn(&ModeResult) -> f64, fn(f64) -> String);

/// An SVG chart of bench results: throughput and peak RSS per mode, as
/// two bar panels (written directly, no plotting crate).
pub fn plot_svg(results: &[ModeResult], title: &str) -> String {
    let (w, h, pad) = (720.0_f64, 320.0_f64, 50.0_f64);
    let panel = (w - 3.0 * pad) / 2.0;
    let colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        w / 2.0,
        escape(title)
    );
    let panels: [Panel; 2] = [
        ("rows/s", |r| r.rows_per_sec, crate::cli::rate),
        (
            "peak RSS",
            |r| r.peak_rss as f64,
            |v| format_bytes(v as u64),
        ),
    ];
    for (p, (name, value, label)) in panels.iter().enumerate() {
        let x0 = pad + p as f64 * (panel + pad);
        let (top, bottom) = (40.0, h - pad);
        let max = results.iter().map(value).fold(0.0_f64, f64::max).max(1e-9);
        let bar = panel / results.len().max(1) as f64;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{name}</text>\n\
             <line x1=\"{x0}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>\n",
            x0 + panel / 2.0,
            top - 4.0,
            x0 + panel
        ));
        for (i, r) in results.iter().enumerate() {
            let v = value(r);
            let height = (bottom - top - 20.0) * v / max;
            let x = x0 + i as f64 * bar + bar * 0.15;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
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
        }
    }
    svg.push_str("</svg>\n");
    svg
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
        let svg = plot_svg(
            &[r("batch", 2e6, 1 << 20), r("pipelined", 1e6, 2 << 20)],
            "a<b",
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 4, "{svg}");
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
