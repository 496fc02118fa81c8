//! A side-by-side table: one row per measurement, one column per contender, and the ratio of
//! the first two.

use std::fmt;

/// Whether a bigger number is better (throughput) or worse (latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Throughput-like.
    Higher,
    /// Latency-like.
    Lower,
}

/// One measured quantity for every contender.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured, e.g. "write ops/s, 64 writers".
    pub name: String,
    /// The unit, e.g. "ops/s" or "ms".
    pub unit: &'static str,
    /// Which direction is better.
    pub better: Better,
    /// One value per contender, in column order.
    pub values: Vec<f64>,
}

/// A table of rows for named contenders.
#[derive(Clone, Debug)]
pub struct Table {
    /// A title printed above the table.
    pub title: String,
    /// Contenders, in column order.
    pub columns: Vec<String>,
    /// The measurements.
    pub rows: Vec<Row>,
}

impl Table {
    /// The first contender's advantage over the second on `row`: above 1 means the first is
    /// better, whichever direction the row counts.
    pub fn advantage(row: &Row) -> Option<f64> {
        let (a, b) = (*row.values.first()?, *row.values.get(1)?);
        if a <= 0.0 || b <= 0.0 {
            return None;
        }
        Some(match row.better {
            Better::Higher => a / b,
            Better::Lower => b / a,
        })
    }
}

fn format_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let adv = match (self.columns.first(), self.columns.get(1)) {
            (Some(a), Some(b)) => format!("{a} vs {b}"),
            _ => "ratio".into(),
        };
        write!(f, "| {:<40} |", "measurement")?;
        for c in &self.columns {
            write!(f, " {c:>10} |")?;
        }
        writeln!(f, " {adv:>16} |")?;
        write!(f, "|{}|", "-".repeat(42))?;
        for _ in &self.columns {
            write!(f, "{}|", "-".repeat(12))?;
        }
        writeln!(f, "{}|", "-".repeat(18))?;
        for row in &self.rows {
            write!(f, "| {:<40} |", format!("{} ({})", row.name, row.unit))?;
            for v in &row.values {
                write!(f, " {:>10} |", format_value(*v))?;
            }
            let ratio = Table::advantage(row)
                .map(|r| format!("{r:.2}x better"))
                .unwrap_or_else(|| "-".into());
            writeln!(f, " {ratio:>16} |")?;
        }
        Ok(())
    }
}
