//! The SVG chart of a run.

use crate::measures::{Measured, Outcome};
use crate::report::{Results, TARGET_FLOOR_RATIO, TARGET_MEMORY_P99_US, create_parent};

/// The SVG chart. Top row: requests/s, p50 and p99 of the PostgreSQL scenarios. Bottom row: the library's
/// throughput over its floor's (median of the rounds, with the 0.95 target), and the memory store's requests/s and
/// p99 / worst-request latencies (with the 5 ms p99 target).
pub(crate) fn chart(path: &str, results: &Results) -> Result<(), String> {
    use plotters::prelude::*;

    create_parent(path)?;
    let postgres: Vec<(&str, Measured)> = results
        .outcomes
        .iter()
        .filter(|(name, _)| !name.starts_with("mem_"))
        .filter_map(|(name, outcome)| match outcome {
            Outcome::Measured(measured) => Some((*name, *measured)),
            Outcome::NotImplemented(_) => None,
        })
        .collect();
    let options = &results.options;
    let title = format!(
        "idempotent-runtime: {} connections, {} worker(s), {} s per scenario x {} round(s) ({} CPUs)",
        options.concurrency, options.workers, options.seconds, options.rounds, results.machine.cpus
    );
    let root = SVGBackend::new(path, (1500, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| error.to_string())?;
    let root = root.titled(&title, ("sans-serif", 20)).map_err(|error| error.to_string())?;
    let panels = root.split_evenly((2, 3));
    type Metric = fn(&Measured) -> f64;
    let metrics: [(&str, &str, Metric); 3] = [
        ("PostgreSQL: throughput (higher is better)", "requests/s", |m| m.rps),
        ("PostgreSQL: p50 latency (lower is better)", "microseconds", |m| m.p50_us),
        ("PostgreSQL: p99 latency (lower is better)", "microseconds", |m| m.p99_us),
    ];
    for (panel, (caption, unit, metric)) in panels.iter().zip(metrics) {
        let bars: Vec<(String, f64)> = postgres.iter().map(|(name, m)| ((*name).to_owned(), metric(m))).collect();
        bar_panel(panel, caption, unit, &bars, None)?;
    }
    let ratios: Vec<(String, f64)> = results
        .round_ratios()
        .into_iter()
        // The floors' pairs: the memory store's ratios to `bare` have targets of their own.
        .filter(|(label, _, _)| !label.starts_with("mem_"))
        .map(|(label, _, median)| (label.split('/').next().unwrap_or(label).to_owned(), median))
        .collect();
    bar_panel(&panels[3], "against the floor, req/s (median of rounds)", "ratio", &ratios, Some(TARGET_FLOOR_RATIO))?;
    let mut memory_rps = Vec::new();
    let mut memory_latency = Vec::new();
    for name in ["mem_new", "mem_replay"] {
        if let Some(m) = results.measured(name) {
            memory_rps.push((name.to_owned(), m.rps));
            memory_latency.push((format!("{name} p99"), m.p99_us));
        }
    }
    if let Some(growth) = &results.growth {
        memory_rps.push(("mem_growth".to_owned(), growth.measured.rps));
        memory_latency.push(("growth p99".to_owned(), growth.measured.p99_us));
        memory_latency.push(("growth worst".to_owned(), growth.max_us));
    }
    bar_panel(&panels[4], "memory store: throughput", "requests/s", &memory_rps, None)?;
    bar_panel(
        &panels[5],
        "memory store: p99 and worst (lower is better)",
        "microseconds",
        &memory_latency,
        Some(TARGET_MEMORY_P99_US),
    )?;
    root.present().map_err(|error| error.to_string())
}

/// One panel of labelled bars, with an optional dashed target line.
fn bar_panel<DB: plotters::prelude::DrawingBackend>(
    panel: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    bars: &[(String, f64)],
    target: Option<f64>,
) -> Result<(), String> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};

    let failed = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    let top = bars.iter().map(|(_, value)| *value).chain(target).fold(0.0f64, f64::max) * 1.15;
    let top = if top > 0.0 { top } else { 1.0 };
    let count = u32::try_from(bars.len().max(1)).unwrap_or(u32::MAX);
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..count.saturating_sub(1)).into_segmented(), 0.0..top)
        .map_err(failed)?;
    let precision = if top < 10.0 { 2 } else { 0 };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .y_label_formatter(&|value| format!("{value:.precision$}"))
        .y_desc(unit)
        .x_labels(bars.len())
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(index) => bars.get(*index as usize).map_or_else(String::new, |(n, _)| n.clone()),
            _ => String::new(),
        })
        .x_label_style(("sans-serif", 12))
        .draw()
        .map_err(failed)?;
    let rectangles = bars.iter().zip(0u32..).map(|((name, value), index)| {
        let color = match name.as_str() {
            "bare" => RGBColor(150, 150, 150),
            name if name.starts_with("floor") => RGBColor(66, 114, 196),
            _ => RGBColor(230, 126, 34),
        };
        let mut bar = Rectangle::new(
            [(SegmentValue::Exact(index), 0.0), (SegmentValue::Exact(index + 1), *value)],
            color.filled(),
        );
        bar.set_margin(0, 0, 10, 10);
        bar
    });
    chart.draw_series(rectangles).map_err(failed)?;
    let labels = bars.iter().zip(0u32..).map(|((_, value), index)| {
        let style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        Text::new(format!("{value:.precision$}"), (SegmentValue::CenterOf(index), value + top * 0.01), style)
    });
    chart.draw_series(labels).map_err(failed)?;
    if let Some(target) = target {
        let line = [(SegmentValue::Exact(0), target), (SegmentValue::Exact(count), target)];
        chart.draw_series(std::iter::once(PathElement::new(line, RED.stroke_width(2)))).map_err(failed)?;
    }
    Ok(())
}
