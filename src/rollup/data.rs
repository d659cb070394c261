//! What one rollup row holds of the metrics folded into it.
//!
//! While a bucket holds few metrics, the row keeps their exact values,
//! packed: a task costs about six bytes (its result in two bits, its
//! duration, tokens and files as variable-length integers), so a rollup
//! row is far smaller than the raw rows it replaces, and everything read
//! from it is exact, percentiles included. Past [`MAX_VALUES`] metrics the
//! row keeps, per class (a task's result; agent and swarm metrics have one
//! class), one running [`Stat`] per measure with a quantile sketch:
//! counts, sums, extremes and standard deviations stay exact, percentiles
//! come within 1%.

use sketches_ddsketch::DDSketch;

use crate::bytes::{put_varint, unzigzag, zigzag, Reader};
use crate::error::{Error, Result};
use crate::model::record::MetricKind;
use crate::model::usage::Split;
use crate::stats::running::{decode_sketch, encode_sketch, Stat, Welford};

/// Metrics a row keeps as exact values, at most.
const MAX_VALUES: usize = 512;

/// The form tags that open an encoded summary: values and statistics
/// of the three measures every task has, and (from schema version 9) of
/// task summaries with the optional measures after them.
const VALUES_TAG: u8 = 0;
const STATS_TAG: u8 = 1;
const TASK_VALUES_TAG: u8 = 2;
const TASK_STATS_TAG: u8 = 3;

/// The measures of a task: duration, tokens and files, which every task
/// has, then the optional ones: cost (micro-dollars) and tokens by type.
/// Task measures are never negative, so a negative value (-1) marks a task
/// without the measure.
pub(crate) mod measure {
    pub const DURATION: usize = 0;
    pub const TOKENS: usize = 1;
    pub const FILES: usize = 2;
    pub const COST: usize = 3;
    pub const INPUT: usize = 4;
    pub const OUTPUT: usize = 5;
    pub const CACHE_READ: usize = 6;
    pub const CACHE_WRITE: usize = 7;
    /// The measures every task has.
    pub const DENSE: usize = 3;
    /// All of them.
    pub const ALL: usize = 8;
}

/// What a task adds to a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskValues {
    pub duration_ms: i64,
    pub tokens_used: i64,
    pub files_changed: i64,
    /// Micro-dollars.
    pub cost: Option<u64>,
    pub split: Option<Split>,
}

impl TaskValues {
    /// The values in [`measure`] order, -1 for those it lacks.
    fn measures(&self) -> [i64; measure::ALL] {
        let opt = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let split = |f: fn(&Split) -> u64| opt(self.split.as_ref().map(f));
        [
            self.duration_ms,
            self.tokens_used,
            self.files_changed,
            opt(self.cost),
            split(|s| s.input),
            split(|s| s.output),
            split(|s| s.cache_read),
            split(|s| s.cache_write),
        ]
    }
}

/// The measured columns of one kind: how many, and whether integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Task results, or the one class of agent and swarm metrics.
    classes: usize,
    measures: usize,
    int: bool,
}

fn shape(kind: MetricKind) -> Shape {
    match kind {
        MetricKind::Task => Shape {
            classes: 4,
            measures: measure::ALL,
            int: true,
        },
        _ => Shape {
            classes: 1,
            measures: 1,
            int: false,
        },
    }
}

/// One measured column's exact values.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    Int(Vec<i64>),
    Real(Vec<f64>),
}

impl Column {
    fn new(int: bool) -> Self {
        if int {
            Column::Int(Vec::new())
        } else {
            Column::Real(Vec::new())
        }
    }

    /// Value `i`, if the metric has one (see [`measure`]).
    fn value(&self, i: usize) -> Option<f64> {
        match self {
            Column::Int(v) => (v[i] >= 0).then_some(v[i] as f64),
            Column::Real(v) => Some(v[i]),
        }
    }

    fn push_into(&self, i: usize, stat: &mut Stat) {
        match self {
            Column::Int(v) if v[i] >= 0 => stat.push_int(v[i]),
            Column::Int(_) => {}
            Column::Real(v) => stat.push_real(v[i]),
        }
    }

    /// Whether some metric has a value.
    fn any(&self) -> bool {
        match self {
            Column::Int(v) => v.iter().any(|x| *x >= 0),
            Column::Real(v) => !v.is_empty(),
        }
    }

