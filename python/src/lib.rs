//! The compiled part of the Python package `swarm_metrics`: the store's
//! `MetricsStorage` class over the Rust crate. The package itself (in
//! `swarm_metrics/`) adds the `str` enums and the exception classes.

mod convert;
mod errors;
mod filters;
mod records;
mod storage;

use pyo3::prelude::*;

/// The compiled module `swarm_metrics._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<storage::MetricsStorage>()?;
    m.add("DEFAULT_PATH", swarm_metrics::DEFAULT_PATH)?;
    m.add("SCHEMA_VERSION", swarm_metrics::SCHEMA_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
