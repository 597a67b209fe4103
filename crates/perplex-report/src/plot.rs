//! The perplexity curve of a sweep as a self-contained SVG: perplexity by
//! step with its 95 % band, the training loss on a second axis when the
//! trainer logged it, and the base model as a reference line.

use std::fmt::Write as _;

use perplex_core::report::SweepReport;

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// "Nice" tick values covering `lo..=hi` (steps of 1, 2 or 5 × 10^k).
fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= target as f64)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .collect()
}

fn label(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document of `report`'s curve.
pub fn sweep_svg(report: &SweepReport) -> String {
    let pts: Vec<(f64, f64, Option<[f64; 2]>)> = report
        .points
        .iter()
        .filter_map(|p| Some((p.step as f64, p.perplexity?, p.perplexity_ci95)))
        .collect();
    let base = report.base.as_ref().and_then(|(_, s)| s.perplexity);
    let losses: Vec<(f64, f64)> = report
        .trainer
        .iter()
        .filter_map(|l| Some((l.step as f64, l.loss?)))
        .collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{}" y="28" text-anchor="middle" font-size="15">perplexity by training step: {}</text>
"#,
        W / 2.0,
        escape(&report.run)
    );
    if pts.is_empty() {
        svg.push_str("<text x=\"380\" y=\"220\" text-anchor=\"middle\">no checkpoint was scored</text>\n</svg>\n");
        return svg;
    }
    // the x range covers checkpoints and logged losses; y the band and base
    let xs = pts.iter().map(|p| p.0).chain(losses.iter().map(|l| l.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 1.0, x1 + 1.0)
    };
    let ys = pts
        .iter()
        .flat_map(|p| [p.1].into_iter().chain(p.2.into_iter().flatten()))
        .chain(base);
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let pad = ((y1 - y0) * 0.08).max(y1.abs() * 1e-3);
    let (y0, y1) = ((y0 - pad).max(0.0), y1 + pad);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;

    // axes and grid
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    for t in ticks(y0, y1, 6) {
        let y = sy(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            label(t)
        );
    }
    for t in ticks(x0, x1, 8) {
        let x = sx(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 20.0,
            label(t)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">step</text>
<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" fill="#1f5fbf">perplexity ({})</text>"##,
        LEFT + pw / 2.0,
        H - 18.0,
        TOP + ph / 2.0,
        escape(&report.protocol.description)
    );

    // the 95 % band, then the curve
    let band: Vec<(f64, [f64; 2])> = pts.iter().filter_map(|p| Some((p.0, p.2?))).collect();
    if band.len() >= 2 {
        let upper = band
            .iter()
            .map(|(x, c)| format!("{:.1},{:.1}", sx(*x), sy(c[1])));
        let lower = band
            .iter()
            .rev()
            .map(|(x, c)| format!("{:.1},{:.1}", sx(*x), sy(c[0])));
        let _ = writeln!(
            svg,
            r##"<polygon points="{}" fill="#1f5fbf" fill-opacity="0.15" stroke="none"/>"##,
            upper.chain(lower).collect::<Vec<_>>().join(" ")
        );
    }
    for (x, _, ci) in &pts {
        if let Some([lo, hi]) = ci {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#1f5fbf" stroke-opacity="0.5"/>"##,
                sx(*x),
                sy(*lo),
                sy(*hi)
            );
        }
    }
    let line: Vec<String> = pts
        .iter()
        .map(|(x, y, _)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#1f5fbf" stroke-width="2"/>"##,
        line.join(" ")
    );
    for (x, y, _) in &pts {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#1f5fbf"/>"##,
            sx(*x),
            sy(*y)
        );
    }
    if let Some(b) = base {
        let y = sy(b);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#777" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">base {}</text>"##,
            LEFT + pw,
            LEFT + pw - 4.0,
            y - 5.0,
            label(b)
        );
    }

    // training loss on the right axis
    if losses.len() >= 2 {
        let (l0, l1) = losses
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), l| {
                (a.min(l.1), b.max(l.1))
            });
        let lpad = ((l1 - l0) * 0.08).max(1e-6);
        let (l0, l1) = (l0 - lpad, l1 + lpad);
        let sl = |l: f64| TOP + ph - (l - l0) / (l1 - l0) * ph;
        for t in ticks(l0, l1, 6) {
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" fill="#c4661f">{}</text>"##,
                LEFT + pw + 6.0,
                sl(t) + 4.0,
                label(t)
            );
        }
        let pts: Vec<String> = losses
            .iter()
            .map(|(x, l)| format!("{:.1},{:.1}", sx(*x), sl(*l)))
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#c4661f" stroke-width="1.5" stroke-dasharray="4 3"/>
<text transform="translate({:.1} {:.1}) rotate(90)" text-anchor="middle" fill="#c4661f">training loss</text>"##,
            pts.join(" "),
            W - 22.0,
            TOP + ph / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The curve as PNG: [`sweep_svg`] rendered at twice its size, text in the
/// system's fonts (DejaVu Sans first). Fails only if the SVG cannot be
/// rendered, which would be a bug.
pub fn sweep_png(report: &SweepReport) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    let tree = usvg::Tree::from_str(&sweep_svg(report), &options).map_err(|e| e.to_string())?;
    let scale = 2.0;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or("empty plot")?;
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("the plot has no area")?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        // a span of 665 in at most 6 steps: steps of 200
        assert_eq!(ticks(412.3, 1077.5, 6), vec![600.0, 800.0, 1000.0]);
    }
}
