//! Where Chromium is: `SWARM_METRICS_CHROMIUM`, else the first Chromium
//! on PATH (`scripts/test` installs the distribution's package). Declared
//! by the test files that need it, as `#[path = "common/chromium.rs"] mod
//! chromium;`.

use std::path::PathBuf;

/// The Chromium binary; panics, naming what to do, when there is none.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWARM_METRICS_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found: run scripts/test, which installs the distribution's chromium \
         package, or set SWARM_METRICS_CHROMIUM"
    );
}
