//! Validated device and module identifiers and the identity pair they form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest device or module id IoT Hub accepts, in characters (all of which are ASCII).
pub const MAX_IDENTIFIER_LENGTH: usize = 128;

/// Which kind of identifier failed validation, so error messages can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Device,
    Module,
}

impl fmt::Display for IdKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            IdKind::Device => "device id",
            IdKind::Module => "module id",
        })
    }
}

/// Why a string is not a valid device or module id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: IdKind },
    #[error("{kind} is {length} characters long, the maximum is 128")]
    TooLong { kind: IdKind, length: usize },
    #[error(
        "{kind} contains the character {character:?} at byte {position}, which IoT Hub does not allow"
    )]
    InvalidCharacter {
        kind: IdKind,
        character: char,
        position: usize,
    },
}

/// Returns true for the characters IoT Hub allows in device ids, module ids and message ids:
/// ASCII alphanumerics plus `- : . + % _ # * ? ! ( ) , = @ ; $ '`.
pub(crate) fn is_identifier_character(character: char) -> bool {
    character.is_ascii_alphanumeric()
        || matches!(
            character,
            '-' | ':'
                | '.'
                | '+'
                | '%'
                | '_'
                | '#'
                | '*'
                | '?'
                | '!'
                | '('
                | ')'
                | ','
                | '='
                | '@'
                | ';'
                | '$'
                | '\''
        )
}

fn validate_identifier(kind: IdKind, candidate: &str) -> Result<(), IdError> {
    if candidate.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if let Some((position, character)) = candidate
        .char_indices()
        .find(|(_, character)| !is_identifier_character(*character))
    {
        return Err(IdError::InvalidCharacter {
            kind,
            character,
            position,
        });
    }
    // Every allowed character is one byte long, so the byte length is the character count here.
    if candidate.len() > MAX_IDENTIFIER_LENGTH {
        return Err(IdError::TooLong {
            kind,
            length: candidate.len(),
        });
    }
    Ok(())
}

