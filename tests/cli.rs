//! The `swarm-metrics` command line, run as scripts run it.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn cli(db: &Path) -> Command {
    let mut cmd = Command::cargo_bin("swarm-metrics").unwrap();
    cmd.arg("--db").arg(db);
    cmd
}

/// Runs and returns (exit code, stdout, stderr).
fn run(db: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = cli(db);
    cmd.args(args);
    if let Some(input) = stdin {
        cmd.write_stdin(input);
    }
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const SAMPLE: &str = r#"{"kind": "task", "task_id": "t1", "agent_id": "a1", "swarm_id": "s1", "duration_ms": 1000, "result": "success", "tokens_used": 10, "files_changed": 1, "timestamp": "2025-06-01T10:00:00Z"}
{"kind": "task", "task_id": "t2", "agent_id": "a1", "swarm_id": "s1", "duration_ms": 3000, "result": "failure", "timestamp": "2025-06-01T10:30:00.123456Z"}
{"kind": "task", "task_id": "t3", "agent_id": "a2", "duration_ms": 2000, "result": "timeout", "timestamp": "2025-06-01T11:00:00+02:00"}

{"kind": "agent", "agent_id": "a1", "metric_type": "agent_success_rate", "value": 0.5, "metadata": {"note": "with, \"quotes\"\nand lines"}, "timestamp": "2025-06-01T10:45:00Z"}
{"kind": "swarm", "swarm_id": "s1", "metric_type": "swarm_health", "value": 0.25, "timestamp": "2025-06-01T10:50:00Z"}
"#;

/// The JSON report of an import that stored `new` and found `old` already
/// stored, each as (tasks, agent metrics, swarm metrics).
fn import_report(new: [u64; 3], old: [u64; 3], rejected: u64) -> Value {
    let kind = |i: usize| serde_json::json!({"stored": new[i], "duplicates": old[i]});
    serde_json::json!({
        "imported": new.iter().sum::<u64>(),
        "duplicates": old.iter().sum::<u64>(),
        "rejected": rejected,
        "tasks": kind(0),
        "agent_metrics": kind(1),
        "swarm_metrics": kind(2),
    })
}

fn imported() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let (code, out, err) = run(&db, &["--json", "import", "-"], Some(SAMPLE));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_of(&out), import_report([3, 1, 1], [0; 3], 0));
    (dir, db)
}

