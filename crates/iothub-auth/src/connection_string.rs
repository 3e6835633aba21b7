//! Connection strings: `Key=Value` pairs joined by `;`, as the Azure portal and the SDKs write them.

use std::fmt;

use iothub_types::{DeviceId, Identity, ModuleId};

use crate::key::SymmetricKey;
use crate::policy::PolicyName;
use crate::resource::{HostName, ResourceScope};
use crate::sas::SasToken;

/// A parsed connection string of any of the three kinds.
///
/// `Display` writes the canonical form: `HostName`, `DeviceId`, `ModuleId`, `SharedAccessKeyName`,
/// the credential, then `GatewayHostName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionString {
    /// `HostName`, `DeviceId` and a credential.
    Device(DeviceConnectionString),
    /// `HostName`, `DeviceId`, `ModuleId` and a credential.
    Module(ModuleConnectionString),
    /// `HostName`, `SharedAccessKeyName` and `SharedAccessKey`: a shared access policy.
    Service(ServiceConnectionString),
}

/// The three kinds of connection string, for error messages and kind checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStringKind {
    /// A device connection string.
    Device,
    /// A module connection string.
    Module,
    /// A service (shared access policy) connection string.
    Service,
}

/// How a device or module proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredential {
    /// `SharedAccessKey=…`: the device or module key; the client signs its own tokens.
    SharedAccessKey(SymmetricKey),
    /// `SharedAccessSignature=SharedAccessSignature sr=…`: a ready-made token.
    SharedAccessSignature(SasToken),
    /// `x509=true`: a client certificate, presented during the TLS handshake.
    X509,
}

/// A device connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConnectionString {
    host_name: HostName,
    device_id: DeviceId,
    credential: ClientCredential,
    gateway_host_name: Option<HostName>,
}

/// A module connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleConnectionString {
    host_name: HostName,
    device_id: DeviceId,
    module_id: ModuleId,
    credential: ClientCredential,
    gateway_host_name: Option<HostName>,
}

/// A service connection string, naming a shared access policy and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConnectionString {
    host_name: HostName,
    key_name: PolicyName,
    key: SymmetricKey,
    gateway_host_name: Option<HostName>,
}

/// A key of a connection string. Keys are case-sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStringKey {
    /// `HostName`.
    HostName,
    /// `DeviceId`.
    DeviceId,
    /// `ModuleId`.
    ModuleId,
    /// `SharedAccessKeyName`.
    SharedAccessKeyName,
    /// `SharedAccessKey`.
    SharedAccessKey,
    /// `SharedAccessSignature`.
    SharedAccessSignature,
    /// `GatewayHostName`.
    GatewayHostName,
    /// `x509`.
    X509,
}

/// Why a string is not a usable connection string. Every variant names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    /// The text is empty.
    #[error("connection string is empty, expected `Key=Value` pairs joined by `;`")]
    Empty,
    /// A `;`-separated piece has no `=`.
    #[error("connection string piece `{pair}` has no `=`, expected `Key=Value`")]
    MalformedPair {
        /// The piece, shortened when long.
        pair: String,
    },
    /// A key that no connection string uses (keys are case-sensitive).
    #[error(
        "connection string has unknown key `{key}`, expected one of HostName, DeviceId, ModuleId, \
         SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, GatewayHostName, x509"
    )]
    UnknownKey {
        /// The key, shortened when long.
        key: String,
    },
    /// A key appears twice.
    #[error("connection string key `{key}` appears more than once")]
    DuplicateKey {
        /// The repeated key.
        key: ConnectionStringKey,
    },
    /// A key has an empty value.
    #[error("connection string key `{key}` has an empty value")]
    EmptyValue {
        /// The key.
        key: ConnectionStringKey,
    },
    /// A value does not fit its key.
    #[error("connection string key `{key}` has an invalid value: {reason}")]
    InvalidValue {
        /// The key.
        key: ConnectionStringKey,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A required key is absent.
    #[error("{kind} connection string lacks the required key `{key}`")]
    MissingKey {
        /// The kind of connection string being read.
        kind: ConnectionStringKind,
        /// The missing key.
        key: ConnectionStringKey,
    },
    /// Neither `DeviceId` nor `SharedAccessKeyName` is present, so the kind is unknown.
    #[error(
        "connection string has neither `DeviceId` (device or module) nor `SharedAccessKeyName` (service policy)"
    )]
    UnknownKind,
    /// A key that this kind of connection string does not take.
    #[error("{kind} connection string does not take the key `{key}`")]
    UnexpectedKey {
        /// The kind of connection string being read.
        kind: ConnectionStringKind,
        /// The key that does not belong.
        key: ConnectionStringKey,
    },
    /// A device or module connection string without any credential.
    #[error(
        "{kind} connection string needs one of `SharedAccessKey`, `SharedAccessSignature` or `x509=true`"
    )]
    MissingCredential {
        /// The kind of connection string being read.
        kind: ConnectionStringKind,
    },
    /// Two credentials at once, for example `x509=true` with `SharedAccessKey`.
    #[error(
        "connection string mixes authentication schemes `{first}` and `{second}`, expected exactly one"
    )]
    MixedCredentials {
        /// The first credential key found, in canonical order.
        first: ConnectionStringKey,
        /// The second credential key found.
        second: ConnectionStringKey,
    },
    /// The connection string is valid but not of the kind asked for.
    #[error("expected a {expected} connection string, found a {found} connection string")]
    WrongKind {
        /// The kind asked for.
        expected: ConnectionStringKind,
        /// The kind found.
        found: ConnectionStringKind,
    },
}

