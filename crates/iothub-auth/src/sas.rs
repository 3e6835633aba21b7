//! SAS tokens: `SharedAccessSignature sr={enc-resource}&sig={enc-signature}&se={expiry}[&skn={policy}]`.

use std::fmt;

use crate::encoding::{percent_decode_utf8, quote_nothing_safe, quote_plus, quote_slash_safe};
use crate::key::{SIGNATURE_LENGTH_BYTES, SymmetricKey, decode_base64, encode_base64};
use crate::policy::{PolicyName, PolicyNameError};
use crate::resource::{ResourceScope, ResourceScopeError};

/// The literal that starts every SAS token, with its one space.
pub const SAS_TOKEN_PREFIX: &str = "SharedAccessSignature ";

/// A parsed or freshly built SAS token.
///
/// It keeps `sr` exactly as written (the signature covers those very bytes) next to its decoded,
/// typed [`ResourceScope`]. `Display` writes the fields in the SDK order `sr, sig, se[, skn]` with
/// `sr` and `sig` as they were written; `Debug` hides the signature, since a token is a bearer
/// credential.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    resource_encoded: String,
    scope: ResourceScope,
    signature_encoded: String,
    signature: [u8; SIGNATURE_LENGTH_BYTES],
    expiry_unix_secs: u64,
    key_name: Option<PolicyName>,
}

/// How to spell a token, following one of the official producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SasTokenStyle {
    /// `azure-iot-device`: `sr` and `sig` both go through `quote(…, safe="")`, so `sig` has `%2F`.
    DeviceSdk,
    /// `azure-iot-hub` REST calls: `sr` through `quote_plus`, `sig` through `quote`, which leaves `/`.
    ServiceSdkRest,
    /// `azure-iot-hub` C2D over uamqp: `sr` is the resource URI unencoded, `sig` as in REST calls.
    ///
    /// uamqp only ever signs the hub scope, whose host name needs no encoding. So that every scope
    /// reads back as itself, this style still escapes `%` (allowed in device and module ids) as `%25`.
    ServiceSdkAmqp,
}

/// A named field of a SAS token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SasTokenField {
    /// `sr`, the percent-encoded resource URI.
    Resource,
    /// `sig`, the percent-encoded base64 signature.
    Signature,
    /// `se`, the expiry in seconds since the Unix epoch.
    Expiry,
    /// `skn`, the shared access policy name.
    KeyName,
}

/// Why a string is not a SAS token. Each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasTokenParseError {
    /// The text does not start with `SharedAccessSignature ` (exact case, one space).
    #[error("SAS token must start with `SharedAccessSignature ` (exact case, one space)")]
    MissingPrefix,
    /// A `&`-separated piece has no `=`.
    #[error("SAS token piece `{piece}` has no `=`, expected `name=value`")]
    MalformedField {
        /// The piece, shortened when long.
        piece: String,
    },
    /// A field other than `sr`, `sig`, `se` and `skn`.
    #[error("SAS token has unknown field `{name}`, expected only sr, sig, se and skn")]
    UnknownField {
        /// The field name, shortened when long.
        name: String,
    },
    /// A field appears twice.
    #[error("SAS token field `{field}` appears more than once")]
    DuplicateField {
        /// The repeated field.
        field: SasTokenField,
    },
    /// A required field is absent.
    #[error("SAS token lacks the required field `{field}`")]
    MissingField {
        /// The missing field.
        field: SasTokenField,
    },
    /// A field has an empty value.
    #[error("SAS token field `{field}` is empty")]
    EmptyField {
        /// The empty field.
        field: SasTokenField,
    },
    /// `sr` does not percent-decode to UTF-8.
    #[error("SAS token field `sr` does not percent-decode to UTF-8 text")]
    ResourceNotUtf8,
    /// The decoded `sr` is not a hub, device or module resource.
    #[error("SAS token field `sr` names no IoT Hub resource: {0}")]
    InvalidResource(#[source] ResourceScopeError),
    /// `sig` is not the percent-encoded base64 of a 32-byte HMAC-SHA256.
    #[error("SAS token field `sig` is not the base64 of a 32-byte HMAC-SHA256 signature: {reason}")]
    InvalidSignature {
        /// What is wrong with it.
        reason: String,
    },
    /// `se` is not a decimal number of seconds.
    #[error("SAS token field `se` is `{value}`, expected whole seconds since the Unix epoch")]
    InvalidExpiry {
        /// The value, shortened when long.
        value: String,
    },
    /// `skn` is not a valid shared access policy name.
    #[error("SAS token field `skn` is not a shared access policy name: {0}")]
    InvalidKeyName(#[source] PolicyNameError),
}

/// Why a well-formed SAS token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasTokenVerifyError {
    /// The signature is not the HMAC of `sr + "\n" + se` under the given key.
    #[error("SAS token signature does not match the key")]
    SignatureMismatch,
    /// `se` lies before `now`.
    #[error("SAS token expired at {expiry_unix_secs}, now is {now_unix_secs}")]
    Expired {
        /// The token's `se`.
        expiry_unix_secs: u64,
        /// The time it was checked against.
        now_unix_secs: u64,
    },
}