#[test]
fn jsonl_export_import_export_round_trips_byte_for_byte() {
    let (dir, db) = imported();
    let (code, first, _) = run(&db, &["export", "--format", "jsonl"], None);
    assert_eq!(code, 0);
    assert_eq!(first.lines().count(), 5);
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &first).unwrap();

    let fresh = dir.path().join("fresh.db");
    let (code, _, err) = run(&fresh, &["import", file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let (_, second, _) = run(&fresh, &["export", "--format", "jsonl"], None);
    assert_eq!(first, second);

    // Importing the same file again stores nothing new, of any kind.
    let (_, out, _) = run(&fresh, &["--json", "import", file.to_str().unwrap()], None);
    assert_eq!(json_of(&out), import_report([0; 3], [3, 1, 1], 0));
    let (_, third, _) = run(&fresh, &["export", "--format", "jsonl"], None);
    assert_eq!(first, third);
}

#[test]
fn a_bad_line_aborts_the_whole_import_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let input = format!("{SAMPLE}{{\"kind\": \"task\", \"task_id\": \"t9\"}}\nnot json\n");
    let (code, _, err) = run(&db, &["import", "-"], Some(&input));
    assert_eq!(code, 2);
    assert!(
        err.contains("line 7: invalid agent_id: is missing"),
        "{err}"
    );
    assert!(err.contains("line 8: not JSON"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let (_, out, _) = run(&db, &["--json", "stats"], None);
    assert_eq!(json_of(&out)["task_metrics"]["rows"], 0);

    let (code, out, _) = run(
        &db,
        &["--json", "import", "--on-error", "skip", "-"],
        Some(&input),
    );
    assert_eq!(code, 0);
    assert_eq!(json_of(&out), import_report([3, 1, 1], [0; 3], 2));
}

#[test]
fn questions_answer_in_the_documented_json_shapes() {
    let (_dir, db) = imported();
    let (code, out, _) = run(&db, &["--json", "aggregate", "--agg", "avg"], None);
    assert_eq!(code, 0);
    assert_eq!(
        json_of(&out),
        serde_json::json!({"aggregation": "avg", "metric_type": "task_duration", "value": 2000.0, "count": 3})
    );
    let (_, out, _) = run(
        &db,
        &["--json", "aggregate", "--agg", "max", "--agent", "nobody"],
        None,
    );
    assert_eq!(json_of(&out)["value"], Value::Null);
    assert_eq!(json_of(&out)["count"], 0);
    let (_, out, _) = run(
        &db,
        &["--json", "aggregate", "--agg", "p50", "--by", "agent"],
        None,
    );
    let groups = json_of(&out);
    assert_eq!(groups[0]["id"], "a1");
    assert_eq!(groups[0]["value"], 2000.0);

    let (_, out, _) = run(&db, &["--json", "success-rate"], None);
    // The interval is the library's 95% Wilson one (checked against scipy
    // in its own tests), in the documented shape.
    let ci =
        swarm_metrics::Interval::for_proportion(1, 3, 0.95, swarm_metrics::IntervalMethod::Wilson)
            .unwrap()
            .unwrap();
    assert_eq!(
        json_of(&out),
        serde_json::json!({
            "rate": 1.0 / 3.0, "success": 1, "failure": 1, "timeout": 1, "cancelled": 0, "total": 3,
            "interval": {"low": ci.low, "high": ci.high, "confidence": 0.95, "method": "wilson"},
        })
    );
    // Another confidence and method on request.
    let (_, out, _) = run(
        &db,
        &[
            "--json",
            "success-rate",
            "--confidence",
            "0.99",
            "--interval",
            "clopper-pearson",
        ],
        None,
    );
    let exact = swarm_metrics::Interval::for_proportion(
        1,
        3,
        0.99,
        swarm_metrics::IntervalMethod::ClopperPearson,
    )
    .unwrap();
    assert_eq!(
        json_of(&out)["interval"],
        serde_json::to_value(exact).unwrap()
    );
    let (code, _, err) = run(&db, &["success-rate", "--confidence", "1"], None);
    assert_eq!(code, 2, "{err}");
    let (_, out, _) = run(&db, &["--json", "success-rate", "--by", "swarm"], None);
    let by_swarm = json_of(&out);
    assert_eq!(by_swarm[0]["id"], "s1");
    assert_eq!(by_swarm[0]["total"], 2);
    assert_eq!(by_swarm[1]["id"], Value::Null);

    let (_, out, _) = run(
        &db,
        &[
            "--json",
            "query",
            "--kind",
            "agent",
            "--from",
            "2025-06-01T00:00:00Z",
            "--to",
            "2025-06-02T00:00:00Z",
        ],
        None,
    );
    assert_eq!(
        json_of(&out)[0]["metadata"]["note"],
        "with, \"quotes\"\nand lines"
    );

    for args in [
        &["--json", "summary", "--swarm", "s1"][..],
        &["--json", "top", "--by", "avg-duration", "-n", "1"],
        &["--json", "slowest", "-n", "2"],
        &["--json", "outliers"],
        &[
            "--json",
            "series",
            "--measure",
            "success-rate",
            "--width",
            "1h",
            "--fill",
        ],
        &["--json", "stats"],
    ] {
        let (code, out, err) = run(&db, args, None);
        assert_eq!(code, 0, "{args:?}: {err}");
        json_of(&out);
    }
    let (_, out, _) = run(&db, &["--json", "summary", "--swarm", "s1"], None);
    assert_eq!(json_of(&out)["tasks"], 2);
    let (_, out, _) = run(&db, &["--json", "slowest", "-n", "1"], None);
    assert_eq!(json_of(&out)[0]["task_id"], "t2");
    // Human-readable tables too.
    let (code, out, _) = run(&db, &["success-rate", "--by", "agent"], None);
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("id"), "{out}");
    // a1: 1 success of 2, 9.5%–90.5%.
    let a1 = out.lines().find(|l| l.starts_with("a1")).unwrap();
    let ci =
        swarm_metrics::Interval::for_proportion(1, 2, 0.95, swarm_metrics::IntervalMethod::Wilson)
            .unwrap()
            .unwrap();
    let cell = format!(
        "50.0% (1/2, 95% CI {:.1}%–{:.1}%)",
        100.0 * ci.low,
        100.0 * ci.high
    );
    assert!(a1.contains(&cell), "{a1} lacks {cell}");
}

#[test]
fn csv_and_prometheus_exports_are_well_formed() {
    let (_dir, db) = imported();
    let (_, csv, _) = run(&db, &["export", "--format", "csv"], None);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "kind,timestamp,task_id,agent_id,swarm_id,duration_ms,result,tokens_used,files_changed,metric_type,value,metadata,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,model,provider,cost_usd,trace_id,span_id"
    );
    assert!(
        csv.contains("\"{\"\"note\"\":\"\"with, \\\"\"quotes\\\"\"\\nand lines\"\"}\""),
        "{csv}"
    );

    let (_, text, _) = run(&db, &["export", "--format", "prometheus"], None);
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok() || value == "NaN", "{line}");
        let metric = name.split('{').next().unwrap();
        let family = metric.trim_end_matches("_sum").trim_end_matches("_count");
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        assert!(
            name.ends_with('}') && name.matches('"').count() % 2 == 0,
            "{line}"
        );
    }
    assert!(text.contains("swarm_tasks{agent=\"a1\",swarm=\"s1\",result=\"failure\"} 1"));
    assert!(
        text.contains("swarm_task_duration_milliseconds{agent=\"a2\",swarm=\"\",quantile=\"0.5\"}")
    );
    // What can fall (cleanup and retention remove rows) is no counter.
    assert!(!text.contains(" counter"), "{text}");
    assert!(!text.contains("_total"), "{text}");
    assert!(text.contains("swarm_swarm_metric{swarm=\"s1\",metric_type=\"swarm_health\"} 0.25"));
    // No task has a cost: none is counted as zero without saying so.
    assert!(text.contains("swarm_cost_usd{agent=\"a1\",swarm=\"s1\",model=\"\"} 0"));
    assert!(text.contains("swarm_tasks_unpriced{agent=\"a1\",swarm=\"s1\",model=\"\"} 2"));
}

