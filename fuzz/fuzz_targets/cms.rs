//! CMS parsing: SignedData (verify), EnvelopedData / AuthEnvelopedData (decrypt),
//! CompressedData (bounded inflate).
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use as2_connector::compress;
use as2_connector::crypto::rustcrypto::{GeneratedKey, RustCryptoProvider, generate_station_key};
use as2_connector::smime::{self, Cert};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<GeneratedKey> =
    LazyLock::new(|| generate_station_key("FUZZ", SystemTime::now(), Duration::from_secs(86400)).unwrap());
static CERT: LazyLock<Cert> = LazyLock::new(|| Cert::from_der(&KEY.certificate_der).unwrap());

fuzz_target!(|data: &[u8]| {
    let provider = RustCryptoProvider;
    let _ = smime::content_type(&data);
    let _ = smime::verify_detached(data, b"content", &CERT, &provider);
    let _ = smime::decrypt(&data, &KEY.key, &provider);
    if let Ok(out) = compress::decompress(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
});
