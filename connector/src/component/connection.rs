//! What every operation opens first: the configuration, checked at this
//! moment; the station's key from the host's key store; the credentials
//! for the partner's URL from the host's secret store.

use std::time::SystemTime;

use crate::config::{Checked, Connection};
use crate::smime::Cert;

use super::bindings::as2::connector::secrets;
use super::host::HostKey;
use super::{to_wit_error, wit};

/// Parses and checks a configuration at this moment, with the partner's
/// certificate from an accepted certificate exchange once it is due.
pub fn checked(config: &str) -> Result<Checked, wit::Error> {
    let connection = Connection::check(config, SystemTime::now()).map_err(|e| to_wit_error(&e))?;
    super::cem::with_exchanged_certificate(connection)
}

pub fn station_certificate(key: &HostKey) -> Result<Cert, crate::Error> {
    Cert::from_der(&crate::crypto::PrivateKey::certificate_der(key))
}

/// The station's key, once its certificate is known to be current: the
/// configured one, or the next one once a certificate exchange made it due.
pub fn open_station_key(connection: &Checked) -> Result<HostKey, wit::Error> {
    let name = super::cem::signing_key_name(connection)?;
    let key = HostKey::open(&name).map_err(|mut e| {
        // A missing key is the configuration's fault, not the message's.
        if matches!(e.code, wit::ErrorCode::NotFound) {
            e.code = wit::ErrorCode::InvalidConfig;
        }
        e.field = Some("/station/private_key".into());
        e
    })?;
    let cert = station_certificate(&key).map_err(|e| to_wit_error(&e))?;
    cert.check_validity(SystemTime::now(), "station")
        .map_err(|e| to_wit_error(&e))?;
    Ok(key)
}

/// A secret from the host's store, for HTTP authentication.
pub fn reveal(name: &str) -> Result<String, crate::Error> {
    secrets::reveal(name).map_err(|e| crate::Error::config("/auth", e.message))
}

/// The credentials applied to a request for `url`.
pub fn authorize(connection: &Checked, url: &str) -> Result<crate::auth::Authorized, wit::Error> {
    crate::auth::authorize(&connection.connection.auth, url, &mut reveal)
        .map_err(|e| to_wit_error(&e))
}
