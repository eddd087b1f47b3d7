//! End to end through the engine: a whole inbound AS2 request (header block,
//! blank line, body) to a connection that accepts anything, MDN included.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use as2_connector::config::{Checked, Connection};
use as2_connector::crypto::rustcrypto::{GeneratedKey, RustCryptoProvider, generate_station_key};
use as2_connector::{headers, message};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<GeneratedKey> =
    LazyLock::new(|| generate_station_key("FUZZ", SystemTime::now(), Duration::from_secs(86400)).unwrap());
static CONNECTION: LazyLock<Checked> = LazyLock::new(|| {
    let json = serde_json_config(&KEY.certificate_pem);
    Connection::check(&json, SystemTime::now()).unwrap()
});

fn serde_json_config(cert: &str) -> String {
    let cert = cert.replace('\n', "\\n");
    format!(
        r#"{{"name":"fuzz","station":{{"as2_id":"US","private_key":"k"}},
            "partner":{{"as2_id":"THEM","url":"http://127.0.0.1/","certificate":"{cert}",
            "require_signed":false,"require_encrypted":false}}}}"#
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok((fields, offset)) = headers::parse_block(data) else { return };
    let _ = message::receive(&CONNECTION, &fields, &data[offset..], message::StationKeys::single(&KEY.key), &mut |_| Ok(false), SystemTime::now(), &RustCryptoProvider);
});