// === impl SasTokenField ===

impl SasTokenField {
    /// The field's name on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            SasTokenField::Resource => "sr",
            SasTokenField::Signature => "sig",
            SasTokenField::Expiry => "se",
            SasTokenField::KeyName => "skn",
        }
    }

    fn from_wire_name(name: &str) -> Option<Self> {
        match name {
            "sr" => Some(SasTokenField::Resource),
            "sig" => Some(SasTokenField::Signature),
            "se" => Some(SasTokenField::Expiry),
            "skn" => Some(SasTokenField::KeyName),
            _ => None,
        }
    }
}

impl fmt::Display for SasTokenField {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.wire_name())
    }
}

// === impl SasToken ===

impl SasToken {
    /// Builds and signs a token for `scope`, expiring at `expiry_unix_secs`, spelled as `style`'s SDK does.
    ///
    /// Pass `key_name` when `key` is a shared access policy key; it becomes `skn`.
    pub fn sign(
        style: SasTokenStyle,
        scope: &ResourceScope,
        key: &SymmetricKey,
        key_name: Option<&PolicyName>,
        expiry_unix_secs: u64,
    ) -> SasToken {
        let resource_uri = scope.resource_uri();
        let resource_encoded = match style {
            SasTokenStyle::DeviceSdk => quote_nothing_safe(&resource_uri),
            SasTokenStyle::ServiceSdkRest => quote_plus(&resource_uri),
            SasTokenStyle::ServiceSdkAmqp => resource_uri.replace('%', "%25"),
        };
        let signature = key.sign(string_to_sign(&resource_encoded, expiry_unix_secs).as_bytes());
        let signature_base64 = encode_base64(&signature);
        let signature_encoded = match style {
            SasTokenStyle::DeviceSdk => quote_nothing_safe(&signature_base64),
            SasTokenStyle::ServiceSdkRest | SasTokenStyle::ServiceSdkAmqp => {
                quote_slash_safe(&signature_base64)
            }
        };
        SasToken {
            resource_encoded,
            scope: scope.clone(),
            signature_encoded,
            signature,
            expiry_unix_secs,
            key_name: key_name.cloned(),
        }
    }

    /// Parses a token. Fields may come in any order; unknown, duplicate, missing and empty fields are errors.
    ///
    /// Parsing checks form only. Call [`SasToken::verify`] with the right key and the current time
    /// to authenticate, and [`ResourceScope::covers`] on [`SasToken::scope`] to authorize.
    pub fn parse(text: &str) -> Result<SasToken, SasTokenParseError> {
        let body = text
            .strip_prefix(SAS_TOKEN_PREFIX)
            .ok_or(SasTokenParseError::MissingPrefix)?;
        let mut resource_encoded = None;
        let mut signature_encoded = None;
        let mut expiry_text = None;
        let mut key_name_text = None;
        for piece in body.split('&') {
            let (name, value) =
                piece
                    .split_once('=')
                    .ok_or_else(|| SasTokenParseError::MalformedField {
                        piece: crate::excerpt(piece),
                    })?;
            let field = SasTokenField::from_wire_name(name).ok_or_else(|| {
                SasTokenParseError::UnknownField {
                    name: crate::excerpt(name),
                }
            })?;
            let slot = match field {
                SasTokenField::Resource => &mut resource_encoded,
                SasTokenField::Signature => &mut signature_encoded,
                SasTokenField::Expiry => &mut expiry_text,
                SasTokenField::KeyName => &mut key_name_text,
            };
            if slot.is_some() {
                return Err(SasTokenParseError::DuplicateField { field });
            }
            if value.is_empty() {
                return Err(SasTokenParseError::EmptyField { field });
            }
            *slot = Some(value);
        }
        let resource_encoded = resource_encoded.ok_or(SasTokenParseError::MissingField {
            field: SasTokenField::Resource,
        })?;
        let signature_encoded = signature_encoded.ok_or(SasTokenParseError::MissingField {
            field: SasTokenField::Signature,
        })?;
        let expiry_text = expiry_text.ok_or(SasTokenParseError::MissingField {
            field: SasTokenField::Expiry,
        })?;

        let resource_uri =
            percent_decode_utf8(resource_encoded).ok_or(SasTokenParseError::ResourceNotUtf8)?;
        let scope = ResourceScope::parse_resource_uri(&resource_uri)
            .map_err(SasTokenParseError::InvalidResource)?;
        let signature = decode_signature(signature_encoded)?;
        let expiry_unix_secs = parse_expiry(expiry_text)?;
        let key_name = key_name_text
            .map(|key_name_text| {
                PolicyName::new(key_name_text).map_err(SasTokenParseError::InvalidKeyName)
            })
            .transpose()?;
        Ok(SasToken {
            resource_encoded: resource_encoded.to_owned(),
            scope,
            signature_encoded: signature_encoded.to_owned(),
            signature,
            expiry_unix_secs,
            key_name,
        })
    }

