//! Python values in and out: instants, time ranges, JSON-shaped values and
//! the store's closed enums, each refused with an `InvalidInput` that
//! names the argument when it is of the wrong type.

use chrono::{DateTime, Duration, Utc};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDateTime, PyDelta, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use swarm_metrics::TimeRange;

use crate::errors::{invalid, store_error};

/// How deep a JSON value may nest: deeper input is refused rather than
/// exhausting the stack.
const MAX_DEPTH: usize = 64;

/// The keys of answers whose string values are instants, and so come out
/// as aware `datetime`s.
const INSTANT_KEYS: &[&str] = &[
    "timestamp",
    "start",
    "end",
    "oldest",
    "newest",
    "oldest_rollup",
    "at",
    "active_since",
    "cleared_at",
    "evaluated_at",
    "generated_at",
];

/// Python's `datetime.timezone.utc`, looked up once.
fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    UTC.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("datetime")?
                .getattr("timezone")?
                .getattr("utc")?
                .unbind(),
        )
    })
    .map(|utc| utc.bind(py))
}

/// The Python type's name, for messages.
pub fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// An instant from a `datetime`: aware ones as they say, naive ones in
/// local time (as Python's own `astimezone` reads them, and as the
/// reference module stored them).
pub fn instant(field: &'static str, value: &Bound<'_, PyAny>) -> PyResult<DateTime<Utc>> {
    if !value.is_instance_of::<PyDateTime>() {
        return Err(invalid(
            field,
            format!("must be a datetime, not {}", type_name(value)),
        ));
    }
    let in_utc = value
        .call_method1("astimezone", (utc(value.py())?,))
        .map_err(|e| invalid(field, format!("cannot be placed in time: {e}")))?;
    in_utc
        .extract::<DateTime<Utc>>()
        .map_err(|e| invalid(field, e.to_string()))
}

/// An optional instant: `None` stays `None`.
pub fn optional_instant(
    field: &'static str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<DateTime<Utc>>> {
    match value {
        Some(v) if !v.is_none() => instant(field, v).map(Some),
        _ => Ok(None),
    }
}

/// A time range: a `(start, end)` pair of datetimes (both included), or a
/// `timedelta` meaning the last span up to now; `None` for no range.
pub fn time_range(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<TimeRange>> {
    const FIELD: &str = "time_range";
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if value.is_instance_of::<PyDelta>() {
        let span = value
            .extract::<Duration>()
            .map_err(|e| invalid(FIELD, e.to_string()))?;
        return TimeRange::last(span).map(Some).map_err(store_error);
    }
    let pair = value
        .cast::<PyTuple>()
        .map(|t| t.as_any().clone())
        .or_else(|_| value.cast::<PyList>().map(|l| l.as_any().clone()))
        .map_err(|_| {
            invalid(
                FIELD,
                format!(
                    "must be a (start, end) pair of datetimes or a timedelta, not {}",
                    type_name(value)
                ),
            )
        })?;
    if pair.len()? != 2 {
        return Err(invalid(
            FIELD,
            format!("must hold two datetimes, not {}", pair.len()?),
        ));
    }
    let start = instant(FIELD, &pair.get_item(0)?)?;
    let end = instant(FIELD, &pair.get_item(1)?)?;
    TimeRange::new(start, end).map(Some).map_err(store_error)
}

/// A span of time from a `timedelta`.
pub fn span(field: &'static str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    if !value.is_instance_of::<PyDelta>() {
        return Err(invalid(
            field,
            format!("must be a timedelta, not {}", type_name(value)),
        ));
    }
    value
        .extract::<Duration>()
        .map_err(|e| invalid(field, e.to_string()))
}

