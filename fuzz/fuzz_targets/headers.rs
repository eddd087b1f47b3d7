//! Header blocks and parameterized values (Content-Type, Content-Disposition, AS2 ids).
#![no_main]

use as2_connector::headers::{self, ParameterizedValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((fields, offset)) = headers::parse_block(data) {
        assert!(offset <= data.len());
        for (_, value) in fields.iter() {
            let parsed = ParameterizedValue::parse(value);
            let _ = parsed.param("boundary");
            let id = headers::as2_id_from_header(value);
            if headers::check_as2_id(&id).is_ok() {
                assert_eq!(headers::as2_id_from_header(&headers::as2_id_header(&id)), id);
            }
        }
    }
});
