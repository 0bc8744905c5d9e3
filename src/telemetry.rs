//! Logging with tracing-subscriber: readable text by default, JSON lines
//! with `--log-format json`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// Standard output: the server's, as container platforms expect.
    Stdout,
    /// Standard error: admin commands', whose standard output is their
    /// report.
    Stderr,
}

/// Installs the global subscriber. Fails if `filter` does not parse.
pub fn init(format: LogFormat, filter: &str, to: LogTo) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| format!("bad --log filter {filter:?}: {e}"))?;
    let writer = match to {
        LogTo::Stdout => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
        LogTo::Stderr => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
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