    fn extend(&mut self, other: &Column) {
        match (self, other) {
            (Column::Int(a), Column::Int(b)) => a.extend(b),
            (Column::Real(a), Column::Real(b)) => a.extend(b),
            // Columns of one kind are all of one type.
            _ => {}
        }
    }
}

#[derive(Clone)]
enum Form {
    /// Every metric: its class and one value per measure.
    Values {
        class: Vec<u8>,
        columns: Vec<Column>,
    },
    /// Per class, one stat per measure, with sketches.
    Stats(Vec<Vec<Stat>>),
}

/// The metrics folded into one rollup row.
#[derive(Clone)]
pub(crate) struct RollupData {
    shape: Shape,
    form: Form,
}

/// What a summary holds of one class and one measure, for reads.
pub(crate) struct Part {
    /// Count, sum, extremes and Welford state (no sketch).
    pub stat: Stat,
    /// The exact values, when the row keeps them and they were asked for.
    pub values: Vec<f64>,
    /// The sketch, when the row keeps statistics instead of values.
    pub sketch: Option<DDSketch>,
}

impl RollupData {
    /// An empty summary for metrics of `kind`.
    pub fn new(kind: MetricKind) -> Self {
        let shape = shape(kind);
        RollupData {
            shape,
            form: Form::Values {
                class: Vec::new(),
                columns: (0..shape.measures)
                    .map(|_| Column::new(shape.int))
                    .collect(),
            },
        }
    }

    /// Adds a task of result `class`.
    pub fn push_task(&mut self, class: usize, task: &TaskValues) -> Result<()> {
        let measures = task.measures();
        self.push(class, |m, column| match column {
            Column::Int(v) => v.push(measures[m]),
            Column::Real(v) => v.push(measures[m] as f64),
        })
    }

    /// Adds an agent or swarm metric's value.
    pub fn push_value(&mut self, value: f64) -> Result<()> {
        self.push(0, |_, column| match column {
            Column::Real(v) => v.push(value),
            Column::Int(v) => v.push(value as i64),
        })
    }

    /// Adds one metric of `class`, whose value for measure `m` `add`
    /// pushes onto a column.
    fn push(&mut self, class: usize, mut add: impl FnMut(usize, &mut Column)) -> Result<()> {
        let code = class_code(class, self.shape)?;
        if let Form::Values { class: classes, .. } = &self.form {
            if classes.len() >= MAX_VALUES {
                self.make_stats();
            }
        }
        match &mut self.form {
            Form::Values {
                class: classes,
                columns,
            } => {
                classes.push(code);
                columns.iter_mut().enumerate().for_each(|(m, c)| add(m, c));
            }
            Form::Stats(stats) => {
                for (m, stat) in stats[class].iter_mut().enumerate() {
                    let mut one = Column::new(self.shape.int);
                    add(m, &mut one);
                    one.push_into(0, stat);
                }
            }
        }
        Ok(())
    }

    /// How many metrics of each class; for agent and swarm metrics, the
    /// first alone.
    pub fn counts(&self) -> [u64; 4] {
        let mut counts = [0; 4];
        match &self.form {
            Form::Values { class, .. } => class.iter().for_each(|c| counts[*c as usize] += 1),
            Form::Stats(stats) => {
                for (c, measures) in stats.iter().enumerate() {
                    counts[c] = measures.first().map_or(0, Stat::count);
                }
            }
        }
        counts
    }

    /// Adds `other`'s metrics to this summary's; `other` may be left in
    /// another form.
    pub fn merge(&mut self, other: &mut RollupData) -> Result<()> {
        if let (
            Form::Values { class, columns },
            Form::Values {
                class: c,
                columns: cols,
            },
        ) = (&mut self.form, &other.form)
        {
            if class.len() + c.len() <= MAX_VALUES {
                class.extend(c);
                for (a, b) in columns.iter_mut().zip(cols) {
                    a.extend(b);
                }
                return Ok(());
            }
        }
        self.make_stats();
        other.make_stats();
        if let (Form::Stats(a), Form::Stats(b)) = (&mut self.form, &other.form) {
            for (x, y) in a.iter_mut().flatten().zip(b.iter().flatten()) {
                x.merge(y)?;
            }
        }
        Ok(())
    }

    /// Turns exact values into per-class statistics with sketches.
    fn make_stats(&mut self) {
        let Form::Values { class, columns } = &self.form else {
            return;
        };
        let mut stats = empty_stats(self.shape);
        for (i, c) in class.iter().enumerate() {
            for (m, column) in columns.iter().enumerate() {
                column.push_into(i, &mut stats[*c as usize][m]);
            }
        }
        self.form = Form::Stats(stats);
    }