// === impl ConnectionStringKey ===

impl ConnectionStringKey {
    /// Every key, in canonical order.
    pub const ALL: [ConnectionStringKey; 8] = [
        ConnectionStringKey::HostName,
        ConnectionStringKey::DeviceId,
        ConnectionStringKey::ModuleId,
        ConnectionStringKey::SharedAccessKeyName,
        ConnectionStringKey::SharedAccessKey,
        ConnectionStringKey::SharedAccessSignature,
        ConnectionStringKey::X509,
        ConnectionStringKey::GatewayHostName,
    ];

    /// The key as written in a connection string.
    pub fn wire_name(self) -> &'static str {
        match self {
            ConnectionStringKey::HostName => "HostName",
            ConnectionStringKey::DeviceId => "DeviceId",
            ConnectionStringKey::ModuleId => "ModuleId",
            ConnectionStringKey::SharedAccessKeyName => "SharedAccessKeyName",
            ConnectionStringKey::SharedAccessKey => "SharedAccessKey",
            ConnectionStringKey::SharedAccessSignature => "SharedAccessSignature",
            ConnectionStringKey::GatewayHostName => "GatewayHostName",
            ConnectionStringKey::X509 => "x509",
        }
    }

    fn from_wire_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.wire_name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ConnectionStringKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.wire_name())
    }
}

impl fmt::Display for ConnectionStringKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            ConnectionStringKind::Device => "device",
            ConnectionStringKind::Module => "module",
            ConnectionStringKind::Service => "service",
        })
    }
}

// === impl ConnectionString ===

