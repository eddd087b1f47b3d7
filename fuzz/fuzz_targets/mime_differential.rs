//! Differential: our multipart splitter against `mail-parser` on the same
//! body. Where ours accepts a body (it is strict: a closing delimiter is
//! required), both must find the same parts at the same byte ranges: from
//! after the delimiter line to before the line break that precedes the next
//! one (RFC 2046 §5.1.1). The comparison keeps to bodies whose lines all end
//! in CRLF, as RFC 2046 has them: on bare CR or LF the two parsers are
//! lenient in different ways, and neither way is wrong. It also keeps to
//! printable ASCII and to parts that have a header section ending in an
//! empty line: mail-parser drops a part whose headers it cannot read, while
//! the splitter never looks inside a part. Lines that start like a
//! delimiter but have more after it (`--XyZ--o`) are left out too: RFC 2046
//! makes them part content, which the splitter does, while mail-parser takes
//! them for delimiters, as it does with a delimiter in mid-line. Parts that
//! are multiparts themselves are left out: mail-parser looks into them and,
//! when an inner one is not closed, lets it run over the outer delimiters.
#![no_main]

use libfuzzer_sys::fuzz_target;

const BOUNDARY: &str = "XyZ";
const PREFIX: &[u8] = b"Content-Type: multipart/mixed; boundary=\"XyZ\"\r\n\r\n";

/// Every CR is followed by LF and every LF preceded by CR.
fn crlf_only(data: &[u8]) -> bool {
    data.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => data.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && data[i - 1] == b'\r',
        _ => true,
    })
}

/// A part with a header section: an empty line, or a blank first line.
fn has_header_section(part: &[u8]) -> bool {
    part.starts_with(b"\r\n") || part.windows(4).any(|w| w == b"\r\n\r\n")
}

/// Every line that starts with the delimiter is a delimiter line: nothing
/// after it but an optional `--` and spaces or tabs.
fn delimiter_lines_are_exact(data: &[u8]) -> bool {
    let delimiter = format!("--{BOUNDARY}");
    let at_line_starts = data
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .all(|(i, _)| i == 0 || data[i - 1] == b'\n');
    at_line_starts && data.split(|&b| b == b'\n').all(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.strip_prefix(delimiter.as_bytes()) {
            None => true,
            Some(rest) => {
                let rest = rest.strip_prefix(b"--").unwrap_or(rest);
                rest.iter().all(|&b| b == b' ' || b == b'\t')
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if !delimiter_lines_are_exact(data) {
        return;
    }
    let printable = data
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b == b'\r' || b == b'\n' || b == b'\t');
    if !printable || !crlf_only(data) {
        return;
    }
    let Ok(parts) = as2_connector::mime::split_multipart(data, BOUNDARY) else {
        return;
    };
    if !parts.iter().all(|part| has_header_section(part)) {
        return;
    }
    let nested = parts
        .iter()
        .any(|part| part.windows(9).any(|w| w.eq_ignore_ascii_case(b"multipart")));
    if nested {
        return;
    }
    let ours: Vec<(usize, usize)> = parts
        .iter()
        .map(|part| {
            let start = part.as_ptr() as usize - data.as_ptr() as usize;
            (start, start + part.len())
        })
        .collect();
    let mut message = PREFIX.to_vec();
    message.extend_from_slice(data);
    let parsed = mail_parser::MessageParser::default().parse(&message[..]);
    let theirs: Option<Vec<(usize, usize)>> = parsed.as_ref().and_then(|m| {
        match &m.parts.first()?.body {
            mail_parser::PartType::Multipart(ids) => Some(
                ids.iter()
                    .map(|&id| {
                        let part = &m.parts[id as usize];
                        (
                            part.offset_header as usize - PREFIX.len(),
                            part.offset_end as usize - PREFIX.len(),
                        )
                    })
                    .collect(),
            ),
            _ => None,
        }
    });
    assert_eq!(Some(ours), theirs, "input {:?}", String::from_utf8_lossy(data));
});
