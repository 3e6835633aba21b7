//! Fetching the scope from the hub: `GET /devices/{edge}/modules/$edgeHub/
//! devicesAndModulesInDeviceScope`, every page, over HTTPS, signed with the edge device's key.

use hyper::Method;
use iothub_auth::{HostName, SymmetricKey};
use iothub_types::DeviceId;
use rustls_pki_types::CertificateDer;

use crate::error::ScopeError;
use crate::https::{HubEndpoint, device_token};
use crate::identity::ScopeIdentity;
use crate::wire::parse_scope_page;

/// The api-version of the scope API, as Azure's edge hub sends it.
pub const SCOPE_API_VERSION: &str = "2018-08-30-preview";
/// The `deviceCount` asked for per page.
pub const SCOPE_PAGE_SIZE: usize = 500;
/// The most pages one fetch follows (a hub that keeps linking is broken).
const MAX_PAGES: usize = 10_000;

/// Fetches the edge device's scope from the hub. Cheap to clone.
#[derive(Clone)]
pub struct ScopeClient {
    endpoint: HubEndpoint,
    device_id: DeviceId,
    device_key: SymmetricKey,
    page_size: usize,
}

impl ScopeClient {
    /// A client that dials `dial_address:https_port` (a host name or IP address), verifies the
    /// hub's certificate for `hub_host` against `trusted_roots` and signs each call with
    /// `device_key` (resource `{hub_host}/devices/{device_id}`).
    pub fn new(
        hub_host: HostName,
        dial_address: String,
        https_port: u16,
        device_id: DeviceId,
        device_key: SymmetricKey,
        trusted_roots: Vec<CertificateDer<'static>>,
    ) -> Result<ScopeClient, ScopeError> {
        Ok(ScopeClient {
            endpoint: HubEndpoint::new(hub_host, &dial_address, https_port, &trusted_roots)?,
            device_id,
            device_key,
            page_size: SCOPE_PAGE_SIZE,
        })
    }

    /// Asks for `page_size` devices per page instead of [`SCOPE_PAGE_SIZE`] (the hub serves at
    /// most 1000).
    pub fn with_page_size(mut self, page_size: usize) -> ScopeClient {
        self.page_size = page_size.max(1);
        self
    }

    /// Fetches every page of the scope. Entries the hub sends malformed are left out (and
    /// logged). [`ScopeError::is_unreachable`] tells a hub that could not be reached apart from
    /// one that refused.
    pub async fn fetch(&self) -> Result<Vec<ScopeIdentity>, ScopeError> {
        let mut link = format!(
            "/devices/{}/modules/{}/devicesAndModulesInDeviceScope?deviceCount={}&api-version={SCOPE_API_VERSION}",
            iothub_auth::quote_nothing_safe(self.device_id.as_str()),
            iothub_auth::quote_nothing_safe("$edgeHub"),
            self.page_size,
        );
        let mut identities = Vec::new();
        for _ in 0..MAX_PAGES {
            let token = device_token(self.endpoint.host(), &self.device_id, &self.device_key);
            let answer = self.endpoint.call(Method::GET, &link, &token, None).await?;
            if !answer.is_success() {
                return Err(ScopeError::Refused {
                    status: answer.status,
                    message: answer.error_message(),
                });
            }
            let page = parse_scope_page(&answer.body)?;
            for reason in &page.skipped {
                tracing::warn!(%reason, "left a malformed scope entry out");
            }
            identities.extend(page.identities);
            match page.continuation_link {
                None => return Ok(identities),
                Some(next) if next.starts_with('/') => link = next,
                Some(_) => {
                    return Err(ScopeError::InvalidAnswer(
                        "continuationLink is not a path on the hub".to_owned(),
                    ));
                }
            }
        }
        Err(ScopeError::InvalidAnswer(format!(
            "more than {MAX_PAGES} pages"
        )))
    }
}

impl std::fmt::Debug for ScopeClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ScopeClient")
            .field("endpoint", &self.endpoint)
            .field("device_id", &self.device_id)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}
