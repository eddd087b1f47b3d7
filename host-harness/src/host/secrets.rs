//! `as2:connector/secrets`: passwords and tokens for partner authentication,
//! revealed to the call that names them and replaced when a token is
//! refreshed. Kept encrypted at rest by [`crate::secrets::SecretStore`].

use super::bindings::as2::connector::secrets as wit_secrets;
use super::bindings::as2::connector::types::{Error as ConnectorError, ErrorCode};
use super::{CallState, error};
use crate::secrets::SecretError;

impl wit_secrets::Host for CallState {
    fn reveal(&mut self, name: String) -> wasmtime::Result<Result<String, ConnectorError>> {
        Ok(self.station.secrets.get(&name).map_err(|e| {
            let code = match e {
                SecretError::NotFound(_) => ErrorCode::NotFound,
                _ => ErrorCode::KeystoreFailed,
            };
            error(code, e.to_string())
        }))
    }

    fn replace(
        &mut self,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(self
            .station
            .secrets
            .set(&name, &value)
            .map_err(|e| error(ErrorCode::KeystoreFailed, e.to_string())))
    }
}
