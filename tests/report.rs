//! The HTML report: its numbers are the library's for the same filters,
//! the page is well-formed and self-contained, and it stays sensible with
//! no data, one agent, a thousand agents and a narrow window; on every
//! backend the build has.

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::server::stores;
use roxmltree::{Document, Node};
use swarm_metrics::{
    AggregationType, Filter, GroupBy, MetricKind, MetricsStorage, Report, ReportOptions,
    RetentionPolicy, TaskColumn, TaskMetric, TaskResult, TimeRange,
};

const AGENTS: usize = 8;

/// Twelve days of tasks from 8 agents in 3 swarms, the older ones folded
/// into hourly rollups; agent-7 fails far more in the last day.
fn busy_store(store: &MetricsStorage) -> DateTime<Utc> {
    let now = swarm_metrics::now();
    let start = (now - Duration::days(12))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    let mut tasks = Vec::new();
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for i in 0..6_000i64 {
        let at = start + Duration::seconds(i * 170 + next(60) as i64);
        if at > now {
            break;
        }
        let agent = next(AGENTS as u64) as usize;
        let late = now - at < Duration::days(1);
        let fail_percent = if agent == 7 && late {
            60
        } else {
            5 + agent as u64 * 2
        };
        let result = match next(100) {
            r if r < fail_percent => TaskResult::Failure,
            r if r < fail_percent + 2 => TaskResult::Timeout,
            r if r < fail_percent + 3 => TaskResult::Cancelled,
            _ => TaskResult::Success,
        };
        let base = 200 + 150 * agent as u64;
        // A few very slow tasks for the outliers.
        let duration = if next(400) == 0 {
            base * 40
        } else {
            base + next(base)
        };
        tasks.push(
            TaskMetric::new(format!("t{i}"), format!("agent-{agent}"), duration, result)
                .swarm(format!("swarm-{}", agent % 3))
                .tokens(100 + next(900))
                .files(next(5))
                .at(at),
        );
    }
    store.store_task_metrics(&tasks).unwrap();
    let report = store.apply_retention(&RetentionPolicy::default()).unwrap();
    assert!(report.task_metrics.raw_folded > 0, "{report:?}");
    start
}

fn parse(page: &str) -> Document<'_> {
    Document::parse_with_options(
        page,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("the page is not well-formed: {e}"))
}

fn by_id<'a>(doc: &'a Document<'a>, id: &str) -> Node<'a, 'a> {
    doc.descendants()
        .find(|n| n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no element #{id}"))
}

/// The `data-value`s of each row of a table's body.
fn rows(doc: &Document<'_>, table: &str) -> Vec<Vec<String>> {
    let table = by_id(doc, table);
    let body = table
        .children()
        .find(|n| n.has_tag_name("tbody"))
        .expect("a table body");
    body.children()
        .filter(|n| n.has_tag_name("tr"))
        .map(|tr| {
            tr.children()
                .filter(|n| n.has_tag_name("td"))
                .map(|td| td.attribute("data-value").unwrap_or_default().to_owned())
                .collect()
        })
        .collect()
}

fn number(text: &str) -> Option<f64> {
    (!text.is_empty()).then(|| text.parse().unwrap())
}

fn value_of(doc: &Document<'_>, id: &str) -> String {
    by_id(doc, id).attribute("data-value").unwrap().to_owned()
}

