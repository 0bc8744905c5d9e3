//! Logging with tracing-subscriber: readable text by default, JSON lines
//! with `--log-format json`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Fails if `filter` does not parse.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| format!("bad --log filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    res.map_err(|e| format!("cannot install the logger: {e}"))
}