    /// What the summary holds of `class` for `measure`, with the exact
    /// values when `with_values` and the row keeps them.
    pub fn part(&self, class: usize, measure: usize, with_values: bool) -> Part {
        match &self.form {
            Form::Values {
                class: classes,
                columns,
            } => {
                let mut stat = Stat::new(self.shape.int, false);
                let mut values = Vec::new();
                let column = &columns[measure];
                for (i, _) in classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c as usize == class)
                {
                    column.push_into(i, &mut stat);
                    if let Some(v) = column.value(i).filter(|_| with_values) {
                        values.push(v);
                    }
                }
                Part {
                    stat,
                    values,
                    sketch: None,
                }
            }
            Form::Stats(stats) => {
                let mut stat = stats[class][measure].clone();
                let sketch = stat.sketch.take();
                Part {
                    stat,
                    values: Vec::new(),
                    sketch: sketch.filter(|s| s.count() > 0),
                }
            }
        }
    }

    /// The summary as stored in a rollup row.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let task = self.shape.measures > measure::DENSE;
        match &self.form {
            Form::Values { class, columns } => {
                out.push(if task { TASK_VALUES_TAG } else { VALUES_TAG });
                put_varint(&mut out, class.len() as u64);
                if self.shape.classes > 1 {
                    // Two bits per class.
                    for four in class.chunks(4) {
                        let byte = four
                            .iter()
                            .enumerate()
                            .fold(0u8, |b, (i, c)| b | (c << (2 * i)));
                        out.push(byte);
                    }
                }
                let (dense, optional) = columns.split_at(columns.len().min(measure::DENSE));
                for column in dense {
                    match column {
                        // Task measures are never negative: as unsigned
                        // they take the fewest bytes.
                        Column::Int(v) => v.iter().for_each(|x| put_varint(&mut out, *x as u64)),
                        Column::Real(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
                    }
                }
                if task {
                    // One byte says whether any task has an optional
                    // measure; each value then as varint(value + 1), 0
                    // for none.
                    let any = optional.iter().any(Column::any);
                    out.push(u8::from(any));
                    for column in optional.iter().filter(|_| any) {
                        if let Column::Int(v) = column {
                            v.iter()
                                .for_each(|x| put_varint(&mut out, (*x).wrapping_add(1) as u64));
                        }
                    }
                }
            }
            Form::Stats(stats) => {
                out.push(if task { TASK_STATS_TAG } else { STATS_TAG });
                for measures in stats {
                    let count = measures.first().map_or(0, Stat::count);
                    put_varint(&mut out, count);
                    if count == 0 {
                        continue;
                    }
                    let (dense, optional) = measures.split_at(measures.len().min(measure::DENSE));
                    dense.iter().for_each(|s| put_stat(&mut out, s));
                    // Each optional measure with its own count.
                    for s in optional {
                        put_varint(&mut out, s.count());
                        if s.count() > 0 {
                            put_stat(&mut out, s);
                        }
                    }
                }
            }
        }
        out
    }

    /// The inverse of [`encode`](Self::encode), for a row of `kind`'s
    /// rollups in `table`.
    pub fn decode(bytes: &[u8], kind: MetricKind, table: &'static str) -> Result<RollupData> {
        let shape = shape(kind);
        let mut r = Reader::new(bytes, table, "rollup data");
        let tag = r.byte()?;
        let with_optional = match (tag, shape.measures > measure::DENSE) {
            (VALUES_TAG | STATS_TAG, _) => false,
            (TASK_VALUES_TAG | TASK_STATS_TAG, true) => true,
            _ => return Err(r.corrupt(&format!("unknown form {tag}"))),
        };
        let form = match tag {
            VALUES_TAG | TASK_VALUES_TAG => {
                let n = usize::try_from(r.varint()?).map_err(|_| r.corrupt("count"))?;
                if n > MAX_VALUES {
                    return Err(r.corrupt("too many values"));
                }
                let mut class = Vec::with_capacity(n);
                if shape.classes > 1 {
                    for i in 0..n.div_ceil(4) {
                        let byte = r.byte()?;
                        for j in 0..4.min(n - 4 * i) {
                            class.push((byte >> (2 * j)) & 3);
                        }
                    }
                } else {
                    class.resize(n, 0);
                }
                let mut columns = Vec::with_capacity(shape.measures);
                for _ in 0..shape.measures.min(measure::DENSE) {
                    columns.push(if shape.int {
                        Column::Int(
                            (0..n)
                                .map(|_| r.varint().map(|x| x as i64))
                                .collect::<Result<_>>()?,
                        )
                    } else {
                        Column::Real((0..n).map(|_| r.f64()).collect::<Result<_>>()?)
                    });
                }
                let any = with_optional && r.byte()? != 0;
                for _ in measure::DENSE..shape.measures {
                    let values = if any {
                        (0..n)
                            .map(|_| r.varint().map(|x| (x as i64).wrapping_sub(1)))
                            .collect::<Result<_>>()?
                    } else {
                        vec![-1; n]
                    };
                    columns.push(Column::Int(values));
                }
                Form::Values { class, columns }
            }
            _ => {
                let mut stats = Vec::with_capacity(shape.classes);
                for _ in 0..shape.classes {
                    let count = r.varint()?;
                    let mut measures = Vec::with_capacity(shape.measures);
                    for m in 0..shape.measures {
                        let count = match m < measure::DENSE {
                            true => count,
                            false if count > 0 && with_optional => r.varint()?,
                            false => 0,
                        };
                        measures.push(if count == 0 {
                            Stat::new(shape.int, true)
                        } else {
                            r.stat(count, shape.int)?
                        });
                    }
                    stats.push(measures);
                }
                Form::Stats(stats)
            }
        };
        if !r.rest().is_empty() {
            return Err(r.corrupt("trailing bytes"));
        }
        Ok(RollupData { shape, form })
    }
}