    /// Authenticates the token with `key`, as the hub does.
    ///
    /// The HMAC is computed over `sr` exactly as written plus `"\n"` plus `se`, and compared in
    /// constant time with the percent-decoded, base64-decoded `sig`. A token is expired when
    /// `se < now_unix_secs`; to allow for clock skew, pass `now` minus the allowance.
    pub fn verify(
        &self,
        key: &SymmetricKey,
        now_unix_secs: u64,
    ) -> Result<(), SasTokenVerifyError> {
        let signed_text = string_to_sign(&self.resource_encoded, self.expiry_unix_secs);
        if !key.verify(signed_text.as_bytes(), &self.signature) {
            return Err(SasTokenVerifyError::SignatureMismatch);
        }
        if self.expiry_unix_secs < now_unix_secs {
            return Err(SasTokenVerifyError::Expired {
                expiry_unix_secs: self.expiry_unix_secs,
                now_unix_secs,
            });
        }
        Ok(())
    }

    /// The typed resource decoded from `sr`.
    pub fn scope(&self) -> &ResourceScope {
        &self.scope
    }

    /// `sr` exactly as written in the token (still percent-encoded, or not at all for uamqp tokens).
    pub fn resource_encoded(&self) -> &str {
        &self.resource_encoded
    }

    /// `sig` exactly as written in the token.
    pub fn signature_encoded(&self) -> &str {
        &self.signature_encoded
    }

    /// The decoded signature bytes.
    pub fn signature(&self) -> &[u8; SIGNATURE_LENGTH_BYTES] {
        &self.signature
    }

    /// `se`: seconds since the Unix epoch after which the token is refused.
    pub fn expiry_unix_secs(&self) -> u64 {
        self.expiry_unix_secs
    }

    /// `skn`: the shared access policy whose key signed the token, absent for device and module keys.
    pub fn key_name(&self) -> Option<&PolicyName> {
        self.key_name.as_ref()
    }

    /// The exact text the signature covers.
    pub fn string_to_sign(&self) -> String {
        string_to_sign(&self.resource_encoded, self.expiry_unix_secs)
    }
}

impl fmt::Display for SasToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{SAS_TOKEN_PREFIX}sr={}&sig={}&se={}",
            self.resource_encoded, self.signature_encoded, self.expiry_unix_secs
        )?;
        if let Some(key_name) = &self.key_name {
            write!(formatter, "&skn={key_name}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SasToken")
            .field("resource_encoded", &self.resource_encoded)
            .field("scope", &self.scope)
            .field("signature", &"<redacted>")
            .field("expiry_unix_secs", &self.expiry_unix_secs)
            .field("key_name", &self.key_name)
            .finish()
    }
}

impl std::str::FromStr for SasToken {
    type Err = SasTokenParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SasToken::parse(text)
    }
}

/// The text a SAS signature covers: the encoded resource as written in `sr`, a line feed, and `se`.
///
/// The IoT Edge workload API receives the base64 of exactly this text in its `sign` call.
pub fn string_to_sign(resource_encoded: &str, expiry_unix_secs: u64) -> String {
    format!("{resource_encoded}\n{expiry_unix_secs}")
}

fn decode_signature(
    signature_encoded: &str,
) -> Result<[u8; SIGNATURE_LENGTH_BYTES], SasTokenParseError> {
    let invalid = |reason: String| SasTokenParseError::InvalidSignature { reason };
    let signature_base64 = percent_decode_utf8(signature_encoded)
        .ok_or_else(|| invalid("does not percent-decode to UTF-8".to_owned()))?;
    let signature_bytes =
        decode_base64(&signature_base64).map_err(|error| invalid(error.to_string()))?;
    let length = signature_bytes.len();
    signature_bytes
        .try_into()
        .map_err(|_| invalid(format!("decodes to {length} bytes")))
}

fn parse_expiry(expiry_text: &str) -> Result<u64, SasTokenParseError> {
    // `u64::from_str` also takes a leading `+`, which no producer writes; demand plain digits.
    let invalid = || SasTokenParseError::InvalidExpiry {
        value: crate::excerpt(expiry_text),
    };
    if !expiry_text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    expiry_text.parse().map_err(|_| invalid())
}