#[test]
fn cleanup_reports_per_table_and_dry_run_deletes_nothing() {
    let (_dir, db) = imported();
    let (code, out, _) = run(
        &db,
        &["--json", "cleanup", "--retention-days", "1", "--dry-run"],
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(
        json_of(&out),
        serde_json::json!({"task_metrics": 3, "agent_metrics": 1, "swarm_metrics": 1})
    );
    let (_, out, _) = run(&db, &["--json", "stats"], None);
    assert_eq!(json_of(&out)["task_metrics"]["rows"], 3);
    let (code, out, _) = run(
        &db,
        &["--json", "cleanup", "--retention-days", "1", "--vacuum"],
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["task_metrics"], 3);
    let (_, out, _) = run(&db, &["--json", "stats"], None);
    assert_eq!(json_of(&out)["task_metrics"]["rows"], 0);
    let (code, out, _) = run(&db, &["--json", "vacuum"], None);
    assert_eq!(code, 0);
    assert!(json_of(&out)["bytes_after"].as_u64().unwrap() > 0);
}

#[test]
fn exit_codes_tell_bad_usage_from_operational_failure() {
    let (dir, db) = imported();
    for args in [
        &["cleanup", "--retention-days", "0"][..],
        &["query", "--since", "yesterday"],
        &["query", "--result", "ok"],
        &["query", "--limit", "0"],
        &["aggregate", "--agg", "median"],
        &["query", "--kind", "agent", "--task", "t1"],
        &["no-such-command"],
        &[
            "query",
            "--from",
            "2025-06-02T00:00:00Z",
            "--to",
            "2025-06-01T00:00:00Z",
        ],
    ] {
        let (code, _, err) = run(&db, args, None);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.is_empty());
    }
    let missing = dir.path().join("missing.db");
    let (code, _, err) = run(&missing, &["query"], None);
    assert_eq!(code, 1);
    assert!(err.contains("no such database"), "{err}");
    assert!(!missing.exists(), "a query must not create a database");

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database at all, just some text\n".repeat(100)).unwrap();
    let (code, out, _) = run(&junk, &["check"], None);
    assert_eq!(code, 1);
    assert!(out.contains("damaged"), "{out}");

    let (code, out, _) = run(&db, &["--json", "check"], None);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["ok"], true);
}

#[test]
fn check_finds_damage_inside_a_valid_header() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let lines: String = (0..3000)
        .map(|i| {
            format!(
                "{{\"kind\": \"task\", \"task_id\": \"t{i}\", \"agent_id\": \"a{}\", \"duration_ms\": {i}, \"result\": \"success\"}}\n",
                i % 7
            )
        })
        .collect();
    assert_eq!(run(&db, &["import", "-"], Some(&lines)).0, 0);
    // Scribble over a page in the middle of the file, keeping the header.
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    let middle = (bytes.len() / page / 2) * page;
    for b in &mut bytes[middle + 8..middle + page] {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let (code, out, err) = run(&db, &["check"], None);
    assert_eq!(code, 1, "{out}{err}");
}

/// Whether this process runs as root, for whom file permissions do not
/// apply: permission tests then run the command line as `nobody`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs the command line (a copy in `bin`, which any user can run) as an
/// unprivileged user.
fn run_unprivileged(
    bin: &Path,
    db: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut cmd = if is_root() {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        cmd
    } else {
        std::process::Command::new(bin)
    };
    cmd.arg("--db").arg(db).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run the command line");
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().unwrap();
        // A command that fails early exits without reading its input.
        if let Err(e) = input.write_all(stdin.unwrap_or("").as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn unwritable_files_and_folders_refuse_writes_but_allow_reads() {
    use std::os::unix::fs::PermissionsExt;
    let set_mode = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let (dir, db) = imported();
    set_mode(dir.path(), 0o755);
    // The build folder may be closed to other users: run a copy.
    let bin_dir = tempfile::tempdir().unwrap();
    set_mode(bin_dir.path(), 0o755);
    let bin = bin_dir.path().join("swarm-metrics");
    std::fs::copy(env!("CARGO_BIN_EXE_swarm-metrics"), &bin).unwrap();
    set_mode(&bin, 0o755);
    // A read-only database file in a read-only folder.
    let before = std::fs::read(&db).unwrap();
    set_mode(&db, 0o444);
    set_mode(dir.path(), 0o555);
    let line =
        r#"{"kind":"task","task_id":"new","agent_id":"a","duration_ms":1,"result":"success"}"#;
    let (code, _, err) = run_unprivileged(&bin, &db, &["import", "-"], Some(line));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("read-only") && err.contains("m.db"), "{err}");
    let (code, out, err) = run_unprivileged(&bin, &db, &["--json", "query"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json_of(&out).as_array().unwrap().len(),
        3,
        "reads still work"
    );
    let (code, _, err) = run_unprivileged(&bin, &db, &["cleanup", "--retention-days", "1"], None);
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was changed");

    // A new database in a folder that cannot be written.
    let new_db = dir.path().join("new.db");
    let (code, _, err) = run_unprivileged(&bin, &new_db, &["import", "-"], Some(line));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("new.db"), "{err}");
    assert!(!new_db.exists());
    set_mode(dir.path(), 0o755);
    set_mode(&db, 0o644);
}

#[test]
fn tiered_cleanup_keeps_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let old = (chrono::Utc::now() - chrono::Duration::days(20)).to_rfc3339();
    let lines: String = (0..50)
        .map(|i| {
            format!(
                "{{\"kind\":\"task\",\"task_id\":\"t{i}\",\"agent_id\":\"a\",\"duration_ms\":{},\"result\":\"{}\",\"timestamp\":\"{old}\"}}\n",
                100 + i,
                if i % 5 == 0 { "failure" } else { "success" }
            )
        })
        .collect();
    assert_eq!(run(&db, &["import", "-"], Some(&lines)).0, 0);
    let (_, before, _) = run(&db, &["--json", "success-rate"], None);
    let (code, out, err) = run(
        &db,
        &["--json", "cleanup", "--policy", "7d,90d,2y", "--vacuum"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_of(&out)["raw_folded"], 50);
    let (_, after, _) = run(&db, &["--json", "success-rate"], None);
    assert_eq!(json_of(&before), json_of(&after));
    let (_, out, _) = run(&db, &["--json", "stats"], None);
    assert_eq!(
        json_of(&out)["task_metrics"]["rows"],
        0,
        "the raw rows are gone"
    );

    for bad in ["7d,90d", "90d,7d,2y", "7d,90d,2x"] {
        let (code, _, err) = run(&db, &["cleanup", "--policy", bad], None);
        assert_eq!(code, 2, "{bad}: {err}");
    }
    let (code, _, _) = run(&db, &["cleanup"], None);
    assert_eq!(code, 2, "cleanup needs --retention-days or --policy");
    let (code, out, _) = run(&db, &["--json", "vacuum", "--incremental", "100"], None);
    assert_eq!(code, 0);
    let report = json_of(&out);
    assert!(report["bytes_after"].as_u64() <= report["bytes_before"].as_u64());
}

/// A FIFO given as the database is refused at once, not read forever.
#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("metrics.db");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for command in ["stats", "check"] {
        let output = cli(&fifo)
            .arg(command)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        // `check` reports on stdout, the others on stderr.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(1), "{command}: {said}");
        assert!(said.contains("not a regular file"), "{command}: {said}");
    }
}

