//! SAS tokens and connection strings, exactly as the official Azure IoT SDKs build them (pure, no I/O).
//!
//! This crate owns the authentication vocabulary of IoT Hub: [`SymmetricKey`] (base64 keys and
//! HMAC-SHA256 signing, also what the IoT Edge workload `sign` call does), [`SasToken`] (parse, build
//! in the device-SDK and service-SDK spellings, verify), [`ResourceScope`] (what a token's `sr` grants,
//! and whether it covers a requested identity), [`PolicyName`] and [`HostName`], and
//! [`ConnectionString`] with its device, module and service kinds. It never reads the clock: callers
//! pass `now` in. It knows nothing about MQTT, HTTP or where keys are stored.
//!
//! Hub validation, in short: parse the token, look up the key (the device or module key, or the
//! policy key named by `skn`), [`SasToken::verify`] it against `now`, then check
//! [`ResourceScope::covers`] for the resource being accessed.

#![forbid(unsafe_code)]

mod connection_string;
mod encoding;
mod key;
mod policy;
mod resource;
mod sas;

pub use connection_string::{
    ClientCredential, ConnectionString, ConnectionStringError, ConnectionStringKey,
    ConnectionStringKind, DeviceConnectionString, ModuleConnectionString, ServiceConnectionString,
};
pub use encoding::{percent_decode_utf8, quote_nothing_safe, quote_plus, quote_slash_safe};
pub use key::{
    GENERATED_KEY_LENGTH_BYTES, SIGNATURE_LENGTH_BYTES, SymmetricKey, SymmetricKeyError,
};
pub use policy::{MAX_POLICY_NAME_LENGTH, PolicyName, PolicyNameError};
pub use resource::{
    HostName, HostNameError, MAX_HOST_NAME_LENGTH, ResourceScope, ResourceScopeError,
};
pub use sas::{
    SAS_TOKEN_PREFIX, SasToken, SasTokenField, SasTokenParseError, SasTokenStyle,
    SasTokenVerifyError, string_to_sign,
};

/// The longest piece of untrusted input quoted back in an error message, in characters.
const MAX_EXCERPT_CHARACTERS: usize = 64;

/// Quotes untrusted input in an error message, cut to [`MAX_EXCERPT_CHARACTERS`] so that a hostile
/// client cannot make log lines arbitrarily long.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_EXCERPT_CHARACTERS) {
        None => text.to_owned(),
        Some((cut_at, _)) => format!("{}…", &text[..cut_at]),
    }
}
