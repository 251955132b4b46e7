//! The results as a picture (SVG): per load, bars per configuration for the delivered
//! rate, the broker's CPU per message and the p99 latency, so that a reader sees the
//! result without reading the tables. `bridge-bench plot` draws it again from a
//! results file.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{SegmentedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordusize;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

use crate::report::{median_runs, Metrics, RunResult};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// One panel: what it shows, and how to read it off a run (`None`: no bar).
struct Panel {
    caption: &'static str,
    value: fn(&Metrics) -> Option<f64>,
    format: fn(f64) -> String,
    /// A logarithmic axis when the values differ by more than 20 × (upstream's seconds
    /// of latency next to milliseconds).
    log: bool,
}

const PANELS: [Panel; 3] = [
    Panel {
        caption: "delivered msg/s",
        value: |m| Some(m.kafka_per_s.unwrap_or(m.ingest_per_s)),
        format: |v| format!("{:.0}k", v / 1000.0),
        log: false,
    },
    Panel {
        caption: "broker CPU µs/msg",
        value: |m| Some(m.broker_us_per_msg),
        format: |v| format!("{v:.2}"),
        log: false,
    },
    Panel {
        caption: "p99 publish→Kafka ms",
        value: |m| m.p99_ms,
        format: |v| format!("{v:.1}"),
        log: true,
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
    let legend = "a no bridge · b upstream 0.24 · c ours · d ours+passthrough · e ours+key_headers · f ours+spool written · g ours+spool synced";
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
    let top = values.iter().map(|v| v.1).fold(0.0, f64::max).max(1e-9);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(24)
        .y_label_area_size(56);
    let x = (0..values.len().max(1) - 1).into_segmented();
    let least = values.iter().map(|v| v.1).fold(top, f64::min).max(1e-3);
    if panel.log && top / least > 20.0 {
        let bottom = least / 2.0;
        let mut chart = builder
            .build_cartesian_2d(x, (bottom..top * 3.0).log_scale())
            .map_err(plot_error)?;
        draw(&mut chart, &values, panel, bottom, |v| v * 1.15)
    } else {
        let mut chart = builder
            .build_cartesian_2d(x, 0.0..top * 1.2)
            .map_err(plot_error)?;
        draw(&mut chart, &values, panel, 0.0, |v| v + top * 0.01)
    }
}

/// The mesh, one bar per value from `base`, and each value written above its bar.
fn draw<'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<SegmentedCoord<RangedCoordusize>, Y>>,
    values: &[(char, f64)],
    panel: &Panel,
    base: f64,
    above: impl Fn(f64) -> f64,
) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let letter = |x: &SegmentValue<usize>| match x {
        SegmentValue::CenterOf(i) => values.get(*i).map_or(String::new(), |v| v.0.to_string()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(values.len() + 1)
        .x_label_formatter(&letter)
        .y_label_formatter(&|v| (panel.format)(*v))
        .draw()
        .map_err(plot_error)?;
    let bar = |(i, &(_, v)): (usize, &(char, f64))| {
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i), base),
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
            (SegmentValue::CenterOf(i), above(v)),
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

/// The runs of each load, in the order the loads first appear: each configuration's
/// median run, as the tables show it.
pub fn median_runs_by_load(
    results: &[RunResult],
    equal_load: bool,
) -> Vec<(String, Vec<&RunResult>)> {
    let mut loads: Vec<&str> = Vec::new();
    for r in results {
        if !loads.contains(&r.load.as_str()) {
            loads.push(&r.load);
        }
    }
    loads
        .into_iter()
        .map(|load| {
            let runs: Vec<&RunResult> = results.iter().filter(|r| r.load == load).collect();
            (load.to_owned(), median_runs(&runs, equal_load))
        })
        .collect()
}

/// What `bridge-bench plot` reads of a results file.
#[derive(Deserialize)]
struct ResultsFile {
    settings: Settings,
    results: Vec<RunResult>,
}

#[derive(Deserialize)]
struct Settings {
    publishers: u32,
    rate_per_s: Option<u32>,
    #[serde(default)]
    repeat: Option<u32>,
}

/// `bridge-bench plot`: draws the plot of a results file (`bridge-bench run --out`).
pub fn main(results: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("cannot read {}", results.display()))?;
    let file: ResultsFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a bridge-bench results file", results.display()))?;
    let s = &file.settings;
    let by_load = median_runs_by_load(&file.results, s.rate_per_s.is_some());
    let how = match s.rate_per_s {
        Some(rate) => format!("at {rate} msg/s offered"),
        None => "at saturation".into(),
    };
    let repeat = s
        .repeat
        .filter(|&n| n > 1)
        .map(|n| format!(", median of {n} runs"));
    let title = format!(
        "bridge-bench {how} — {} publishers{}",
        s.publishers,
        repeat.unwrap_or_default()
    );
    write_svg(out, &title, &by_load)?;
    println!("plot in {}", out.display());
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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

    #[test]
    fn a_results_file_is_drawn_with_each_configurations_median_run() {
        let runs = [
            run(Config::A, 80_000.0, 3.61, None),
            run(Config::C, 80_000.0, 7.14, Some(30.0)),
            run(Config::C, 80_000.0, 6.02, Some(27.5)),
            run(Config::C, 80_000.0, 9.44, Some(31.0)),
        ];
        let doc = serde_json::json!({
            "settings": {"publishers": 4, "rate_per_s": 80_000, "repeat": 3},
            "results": runs,
        });
        let dir = std::env::temp_dir().join(format!("bench-plot-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (file, out) = (dir.join("results.json"), dir.join("plot.svg"));
        std::fs::write(&file, doc.to_string()).unwrap();
        main(&file, &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.contains("at 80000 msg/s offered — 4 publishers, median of 3 runs"));
        assert!(svg.contains("3.61") && svg.contains("7.14"), "the medians");
        assert!(
            !svg.contains("6.02") && !svg.contains("9.44"),
            "not the other runs"
        );
    }
}
