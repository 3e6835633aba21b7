//! Validated module names.

use std::fmt;
use std::str::FromStr;

use iothub_types::ModuleId;

/// The name of the edge agent system module; its module id is `$edgeAgent`.
pub const EDGE_AGENT_MODULE_NAME: &str = "edgeAgent";

/// The name of the edge hub system module; its module id is `$edgeHub`.
pub const EDGE_HUB_MODULE_NAME: &str = "edgeHub";

/// The longest module name accepted, in characters (all ASCII).
const MAX_MODULE_NAME_LENGTH: usize = 128;

/// Why a string is not a valid module name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleNameError {
    #[error("a module name must not be empty")]
    Empty,
    #[error("a module name is at most 128 characters long, this one has {length}")]
    TooLong { length: usize },
    #[error("a module name must start with an ASCII letter or digit, not {first:?}")]
    InvalidFirstCharacter { first: char },
    #[error(
        "a module name may only contain ASCII letters, digits, '_', '.' and '-', found {character:?} at byte {position}"
    )]
    InvalidCharacter { character: char, position: usize },
}

/// A module name as it appears under `modules` and `systemModules` in the `$edgeAgent` desired
/// properties: an ASCII letter or digit, then letters, digits, `_`, `.` or `-`, 128 at most.
///
/// The two system modules are `edgeAgent` and `edgeHub`; [`ModuleName::module_id`] gives them
/// their `$`-prefixed module ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleName(String);

impl ModuleName {
    /// Validates `candidate` and wraps it.
    pub fn new(candidate: &str) -> Result<ModuleName, ModuleNameError> {
        validate_module_name(candidate)?;
        Ok(ModuleName(candidate.to_owned()))
    }

    /// The `edgeAgent` system module.
    pub fn edge_agent() -> ModuleName {
        ModuleName(EDGE_AGENT_MODULE_NAME.to_owned())
    }

    /// The `edgeHub` system module.
    pub fn edge_hub() -> ModuleName {
        ModuleName(EDGE_HUB_MODULE_NAME.to_owned())
    }

    /// The name as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `edgeAgent` and `edgeHub`.
    pub fn is_system_module(&self) -> bool {
        self.0 == EDGE_AGENT_MODULE_NAME || self.0 == EDGE_HUB_MODULE_NAME
    }

    /// The IoT Hub module id of this module: `$edgeAgent` and `$edgeHub` for the system modules,
    /// the name itself otherwise.
    pub fn module_id(&self) -> ModuleId {
        let text = if self.is_system_module() {
            format!("${}", self.0)
        } else {
            self.0.clone()
        };
        // Every module name character is also allowed in module ids, and `$` is allowed too,
        // so this cannot fail; the fallback keeps the function total without a panic path.
        ModuleId::new(&text).unwrap_or_else(|_| ModuleId::new("invalid").expect("literal id"))
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl FromStr for ModuleName {
    type Err = ModuleNameError;

    fn from_str(candidate: &str) -> Result<Self, Self::Err> {
        ModuleName::new(candidate)
    }
}

impl AsRef<str> for ModuleName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn validate_module_name(candidate: &str) -> Result<(), ModuleNameError> {
    let Some(first) = candidate.chars().next() else {
        return Err(ModuleNameError::Empty);
    };
    if !first.is_ascii_alphanumeric() {
        return Err(ModuleNameError::InvalidFirstCharacter { first });
    }
    if let Some((position, character)) = candidate.char_indices().find(|(_, character)| {
        !(character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-'))
    }) {
        return Err(ModuleNameError::InvalidCharacter {
            character,
            position,
        });
    }
    if candidate.len() > MAX_MODULE_NAME_LENGTH {
        return Err(ModuleNameError::TooLong {
            length: candidate.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(candidate: &str, expect: Expect) {
        let rendered = match ModuleName::new(candidate) {
            Ok(name) => format!(
                "ok {name} module_id={} system={}",
                name.module_id(),
                name.is_system_module()
            ),
            Err(error) => format!("error: {error}"),
        };
        expect.assert_eq(&rendered);
    }

    #[test]
    fn module_names() {
        check(
            "tempSensor",
            expect!["ok tempSensor module_id=tempSensor system=false"],
        );
        check("m", expect!["ok m module_id=m system=false"]);
        check(
            "my_module-2.v1",
            expect!["ok my_module-2.v1 module_id=my_module-2.v1 system=false"],
        );
        check(
            "edgeHub",
            expect!["ok edgeHub module_id=$edgeHub system=true"],
        );
        check(
            "edgeAgent",
            expect!["ok edgeAgent module_id=$edgeAgent system=true"],
        );
        check("", expect!["error: a module name must not be empty"]);
        check(
            "$edgeHub",
            expect![[r#"error: a module name must start with an ASCII letter or digit, not '$'"#]],
        );
        check(
            "-x",
            expect![[r#"error: a module name must start with an ASCII letter or digit, not '-'"#]],
        );
        check(
            "a/b",
            expect![[
                r#"error: a module name may only contain ASCII letters, digits, '_', '.' and '-', found '/' at byte 1"#
            ]],
        );
        check(
            "a b",
            expect![[
                r#"error: a module name may only contain ASCII letters, digits, '_', '.' and '-', found ' ' at byte 1"#
            ]],
        );
        check(
            &"a".repeat(129),
            expect!["error: a module name is at most 128 characters long, this one has 129"],
        );
    }
}
