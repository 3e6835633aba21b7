//! Property tests: token and connection-string round trips, tamper detection, parser robustness.

use iothub_auth::{
    ClientCredential, ConnectionString, DeviceConnectionString, HostName, ModuleConnectionString,
    PolicyName, ResourceScope, SasToken, SasTokenStyle, SasTokenVerifyError,
    ServiceConnectionString, SymmetricKey,
};
use iothub_types::{DeviceId, ModuleId};
use proptest::prelude::*;

const IDENTIFIER_PATTERN: &str = "[A-Za-z0-9\\-:.+%_#*?!(),=@;$']{1,40}";
const CONNECTION_STRING_IDENTIFIER_PATTERN: &str = "[A-Za-z0-9\\-:.+%_#*?!(),=@$']{1,40}";

fn host_names() -> impl Strategy<Value = HostName> {
    "[A-Za-z0-9][A-Za-z0-9.\\-_]{0,30}(:[0-9]{1,5})?".prop_map(|text| HostName::new(&text).unwrap())
}

fn device_ids(pattern: &'static str) -> impl Strategy<Value = DeviceId> {
    pattern.prop_map(|text| DeviceId::new(&text).unwrap())
}

fn module_ids(pattern: &'static str) -> impl Strategy<Value = ModuleId> {
    pattern.prop_map(|text| ModuleId::new(&text).unwrap())
}

fn scopes() -> impl Strategy<Value = ResourceScope> {
    prop_oneof![
        host_names().prop_map(ResourceScope::hub),
        (host_names(), device_ids(IDENTIFIER_PATTERN))
            .prop_map(|(host, device)| ResourceScope::device(host, device)),
        (
            host_names(),
            device_ids(IDENTIFIER_PATTERN),
            module_ids(IDENTIFIER_PATTERN)
        )
            .prop_map(|(host, device, module)| ResourceScope::module(host, device, module)),
    ]
}

fn keys() -> impl Strategy<Value = SymmetricKey> {
    prop::collection::vec(any::<u8>(), 1..80)
        .prop_map(|bytes| SymmetricKey::from_bytes(bytes).unwrap())
}

fn policy_names() -> impl Strategy<Value = Option<PolicyName>> {
    prop::option::of("[A-Za-z0-9._\\-]{1,64}".prop_map(|text| PolicyName::new(&text).unwrap()))
}

fn styles() -> impl Strategy<Value = SasTokenStyle> {
    prop_oneof![
        Just(SasTokenStyle::DeviceSdk),
        Just(SasTokenStyle::ServiceSdkRest),
        Just(SasTokenStyle::ServiceSdkAmqp)
    ]
}