/// A summary of one class of metrics given by their statistics: what
/// rollups of schema version 2 kept, one row per class.
pub(crate) fn from_stats(kind: MetricKind, class: usize, stats: Vec<Stat>) -> Result<RollupData> {
    let shape = shape(kind);
    class_code(class, shape)?;
    let mut all = empty_stats(shape);
    // The measures it does not give (those added since) are empty.
    for (slot, stat) in all[class].iter_mut().zip(stats) {
        *slot = stat;
    }
    Ok(RollupData {
        shape,
        form: Form::Stats(all),
    })
}

/// One empty stat, with a sketch, per class and measure.
fn empty_stats(shape: Shape) -> Vec<Vec<Stat>> {
    (0..shape.classes)
        .map(|_| {
            (0..shape.measures)
                .map(|_| Stat::new(shape.int, true))
                .collect()
        })
        .collect()
}

fn class_code(class: usize, shape: Shape) -> Result<u8> {
    if class < shape.classes {
        Ok(class as u8)
    } else {
        Err(Error::Internal("a rollup class out of range"))
    }
}

/// A stat as stored: sum, min and max (integers: 16-byte sum, zigzag
/// varints; reals: 8-byte floats), mean and M2, and the sketch with its
/// length.
fn put_stat(out: &mut Vec<u8>, s: &Stat) {
    if s.int {
        out.extend(s.sum_int.to_le_bytes());
        put_varint(out, zigzag(s.min_int));
        put_varint(out, zigzag(s.max_int));
    } else {
        out.extend(s.sum_real.to_le_bytes());
        out.extend(s.min.to_le_bytes());
        out.extend(s.max.to_le_bytes());
    }
    out.extend(s.welford.mean().to_le_bytes());
    out.extend(s.welford.m2.to_le_bytes());
    let sketch = s.sketch.as_ref().map(encode_sketch).unwrap_or_default();
    put_varint(out, sketch.len() as u64);
    out.extend(sketch);
}

/// Reads a stat back, as [`put_stat`] wrote it.
impl Reader<'_> {
    fn stat(&mut self, count: u64, int: bool) -> Result<Stat> {
        let mut s = Stat::new(int, false);
        if int {
            let b = self.take(16)?;
            s.sum_int = i128::from_le_bytes(b.try_into().unwrap_or_default());
            s.min_int = unzigzag(self.varint()?);
            s.max_int = unzigzag(self.varint()?);
            s.min = s.min_int as f64;
            s.max = s.max_int as f64;
        } else {
            s.sum_real = self.f64()?;
            s.min = self.f64()?;
            s.max = self.f64()?;
        }
        let (mean, m2) = (self.f64()?, self.f64()?);
        s.welford = Welford::from_parts(count, mean, m2);
        let len = usize::try_from(self.varint()?).map_err(|_| self.corrupt("sketch length"))?;
        let table = self.table();
        let sketch = self.take(len)?;
        s.sketch = Some(decode_sketch(sketch, table)?);
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
