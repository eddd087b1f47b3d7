//! `as2:connector/state`: the component's durable key-value state, in the
//! station's state database.

use super::bindings::as2::connector::state as wit_state;
use super::bindings::as2::connector::types::{Error as ConnectorError, ErrorCode};
use super::{CallState, error};

fn storage_error(e: crate::state::StateError) -> ConnectorError {
    error(ErrorCode::StorageFailed, format!("state store: {e}"))
}

impl wit_state::Host for CallState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, ConnectorError>> {
        Ok(self.station.state.get(&key).map_err(storage_error))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(self.station.state.set(&key, &value).map_err(storage_error))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(self.station.state.delete(&key).map_err(storage_error))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, ConnectorError>> {
        Ok(self
            .station
            .state
            .compare_and_swap(&key, expected.as_deref(), &value)
            .map_err(storage_error))
    }

    fn list_keys(
        &mut self,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<String>, ConnectorError>> {
        Ok(self.station.state.list_keys(&prefix).map_err(storage_error))
    }
}
