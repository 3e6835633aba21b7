//! Symmetric keys: base64 handling, generation and redaction.

use expect_test::{Expect, expect};
use iothub_auth::{GENERATED_KEY_LENGTH_BYTES, SymmetricKey};

/// Decodes `text` as a key and snapshots the outcome.
fn check(text: &str, expected: Expect) {
    let rendered = match SymmetricKey::from_base64(text) {
        Ok(key) => format!("{key:?} base64={}", key.to_base64()),
        Err(error) => format!("error: {error}"),
    };
    expected.assert_eq(&rendered);
}

#[test]
fn base64_keys() {
    check(
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        expect![
            "SymmetricKey(<32 bytes redacted>) base64=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        ],
    );
    check(
        "",
        expect!["error: symmetric key is empty, expected base64 text"],
    );
    check(
        "a2V5",
        expect!["SymmetricKey(<3 bytes redacted>) base64=a2V5"],
    );
    check(
        "a2V5MQ",
        expect!["error: symmetric key is not valid base64: Invalid padding"],
    );
    check(
        "a2V5M===",
        expect!["error: symmetric key is not valid base64: Invalid symbol 61, offset 5."],
    );
    check(
        "a2V5MR==",
        expect![
            "error: symmetric key is not valid base64: Invalid last symbol 0x52 ('R') at offset 5, decoded as 0b00010001."
        ],
    );
    check(
        "a2V5 MQ==",
        expect!["error: symmetric key is not valid base64: Invalid symbol 32, offset 4."],
    );
    check(
        "a-V5",
        expect!["error: symmetric key is not valid base64: Invalid symbol 45, offset 1."],
    );
}

#[test]
fn generated_keys_are_32_random_bytes() {
    let first = SymmetricKey::generate_random();
    let second = SymmetricKey::generate_random();
    assert_eq!(first.as_bytes().len(), GENERATED_KEY_LENGTH_BYTES);
    assert_eq!(first.to_base64().len(), 44);
    assert_ne!(first, second);
    assert_eq!(SymmetricKey::from_base64(&first.to_base64()), Ok(first));
}

#[test]
fn equality_and_debug_do_not_expose_key_material() {
    let key = SymmetricKey::from_base64("c2VjcmV0").unwrap();
    assert!(!format!("{key:?}").contains("c2VjcmV0"));
    assert_eq!(key, SymmetricKey::from_bytes(b"secret".to_vec()).unwrap());
    assert_ne!(key, SymmetricKey::from_bytes(b"secreT".to_vec()).unwrap());
    assert_ne!(key, SymmetricKey::from_bytes(b"secret!".to_vec()).unwrap());
    assert!(SymmetricKey::from_bytes(Vec::new()).is_err());
}
