//! The results as a picture (SVG): per load, bars per configuration for the delivered
//! rate, the broker's CPU per message and the p99 latency, so that a reader sees the
//! result without reading the tables.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{Metrics, RunResult};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// One panel: what it shows, and how to read it off a run (`None`: no bar).
struct Panel {
    caption: &'static str,
    value: fn(&Metrics) -> Option<f64>,
    format: fn(f64) -> String,
}

const PANELS: [Panel; 3] = [
    Panel {
        caption: "delivered msg/s",
        value: |m| Some(m.kafka_per_s.unwrap_or(m.ingest_per_s)),
        format: |v| format!("{:.0}k", v / 1000.0),
    },
    Panel {
        caption: "broker CPU µs/msg",
        value: |m| Some(m.broker_us_per_msg),
        format: |v| format!("{v:.2}"),
    },
    Panel {
        caption: "p99 publish→Kafka ms",
        value: |m| m.p99_ms,
        format: |v| format!("{v:.1}"),
    },
];

/// Writes the plot of `loads` (a title and the runs of each) to `path`.
pub fn write_svg(path: &Path, title: &str, loads: &[(String, Vec<&RunResult>)]) -> Result<()> {
    let height = 60 + 300 * loads.len() as u32;
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (head, body) = root.split_vertically(60);
    head.draw_text(title, &("sans-serif", 18).into_text_style(&head), (10, 10))
        .map_err(plot_error)?;
    let legend = "a no bridge · b upstream 0.24 · c ours · d ours+passthrough · e ours+key_headers · f ours+disk spool";
    head.draw_text(legend, &("sans-serif", 14).into_text_style(&head), (10, 36))
        .map_err(plot_error)?;
    for (row, (load, results)) in body.split_evenly((loads.len(), 1)).iter().zip(loads) {
        for (area, panel) in row.split_evenly((1, PANELS.len())).iter().zip(&PANELS) {
            bars(area, &format!("{load}: {}", panel.caption), results, panel)?;
        }
    }
    root.present().map_err(plot_error)
}

fn bars(area: &Area, caption: &str, results: &[&RunResult], panel: &Panel) -> Result<()> {
    let values: Vec<(char, f64)> = results
        .iter()
        .filter_map(|r| Some((r.config.letter(), (panel.value)(r.metrics.as_ref()?)?)))
        .collect();
    let top = values.iter().map(|v| v.1).fold(0.0, f64::max).max(1e-9) * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(24)
        .y_label_area_size(56)
        .build_cartesian_2d((0..values.len().max(1) - 1).into_segmented(), 0.0..top)
        .map_err(plot_error)?;
    let letter = |x: &SegmentValue<usize>| match x {
        SegmentValue::CenterOf(i) => values.get(*i).map_or(String::new(), |v| v.0.to_string()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&letter)
        .y_label_formatter(&|v| (panel.format)(*v))
        .draw()
        .map_err(plot_error)?;
    let bar = |(i, &(_, v)): (usize, &(char, f64))| {
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), v),
            ],
            BLUE.mix(0.55).filled(),
        );
        rect.set_margin(0, 0, 6, 6);
        rect
    };
    chart
        .draw_series(values.iter().enumerate().map(bar))
        .map_err(plot_error)?;
    let label = |(i, &(_, v)): (usize, &(char, f64))| {
        Text::new(
            (panel.format)(v),
            (SegmentValue::CenterOf(i), v + top * 0.01),
            ("sans-serif", 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    };
    chart
        .draw_series(values.iter().enumerate().map(label))
        .map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Config;

    fn run(config: Config, rate: f64, us: f64, p99: Option<f64>) -> RunResult {
        let metrics = Metrics {
            ingest_per_s: rate,
            kafka_per_s: p99.map(|_| rate),
            broker_us_per_msg: us,
            p99_ms: p99,
            ..Metrics::default()
        };
        RunResult {
            config,
            load: "qos1-256".into(),
            error: None,
            metrics: Some(metrics),
        }
    }

    #[test]
    fn every_run_gets_its_bars_and_values() {
        let runs = [
            run(Config::A, 80_009.0, 3.99, None),
            run(Config::C, 79_991.0, 7.53, Some(30.0)),
            run(Config::E, 79_941.0, 7.91, Some(28.9)),
        ];
        let path = std::env::temp_dir().join(format!("bench-plot-{}.svg", std::process::id()));
        let loads = [("qos1-256".to_string(), runs.iter().collect())];
        write_svg(&path, "a title", &loads).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        for text in [
            "a title",
            "qos1-256: delivered msg/s",
            "80k",
            "3.99",
            "7.91",
            "30.0",
            "28.9",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Three rate bars, three CPU bars, two p99 bars (a has no Kafka): the blue ones.
        assert_eq!(svg.matches(r##"fill="#0000FF""##).count(), 8);
    }
}
