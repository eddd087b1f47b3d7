//! `as2:connector/log`: the component's log lines, into the host's
//! `tracing` under the target `as2_connector`, labelled with the station.

use super::CallState;
use super::bindings::as2::connector::log as wit_log;

impl wit_log::Host for CallState {
    fn emit(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        let station = &self.station.label;
        match level {
            wit_log::Level::Trace => {
                tracing::trace!(target: "as2_connector", %station, "{message}")
            }
            wit_log::Level::Debug => {
                tracing::debug!(target: "as2_connector", %station, "{message}")
            }
            wit_log::Level::Info => tracing::info!(target: "as2_connector", %station, "{message}"),
            wit_log::Level::Warn => tracing::warn!(target: "as2_connector", %station, "{message}"),
            wit_log::Level::Error => {
                tracing::error!(target: "as2_connector", %station, "{message}")
            }
        }
        Ok(())
    }
}