impl ConnectionString {
    /// Parses a connection string of any kind.
    ///
    /// Each `;`-separated pair is split at its first `=`, so values may contain `=`. Whitespace is
    /// not trimmed. Unknown, duplicate and empty keys are errors, as is `x509` with a key.
    pub fn parse(text: &str) -> Result<ConnectionString, ConnectionStringError> {
        let pairs = split_pairs(text)?;
        let host_name = pairs.host_name(ConnectionStringKey::HostName)?;
        let gateway_host_name = pairs.optional_host_name(ConnectionStringKey::GatewayHostName)?;
        if pairs.get(ConnectionStringKey::DeviceId).is_some() {
            let kind = match pairs.get(ConnectionStringKey::ModuleId) {
                Some(_) => ConnectionStringKind::Module,
                None => ConnectionStringKind::Device,
            };
            pairs.refuse(kind, ConnectionStringKey::SharedAccessKeyName)?;
            let device_id = DeviceId::new(pairs.required(kind, ConnectionStringKey::DeviceId)?)
                .map_err(|error| invalid_value(ConnectionStringKey::DeviceId, error.to_string()))?;
            let module_id = pairs
                .get(ConnectionStringKey::ModuleId)
                .map(|module_text| {
                    ModuleId::new(module_text).map_err(|error| {
                        invalid_value(ConnectionStringKey::ModuleId, error.to_string())
                    })
                })
                .transpose()?;
            let credential = pairs.client_credential(kind)?;
            match module_id {
                None => {
                    let device = DeviceConnectionString::new(host_name, device_id, credential)?;
                    Ok(ConnectionString::Device(
                        device.with_optional_gateway_host_name(gateway_host_name),
                    ))
                }
                Some(module_id) => {
                    let module =
                        ModuleConnectionString::new(host_name, device_id, module_id, credential)?;
                    Ok(ConnectionString::Module(
                        module.with_optional_gateway_host_name(gateway_host_name),
                    ))
                }
            }
        } else if pairs
            .get(ConnectionStringKey::SharedAccessKeyName)
            .is_some()
        {
            let kind = ConnectionStringKind::Service;
            pairs.refuse(kind, ConnectionStringKey::ModuleId)?;
            pairs.refuse(kind, ConnectionStringKey::SharedAccessSignature)?;
            pairs.refuse(kind, ConnectionStringKey::X509)?;
            let key_name =
                PolicyName::new(pairs.required(kind, ConnectionStringKey::SharedAccessKeyName)?)
                    .map_err(|error| {
                        invalid_value(ConnectionStringKey::SharedAccessKeyName, error.to_string())
                    })?;
            let key = pairs.key(kind)?;
            let service = ServiceConnectionString::new(host_name, key_name, key);
            Ok(ConnectionString::Service(
                service.with_optional_gateway_host_name(gateway_host_name),
            ))
        } else if pairs.get(ConnectionStringKey::ModuleId).is_some() {
            Err(ConnectionStringError::MissingKey {
                kind: ConnectionStringKind::Module,
                key: ConnectionStringKey::DeviceId,
            })
        } else {
            Err(ConnectionStringError::UnknownKind)
        }
    }

    /// Which kind this is.
    pub fn kind(&self) -> ConnectionStringKind {
        match self {
            ConnectionString::Device(_) => ConnectionStringKind::Device,
            ConnectionString::Module(_) => ConnectionStringKind::Module,
            ConnectionString::Service(_) => ConnectionStringKind::Service,
        }
    }

    /// The `HostName` of the hub.
    pub fn host_name(&self) -> &HostName {
        match self {
            ConnectionString::Device(device) => device.host_name(),
            ConnectionString::Module(module) => module.host_name(),
            ConnectionString::Service(service) => service.host_name(),
        }
    }
}

impl fmt::Display for ConnectionString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionString::Device(device) => device.fmt(formatter),
            ConnectionString::Module(module) => module.fmt(formatter),
            ConnectionString::Service(service) => service.fmt(formatter),
        }
    }
}

impl std::str::FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ConnectionString::parse(text)
    }
}

// === impl DeviceConnectionString ===

impl DeviceConnectionString {
    /// Builds a device connection string.
    ///
    /// Fails when the device id holds `;` (it could not be written into a connection string), or
    /// when a ready-made token does not cover this device on this hub.
    pub fn new(
        host_name: HostName,
        device_id: DeviceId,
        credential: ClientCredential,
    ) -> Result<Self, ConnectionStringError> {
        check_no_separator(ConnectionStringKey::DeviceId, device_id.as_str())?;
        check_credential(
            &host_name,
            &Identity::device(device_id.clone()),
            &credential,
        )?;
        Ok(DeviceConnectionString {
            host_name,
            device_id,
            credential,
            gateway_host_name: None,
        })
    }

    /// Parses a connection string that must be of the device kind.
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        match ConnectionString::parse(text)? {
            ConnectionString::Device(device) => Ok(device),
            other => Err(wrong_kind(ConnectionStringKind::Device, &other)),
        }
    }

    /// Adds `GatewayHostName`: the host the client connects to, while `HostName` stays in `sr`.
    pub fn with_gateway_host_name(self, gateway_host_name: HostName) -> Self {
        self.with_optional_gateway_host_name(Some(gateway_host_name))
    }

    fn with_optional_gateway_host_name(self, gateway_host_name: Option<HostName>) -> Self {
        DeviceConnectionString {
            gateway_host_name,
            ..self
        }
    }

    /// `HostName`.
    pub fn host_name(&self) -> &HostName {
        &self.host_name
    }

    /// `DeviceId`.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The credential.
    pub fn credential(&self) -> &ClientCredential {
        &self.credential
    }

    /// `GatewayHostName`, when present.
    pub fn gateway_host_name(&self) -> Option<&HostName> {
        self.gateway_host_name.as_ref()
    }

    /// The device's identity.
    pub fn identity(&self) -> Identity {
        Identity::device(self.device_id.clone())
    }

    /// The resource a token for this device names.
    pub fn resource_scope(&self) -> ResourceScope {
        ResourceScope::device(self.host_name.clone(), self.device_id.clone())
    }
}

