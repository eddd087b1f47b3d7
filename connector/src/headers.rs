//! Header fields: parsing (RFC 5322 §2.2, RFC 2045 §5.1) and AS2 identifiers (RFC 4130 §6.2).

use crate::error::Error;

/// An ordered list of header fields. Lookups ignore case, as RFC 5322 §1.2.2 says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// The first value of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The parsed Content-Type; `text/plain` when absent (RFC 2045 §5.2).
    pub fn content_type(&self) -> ParameterizedValue {
        ParameterizedValue::parse(self.get("Content-Type").unwrap_or("text/plain"))
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Writes the fields as `Name: value\r\n` lines.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.fields {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Headers {
            fields: iter.into_iter().collect(),
        }
    }
}

/// Bound on the header block, so hostile input cannot make us buffer without limit.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Splits a MIME entity into its header fields and the offset where the body
/// starts. Accepts CRLF or bare LF line ends and folded (continued) lines. An
/// entity with no blank line is all headers and an empty body.
pub fn parse_block(entity: &[u8]) -> Result<(Headers, usize), Error> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    loop {
        if pos >= entity.len() {
            return Ok((fields.into_iter().collect(), entity.len()));
        }
        if pos > MAX_HEADER_BLOCK {
            return Err(Error::malformed("header block is larger than 64 KiB"));
        }
        let line_end = entity[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(entity.len(), |i| pos + i);
        let next = (line_end + 1).min(entity.len());
        let line = trim_cr(&entity[pos..line_end]);
        if line.is_empty() {
            return Ok((fields.into_iter().collect(), next));
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| Error::malformed("a header line is not valid UTF-8"))?;
        if line.starts_with([' ', '\t']) {
            // RFC 5322 §2.2.3: a line starting with white space continues the previous field.
            let Some((_, value)) = fields.last_mut() else {
                return Err(Error::malformed(
                    "the header block starts with a continuation line",
                ));
            };
            value.push(' ');
            value.push_str(line.trim());
        } else {
            let Some((name, value)) = line.split_once(':') else {
                return Err(Error::malformed(format!(
                    "header line without a colon: {:?}",
                    truncate(line, 60)
                )));
            };
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::malformed(format!(
                    "invalid header name {:?}",
                    truncate(name, 60)
                )));
            }
            fields.push((name.to_string(), value.trim().to_string()));
        }
        pos = next;
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub(crate) fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// A header value with parameters, such as Content-Type or Content-Disposition
/// (RFC 2045 §5.1, RFC 2183 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterizedValue {
    /// The value before the first `;`, lower-cased (e.g. `multipart/signed`).
    pub value: String,
    /// Parameters in order, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl ParameterizedValue {
    /// Parses `value; name=token; name="quoted string"`.
    pub fn parse(text: &str) -> Self {
        let mut parts = split_unquoted(text, b';').into_iter();
        let value = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|part| {
                let (name, value) = part.split_once('=')?;
                Some((name.trim().to_ascii_lowercase(), unquote(value.trim())))
            })
            .collect();
        ParameterizedValue { value, params }
    }

    /// The parameter `name`, case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits on `separator` outside double quotes.
pub(crate) fn split_unquoted(text: &str, separator: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            _ if b == separator && !in_quotes => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Removes surrounding double quotes and backslash escapes (RFC 5322 §3.2.4).
pub fn unquote(text: &str) -> String {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` as an RFC 2231 §4 extended value's characters: UTF-8 bytes
/// outside the attribute-char set percent-encoded.
pub fn percent_encode(value: &str) -> String {
    const KEEP: &[u8] = b"!#$&+-.^_`|~";
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || KEEP.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes an RFC 2231 §4 extended value, `charset'language'percent-encoded`.
/// UTF-8 and US-ASCII decode (ISO-8859-1 too, byte for byte); other
/// charsets, and bytes that are not valid in the charset, give `None`.
pub fn decode_extended_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" | "us-ascii" | "" => String::from_utf8(bytes).ok(),
        "iso-8859-1" | "latin1" => Some(bytes.into_iter().map(char::from).collect()),
        _ => None,
    }
}

