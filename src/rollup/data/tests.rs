//! Rollup data: both forms, both kinds, round trips and damage.

use super::*;
use crate::model::record::AggregationType;

fn plain(duration_ms: i64, tokens_used: i64, files_changed: i64) -> TaskValues {
    TaskValues {
        duration_ms,
        tokens_used,
        files_changed,
        cost: None,
        split: None,
    }
}

fn tasks(n: i64) -> RollupData {
    let mut s = RollupData::new(MetricKind::Task);
    for i in 0..n {
        s.push_task((i % 4) as usize, &plain(i * 1000, i % 97, i % 5))
            .unwrap();
    }
    s
}

#[test]
fn values_round_trip_and_stay_small() {
    let s = tasks(14);
    let bytes = s.encode();
    assert!(bytes.len() < 14 * 6, "{} bytes", bytes.len());
    let back = RollupData::decode(&bytes, MetricKind::Task, "t").unwrap();
    assert_eq!(back.encode(), bytes);
    assert_eq!(back.counts(), [4, 4, 3, 3]);
    let part = back.part(1, 0, true);
    assert_eq!(part.values, [1000.0, 5000.0, 9000.0, 13000.0]);
    assert_eq!(part.stat.value(AggregationType::Sum), Some(28000.0));
}

#[test]
fn past_the_limit_statistics_keep_counts_and_sums_exact() {
    let mut a = tasks(400);
    let mut b = tasks(400);
    a.merge(&mut b).unwrap();
    assert!(matches!(a.form, Form::Stats(_)));
    assert_eq!(a.counts(), [200, 200, 200, 200]);
    let back = RollupData::decode(&a.encode(), MetricKind::Task, "t").unwrap();
    let part = back.part(0, 0, true);
    // Results 0 are tasks 0, 4, ..., 396, twice.
    let sum: i64 = (0..100).map(|k| 2 * 4 * k * 1000).sum();
    assert_eq!(part.stat.sum_int, i128::from(sum));
    assert_eq!(part.stat.count(), 200);
    assert!(part.values.is_empty());
    assert_eq!(part.sketch.unwrap().count(), 200);
}

#[test]
fn sums_past_64_bits_survive() {
    let mut s = RollupData::new(MetricKind::Task);
    for _ in 0..600 {
        s.push_task(0, &plain(i64::MAX, 0, 0)).unwrap();
    }
    let back = RollupData::decode(&s.encode(), MetricKind::Task, "t").unwrap();
    assert_eq!(
        back.part(0, 0, false).stat.sum_int,
        600 * i128::from(i64::MAX)
    );
}

fn priced(cost: u64, input: u64, output: u64) -> TaskValues {
    TaskValues {
        cost: Some(cost),
        split: Some(Split {
            input,
            output,
            cache_read: input / 2,
            cache_write: 0,
        }),
        tokens_used: (input + output) as i64,
        ..plain(10, 0, 1)
    }
}

#[test]
fn optional_measures_count_only_the_tasks_that_have_them() {
    let mut s = RollupData::new(MetricKind::Task);
    s.push_task(0, &priced(1_500, 100, 20)).unwrap();
    s.push_task(0, &plain(5, 7, 0)).unwrap();
    s.push_task(1, &priced(2_500, 300, 0)).unwrap();
    let mut back = RollupData::decode(&s.encode(), MetricKind::Task, "t").unwrap();
    for data in [&s, &back] {
        assert_eq!(data.counts(), [2, 1, 0, 0]);
        let cost = data.part(0, measure::COST, true);
        assert_eq!((cost.stat.count(), cost.values), (1, vec![1_500.0]));
        assert_eq!(data.part(0, measure::INPUT, false).stat.sum_int, 100);
        assert_eq!(data.part(1, measure::CACHE_READ, false).stat.sum_int, 150);
    }
    // The same through the statistics form.
    back.make_stats();
    let back = RollupData::decode(&back.encode(), MetricKind::Task, "t").unwrap();
    let cost = back.part(0, measure::COST, true);
    assert_eq!((cost.stat.count(), cost.stat.sum_int), (1, 1_500));
    assert_eq!(back.part(0, measure::DURATION, false).stat.count(), 2);
    assert_eq!(back.part(1, measure::OUTPUT, false).stat.count(), 1);
    // Without any, a values row pays one byte for them.
    let plain_row = tasks(14).encode();
    let mut old = plain_row.clone();
    old[0] = VALUES_TAG;
    old.pop();
    assert_eq!(*plain_row.last().unwrap(), 0);
    let from_old = RollupData::decode(&old, MetricKind::Task, "t").unwrap();
    assert_eq!(
        from_old.encode(),
        plain_row,
        "older rows read with no optional measures"
    );
    assert_eq!(from_old.part(0, measure::COST, true).stat.count(), 0);
}

#[test]
fn entity_values_round_trip() {
    let mut s = RollupData::new(MetricKind::Agent);
    for v in [0.5, 1e300, 3.25] {
        s.push_value(v).unwrap();
    }
    let back = RollupData::decode(&s.encode(), MetricKind::Agent, "t").unwrap();
    assert_eq!(back.part(0, 0, true).values, [0.5, 1e300, 3.25]);
    assert_eq!(back.counts(), [3, 0, 0, 0]);
}

#[test]
fn damaged_data_is_refused() {
    let bytes = tasks(10).encode();
    for cut in [0, 1, 5, bytes.len() - 1] {
        assert!(RollupData::decode(&bytes[..cut], MetricKind::Task, "t").is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(RollupData::decode(&longer, MetricKind::Task, "t").is_err());
    assert!(RollupData::decode(&[9], MetricKind::Task, "t").is_err());
}