/// A span reaching before the earliest date is a usage error, not a
/// panic.
#[test]
fn huge_spans_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    swarm_metrics::MetricsStorage::open(&db)
        .unwrap()
        .close()
        .unwrap();
    for since in ["100000000d", "9999999999w", "99999999999y"] {
        let (code, _, err) = run(&db, &["query", "--since", since], None);
        assert_eq!(code, 2, "{since}: {err}");
    }
}

/// A line that is not UTF-8 is skipped with its number in skip mode, and
/// the rest is imported.
#[test]
fn a_line_that_is_not_utf8_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let file = dir.path().join("in.jsonl");
    let good = |i: usize| {
        format!(
            "{{\"kind\":\"task\",\"task_id\":\"t{i}\",\"agent_id\":\"a\",\"duration_ms\":1,\"result\":\"success\",\"timestamp\":\"2025-01-01T00:00:00Z\"}}\n"
        )
    };
    let mut bytes = Vec::new();
    for i in 0..6_000 {
        if i == 5_500 {
            bytes.extend(b"{\"kind\":\"task\",\"task_id\":\"\xff\xfe\"}\n");
        } else {
            bytes.extend(good(i).into_bytes());
        }
    }
    std::fs::write(&file, bytes).unwrap();
    let output = cli(&db)
        .args(["--json", "import", "--on-error", "skip"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 5501"), "{stderr}");
    assert!(stderr.contains("UTF-8"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["imported"], 5_999, "{report}");
    assert_eq!(report["rejected"], 1);
}

/// Carriage returns, which Prometheus's text format cannot escape, are
/// left out of label values; other characters are escaped.
#[test]
fn prometheus_labels_carry_no_carriage_return() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let store = swarm_metrics::MetricsStorage::open(&db).unwrap();
    store
        .store_task_metric(&swarm_metrics::TaskMetric::new(
            "t",
            "agent\r\n\"x\"\\",
            5,
            swarm_metrics::TaskResult::Success,
        ))
        .unwrap();
    store.close().unwrap();
    let (code, text, _) = run(&db, &["export", "--format", "prometheus"], None);
    assert_eq!(code, 0);
    assert!(!text.contains('\r'), "{text:?}");
    assert!(
        text.contains(
            "swarm_tasks{agent=\"agent\\n\\\"x\\\"\\\\\",swarm=\"\",result=\"success\"} 1"
        ),
        "{text}"
    );
}

/// Counts of (tasks, agent metrics, swarm metrics) in a store.
fn counts_by_kind(db: &Path) -> [u64; 3] {
    use swarm_metrics::{AggregationType, Filter, MetricKind};
    let store = swarm_metrics::MetricsStorage::open(db).unwrap();
    let count = |kind| {
        store
            .aggregate_metrics(kind, AggregationType::Count, &Filter::new())
            .unwrap()
            .count
    };
    [
        count(MetricKind::Task),
        count(MetricKind::Agent),
        count(MetricKind::Swarm),
    ]
}

/// Writes an import file of `per_kind` records of each kind, interleaved.
fn import_file(path: &Path, per_kind: [u64; 3]) {
    use std::fmt::Write as _;
    let mut text = String::new();
    let most = per_kind.iter().copied().max().unwrap_or(0);
    for i in 0..most {
        let at = format!(
            "2025-06-01T{:02}:{:02}:{:02}.{:06}Z",
            i / 3600 % 24,
            i / 60 % 60,
            i % 60,
            i
        );
        if i < per_kind[0] {
            writeln!(text, "{{\"kind\":\"task\",\"task_id\":\"t{i}\",\"agent_id\":\"a{}\",\"duration_ms\":{i},\"result\":\"success\",\"timestamp\":\"{at}\"}}", i % 7).unwrap();
        }
        if i < per_kind[1] {
            writeln!(text, "{{\"kind\":\"agent\",\"agent_id\":\"a{}\",\"metric_type\":\"agent_throughput\",\"value\":{i},\"timestamp\":\"{at}\"}}", i % 7).unwrap();
        }
        if i < per_kind[2] {
            writeln!(text, "{{\"kind\":\"swarm\",\"swarm_id\":\"s{}\",\"metric_type\":\"swarm_health\",\"value\":0.5,\"timestamp\":\"{at}\"}}", i % 3).unwrap();
        }
    }
    std::fs::write(path, text).unwrap();
}

/// Starts `import` of `file` into `db`, kills it with SIGKILL after
/// `after`, and says whether it was still running then.
fn kill_import(db: &Path, file: &Path, on_error: &str, after: std::time::Duration) -> bool {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("swarm-metrics"))
        .arg("--db")
        .arg(db)
        .args(["import", "--on-error", on_error])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    running
}

