//! Percent-encoding exactly as Python's `urllib.parse.quote` and `quote_plus` do it, which is what the
//! official Azure IoT Python SDKs use for the `sr` and `sig` fields of a SAS token.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Python's `quote(s, safe="")`: everything except ASCII letters, digits and `_.-~` is encoded.
///
/// The device SDK encodes both the resource URI and the signature with this set, so `/` becomes `%2F`,
/// `:` becomes `%3A`, `+` becomes `%2B` and `=` becomes `%3D`.
const PYTHON_QUOTE_NOTHING_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Python's `quote(s)` with its default `safe="/"`, which the service SDK uses for the signature.
const PYTHON_QUOTE_SLASH_SAFE: &AsciiSet = &PYTHON_QUOTE_NOTHING_SAFE.remove(b'/');

/// Python's `quote_plus(s)` before the final space-to-plus substitution: space is kept as is.
const PYTHON_QUOTE_PLUS_SPACE_KEPT: &AsciiSet = &PYTHON_QUOTE_NOTHING_SAFE.remove(b' ');

/// Encodes like Python's `urllib.parse.quote(text, safe="")`, with upper-case hex digits.
pub fn quote_nothing_safe(text: &str) -> String {
    utf8_percent_encode(text, PYTHON_QUOTE_NOTHING_SAFE).to_string()
}

/// Encodes like Python's `urllib.parse.quote(text)`, which leaves `/` alone.
pub fn quote_slash_safe(text: &str) -> String {
    utf8_percent_encode(text, PYTHON_QUOTE_SLASH_SAFE).to_string()
}

/// Encodes like Python's `urllib.parse.quote_plus(text)`: as [`quote_nothing_safe`], except that a
/// space becomes `+`.
pub fn quote_plus(text: &str) -> String {
    utf8_percent_encode(text, PYTHON_QUOTE_PLUS_SPACE_KEPT)
        .to_string()
        .replace(' ', "+")
}

/// Decodes `%XX` escapes (upper- or lower-case hex) and requires the result to be UTF-8.
///
/// A `%` that is not followed by two hex digits is kept literally, as Python's `unquote` does. A `+`
/// stays a `+`: no official producer writes `+` for a space into a SAS token field.
pub fn percent_decode_utf8(text: &str) -> Option<String> {
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_python_for_every_ascii_character() {
        // Python 3: "".join(c for c in map(chr, range(128)) if quote(c, safe="") == c)
        let unreserved: String = (0u8..128)
            .map(char::from)
            .filter(|character| quote_nothing_safe(&character.to_string()).len() == 1)
            .collect();
        assert_eq!(
            unreserved,
            "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
        );
        assert_eq!(
            quote_nothing_safe("hub.local:8443/devices/a b+c=é"),
            "hub.local%3A8443%2Fdevices%2Fa%20b%2Bc%3D%C3%A9"
        );
        assert_eq!(quote_slash_safe("7/YBn2+OH0=="), "7/YBn2%2BOH0%3D%3D");
        assert_eq!(quote_plus("a b/c+d"), "a+b%2Fc%2Bd");
        assert_eq!(
            percent_decode_utf8("a%2fb%2F%zz+").as_deref(),
            Some("a/b/%zz+")
        );
        assert_eq!(percent_decode_utf8("%FF"), None);
    }
}
