//! MDN parsing and verification: the input is an HTTP header block and body.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use as2_connector::crypto::rustcrypto::{GeneratedKey, RustCryptoProvider, generate_station_key};
use as2_connector::headers;
use as2_connector::mdn;
use as2_connector::smime::Cert;
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<GeneratedKey> =
    LazyLock::new(|| generate_station_key("FUZZ", SystemTime::now(), Duration::from_secs(86400)).unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok((fields, offset)) = headers::parse_block(data) else { return };
    let cert = Cert::from_der(&KEY.certificate_der).unwrap();
    let _ = mdn::parse(&fields, &data[offset..], &cert, &RustCryptoProvider);
    let _ = mdn::MdnRequest::from_headers(&fields);
});