impl fmt::Display for DeviceConnectionString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "HostName={};DeviceId={};",
            self.host_name, self.device_id
        )?;
        write_credential(formatter, &self.credential)?;
        write_gateway(formatter, self.gateway_host_name.as_ref())
    }
}

impl std::str::FromStr for DeviceConnectionString {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DeviceConnectionString::parse(text)
    }
}

// === impl ModuleConnectionString ===

impl ModuleConnectionString {
    /// Builds a module connection string.
    ///
    /// Fails when an id holds `;`, or when a ready-made token does not cover this module on this hub.
    pub fn new(
        host_name: HostName,
        device_id: DeviceId,
        module_id: ModuleId,
        credential: ClientCredential,
    ) -> Result<Self, ConnectionStringError> {
        check_no_separator(ConnectionStringKey::DeviceId, device_id.as_str())?;
        check_no_separator(ConnectionStringKey::ModuleId, module_id.as_str())?;
        check_credential(
            &host_name,
            &Identity::module(device_id.clone(), module_id.clone()),
            &credential,
        )?;
        Ok(ModuleConnectionString {
            host_name,
            device_id,
            module_id,
            credential,
            gateway_host_name: None,
        })
    }

    /// Parses a connection string that must be of the module kind.
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        match ConnectionString::parse(text)? {
            ConnectionString::Module(module) => Ok(module),
            other => Err(wrong_kind(ConnectionStringKind::Module, &other)),
        }
    }

    /// Adds `GatewayHostName`: the host the client connects to, while `HostName` stays in `sr`.
    pub fn with_gateway_host_name(self, gateway_host_name: HostName) -> Self {
        self.with_optional_gateway_host_name(Some(gateway_host_name))
    }

    fn with_optional_gateway_host_name(self, gateway_host_name: Option<HostName>) -> Self {
        ModuleConnectionString {
            gateway_host_name,
            ..self
        }
    }

    /// `HostName`.
    pub fn host_name(&self) -> &HostName {
        &self.host_name
    }

    /// `DeviceId`.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// `ModuleId`.
    pub fn module_id(&self) -> &ModuleId {
        &self.module_id
    }

    /// The credential.
    pub fn credential(&self) -> &ClientCredential {
        &self.credential
    }

    /// `GatewayHostName`, when present.
    pub fn gateway_host_name(&self) -> Option<&HostName> {
        self.gateway_host_name.as_ref()
    }

    /// The module's identity.
    pub fn identity(&self) -> Identity {
        Identity::module(self.device_id.clone(), self.module_id.clone())
    }

    /// The resource a token for this module names.
    pub fn resource_scope(&self) -> ResourceScope {
        ResourceScope::module(
            self.host_name.clone(),
            self.device_id.clone(),
            self.module_id.clone(),
        )
    }
}

impl fmt::Display for ModuleConnectionString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "HostName={};DeviceId={};ModuleId={};",
            self.host_name, self.device_id, self.module_id
        )?;
        write_credential(formatter, &self.credential)?;
        write_gateway(formatter, self.gateway_host_name.as_ref())
    }
}

impl std::str::FromStr for ModuleConnectionString {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ModuleConnectionString::parse(text)
    }
}

// === impl ServiceConnectionString ===

impl ServiceConnectionString {
    /// Builds a service connection string for the policy `key_name` with its `key`.
    pub fn new(host_name: HostName, key_name: PolicyName, key: SymmetricKey) -> Self {
        ServiceConnectionString {
            host_name,
            key_name,
            key,
            gateway_host_name: None,
        }
    }

