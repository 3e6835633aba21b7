//! Shared access policy names (`skn` in tokens, `SharedAccessKeyName` in connection strings).

use std::fmt;

/// The longest shared access policy name accepted, in characters.
pub const MAX_POLICY_NAME_LENGTH: usize = 64;

/// The name of a shared access policy such as `iothubowner`, `service` or `registryRead`.
///
/// It is 1 to 64 ASCII letters, digits and `- . _`, so it never needs escaping in a token or a
/// connection string. Comparison is case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyName(String);

/// Why a string is not a shared access policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyNameError {
    /// The name is empty.
    #[error("policy name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_POLICY_NAME_LENGTH`].
    #[error("policy name is {length} characters long, the maximum is {MAX_POLICY_NAME_LENGTH}")]
    TooLong {
        /// Length of the rejected name.
        length: usize,
    },
    /// The name holds a character other than ASCII letters, digits and `- . _`.
    #[error(
        "policy name contains the character {character:?} at byte {position}, expected ASCII letters, digits or `-._`"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset.
        position: usize,
    },
}

// === impl PolicyName ===

impl PolicyName {
    /// Validates `candidate` and wraps it.
    pub fn new(candidate: &str) -> Result<Self, PolicyNameError> {
        if candidate.is_empty() {
            return Err(PolicyNameError::Empty);
        }
        if let Some((position, character)) = candidate.char_indices().find(|(_, character)| {
            !(character.is_ascii_alphanumeric() || matches!(character, '-' | '.' | '_'))
        }) {
            return Err(PolicyNameError::InvalidCharacter {
                character,
                position,
            });
        }
        if candidate.len() > MAX_POLICY_NAME_LENGTH {
            return Err(PolicyNameError::TooLong {
                length: candidate.len(),
            });
        }
        Ok(PolicyName(candidate.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::str::FromStr for PolicyName {
    type Err = PolicyNameError;

    fn from_str(candidate: &str) -> Result<Self, Self::Err> {
        PolicyName::new(candidate)
    }
}