/// Every number on the page against the library's own answer for the same
/// filter.
fn check_page(store: &MetricsStorage, report: &Report) {
    let page = report.to_html();
    let doc = parse(&page);
    let filter = &report.filter;

    let summary = store.summary(filter).unwrap();
    assert_eq!(value_of(&doc, "tasks"), summary.tasks.to_string());
    assert_eq!(
        number(&value_of(&doc, "success-rate")),
        summary.success_rate.rate
    );
    assert_eq!(number(&value_of(&doc, "p50")), summary.duration_ms.p50);
    assert_eq!(number(&value_of(&doc, "p95")), summary.duration_ms.p95);
    assert_eq!(value_of(&doc, "tokens"), summary.tokens_total.to_string());

    // The leaderboard: each listed agent, and the rest summed up.
    let agents = rows(&doc, "agents");
    let all_agents = store.success_rate_by(GroupBy::Agent, filter).unwrap();
    let mut listed_tasks = 0;
    for row in &agents {
        let agent = filter.clone().agent(&row[0]);
        let rate = store.success_rate(&agent).unwrap();
        assert_eq!(number(&row[1]), rate.rate, "{}", row[0]);
        assert_eq!(row[2], rate.total.to_string(), "{}", row[0]);
        let p95 = store.percentile(MetricKind::Task, 0.95, &agent).unwrap();
        assert_eq!(number(&row[3]), p95.value, "{}", row[0]);
        let tokens = store
            .aggregate_metrics(
                MetricKind::Task,
                AggregationType::Sum,
                &agent.column(TaskColumn::Tokens),
            )
            .unwrap();
        assert_eq!(number(&row[4]), Some(tokens.value.unwrap_or(0.0)));
        listed_tasks += rate.total;
    }
    let (other_agents, other_tasks) = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("other-agents"))
        .map_or((0, 0), |n| {
            let get = |a| n.attribute(a).unwrap().parse::<u64>().unwrap();
            (get("data-agents"), get("data-tasks"))
        });
    assert_eq!(agents.len() as u64 + other_agents, all_agents.len() as u64);
    assert_eq!(listed_tasks + other_tasks, summary.tasks);

    // The success rate over time: every bucket of every line.
    let width = Duration::seconds(report.width_seconds);
    let span = report.span.expect("a span with data");
    let bucket_filter = |base: &Filter, start: &str| -> Filter {
        let start: DateTime<Utc> = start.parse().unwrap();
        let end = start + width - Duration::microseconds(1);
        let range = TimeRange::new(start.max(span.start()), end.min(span.end())).unwrap();
        base.clone().range(range)
    };
    let mut all_tasks_in_buckets = 0;
    let rate_rows = rows(&doc, "rate-data");
    assert!(!rate_rows.is_empty());
    for row in &rate_rows {
        let base = match row[0].as_str() {
            "all tasks" => filter.clone(),
            swarm => filter.clone().swarm(swarm),
        };
        let rate = store.success_rate(&bucket_filter(&base, &row[1])).unwrap();
        assert_eq!(row[2], rate.total.to_string(), "{row:?}");
        assert_eq!(row[3], rate.success.to_string(), "{row:?}");
        assert_eq!(number(&row[4]), rate.rate, "{row:?}");
        if row[0] == "all tasks" {
            all_tasks_in_buckets += rate.total;
        }
    }
    assert_eq!(all_tasks_in_buckets, summary.tasks);

    // Durations over time.
    for row in rows(&doc, "duration-data") {
        let bucket = bucket_filter(filter, &row[0]);
        let p = store
            .percentiles(MetricKind::Task, &[0.5, 0.95], &bucket)
            .unwrap();
        assert_eq!(row[1], p[0].count.to_string(), "{row:?}");
        assert_eq!(number(&row[2]), p[0].value, "{row:?}");
        assert_eq!(number(&row[3]), p[1].value, "{row:?}");
    }

    // Regressions, in the windows the report states.
    let within = Filter {
        time_range: None,
        ..filter.clone()
    };
    let expected: Vec<Vec<String>> = store
        .regressions_in(&within, report.current, report.baseline, report.alpha)
        .unwrap()
        .into_iter()
        .map(|r| {
            let group = if r.group == GroupBy::Agent {
                "agent"
            } else {
                "swarm"
            };
            let measure = serde_json::to_value(r.measure).unwrap();
            vec![
                group.to_owned(),
                r.id,
                measure.as_str().unwrap().to_owned(),
                r.baseline.to_string(),
                r.current.to_string(),
                r.p_value.to_string(),
                r.q_value.to_string(),
            ]
        })
        .collect();
    if expected.is_empty() {
        by_id(&doc, "no-regressions");
    } else {
        assert_eq!(rows(&doc, "regression-data"), expected);
    }

    // Outliers, and the store itself.
    let outliers = store.duration_outliers(filter).unwrap();
    let note = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("p") && n.parent().and_then(|p| p.attribute("id")) == Some("outliers")
        })
        .unwrap();
    assert_eq!(
        note.attribute("data-value"),
        Some(outliers.len().to_string().as_str())
    );
    // The store's figures as the report read them (a server's size moves
    // on its own as PostgreSQL maintains its tables), which are those of
    // `stats` but for the size.
    let stats = &report.store;
    let now = store.stats().unwrap();
    for (then, now) in [
        (stats.task_metrics, now.task_metrics),
        (stats.agent_metrics, now.agent_metrics),
        (stats.swarm_metrics, now.swarm_metrics),
    ] {
        assert_eq!(
            (then.rows, then.hourly_rollups, then.daily_rollups),
            (now.rows, now.hourly_rollups, now.daily_rollups)
        );
    }
    let tiers = rows(&doc, "tiers");
    for (row, t) in tiers
        .iter()
        .zip([stats.task_metrics, stats.agent_metrics, stats.swarm_metrics])
    {
        assert_eq!(
            row[1..4],
            [
                t.rows.to_string(),
                t.hourly_rollups.to_string(),
                t.daily_rollups.to_string()
            ]
        );
    }
    assert_eq!(value_of(&doc, "file-size"), stats.file_size.to_string());
}