    /// Parses a connection string that must be of the service kind.
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        match ConnectionString::parse(text)? {
            ConnectionString::Service(service) => Ok(service),
            other => Err(wrong_kind(ConnectionStringKind::Service, &other)),
        }
    }

    /// Adds `GatewayHostName`, which the service SDK accepts and ignores.
    pub fn with_gateway_host_name(self, gateway_host_name: HostName) -> Self {
        self.with_optional_gateway_host_name(Some(gateway_host_name))
    }

    fn with_optional_gateway_host_name(self, gateway_host_name: Option<HostName>) -> Self {
        ServiceConnectionString {
            gateway_host_name,
            ..self
        }
    }

    /// `HostName`.
    pub fn host_name(&self) -> &HostName {
        &self.host_name
    }

    /// `SharedAccessKeyName`.
    pub fn key_name(&self) -> &PolicyName {
        &self.key_name
    }

    /// `SharedAccessKey`.
    pub fn key(&self) -> &SymmetricKey {
        &self.key
    }

    /// `GatewayHostName`, when present.
    pub fn gateway_host_name(&self) -> Option<&HostName> {
        self.gateway_host_name.as_ref()
    }

    /// The resource a token for this policy names: the whole hub.
    pub fn resource_scope(&self) -> ResourceScope {
        ResourceScope::hub(self.host_name.clone())
    }
}

impl fmt::Display for ServiceConnectionString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "HostName={};SharedAccessKeyName={};SharedAccessKey={}",
            self.host_name,
            self.key_name,
            self.key.to_base64()
        )?;
        write_gateway(formatter, self.gateway_host_name.as_ref())
    }
}

impl std::str::FromStr for ServiceConnectionString {
    type Err = ConnectionStringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServiceConnectionString::parse(text)
    }
}

// === parsing helpers ===

/// The values of one connection string, indexed by key.
struct Pairs<'text> {
    values: [Option<&'text str>; ConnectionStringKey::ALL.len()],
}

fn split_pairs(text: &str) -> Result<Pairs<'_>, ConnectionStringError> {
    if text.is_empty() {
        return Err(ConnectionStringError::Empty);
    }
    let mut pairs = Pairs {
        values: [None; ConnectionStringKey::ALL.len()],
    };
    for pair in text.split(';') {
        let (name, value) =
            pair.split_once('=')
                .ok_or_else(|| ConnectionStringError::MalformedPair {
                    pair: crate::excerpt(pair),
                })?;
        let key = ConnectionStringKey::from_wire_name(name).ok_or_else(|| {
            ConnectionStringError::UnknownKey {
                key: crate::excerpt(name),
            }
        })?;
        let slot = &mut pairs.values[key.index()];
        if slot.is_some() {
            return Err(ConnectionStringError::DuplicateKey { key });
        }
        if value.is_empty() {
            return Err(ConnectionStringError::EmptyValue { key });
        }
        *slot = Some(value);
    }
    Ok(pairs)
}

