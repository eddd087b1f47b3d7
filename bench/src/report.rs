//! Medians, the printed table and the JSON record.

use std::collections::BTreeMap;
use std::time::Duration;

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// The `p`th percentile of sorted `values` (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn mib_per_second(bytes: usize, time: Duration) -> f64 {
    if time.is_zero() {
        return 0.0;
    }
    bytes as f64 / (1024.0 * 1024.0) / time.as_secs_f64()
}

pub fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KB", b >> 10),
        b => format!("{b} B"),
    }
}

/// One measured cell: per-run samples of one operation by one implementation.
pub struct Cell {
    pub samples: Vec<Duration>,
}

impl Cell {
    pub fn median(&self) -> Duration {
        median(&self.samples)
    }
}

/// Everything one run of the bench measured, in the order it is printed.
#[derive(Default)]
pub struct Report {
    /// (operation, size) → implementation → cell.
    pub throughput: BTreeMap<(usize, String, usize), BTreeMap<&'static str, Cell>>,
    /// Plain rows: a title and its columns as (name, value) text.
    pub sections: Vec<(String, Vec<String>, Vec<Vec<String>>)>,
    /// Further figures for the JSON record, by key.
    pub json: Vec<(String, serde_json::Value)>,
}

/// The implementations compared, in column order.
pub const COLUMNS: [&str; 4] = ["native", "component", "openssl cms", "pyas2lib"];

impl Report {
    /// Records a sample; `order` keeps operations in the order first seen.
    pub fn sample(
        &mut self,
        order: usize,
        operation: &str,
        size: usize,
        column: &'static str,
        time: Duration,
    ) {
        self.throughput
            .entry((order, operation.to_string(), size))
            .or_default()
            .entry(column)
            .or_insert_with(|| Cell {
                samples: Vec::new(),
            })
            .samples
            .push(time);
    }

    pub fn section(&mut self, title: &str, header: &[&str], rows: Vec<Vec<String>>) {
        self.sections.push((
            title.to_string(),
            header.iter().map(|h| h.to_string()).collect(),
            rows,
        ));
    }

    /// The build and parse table as Markdown, with ratios of the component
    /// to the others.
    pub fn throughput_table(&self) -> String {
        let mut out = String::from(
            "| operation | size | native | component | openssl cms | pyas2lib | component ÷ native | component ÷ openssl | component ÷ pyas2lib |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for ((_, operation, size), cells) in &self.throughput {
            let mut row = format!("| {operation} | {} |", size_label(*size));
            for column in COLUMNS {
                match cells.get(column) {
                    Some(cell) => {
                        let time = cell.median();
                        row.push_str(&format!(
                            " {} ({}) |",
                            format_time(time),
                            format_rate(*size, time)
                        ));
                    }
                    None => row.push_str(" n/a |"),
                }
            }
            let component = cells.get("component").map(Cell::median);
            for other in ["native", "openssl cms", "pyas2lib"] {
                // Speed ratio: how many times faster the component is.
                match (component, cells.get(other).map(Cell::median)) {
                    (Some(c), Some(o)) if !c.is_zero() => {
                        row.push_str(&format!(" {:.2}× |", o.as_secs_f64() / c.as_secs_f64()))
                    }
                    _ => row.push_str(" n/a |"),
                }
            }
            out.push_str(&row);
            out.push('\n');
        }
        out
    }

    pub fn throughput_json(&self) -> Vec<serde_json::Value> {
        let mut rows = Vec::new();
        for ((_, operation, size), cells) in &self.throughput {
            for (column, cell) in cells {
                let time = cell.median();
                rows.push(serde_json::json!({
                    "operation": operation,
                    "size_bytes": size,
                    "implementation": column,
                    "median_ms": time.as_secs_f64() * 1000.0,
                    "mib_per_s": mib_per_second(*size, time),
                    "samples_ms": cell.samples.iter().map(|s| s.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
                }));
            }
        }
        rows
    }

    pub fn print(&self) {
        if !self.throughput.is_empty() {
            println!("\n## Build and parse (medians; in brackets the payload rate)\n");
            print!("{}", self.throughput_table());
        }
        for (title, header, rows) in &self.sections {
            println!("\n## {title}\n");
            println!("| {} |", header.join(" | "));
            println!("|{}", "---|".repeat(header.len()));
            for row in rows {
                println!("| {} |", row.join(" | "));
            }
        }
    }
}

pub fn format_time(time: Duration) -> String {
    let ms = time.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.1} µs", ms * 1000.0)
    }
}

/// The payload rate: MiB/s, or KiB/s below 1 MiB/s.
pub fn format_rate(bytes: usize, time: Duration) -> String {
    let rate = mib_per_second(bytes, time);
    if rate >= 10.0 {
        format!("{rate:.0} MiB/s")
    } else if rate >= 1.0 {
        format!("{rate:.1} MiB/s")
    } else {
        format!("{:.0} KiB/s", rate * 1024.0)
    }
}
