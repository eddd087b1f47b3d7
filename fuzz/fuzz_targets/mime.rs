//! The MIME splitter: entities, multiparts (nested), transfer encodings.
#![no_main]

use as2_connector::mime::{Entity, split_multipart};
use libfuzzer_sys::fuzz_target;

fn walk(raw: &[u8], depth: usize) {
    let Ok(entity) = Entity::parse(raw) else { return };
    let _ = entity.decoded_body();
    let _ = entity.file_name();
    let content_type = entity.content_type();
    if depth > 4 || !content_type.value.starts_with("multipart/") {
        return;
    }
    if let Some(boundary) = content_type.param("boundary")
        && let Ok(parts) = split_multipart(entity.body, boundary)
    {
        for part in parts {
            // Parts are slices of the input: the bytes a signature covers.
            assert!(part.as_ptr() >= raw.as_ptr());
            walk(part, depth + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| walk(data, 0));