/// An import killed at any moment and run again leaves every record of
/// every kind exactly once. In abort mode a killed import stored all of
/// the file or none of it; in skip mode it stored some chunks, and the
/// re-run stores the rest. Running a finished import again adds nothing.
#[test]
fn a_killed_import_run_again_stores_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    let all = [30_000, 15_000, 6_000];
    import_file(&file, all);

    // How long a whole import takes here, to kill the others part way.
    let timed = dir.path().join("timed.db");
    let started = std::time::Instant::now();
    let (code, _, err) = run(&timed, &["import", file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let whole = started.elapsed();
    assert_eq!(counts_by_kind(&timed), all);

    let mut killed_while_running = 0;
    for (round, on_error) in ["abort", "skip", "abort", "skip", "abort", "skip"]
        .iter()
        .enumerate()
    {
        let db = dir.path().join(format!("round{round}.db"));
        let after = whole.mul_f64(0.2 + 0.12 * round as f64);
        if kill_import(&db, &file, on_error, after) {
            killed_while_running += 1;
        }
        if db.exists() {
            let left = counts_by_kind(&db);
            if *on_error == "abort" {
                assert!(
                    left == [0; 3] || left == all,
                    "round {round}: a killed import in abort mode left {left:?}"
                );
            }
            assert!(left.iter().zip(all).all(|(n, most)| *n <= most), "{left:?}");
        }
        let (code, out, err) = run(
            &db,
            &[
                "--json",
                "import",
                "--on-error",
                on_error,
                file.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code, 0, "round {round}: {err}");
        assert_eq!(counts_by_kind(&db), all, "round {round}");
        let report = json_of(&out);
        let total: u64 = all.iter().sum();
        assert_eq!(
            report["imported"].as_u64().unwrap() + report["duplicates"].as_u64().unwrap(),
            total,
            "{report}"
        );
        // And once more, after a finished import: all duplicates.
        let (_, out, _) = run(&db, &["--json", "import", file.to_str().unwrap()], None);
        assert_eq!(json_of(&out), import_report([0; 3], all, 0));
        assert_eq!(counts_by_kind(&db), all);
    }
    assert!(
        killed_while_running >= 3,
        "only {killed_while_running} of 6 imports were killed while running"
    );
}

/// `compare` answers what the library's `compare` answers for the same two
/// selections, whether they differ by agent or by time window.
#[test]
fn compare_answers_as_the_library_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut lines = String::new();
    let durations_a = [10, 20, 20, 30, 40, 40, 40, 50];
    let durations_b = [20, 30, 30, 60, 70, 70, 80, 90, 100, 110];
    for (side, durations, successes, day) in
        [("a", &durations_a[..], 7, 1), ("b", &durations_b[..], 3, 3)]
    {
        for (i, d) in durations.iter().enumerate() {
            let result = if i < successes { "success" } else { "failure" };
            lines.push_str(&format!(
                "{{\"kind\":\"task\",\"task_id\":\"{side}{i}\",\"agent_id\":\"agent-{side}\",\"duration_ms\":{d},\"result\":\"{result}\",\"timestamp\":\"2025-06-0{day}T10:00:00Z\"}}\n"
            ));
        }
    }
    assert_eq!(run(&db, &["import", "-"], Some(&lines)).0, 0);
    let store = swarm_metrics::MetricsStorage::builder(&db)
        .read_only(true)
        .open()
        .unwrap();
    let day = |d: u32| {
        let start = chrono::NaiveDate::from_ymd_opt(2025, 6, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        swarm_metrics::TimeRange::new(start, start + chrono::Duration::hours(24)).unwrap()
    };
    let cases: [(&[&str], swarm_metrics::Filter, swarm_metrics::Filter); 2] = [
        (
            &["--agent", "agent-a", "--with-agent", "agent-b"],
            swarm_metrics::Filter::new().agent("agent-a"),
            swarm_metrics::Filter::new().agent("agent-b"),
        ),
        (
            &[
                "--from",
                "2025-06-01T00:00:00Z",
                "--to",
                "2025-06-02T00:00:00Z",
                "--with-from",
                "2025-06-03T00:00:00Z",
                "--with-to",
                "2025-06-04T00:00:00Z",
            ],
            swarm_metrics::Filter::new().range(day(1)),
            swarm_metrics::Filter::new().range(day(3)),
        ),
    ];
    for (args, a, b) in cases {
        let mut command = vec!["--json", "compare"];
        command.extend_from_slice(args);
        let (code, out, err) = run(&db, &command, None);
        assert_eq!(code, 0, "{err}");
        let expected = serde_json::to_value(store.compare(&a, &b).unwrap()).unwrap();
        assert_eq!(json_of(&out), expected, "{args:?}");
        assert_eq!(expected["rate"]["test"], "fisher_exact");
    }
    let (code, out, _) = run(
        &db,
        &["compare", "--agent", "agent-a", "--with-agent", "agent-b"],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("p = 0.0248 (Fisher's exact test)"), "{out}");
}

/// `regressions --current 24h --baseline 7d` reports what the library's
/// `regressions` reports for the same windows.
#[test]
fn regressions_answer_as_the_library_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let now = swarm_metrics::now();
    let mut lines = String::new();
    for (agent, ok_then, ok_now) in [("steady", 90, 45), ("failing", 95, 15)] {
        for i in 0..150 {
            // 100 tasks well inside the baseline window, 50 inside the current.
            let (at, ok) = if i < 100 {
                (now - chrono::Duration::hours(30 + i), i < ok_then)
            } else {
                (
                    now - chrono::Duration::minutes(20 * (i - 100) + 60),
                    i - 100 < ok_now,
                )
            };
            let result = if ok { "success" } else { "failure" };
            lines.push_str(&format!(
                "{{\"kind\":\"task\",\"task_id\":\"{agent}-{i}\",\"agent_id\":\"{agent}\",\"duration_ms\":{},\"result\":\"{result}\",\"timestamp\":\"{}\"}}\n",
                100 + i % 5,
                at.to_rfc3339()
            ));
        }
    }
    assert_eq!(run(&db, &["import", "-"], Some(&lines)).0, 0);
    let (code, out, err) = run(
        &db,
        &[
            "--json",
            "regressions",
            "--current",
            "24h",
            "--baseline",
            "7d",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let store = swarm_metrics::MetricsStorage::builder(&db)
        .read_only(true)
        .open()
        .unwrap();
    let current = swarm_metrics::TimeRange::last(chrono::Duration::hours(24)).unwrap();
    let baseline = swarm_metrics::TimeRange::new(
        current.start() - chrono::Duration::days(7),
        current.start() - chrono::Duration::microseconds(1),
    )
    .unwrap();
    let expected = store.regressions(current, baseline, 0.05).unwrap();
    assert_eq!(expected.len(), 1);
    assert_eq!(expected[0].id, "failing");
    assert_eq!(json_of(&out), serde_json::to_value(&expected).unwrap());
    let (code, text, _) = run(&db, &["regressions"], None);
    assert_eq!(code, 0);
    assert!(
        text.contains("failing") && text.contains("success rate fell"),
        "{text}"
    );
    assert!(!text.contains("steady"), "{text}");
}

#[test]
fn report_writes_the_page_and_gives_its_numbers() {
    let (dir, db) = imported();
    let page = dir.path().join("health.html");
    let page_arg = page.to_str().unwrap();
    let (code, out, err) = run(
        &db,
        &[
            "report", "--html", page_arg, "--swarm", "s1", "--title", "S1 & co",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(2 tasks, 1 agents)"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<h1>S1 &amp; co</h1>"), "{html}");
    assert!(html.contains("id=\"tasks\" data-value=\"2\""));

    // --json gives the same numbers the library gives, the page or not.
    let (code, out, err) = run(
        &db,
        &[
            "--json",
            "report",
            "--from",
            "2025-06-01T00:00:00Z",
            "--to",
            "2025-06-02T00:00:00Z",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let report = json_of(&out);
    let store = swarm_metrics::MetricsStorage::builder(&db)
        .read_only(true)
        .open()
        .unwrap();
    let summary = store.summary(&swarm_metrics::Filter::new()).unwrap();
    assert_eq!(report["summary"]["tasks"], summary.tasks);
    assert_eq!(report["summary"]["success_rate"]["success"], 1);
    assert_eq!(report["agents"].as_array().unwrap().len(), 2);
    assert_eq!(report["width_seconds"], 60);

    // Neither a page nor --json: a usage error; so is a bad width.
    let (code, _, err) = run(&db, &["report"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--html"), "{err}");
    let (code, _, err) = run(
        &db,
        &["report", "--html", page_arg, "--width", "soon"],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--width"), "{err}");
}

#[test]
fn copy_moves_a_store_and_goes_on_where_it_stopped() {
    let (dir, db) = imported();
    let target = dir.path().join("copy.db");
    let target_arg = target.to_str().unwrap();
    let source_arg = db.to_str().unwrap();
    let (code, out, err) = run(
        &db,
        &["--json", "copy", "--from", source_arg, "--to", target_arg],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let report = json_of(&out);
    assert_eq!(report["tasks"]["stored"], 3);
    assert_eq!(report["agent_metrics"]["stored"], 1);
    assert_eq!(report["swarm_metrics"]["stored"], 1);
    // The copy holds what the source holds: the same export.
    let export = |path: &Path| run(path, &["export", "--format", "jsonl"], None).1;
    let copied = export(&target);
    assert_eq!(
        copied.lines().filter(|l| l.contains("\"task\"")).count(),
        export(&db)
            .lines()
            .filter(|l| l.contains("\"task\""))
            .count()
    );
    // Again: everything is there already.
    let (code, out, _) = run(
        &db,
        &["copy", "--from", source_arg, "--to", target_arg],
        None,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("copied 0 metrics") && out.contains("(5 were there already)"),
        "{out}"
    );
    // A missing source is an operational failure, and makes no file.
    let missing = dir.path().join("missing.db");
    let (code, _, err) = run(
        &db,
        &[
            "copy",
            "--from",
            missing.to_str().unwrap(),
            "--to",
            target_arg,
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such database"), "{err}");
    assert!(!missing.exists());
}

/// A store with one failing agent and one healthy, over the hour before
/// 2026-01-01T12:00:00Z.
fn alerting() -> (tempfile::TempDir, PathBuf) {
    use swarm_metrics::chrono::{Duration, TimeZone, Utc};
    use swarm_metrics::{MetricsStorage, TaskMetric, TaskResult};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerts.db");
    let store = MetricsStorage::open(&db).unwrap();
    let end = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let tasks: Vec<TaskMetric> = (0..40)
        .flat_map(|i| {
            let at = end - Duration::minutes(59) + Duration::seconds(88 * i);
            let bad = if i % 4 == 0 {
                TaskResult::Success
            } else {
                TaskResult::Failure
            };
            [
                TaskMetric::new(format!("b{i}"), "bad", 100, bad).at(at),
                TaskMetric::new(format!("g{i}"), "good", 100, TaskResult::Success).at(at),
            ]
        })
        .collect();
    store.store_task_metrics(&tasks).unwrap();
    store.close().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"agent-success\"\nkind = \"success_rate\"\ngroup_by = \"agent\"\n\
         window = \"1h\"\nbelow = 0.85\nfor = \"5m\"\nseverity = \"page\"\n",
    )
    .unwrap();
    (dir, db)
}

#[test]
fn alerts_eval_exits_3_while_firing_and_prints_alertmanager_shaped_json() {
    let (dir, db) = alerting();
    let rules = dir.path().join("rules.toml");
    let rules = rules.to_str().unwrap();
    let eval = |at: &str| {
        run(
            &db,
            &["--json", "alerts", "eval", "--rules", rules, "--at", at],
            None,
        )
    };
    // Pending first (for = 5m): nothing fires yet.
    let (code, text, err) = eval("2026-01-01T12:00:00Z");
    assert_eq!(code, 0, "{err}");
    let alerts = json_of(&text);
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{text}");
    let alert = &alerts[0];
    assert_eq!(alert["state"], "pending");
    assert_eq!(alert["labels"]["alertname"], "agent-success");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["agent"], "bad");
    assert_eq!(alert["startsAt"], "2026-01-01T12:00:00Z");
    assert_eq!(alert["figures"]["tasks"], 40);
    assert_eq!(alert["figures"]["successes"], 10);
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("success rate 25.0% (10/40)"));
    // Five minutes on it fires: exit 3.
    let (code, text, _) = eval("2026-01-01T12:05:00Z");
    assert_eq!(code, 3, "{text}");
    assert_eq!(json_of(&text)[0]["state"], "firing");

    // The history and the list say the same.
    let (code, text, _) = run(&db, &["--json", "alerts", "list"], None);
    assert_eq!(code, 0);
    let states = json_of(&text);
    let bad = states
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["group"] == "bad")
        .unwrap();
    assert_eq!(bad["standing"]["state"], "firing");
    let (code, text, _) = run(
        &db,
        &[
            "--json",
            "alerts",
            "history",
            "--since",
            "100y",
            "--rule",
            "agent-success",
        ],
        None,
    );
    assert_eq!(code, 0);
    let moves: Vec<(String, String)> = json_of(&text)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("inactive".to_owned(), "pending".to_owned()),
            ("pending".to_owned(), "firing".to_owned())
        ]
    );
}

#[test]
fn a_bad_rule_file_is_a_usage_error_and_touches_nothing() {
    let (dir, db) = alerting();
    let rules = dir.path().join("bad.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"r\"\nkind = \"success_rate\"\nwindow = \"1h\"\n",
    )
    .unwrap();
    let (code, _, err) = run(
        &db,
        &["alerts", "eval", "--rules", rules.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"r\"") && err.contains("below"), "{err}");
    let (_, text, _) = run(&db, &["--json", "alerts", "list"], None);
    assert_eq!(json_of(&text), serde_json::json!([]));
}

#[test]
fn health_exits_1_when_a_swarm_is_stale_and_names_the_check() {
    use swarm_metrics::chrono::Duration;
    use swarm_metrics::{now, MetricsStorage, TaskMetric, TaskResult};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("health.db");
    let store = MetricsStorage::open(&db).unwrap();
    store
        .store_task_metric(
            &TaskMetric::new("t", "a", 5, TaskResult::Success)
                .swarm("s")
                .at(now() - Duration::minutes(30)),
        )
        .unwrap();
    store.close().unwrap();
    let (code, text, err) = run(&db, &["--json", "health"], None);
    assert_eq!(code, 1, "{err}");
    let health = json_of(&text);
    assert_eq!(health["healthy"], false);
    let stale = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stale:s")
        .unwrap();
    assert_eq!(stale["ok"], false);
    let (code, text, _) = run(&db, &["health", "--stale-after", "1h"], None);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("healthy") && text.contains("integrity"),
        "{text}"
    );
    // A missing store is not healthy either.
    let (code, _, _) = run(&dir.path().join("none.db"), &["health"], None);
    assert_ne!(code, 0);
}

/// The Alertmanager that scripts/test starts.
fn alertmanager_url() -> String {
    std::env::var("SWARM_METRICS_ALERTMANAGER_URL").unwrap_or_else(|_| {
        panic!(
            "SWARM_METRICS_ALERTMANAGER_URL names no Alertmanager: run scripts/test, which \
             installs and starts one"
        )
    })
}

/// The alerts Alertmanager holds as active, with the label `agent`.
fn alertmanager_agents(url: &str, alertname: &str) -> Vec<String> {
    let text = ureq::get(&format!("{url}/api/v2/alerts"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    json_of(&text)
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname)
        .map(|a| a["labels"]["agent"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_real_alertmanager_receives_a_firing_alert_and_then_its_resolution() {
    use swarm_metrics::chrono::{Duration, TimeZone, Utc};
    use swarm_metrics::{MetricsStorage, TaskMetric, TaskResult};
    let url = alertmanager_url();
    let (dir, db) = alerting();
    // A rule name of its own, so that other runs' alerts do not count.
    let name = format!("am-{}", std::process::id());
    let rules = dir.path().join("am.toml");
    std::fs::write(
        &rules,
        format!(
            "[[rule]]\nname = \"{name}\"\nkind = \"success_rate\"\ngroup_by = \"agent\"\n\
             window = \"1h\"\nbelow = 0.85\nseverity = \"page\"\n"
        ),
    )
    .unwrap();
    let eval = |at: &str| {
        run(
            &db,
            &[
                "alerts",
                "eval",
                "--rules",
                rules.to_str().unwrap(),
                "--at",
                at,
                "--alertmanager",
                &url,
            ],
            None,
        )
    };
    let (code, text, err) = eval("2026-01-01T12:00:00Z");
    assert_eq!(code, 3, "{text}{err}");
    assert_eq!(alertmanager_agents(&url, &name), ["bad"]);

    // The bad agent recovers: an hour of successes, and the alert
    // resolves; Alertmanager no longer lists it as active.
    let store = MetricsStorage::open(&db).unwrap();
    let noon = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let good: Vec<TaskMetric> = (0..40)
        .map(|i| {
            TaskMetric::new(format!("r{i}"), "bad", 100, TaskResult::Success)
                .at(noon + Duration::seconds(1 + 88 * i))
        })
        .collect();
    store.store_task_metrics(&good).unwrap();
    store.close().unwrap();
    let (code, text, err) = eval("2026-01-01T13:00:00Z");
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("resolved"), "{text}");
    assert!(alertmanager_agents(&url, &name).is_empty());
}

#[test]
fn an_unreachable_receiver_is_an_error_that_names_it_and_the_state_is_saved() {
    let (dir, db) = alerting();
    let rules = dir.path().join("rules.toml");
    // Nothing listens on port 9 of this host.
    let (code, _, err) = run(
        &db,
        &[
            "alerts",
            "eval",
            "--rules",
            rules.to_str().unwrap(),
            "--at",
            "2026-01-01T12:00:00Z",
            "--webhook",
            "http://127.0.0.1:9/hook",
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("http://127.0.0.1:9/hook"), "{err}");
    let (_, text, _) = run(&db, &["--json", "alerts", "list"], None);
    let states = json_of(&text);
    assert!(
        states
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["group"] == "bad" && s["standing"]["state"] == "pending"),
        "{text}"
    );
}

/// A receiver that takes POSTs over https (Python's `http.server` behind
/// `ssl`), writing each body to `received`; returns it and its port.
fn https_receiver(cert: &Path, key: &Path, received: &Path) -> (std::process::Child, u16) {
    const SCRIPT: &str = "
import http.server, ssl, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        open(sys.argv[3], 'wb').write(body)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(('127.0.0.1', 0), Receiver)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
";
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(cert)
        .arg(key)
        .arg(received)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("port {line:?}"));
    (child, port)
}

#[test]
fn a_webhook_over_https_is_posted_when_its_certificate_is_trusted() {
    let (dir, db) = alerting();
    let rules = dir.path().join("rules.toml");
    // A test CA, and the receiver's certificate for 127.0.0.1 signed by it.
    let path = |name: &str| dir.path().join(name);
    let (ca, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    std::fs::write(
        path("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &str| {
        let made = std::process::Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir.path())
            .output()
            .expect("openssl runs");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    };
    let new_key = "-newkey rsa:2048 -nodes -days 2";
    openssl(&format!(
        "req -x509 {new_key} -subj /CN=test-ca -keyout ca.key -out ca.pem"
    ));
    openssl(&format!(
        "req {new_key} -subj /CN=127.0.0.1 -keyout key.pem -out leaf.csr"
    ));
    openssl(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
         -extfile leaf.ext -out cert.pem",
    );
    let received = dir.path().join("received.json");
    let (mut receiver, port) = https_receiver(&cert, &key, &received);
    let url = format!("https://127.0.0.1:{port}/hook");
    let eval = |trust: Option<&Path>| {
        let mut cmd = cli(&db);
        cmd.args(["alerts", "eval", "--rules", rules.to_str().unwrap()])
            .args(["--at", "2026-01-01T12:00:00Z", "--webhook", &url]);
        if let Some(cert) = trust {
            cmd.env("SSL_CERT_FILE", cert);
        }
        let output = cmd.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // A certificate no trusted root signed: refused, naming the receiver.
    let (code, err) = eval(None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!received.exists());
    // Its CA trusted through SSL_CERT_FILE: posted.
    let (code, err) = eval(Some(&ca));
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert_eq!(code, Some(0), "{err}");
    let body: Value = json_of(&std::fs::read_to_string(&received).unwrap());
    assert_eq!(body[0]["labels"]["alertname"], "agent-success");
    assert_eq!(body[0]["labels"]["agent"], "bad");
}