/// Replaces the value of `field` in a token's text.
fn replace_field(token_text: &str, field: &str, new_value: &str) -> String {
    let body = token_text.strip_prefix("SharedAccessSignature ").unwrap();
    let pieces: Vec<String> = body
        .split('&')
        .map(|piece| match piece.split_once('=') {
            Some((name, _)) if name == field => format!("{name}={new_value}"),
            _ => piece.to_owned(),
        })
        .collect();
    format!("SharedAccessSignature {}", pieces.join("&"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn built_tokens_parse_back_and_verify(
        style in styles(),
        scope in scopes(),
        key in keys(),
        key_name in policy_names(),
        expiry_unix_secs in 0u64..u64::MAX,
    ) {
        let token = SasToken::sign(style, &scope, &key, key_name.as_ref(), expiry_unix_secs);
        let text = token.to_string();
        let parsed = SasToken::parse(&text).unwrap();
        prop_assert_eq!(&parsed, &token);
        prop_assert_eq!(parsed.to_string(), text);
        prop_assert_eq!(parsed.scope(), &scope);
        prop_assert_eq!(parsed.verify(&key, expiry_unix_secs), Ok(()));
        prop_assert_eq!(parsed.verify(&key, 0), Ok(()));
        prop_assert_eq!(
            parsed.verify(&key, expiry_unix_secs + 1),
            Err(SasTokenVerifyError::Expired { expiry_unix_secs, now_unix_secs: expiry_unix_secs + 1 })
        );
    }

    #[test]
    fn tampered_tokens_are_always_rejected(
        style in styles(),
        scope in scopes(),
        other_scope in scopes(),
        key in keys(),
        other_key in keys(),
        expiry_unix_secs in 0u64..u64::MAX,
        other_expiry_unix_secs in 0u64..u64::MAX,
        forged_signature in prop::array::uniform32(any::<u8>()),
    ) {
        let token = SasToken::sign(style, &scope, &key, None, expiry_unix_secs);
        let text = token.to_string();

        let mut forged_signature = forged_signature;
        if &forged_signature == token.signature() {
            forged_signature[0] ^= 1;
        }
        let forged_signature_text = iothub_auth::quote_nothing_safe(&base64_of(&forged_signature));
        let tampered = SasToken::parse(&replace_field(&text, "sig", &forged_signature_text)).unwrap();
        prop_assert_eq!(tampered.verify(&key, 0), Err(SasTokenVerifyError::SignatureMismatch));

        if other_expiry_unix_secs != expiry_unix_secs {
            let tampered = SasToken::parse(&replace_field(&text, "se", &other_expiry_unix_secs.to_string())).unwrap();
            prop_assert_eq!(tampered.verify(&key, 0), Err(SasTokenVerifyError::SignatureMismatch));
        }

        let other_resource = iothub_auth::quote_nothing_safe(&other_scope.resource_uri());
        if other_resource != token.resource_encoded() {
            let tampered = SasToken::parse(&replace_field(&text, "sr", &other_resource)).unwrap();
            prop_assert_eq!(tampered.verify(&key, 0), Err(SasTokenVerifyError::SignatureMismatch));
        }

        if other_key != key {
            prop_assert_eq!(token.verify(&other_key, 0), Err(SasTokenVerifyError::SignatureMismatch));
        }
    }

    #[test]
    fn token_parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = SasToken::parse(&text);
        let _ = SasToken::parse(&format!("SharedAccessSignature {text}"));
    }

    #[test]
    fn token_parser_never_panics_on_near_miss_tokens(
        body in "((sr|sig|se|skn|x)(=[A-Za-z0-9%/+=.]{0,12})?&?){0,6}",
    ) {
        let text = format!("SharedAccessSignature {body}");
        if let Ok(token) = SasToken::parse(&text) {
            // Whatever parses must print as something that parses to the same token.
            prop_assert_eq!(SasToken::parse(&token.to_string()).unwrap(), token);
        }
    }

    #[test]
    fn connection_string_parser_never_panics(text in any::<String>()) {
        let _ = ConnectionString::parse(&text);
    }

    #[test]
    fn connection_string_parser_never_panics_on_near_misses(
        text in "((HostName|DeviceId|ModuleId|SharedAccessKeyName|SharedAccessKey|SharedAccessSignature|GatewayHostName|x509|Foo)(=[A-Za-z0-9=+/. ]{0,10})?;?){0,7}",
    ) {
        if let Ok(connection_string) = ConnectionString::parse(&text) {
            prop_assert_eq!(ConnectionString::parse(&connection_string.to_string()), Ok(connection_string));
        }
    }

    #[test]
    fn connection_strings_format_then_parse_back(
        host in host_names(),
        gateway in prop::option::of(host_names()),
        device in device_ids(CONNECTION_STRING_IDENTIFIER_PATTERN),
        module in prop::option::of(module_ids(CONNECTION_STRING_IDENTIFIER_PATTERN)),
        key in keys(),
        credential_choice in 0u8..4,
        key_name in "[A-Za-z0-9._\\-]{1,64}",
        style in styles(),
        expiry_unix_secs in any::<u64>(),
    ) {
        let scope = match &module {
            None => ResourceScope::device(host.clone(), device.clone()),
            Some(module) => ResourceScope::module(host.clone(), device.clone(), module.clone()),
        };
        let credential = match credential_choice {
            0 => ClientCredential::SharedAccessKey(key.clone()),
            1 => ClientCredential::SharedAccessSignature(SasToken::sign(style, &scope, &key, None, expiry_unix_secs)),
            _ => ClientCredential::X509,
        };
        let connection_string = if credential_choice == 3 {
            let service = ServiceConnectionString::new(host, PolicyName::new(&key_name).unwrap(), key);
            ConnectionString::Service(match gateway {
                Some(gateway) => service.with_gateway_host_name(gateway),
                None => service,
            })
        } else {
            match module {
                None => {
                    let device = DeviceConnectionString::new(host, device, credential).unwrap();
                    ConnectionString::Device(match gateway {
                        Some(gateway) => device.with_gateway_host_name(gateway),
                        None => device,
                    })
                }
                Some(module) => {
                    let module = ModuleConnectionString::new(host, device, module, credential).unwrap();
                    ConnectionString::Module(match gateway {
                        Some(gateway) => module.with_gateway_host_name(gateway),
                        None => module,
                    })
                }
            }
        };
        let text = connection_string.to_string();
        let parsed = ConnectionString::parse(&text).unwrap();
        prop_assert_eq!(parsed.to_string(), text);
        prop_assert_eq!(parsed, connection_string);
    }

    #[test]
    fn scope_uris_round_trip_and_cover_themselves(scope in scopes(), other in scopes()) {
        let parsed = ResourceScope::parse_resource_uri(&scope.resource_uri()).unwrap();
        prop_assert_eq!(&parsed, &scope);
        prop_assert!(scope.covers(&scope));
        // Coverage is a partial order: two different scopes never cover each other.
        if scope != other {
            prop_assert!(!(scope.covers(&other) && other.covers(&scope)));
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
