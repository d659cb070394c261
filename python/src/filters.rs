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
    let Some(kwargs) = kwargs else {
        return Ok(Filter::new());
    };
    let mut fields = Map::new();
    let mut time_range = None;
    for (key, value) in kwargs.iter() {
        let key = key.cast::<PyString>()?.to_cow()?.into_owned();
        match key.as_str() {
            "time_range" => time_range = convert::time_range(Some(&value))?,
            "task_id" | "agent_id" | "swarm_id" | "result" | "metric_type" => {
                if !value.is_none() {
                    let field = FILTER_KEYS
                        .iter()
                        .find(|k| **k == key)
                        .copied()
                        .unwrap_or("filter");
                    fields.insert(key, Value::String(convert::string(field, &value)?));
                }
            }
            other => {
                return Err(invalid(
                    "filter",
                    format!(
                        "unknown keyword {other:?}; expected: {}",
                        FILTER_KEYS.join(", ")
                    ),
                ))
            }
        }
    }
    let mut filter = parse_filter(&Value::Object(fields)).map_err(store_error)?;
    filter.time_range = time_range;
    Ok(filter)
}

/// A filter from the reference's `filters` dict (`task_id`, `agent_id`,
/// `swarm_id`, `result`, `metric_type`; or `None`) and its `time_range`.
pub fn from_reference(
    filters: Option<&Bound<'_, PyAny>>,
    time_range: Option<&Bound<'_, PyAny>>,
) -> PyResult<Filter> {
    let filters = match filters {
        Some(f) if !f.is_none() => {
            let Ok(dict) = f.cast::<PyDict>() else {
                return Err(invalid(
                    "filters",
                    format!("must be a dict or None, not {}", type_name(f)),
                ));
            };
            let known = &FILTER_KEYS[..5];
            for key in dict.keys() {
                let name = key
                    .cast::<PyString>()
                    .ok()
                    .map(|k| k.to_cow().map(|c| c.into_owned()));
                match name.transpose()? {
                    Some(name) if known.contains(&name.as_str()) => {}
                    _ => {
                        return Err(invalid(
                            "filters",
                            format!(
                                "unknown key {}; expected: {}",
                                key.repr()?,
                                known.join(", ")
                            ),
                        ))
                    }
                }
            }
            convert::to_json("filters", f)?
        }
        _ => Value::Null,
    };
    let mut filter = parse_filter(&filters).map_err(store_error)?;
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
