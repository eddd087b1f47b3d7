//! Named points in the host's durable paths where a test can stop the
//! process, to prove what survives a `kill -9` there.

/// The environment variable naming the point to stop at.
pub const PAUSE_AT_VARIABLE: &str = "AS2_HARNESS_PAUSE_AT";

/// When `AS2_HARNESS_PAUSE_AT` names `point`, says so on stderr and stops
/// this thread for good, so that a test can kill the process exactly here.
/// Unset (always, outside such tests), it costs one environment lookup.
pub fn pause_point(point: &str) {
    if std::env::var_os(PAUSE_AT_VARIABLE).is_some_and(|wanted| wanted == point) {
        eprintln!("paused at {point}");
        loop {
            std::thread::park();
        }
    }
}