macro_rules! validated_identifier {
    ($name:ident, $kind:expr) => {
        impl $name {
            /// Validates `candidate` against the IoT Hub identifier rules and wraps it.
            pub fn new(candidate: &str) -> Result<Self, IdError> {
                validate_identifier($kind, candidate)?;
                Ok(Self(candidate.to_owned()))
            }

            /// The identifier exactly as IoT Hub spells it (case-sensitive).
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the identifier, returning the owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(candidate: &str) -> Result<Self, Self::Err> {
                Self::new(candidate)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(candidate: String) -> Result<Self, Self::Error> {
                validate_identifier($kind, &candidate)?;
                Ok(Self(candidate))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(candidate: &str) -> Result<Self, Self::Error> {
                Self::new(candidate)
            }
        }

        impl From<$name> for String {
            fn from(identifier: $name) -> String {
                identifier.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// A device id: 1 to 128 ASCII characters drawn from alphanumerics and `- : . + % _ # * ? ! ( ) , = @ ; $ '`.
/// Comparison is case-sensitive, as in IoT Hub. Serializes as a plain JSON string and validates when deserialized.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

validated_identifier!(DeviceId, IdKind::Device);

/// A module id, with the same rules as a device id. System modules start with `$` (`$edgeAgent`, `$edgeHub`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModuleId(String);

validated_identifier!(ModuleId, IdKind::Module);

impl ModuleId {
    /// True for the IoT Edge system modules, whose ids start with `$` (`$edgeAgent`, `$edgeHub`).
    pub fn is_system_module(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// Who a client is: a device, or a module inside a device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub device: DeviceId,
    pub module: Option<ModuleId>,
}

/// Why a `dev` or `dev/mod` string is not an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityParseError {
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error("identity has more than two '/'-separated parts")]
    TooManyParts,
}

impl Identity {
    /// The identity of a device connecting as itself.
    pub fn device(device: DeviceId) -> Self {
        Self {
            device,
            module: None,
        }
    }

    /// The identity of a module of `device`.
    pub fn module(device: DeviceId, module: ModuleId) -> Self {
        Self {
            device,
            module: Some(module),
        }
    }

    pub fn is_module(&self) -> bool {
        self.module.is_some()
    }
}

/// Formats as `dev` for a device and `dev/mod` for a module, which is also the MQTT client id the SDKs use.
impl fmt::Display for Identity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.module {
            None => write!(formatter, "{}", self.device),
            Some(module) => write!(formatter, "{}/{}", self.device, module),
        }
    }
}

/// Parses `dev` or `dev/mod`. Neither id may contain `/`, so the split is unambiguous.
impl FromStr for Identity {
    type Err = IdentityParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.split('/');
        let device = DeviceId::new(parts.next().unwrap_or_default())?;
        let module = parts.next().map(ModuleId::new).transpose()?;
        if parts.next().is_some() {
            return Err(IdentityParseError::TooManyParts);
        }
        Ok(Self { device, module })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    /// Validates `candidate` as a device id and as a module id and snapshots both outcomes.
    fn check(candidate: &str, expected: Expect) {
        let device = match DeviceId::new(candidate) {
            Ok(device) => format!("device ok {device}"),
            Err(error) => format!("device error: {error}"),
        };
        let module = match ModuleId::new(candidate) {
            Ok(module) => format!("module ok {module} system={}", module.is_system_module()),
            Err(error) => format!("module error: {error}"),
        };
        expected.assert_eq(&format!("{device}\n{module}"));
    }

    #[test]
    fn plain_identifier_is_accepted() {
        check(
            "dev1",
            expect![[r#"
                device ok dev1
                module ok dev1 system=false"#]],
        );
    }

    #[test]
    fn every_special_character_is_accepted() {
        check(
            "a-:.+%_#*?!(),=@;$'z",
            expect![[r#"
                device ok a-:.+%_#*?!(),=@;$'z
                module ok a-:.+%_#*?!(),=@;$'z system=false"#]],
        );
    }

    #[test]
    fn edge_system_module_is_accepted() {
        check(
            "$edgeAgent",
            expect![[r#"
                device ok $edgeAgent
                module ok $edgeAgent system=true"#]],
        );
    }

    #[test]
    fn empty_identifier_is_rejected() {
        check(
            "",
            expect![[r#"
                device error: device id must not be empty
                module error: module id must not be empty"#]],
        );
    }

    #[test]
    fn slash_space_and_unicode_are_rejected() {
        check(
            "dev/1",
            expect![[r#"
                device error: device id contains the character '/' at byte 3, which IoT Hub does not allow
                module error: module id contains the character '/' at byte 3, which IoT Hub does not allow"#]],
        );
        check(
            "a b",
            expect![[r#"
                device error: device id contains the character ' ' at byte 1, which IoT Hub does not allow
                module error: module id contains the character ' ' at byte 1, which IoT Hub does not allow"#]],
        );
        check(
            "caf\u{e9}",
            expect![[r#"
                device error: device id contains the character 'é' at byte 3, which IoT Hub does not allow
                module error: module id contains the character 'é' at byte 3, which IoT Hub does not allow"#]],
        );
    }

    #[test]
    fn length_limit_is_128() {
        let longest = "a".repeat(128);
        assert!(DeviceId::new(&longest).is_ok());
        check(
            &"a".repeat(129),
            expect![[r#"
                device error: device id is 129 characters long, the maximum is 128
                module error: module id is 129 characters long, the maximum is 128"#]],
        );
    }

    #[test]
    fn serde_uses_plain_strings_and_validates() {
        let device = DeviceId::new("dev1").unwrap();
        assert_eq!(serde_json::to_string(&device).unwrap(), r#""dev1""#);
        let parsed: ModuleId = serde_json::from_str(r#""$edgeHub""#).unwrap();
        assert_eq!(parsed.as_str(), "$edgeHub");
        let error = serde_json::from_str::<DeviceId>(r#""bad id""#).unwrap_err();
        expect![[
            r#"device id contains the character ' ' at byte 3, which IoT Hub does not allow"#
        ]]
        .assert_eq(&error.to_string());
    }

    #[test]
    fn identity_display_and_parse() {
        let device: Identity = "dev1".parse().unwrap();
        let module: Identity = "dev1/$edgeHub".parse().unwrap();
        assert_eq!(device.to_string(), "dev1");
        assert_eq!(module.to_string(), "dev1/$edgeHub");
        assert!(module.is_module());
        expect![[r#"identity has more than two '/'-separated parts"#]]
            .assert_eq(&"a/b/c".parse::<Identity>().unwrap_err().to_string());
        expect![[r#"module id must not be empty"#]]
            .assert_eq(&"a/".parse::<Identity>().unwrap_err().to_string());
    }

    /// A simple model of the rule: allowed charset and 1..=128 characters.
    fn model_accepts(candidate: &str) -> bool {
        let allowed = "-:.+%_#*?!(),=@;$'";
        !candidate.is_empty()
            && candidate.chars().count() <= 128
            && candidate
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || allowed.contains(character))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn validation_matches_model(candidate in "[a-zA-Z0-9 /\\-:.+%_#*?!(),=@;$'é&]{0,140}") {
            prop_assert_eq!(DeviceId::new(&candidate).is_ok(), model_accepts(&candidate));
            prop_assert_eq!(ModuleId::new(&candidate).is_ok(), model_accepts(&candidate));
        }

        #[test]
        fn identity_round_trips(device in "[a-zA-Z0-9\\-:.+%_#*?!(),=@;$']{1,128}",
                                module in proptest::option::of("[a-zA-Z0-9\\-:.+%_#*?!(),=@;$']{1,128}")) {
            let identity = Identity {
                device: DeviceId::new(&device).unwrap(),
                module: module.as_deref().map(|module| ModuleId::new(module).unwrap()),
            };
            prop_assert_eq!(identity.to_string().parse::<Identity>().unwrap(), identity);
        }

        #[test]
        fn arbitrary_strings_never_panic(candidate in any::<String>()) {
            let _ = DeviceId::new(&candidate);
            let _ = candidate.parse::<Identity>();
        }
    }
}