#[test]
fn the_page_shows_the_librarys_numbers() {
    for backend in stores() {
        the_page_shows_the_librarys_numbers_in(&backend.store);
    }
}

fn the_page_shows_the_librarys_numbers_in(store: &MetricsStorage) {
    let start = busy_store(store);
    let range = TimeRange::new(start, swarm_metrics::now()).unwrap();
    let everything = store.report(&ReportOptions::new()).unwrap();
    // Rolled-up history is in the charts and the totals alike.
    assert!(everything.store.task_metrics.hourly_rollups > 0);
    assert_eq!(
        everything.summary.tasks,
        6_000.min(everything.summary.tasks)
    );
    check_page(store, &everything);
    // The failing agent of the last day is found.
    assert!(
        everything
            .regressions
            .iter()
            .any(|r| r.id == "agent-7" && r.group == GroupBy::Agent),
        "{:?}",
        everything.regressions
    );
    for options in [
        ReportOptions::new().filter(Filter::new().swarm("swarm-1").range(range)),
        ReportOptions::new().filter(Filter::new().agent("agent-7")),
        ReportOptions::new()
            .filter(Filter::new().range(range))
            .width(Duration::hours(1))
            .top_agents(3),
    ] {
        let report = store.report(&options).unwrap();
        check_page(store, &report);
    }
    // With 3 agents listed, the other 5 are summed up.
    let three = store.report(&ReportOptions::new().top_agents(3)).unwrap();
    assert_eq!(three.agents.len(), 3);
    assert_eq!(three.other_agents.unwrap().agents, 5);
}

#[test]
fn the_page_is_self_contained_and_escapes_what_it_shows() {
    for backend in stores() {
        the_page_is_self_contained_and_escapes_what_it_shows_in(&backend.store);
    }
}

fn the_page_is_self_contained_and_escapes_what_it_shows_in(store: &MetricsStorage) {
    let nasty = "<script>alert(\"x\")</script> & 'more'";
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            TaskMetric::new(
                format!("t{i}"),
                nasty,
                100 + i,
                if i % 4 == 0 {
                    TaskResult::Failure
                } else {
                    TaskResult::Success
                },
            )
            .swarm(nasty)
            .at(swarm_metrics::now() - Duration::minutes(i as i64 * 3))
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    let page = store
        .report(&ReportOptions::new().title(nasty))
        .unwrap()
        .to_html();
    let doc = parse(&page);
    for needle in ["://", " src=", " href=", "url(", "@import"] {
        assert!(
            !page.contains(needle),
            "the page refers to an outside resource: {needle}"
        );
    }
    // The only script is the page's own; the name shows as text.
    let scripts = doc
        .descendants()
        .filter(|n| n.has_tag_name("script"))
        .count();
    assert_eq!(scripts, 1);
    let title = doc.descendants().find(|n| n.has_tag_name("h1")).unwrap();
    assert_eq!(title.text(), Some(nasty));
    assert_eq!(rows(&doc, "agents")[0][0], nasty);
    assert_eq!(
        doc.descendants().filter(|n| n.has_tag_name("svg")).count(),
        2
    );
}

#[test]
fn an_empty_store_and_a_range_without_data_give_a_sensible_page() {
    for backend in stores() {
        an_empty_store_and_a_range_without_data_give_a_sensible_page_in(&backend.store);
    }
}

