//! Which registry an image comes from, and which deployment login to pull it with (pure).

use std::collections::BTreeMap;

use edge_deployment::RegistryCredential;

/// The registry host Docker uses for images without one.
const DOCKER_HUB: &str = "docker.io";

/// Host names that all mean Docker Hub.
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// An image reference split the way Docker's `POST /images/create` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullTarget {
    /// `fromImage`: the repository with its registry, or the whole reference for a digest.
    pub from_image: String,
    /// `tag`; `None` for a digest reference (`repo@sha256:…`).
    pub tag: Option<String>,
    /// The registry host (`docker.io` when the reference names none), lowercase.
    pub registry: String,
}

/// Splits a resolved image reference (`[registry/]repository[:tag|@digest]`).
pub(crate) fn pull_target(image: &str) -> PullTarget {
    let registry = registry_of(image);
    if image.contains('@') {
        return PullTarget {
            from_image: image.to_owned(),
            tag: None,
            registry,
        };
    }
    let last_slash = image.rfind('/').map_or(0, |index| index + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => PullTarget {
            from_image: image[..last_slash + colon].to_owned(),
            tag: Some(image[last_slash + colon + 1..].to_owned()),
            registry,
        },
        None => PullTarget {
            from_image: image.to_owned(),
            tag: Some("latest".to_owned()),
            registry,
        },
    }
}

/// Docker's rule: the first path segment is a registry host when it contains `.` or `:` or is
/// `localhost`; otherwise the image is on Docker Hub.
fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            normalize_registry(first)
        }
        _ => DOCKER_HUB.to_owned(),
    }
}

/// A registry address as users write it (`https://host/v1/`, `HOST:5000`) reduced to the host.
fn normalize_registry(address: &str) -> String {
    let address = address.trim();
    let without_scheme = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    let host = host.to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        DOCKER_HUB.to_owned()
    } else {
        host
    }
}

/// The deployment login for `registry` (from [`pull_target`]): the first one, by the name the
/// manifest gives it, whose `address` names that registry.
pub(crate) fn credential_for<'a>(
    registry: &str,
    credentials: &'a BTreeMap<String, RegistryCredential>,
) -> Option<&'a RegistryCredential> {
    credentials
        .values()
        .find(|credential| normalize_registry(&credential.address) == registry)
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn credentials() -> BTreeMap<String, RegistryCredential> {
        let login = |address: &str| RegistryCredential {
            username: "user".to_owned(),
            password: "secret".to_owned(),
            address: address.to_owned(),
        };
        BTreeMap::from([
            ("acr".to_owned(), login("MyRegistry.azurecr.io")),
            ("hub".to_owned(), login("https://index.docker.io/v1/")),
            ("local".to_owned(), login("localhost:5000")),
        ])
    }

    fn check(image: &str, expect: Expect) {
        let target = pull_target(image);
        let credentials = credentials();
        let login = credentials
            .iter()
            .find(|(_, credential)| {
                Some(*credential) == credential_for(&target.registry, &credentials)
            })
            .map_or("none", |(name, _)| name.as_str());
        expect.assert_eq(&format!(
            "from_image={} tag={:?} registry={} login={login}",
            target.from_image, target.tag, target.registry
        ));
    }

    proptest::proptest! {
        /// A tagged reference splits into parts that join back into it.
        #[test]
        fn tagged_references_split_and_join_back(
            registry in proptest::option::of("[a-z]{1,6}(\\.[a-z]{2,3}|:[1-9][0-9]{0,3})"),
            path in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
            tag in "[A-Za-z0-9_.-]{1,10}",
        ) {
            let image = match &registry {
                Some(registry) => format!("{registry}/{path}:{tag}"),
                None => format!("{path}:{tag}"),
            };
            let target = pull_target(&image);
            let tag_part = target.tag.clone().unwrap();
            proptest::prop_assert_eq!(format!("{}:{}", target.from_image, tag_part), image);
            proptest::prop_assert_eq!(
                target.registry,
                registry.unwrap_or_else(|| DOCKER_HUB.to_owned())
            );
        }
    }

    #[test]
    fn pull_targets_and_logins() {
        check(
            "alpine:3.20",
            expect![[r#"from_image=alpine tag=Some("3.20") registry=docker.io login=hub"#]],
        );
        check(
            "library/alpine",
            expect![[
                r#"from_image=library/alpine tag=Some("latest") registry=docker.io login=hub"#
            ]],
        );
        check(
            "myregistry.azurecr.io/team/sensor:1.2",
            expect![[
                r#"from_image=myregistry.azurecr.io/team/sensor tag=Some("1.2") registry=myregistry.azurecr.io login=acr"#
            ]],
        );
        check(
            "localhost:5000/sensor:dev",
            expect![[
                r#"from_image=localhost:5000/sensor tag=Some("dev") registry=localhost:5000 login=local"#
            ]],
        );
        check(
            "localhost:5001/sensor",
            expect![[
                r#"from_image=localhost:5001/sensor tag=Some("latest") registry=localhost:5001 login=none"#
            ]],
        );
        check(
            "ghcr.io/owner/sensor@sha256:abcd",
            expect![
                "from_image=ghcr.io/owner/sensor@sha256:abcd tag=None registry=ghcr.io login=none"
            ],
        );
    }
}