/// Refuses a dict with a key outside `known`, naming the first such key
/// (`what` is how the message calls a key: "field" or "key").
pub fn refuse_unknown_keys(
    field: &'static str,
    dict: &Bound<'_, PyDict>,
    known: &[&str],
    what: &str,
) -> PyResult<()> {
    for key in dict.keys() {
        let is_known = match key.cast::<PyString>() {
            Ok(k) => known.contains(&&*k.to_cow()?),
            Err(_) => false,
        };
        if !is_known {
            return Err(invalid(
                field,
                format!(
                    "unknown {what} {}; expected: {}",
                    key.repr()?,
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A string argument (a `str` enum member counts as its value).
pub fn string(field: &'static str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    value
        .cast::<PyString>()
        .map_err(|_| invalid(field, format!("must be a str, not {}", type_name(value))))?
        .to_cow()
        .map(|s| s.into_owned())
}

/// An optional string argument.
pub fn optional_string(
    field: &'static str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<String>> {
    match value {
        Some(v) if !v.is_none() => string(field, v).map(Some),
        _ => Ok(None),
    }
}

/// One of the store's closed enums from its string (or `str` enum
/// member), with the store's message for an unknown value.
pub fn enumerated<T: std::str::FromStr<Err = swarm_metrics::Error>>(
    field: &'static str,
    value: &Bound<'_, PyAny>,
) -> PyResult<T> {
    string(field, value)?.parse::<T>().map_err(store_error)
}

/// An optional closed enum.
pub fn optional_enumerated<T: std::str::FromStr<Err = swarm_metrics::Error>>(
    field: &'static str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<T>> {
    match value {
        Some(v) if !v.is_none() => enumerated(field, v).map(Some),
        _ => Ok(None),
    }
}

/// One of the snake_case option enums (grouping, measure, ranking …),
/// read with its serde names; an unknown value lists the known ones.
pub fn option<T: DeserializeOwned>(
    field: &'static str,
    value: &Bound<'_, PyAny>,
    known: &str,
) -> PyResult<T> {
    let text = string(field, value)?;
    serde_json::from_value(Value::String(text.clone())).map_err(|_| {
        invalid(
            field,
            format!("unknown value {text:?}; expected one of: {known}"),
        )
    })
}

/// A count that defaults to `default` when missing or `None`.
pub fn count_or(
    field: &'static str,
    value: Option<&Bound<'_, PyAny>>,
    default: u64,
) -> PyResult<u64> {
    match value {
        Some(v) if !v.is_none() => count(field, v),
        _ => Ok(default),
    }
}

/// How many rows to return, at least 1 (`default` when missing).
pub fn limit_named(
    field: &'static str,
    value: Option<&Bound<'_, PyAny>>,
    default: u64,
) -> PyResult<usize> {
    let n = count_or(field, value, default)?;
    if n == 0 {
        return Err(invalid(field, "must be at least 1"));
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The `limit` of a read (`default` when missing).
pub fn limit(value: Option<&Bound<'_, PyAny>>, default: u64) -> PyResult<usize> {
    limit_named("limit", value, default)
}

/// An option enum that defaults to `default` when missing or `None`.
pub fn option_or<T: DeserializeOwned>(
    field: &'static str,
    value: Option<&Bound<'_, PyAny>>,
    known: &str,
    default: T,
) -> PyResult<T> {
    match value {
        Some(v) if !v.is_none() => option(field, v, known),
        _ => Ok(default),
    }
}

/// A whole number that is not negative (`bool` refused: `True` is not a
/// count).
pub fn count(field: &'static str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(invalid(
            field,
            format!("must be an int, not {}", type_name(value)),
        ));
    }
    value.extract::<u64>().map_err(|_| {
        let shown = value
            .repr()
            .map_or_else(|_| "?".to_owned(), |r| r.to_string());
        if value.lt(0).unwrap_or(false) {
            invalid(field, format!("must not be negative, got {shown}"))
        } else {
            invalid(field, format!("is too large: {shown}"))
        }
    })
}

/// A real number (`int` or `float`; `bool` refused).
pub fn real(field: &'static str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    if value.is_instance_of::<PyBool>()
        || !(value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>())
    {
        return Err(invalid(
            field,
            format!("must be a number, not {}", type_name(value)),
        ));
    }
    value
        .extract::<f64>()
        .map_err(|e| invalid(field, e.to_string()))
}

/// A JSON value from plain Python data: dicts with string keys, lists and
/// tuples, strings, ints, floats, bools and `None`; a `datetime` becomes
/// its RFC 3339 text in UTC.
pub fn to_json(field: &'static str, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(field, value, 0)
}

fn to_json_at(field: &'static str, value: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            field,
            format!("nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = value.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(invalid(field, "holds an int beyond 64 bits"));
    }
    if value.is_instance_of::<PyFloat>() {
        let f = value.extract::<f64>()?;
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| invalid(field, format!("holds {f}, which JSON cannot represent")));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if value.is_instance_of::<PyDateTime>() {
        return Ok(Value::String(
            instant(field, value)?.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = Map::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                invalid(
                    field,
                    format!("has a key of type {}; JSON keys are str", type_name(&k)),
                )
            })?;
            map.insert(
                key.to_cow()?.into_owned(),
                to_json_at(field, &v, depth + 1)?,
            );
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list
            .iter()
            .map(|v| to_json_at(field, &v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return tuple
            .iter()
            .map(|v| to_json_at(field, &v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    Err(invalid(
        field,
        format!("holds a {}, which is not JSON data", type_name(value)),
    ))
}

/// Plain Python data from a JSON value; strings under the keys of
/// instants become aware `datetime`s.
pub fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    from_json_keyed(py, value, false)
}

fn from_json_keyed<'py>(
    py: Python<'py>,
    value: &Value,
    instant_key: bool,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => match instant_key
            .then(|| DateTime::parse_from_rfc3339(s).ok())
            .flatten()
        {
            Some(at) => at.with_timezone(&Utc).into_pyobject(py)?.into_any(),
            None => PyString::new(py, s).into_any(),
        },
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_json_keyed(py, item, false)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                let is_instant = INSTANT_KEYS.contains(&k.as_str());
                dict.set_item(k, from_json_keyed(py, v, is_instant)?)?;
            }
            dict.into_any()
        }
    })
}

/// Any serializable answer of the store as plain Python data.
pub fn answer<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| crate::errors::Error::new_err(format!("cannot convert the answer: {e}")))?;
    from_json(py, &json)
}