fn an_empty_store_and_a_range_without_data_give_a_sensible_page_in(store: &MetricsStorage) {
    let empty = store.report(&ReportOptions::new()).unwrap();
    assert_eq!((empty.summary.tasks, empty.span), (0, None));
    let page = empty.to_html();
    parse(&page);
    assert!(page.contains("No tasks in this span."));
    assert!(page.contains("No agent has tasks in this selection."));

    store
        .store_task_metric(&TaskMetric::new("t", "a", 5, TaskResult::Success))
        .unwrap();
    let long_ago = TimeRange::new(
        "2020-01-01T00:00:00Z".parse().unwrap(),
        "2020-01-08T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    let report = store
        .report(&ReportOptions::new().filter(Filter::new().range(long_ago)))
        .unwrap();
    assert_eq!(report.summary.tasks, 0);
    assert_eq!(report.span, Some(long_ago));
    let page = report.to_html();
    parse(&page);
    assert!(page.contains("No tasks in this span."));
    // A whole-history range without data is not charted bucket by bucket.
    let forever = TimeRange::new(
        DateTime::<Utc>::MIN_UTC,
        "2020-01-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    let report = store
        .report(&ReportOptions::new().filter(Filter::new().range(forever)))
        .unwrap();
    assert_eq!(report.span, None);
    parse(&report.to_html());
}

#[test]
fn one_agent_a_thousand_agents_and_a_narrow_window() {
    for backend in stores() {
        one_agent_a_thousand_agents_and_a_narrow_window_in(&backend.store);
    }
}

fn one_agent_a_thousand_agents_and_a_narrow_window_in(store: &MetricsStorage) {
    let now = swarm_metrics::now();
    let tasks: Vec<_> = (0..3_000u64)
        .map(|i| {
            TaskMetric::new(
                format!("t{i}"),
                format!("agent-{}", i % 1_000),
                50 + i % 97,
                TaskResult::ALL[(i % 7 % 4) as usize],
            )
            .swarm(format!("swarm-{}", i % 40))
            .at(now - Duration::seconds(i as i64))
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    let report = store.report(&ReportOptions::new()).unwrap();
    assert_eq!(report.agents.len(), 25);
    assert_eq!(report.other_agents.unwrap().agents, 975);
    // All tasks and the 6 busiest swarms are charted; 34 are not.
    assert_eq!(report.rates.len(), 7);
    assert_eq!(report.swarms_not_charted, 34);
    check_page(store, &report);

    // One agent.
    let one = store
        .report(&ReportOptions::new().filter(Filter::new().agent("agent-3")))
        .unwrap();
    assert_eq!(one.agents.len(), 1);
    assert!(one.other_agents.is_none());
    check_page(store, &one);

    // Ten minutes: buckets of seconds.
    let narrow = TimeRange::new(now - Duration::minutes(10), now).unwrap();
    let report = store
        .report(&ReportOptions::new().filter(Filter::new().range(narrow)))
        .unwrap();
    assert!(report.width_seconds <= 15, "{}", report.width_seconds);
    assert_eq!(report.summary.tasks, 601);
    check_page(store, &report);
}

#[test]
fn options_that_make_no_report_are_refused() {
    for backend in stores() {
        options_that_make_no_report_are_refused_in(&backend.store);
    }
}

fn options_that_make_no_report_are_refused_in(store: &MetricsStorage) {
    for options in [
        ReportOptions::new().filter(Filter::new().task("t-1")),
        ReportOptions::new().top_agents(0),
        ReportOptions::new().alpha(1.0),
        ReportOptions::new().width(Duration::milliseconds(10)),
        ReportOptions::new().windows(Duration::zero(), Duration::days(1)),
    ] {
        let err = store.report(&options).unwrap_err();
        assert!(err.is_invalid_input(), "{options:?}: {err}");
    }
}

#[test]
fn write_html_replaces_the_file_whole() {
    for backend in stores() {
        write_html_replaces_the_file_whole_in(&backend.store);
    }
}

fn write_html_replaces_the_file_whole_in(store: &MetricsStorage) {
    store
        .store_task_metric(&TaskMetric::new("t", "a", 5, TaskResult::Success))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, "old").unwrap();
    let report = store.report(&ReportOptions::new()).unwrap();
    report.write_html(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), report.to_html());
    // Nothing else is left in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let missing = dir.path().join("no/such/folder/report.html");
    let err = report.write_html(&missing).unwrap_err();
    assert!(err.to_string().contains("no/such/folder"), "{err}");
}