impl<'text> Pairs<'text> {
    fn get(&self, key: ConnectionStringKey) -> Option<&'text str> {
        self.values[key.index()]
    }

    fn required(
        &self,
        kind: ConnectionStringKind,
        key: ConnectionStringKey,
    ) -> Result<&'text str, ConnectionStringError> {
        self.get(key)
            .ok_or(ConnectionStringError::MissingKey { kind, key })
    }

    fn refuse(
        &self,
        kind: ConnectionStringKind,
        key: ConnectionStringKey,
    ) -> Result<(), ConnectionStringError> {
        match self.get(key) {
            Some(_) => Err(ConnectionStringError::UnexpectedKey { kind, key }),
            None => Ok(()),
        }
    }

    fn host_name(&self, key: ConnectionStringKey) -> Result<HostName, ConnectionStringError> {
        // The kind is not known yet when `HostName` is read, and every kind needs it.
        let text = self.get(key).ok_or(ConnectionStringError::MissingKey {
            kind: self.guessed_kind(),
            key,
        })?;
        HostName::new(text).map_err(|error| invalid_value(key, error.to_string()))
    }

    fn optional_host_name(
        &self,
        key: ConnectionStringKey,
    ) -> Result<Option<HostName>, ConnectionStringError> {
        self.get(key)
            .map(|text| HostName::new(text).map_err(|error| invalid_value(key, error.to_string())))
            .transpose()
    }

    fn guessed_kind(&self) -> ConnectionStringKind {
        if self.get(ConnectionStringKey::ModuleId).is_some() {
            ConnectionStringKind::Module
        } else if self.get(ConnectionStringKey::DeviceId).is_some() {
            ConnectionStringKind::Device
        } else if self.get(ConnectionStringKey::SharedAccessKeyName).is_some() {
            ConnectionStringKind::Service
        } else {
            ConnectionStringKind::Device
        }
    }

    fn key(&self, kind: ConnectionStringKind) -> Result<SymmetricKey, ConnectionStringError> {
        let key_text = self.required(kind, ConnectionStringKey::SharedAccessKey)?;
        SymmetricKey::from_base64(key_text)
            .map_err(|error| invalid_value(ConnectionStringKey::SharedAccessKey, error.to_string()))
    }

    fn client_credential(
        &self,
        kind: ConnectionStringKind,
    ) -> Result<ClientCredential, ConnectionStringError> {
        let present: Vec<ConnectionStringKey> = [
            ConnectionStringKey::SharedAccessKey,
            ConnectionStringKey::SharedAccessSignature,
            ConnectionStringKey::X509,
        ]
        .into_iter()
        .filter(|key| self.get(*key).is_some())
        .collect();
        match present.as_slice() {
            [] => Err(ConnectionStringError::MissingCredential { kind }),
            [ConnectionStringKey::SharedAccessKey] => {
                Ok(ClientCredential::SharedAccessKey(self.key(kind)?))
            }
            [ConnectionStringKey::SharedAccessSignature] => {
                let token_text = self.required(kind, ConnectionStringKey::SharedAccessSignature)?;
                let token = SasToken::parse(token_text).map_err(|error| {
                    invalid_value(
                        ConnectionStringKey::SharedAccessSignature,
                        error.to_string(),
                    )
                })?;
                Ok(ClientCredential::SharedAccessSignature(token))
            }
            [ConnectionStringKey::X509] => match self.get(ConnectionStringKey::X509) {
                Some("true") => Ok(ClientCredential::X509),
                _ => Err(invalid_value(
                    ConnectionStringKey::X509,
                    "expected `true`".to_owned(),
                )),
            },
            [first, second, ..] => Err(ConnectionStringError::MixedCredentials {
                first: *first,
                second: *second,
            }),
            [_] => Err(ConnectionStringError::MissingCredential { kind }),
        }
    }
}

fn invalid_value(key: ConnectionStringKey, reason: String) -> ConnectionStringError {
    ConnectionStringError::InvalidValue { key, reason }
}

fn wrong_kind(expected: ConnectionStringKind, found: &ConnectionString) -> ConnectionStringError {
    ConnectionStringError::WrongKind {
        expected,
        found: found.kind(),
    }
}

fn check_no_separator(key: ConnectionStringKey, value: &str) -> Result<(), ConnectionStringError> {
    if value.contains(';') {
        return Err(invalid_value(
            key,
            "contains `;`, which cannot be written into a connection string".to_owned(),
        ));
    }
    Ok(())
}

fn check_credential(
    host_name: &HostName,
    identity: &Identity,
    credential: &ClientCredential,
) -> Result<(), ConnectionStringError> {
    let ClientCredential::SharedAccessSignature(token) = credential else {
        return Ok(());
    };
    let key = ConnectionStringKey::SharedAccessSignature;
    if token.to_string().contains(';') {
        return Err(invalid_value(
            key,
            "contains `;`, which cannot be written into a connection string".to_owned(),
        ));
    }
    if !token.scope().covers_identity(host_name, identity) {
        return Err(invalid_value(
            key,
            format!(
                "token resource `{}` does not cover `{identity}` on `{host_name}`",
                token.scope()
            ),
        ));
    }
    Ok(())
}

fn write_credential(
    formatter: &mut fmt::Formatter<'_>,
    credential: &ClientCredential,
) -> fmt::Result {
    match credential {
        ClientCredential::SharedAccessKey(key) => {
            write!(formatter, "SharedAccessKey={}", key.to_base64())
        }
        ClientCredential::SharedAccessSignature(token) => {
            write!(formatter, "SharedAccessSignature={token}")
        }
        ClientCredential::X509 => formatter.write_str("x509=true"),
    }
}

fn write_gateway(
    formatter: &mut fmt::Formatter<'_>,
    gateway_host_name: Option<&HostName>,
) -> fmt::Result {
    match gateway_host_name {
        Some(gateway_host_name) => write!(formatter, ";GatewayHostName={gateway_host_name}"),
        None => Ok(()),
    }
}
