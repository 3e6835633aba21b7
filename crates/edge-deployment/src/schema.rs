//! `schemaVersion` strings, parsed the way .NET's `System.Version` reads them.

use std::fmt;

/// Why a `schemaVersion` string could not be read as a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaVersionError {
    #[error("a schema version has two to four dot-separated numbers, found {found:?}")]
    WrongShape { found: String },
    #[error("schema version component {component:?} is not a number")]
    NotANumber { component: String },
}

/// A `schemaVersion` such as `1.1` or `1.0.0`: two to four non-negative numbers.
///
/// Missing components compare as zero, so `1.1` equals `1.1.0`.
#[derive(Debug, Clone, Copy)]
pub struct SchemaVersion {
    components: [u32; 4],
    component_count: usize,
}

impl SchemaVersion {
    /// Parses `major.minor[.build[.revision]]`.
    pub fn parse(text: &str) -> Result<SchemaVersion, SchemaVersionError> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(SchemaVersionError::WrongShape {
                found: text.to_owned(),
            });
        }
        let mut components = [0_u32; 4];
        for (index, part) in parts.iter().enumerate() {
            if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(SchemaVersionError::NotANumber {
                    component: (*part).to_owned(),
                });
            }
            components[index] = part.parse().map_err(|_| SchemaVersionError::NotANumber {
                component: (*part).to_owned(),
            })?;
        }
        Ok(SchemaVersion {
            components,
            component_count: parts.len(),
        })
    }

    /// Builds `major.minor`.
    pub const fn new(major: u32, minor: u32) -> SchemaVersion {
        SchemaVersion {
            components: [major, minor, 0, 0],
            component_count: 2,
        }
    }

    pub fn major(&self) -> u32 {
        self.components[0]
    }

    pub fn minor(&self) -> u32 {
        self.components[1]
    }

    /// The four components with missing ones as zero, for ordering.
    fn key(&self) -> [u32; 4] {
        self.components
    }
}

impl PartialEq for SchemaVersion {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for SchemaVersion {}

impl std::hash::Hash for SchemaVersion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl Ord for SchemaVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for SchemaVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, component) in self.components[..self.component_count].iter().enumerate() {
            if index > 0 {
                formatter.write_str(".")?;
            }
            write!(formatter, "{component}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_like_dotnet_version() {
        let one_one = SchemaVersion::parse("1.1").unwrap();
        assert_eq!(one_one.to_string(), "1.1");
        assert_eq!(SchemaVersion::parse("1.1.0").unwrap().to_string(), "1.1.0");
        assert!(SchemaVersion::parse("1.1.0").unwrap() <= one_one);
        assert!(SchemaVersion::parse("1.1.1").unwrap() > one_one);
        assert!(SchemaVersion::parse("1.0.9").unwrap() < one_one);
        assert!(SchemaVersion::parse("1").is_err());
        assert!(SchemaVersion::parse("1.x").is_err());
        assert!(SchemaVersion::parse("1.-1").is_err());
        assert!(SchemaVersion::parse("1.1.1.1.1").is_err());
        assert!(SchemaVersion::parse("99999999999.1").is_err());
    }
}
