//! Which metrics an answer looks at, from Python keyword arguments or the
//! reference's `filters` dict.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::{Map, Value};
use swarm_metrics::{parse_filter, Filter};

use crate::convert::{self, type_name};
use crate::errors::{invalid, store_error};

/// The keyword arguments every answer takes to select metrics.
pub const FILTER_KEYS: [&str; 6] = [
    "task_id",
    "agent_id",
    "swarm_id",
    "result",
    "metric_type",
    "time_range",
];

/// A filter from keyword arguments (any of [`FILTER_KEYS`]); an unknown
/// keyword is refused, not ignored.
pub fn from_kwargs(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Filter> {
    match kwargs {
        Some(kwargs) => from_fields("filter", kwargs, &FILTER_KEYS),
        None => Ok(Filter::new()),
    }
}

/// A filter from the reference's `filters` dict (`task_id`, `agent_id`,
/// `swarm_id`, `result`, `metric_type`; or `None`) and its `time_range`.
pub fn from_reference(
    filters: Option<&Bound<'_, PyAny>>,
    time_range: Option<&Bound<'_, PyAny>>,
) -> PyResult<Filter> {
    let mut filter = match filters {
        Some(f) if !f.is_none() => {
            let dict = f.cast::<PyDict>().map_err(|_| {
                invalid(
                    "filters",
                    format!("must be a dict or None, not {}", type_name(f)),
                )
            })?;
            // The reference passes the time range apart.
            from_fields("filters", dict, &FILTER_KEYS[..5])?
        }
        _ => Filter::new(),
    };
    filter.time_range = convert::time_range(time_range)?;
    Ok(filter)
}

/// A filter given as a dict of the keyword arguments (for `compare`'s two
/// sides).
pub fn from_dict(field: &'static str, value: &Bound<'_, PyAny>) -> PyResult<Filter> {
    let dict = value.cast::<PyDict>().map_err(|_| {
        invalid(
            field,
            format!("must be a dict of filters, not {}", type_name(value)),
        )
    })?;
    from_kwargs(Some(dict))
}

/// The filter a dict of `known` keys (of [`FILTER_KEYS`]) describes; the
/// store's own parser checks the values, as for every other caller.
fn from_fields(
    field: &'static str,
    dict: &Bound<'_, PyDict>,
    known: &[&'static str],
) -> PyResult<Filter> {
    convert::refuse_unknown_keys(field, dict, known, "key")?;
    let mut fields = Map::new();
    let mut time_range = None;
    for (key, value) in dict.iter() {
        let key = key.cast::<PyString>()?.to_cow()?.into_owned();
        if key == "time_range" {
            time_range = convert::time_range(Some(&value))?;
        } else if !value.is_none() {
            let name = known.iter().copied().find(|k| *k == key).unwrap_or(field);
            fields.insert(key, Value::String(convert::string(name, &value)?));
        }
    }
    let mut filter = parse_filter(&Value::Object(fields)).map_err(store_error)?;
    filter.time_range = time_range;
    Ok(filter)
}