/// Quotes a parameter value when it is not a plain RFC 2045 token.
pub fn quote_if_needed(value: &str) -> String {
    const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?= \t";
    let is_token = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !TSPECIALS.contains(&b));
    if is_token {
        value.to_string()
    } else {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

/// The longest AS2 identifier RFC 4130 §6.2 allows.
pub const MAX_AS2_ID_LEN: usize = 128;

/// Checks an AS2 identifier: 1 to 128 printable ASCII characters (RFC 4130 §6.2).
pub fn check_as2_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an AS2 identifier must not be empty".into());
    }
    if id.len() > MAX_AS2_ID_LEN {
        return Err(format!(
            "an AS2 identifier has at most {MAX_AS2_ID_LEN} characters; this one has {}",
            id.len()
        ));
    }
    if let Some(bad) = id.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "an AS2 identifier holds printable ASCII only; found {bad:?}"
        ));
    }
    Ok(())
}

/// The AS2-From / AS2-To header value of an identifier: quoted when it holds
/// spaces or specials (RFC 4130 §6.2, `atext` otherwise).
pub fn as2_id_header(id: &str) -> String {
    quote_if_needed(id)
}

/// The identifier in an AS2-From / AS2-To header value, unquoted.
pub fn as2_id_from_header(value: &str) -> String {
    unquote(value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_values_round_trip_and_bad_ones_are_refused() {
        let name = "Bestellung März €.x12";
        let encoded = percent_encode(name);
        assert_eq!(encoded, "Bestellung%20M%C3%A4rz%20%E2%82%AC.x12");
        assert_eq!(
            decode_extended_value(&format!("UTF-8''{encoded}")).as_deref(),
            Some(name)
        );
        assert_eq!(
            decode_extended_value("iso-8859-1'de'M%E4rz.txt").as_deref(),
            Some("März.txt")
        );
        assert_eq!(decode_extended_value("UTF-8''%FF%FE"), None);
        assert_eq!(decode_extended_value("UTF-8''%4"), None);
        assert_eq!(decode_extended_value("koi8-r''abc"), None);
        assert_eq!(decode_extended_value("no quotes"), None);
    }

    #[test]
    fn header_block_with_lf_folding_and_any_case() {
        let raw = b"content-TYPE: multipart/signed;\n boundary=\"abc\"; micalg=sha256\nAS2-From: \"My Co\"\n\nbody";
        let (headers, offset) = parse_block(raw).unwrap();
        assert_eq!(
            headers.get("Content-Type"),
            Some("multipart/signed; boundary=\"abc\"; micalg=sha256")
        );
        assert_eq!(&raw[offset..], b"body");
        let ct = ParameterizedValue::parse(headers.get("content-type").unwrap());
        assert_eq!(ct.value, "multipart/signed");
        assert_eq!(ct.param("BOUNDARY"), Some("abc"));
        assert_eq!(
            as2_id_from_header(headers.get("as2-from").unwrap()),
            "My Co"
        );
    }

    #[test]
    fn header_line_without_colon_is_malformed() {
        assert!(parse_block(b"no colon here\r\n\r\n").is_err());
    }

    #[test]
    fn as2_ids_are_quoted_only_when_needed() {
        assert_eq!(as2_id_header("ACME"), "ACME");
        assert_eq!(as2_id_header("My Co"), "\"My Co\"");
        assert_eq!(as2_id_from_header(&as2_id_header("a\"b c")), "a\"b c");
        assert!(check_as2_id("").is_err());
        assert!(check_as2_id(&"x".repeat(129)).is_err());
        assert!(check_as2_id("tab\there").is_err());
        assert!(check_as2_id("Acme Corp").is_ok());
    }
}
