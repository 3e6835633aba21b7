//! Twin operations: service reads and writes (with etag concurrency and desired-property
//! fan-out) and the device side (twin GET and reported patches).

use bytes::Bytes;
use iothub_types::Identity;
use serde_json::{Map, Value};
use twin::{ServiceTwinUpdate, Twin, TwinChange, TwinError, TwinTimestamp};

use crate::error::HubError;
use crate::hub::Hub;
use crate::registry::{IdentityView, not_found};

/// How many times a twin write is retried when another write to the same twin wins the race.
const TWIN_WRITE_ATTEMPTS: usize = 16;

/// How a service twin write treats tags and desired properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinWriteMode {
    /// `PATCH /twins/{id}`: JSON merge patch.
    Patch,
    /// `PUT /twins/{id}`: replacement.
    Replace,
}

impl Hub {
    /// `GET /twins/{id}[/modules/{mid}]`.
    pub async fn get_twin(&self, identity: &Identity) -> Result<IdentityView, HubError> {
        self.get_identity(identity).await
    }

    /// `PATCH` or `PUT /twins/{id}[/modules/{mid}]` with `If-Match` (`None` or `*` for any).
    /// A change to desired properties is pushed to the connected device or module; the change
    /// is routed as a twin change event.
    pub async fn update_twin(
        &self,
        identity: &Identity,
        update: ServiceTwinUpdate,
        mode: TwinWriteMode,
        if_match: Option<&str>,
    ) -> Result<IdentityView, HubError> {
        let if_match = if_match.map(str::to_owned).or_else(|| update.etag.clone());
        let (view, change) = self
            .write_twin(identity, |twin, now| {
                twin.check_if_match(if_match.as_deref())?;
                match mode {
                    TwinWriteMode::Patch => twin.apply_service_patch(update.clone(), now),
                    TwinWriteMode::Replace => twin.apply_service_replace(update.clone(), now),
                }
            })
            .await?;
        self.notify_desired_change(identity, &change).await;
        self.emit_twin_change(identity, &change, &view.twin).await;
        Ok(view)
    }

    /// Applies a desired-properties document written by the back end (configurations, jobs):
    /// merged when `replace` is false, replacing the whole section otherwise. Pushes the change.
    pub async fn write_desired(
        &self,
        identity: &Identity,
        document: Map<String, Value>,
        mode: TwinWriteMode,
    ) -> Result<IdentityView, HubError> {
        let (view, change) = self
            .write_twin(identity, |twin, now| match mode {
                TwinWriteMode::Patch => twin.apply_desired_patch(document.clone(), now),
                TwinWriteMode::Replace => twin.replace_desired(document.clone(), now),
            })
            .await?;
        self.notify_desired_change(identity, &change).await;
        self.emit_twin_change(identity, &change, &view.twin).await;
        Ok(view)
    }

    /// The device twin GET document (`{"desired":{...},"reported":{...}}` with `$version`s).
    pub async fn device_twin_document(&self, identity: &Identity) -> Result<Value, HubError> {
        let stored = self
            .store
            .get_identity(&identity.device, identity.module.as_ref())
            .await?;
        let stored = stored.ok_or_else(|| not_found(identity))?;
        Ok(stored.twin.device_twin_document())
    }

    /// A reported-properties patch from the device. Returns the new reported `$version`.
    /// `expected_version` is the optional `$version` some SDKs put on the request topic (412 on mismatch).
    pub async fn patch_reported(
        &self,
        identity: &Identity,
        body: &[u8],
        expected_version: Option<u64>,
    ) -> Result<u64, HubError> {
        let patch = twin::parse_json_object(body, "reported properties patch")?;
        self.device_activity(identity);
        let (view, change) = self
            .write_twin(identity, |twin, now| {
                if let Some(expected) = expected_version {
                    twin.check_section_version(twin::TwinSection::Reported, expected)?;
                }
                twin.apply_reported_patch(patch.clone(), now)
            })
            .await?;
        self.emit_twin_change(identity, &change, &view.twin).await;
        Ok(change.reported.map_or(0, |reported| reported.version))
    }

    /// Records the IoT Plug and Play model id a device announced on connect.
    pub async fn set_model_id(&self, identity: &Identity, model_id: &str) -> Result<(), HubError> {
        for _ in 0..TWIN_WRITE_ATTEMPTS {
            let stored = self
                .store
                .get_identity(&identity.device, identity.module.as_ref())
                .await?;
            let mut stored = stored.ok_or_else(|| not_found(identity))?;
            if stored.record.model_id == model_id {
                return Ok(());
            }
            let etag = stored.record.etag.clone();
            stored.record.model_id = model_id.to_owned();
            if self.store.update_identity(&stored.record, &etag).await? {
                return Ok(());
            }
        }
        Err(HubError::Throttled(format!(
            "identity {identity} is being written concurrently"
        )))
    }

    /// Read-modify-write of one twin with optimistic concurrency on the twin version.
    async fn write_twin<F>(
        &self,
        identity: &Identity,
        mut apply: F,
    ) -> Result<(IdentityView, TwinChange), HubError>
    where
        F: FnMut(&mut Twin, TwinTimestamp) -> Result<TwinChange, TwinError>,
    {
        for _ in 0..TWIN_WRITE_ATTEMPTS {
            let stored = self
                .store
                .get_identity(&identity.device, identity.module.as_ref())
                .await?;
            let mut stored = stored.ok_or_else(|| not_found(identity))?;
            let previous_version = stored.twin.version();
            let now = TwinTimestamp::from_datetime(self.clock.now());
            let change = apply(&mut stored.twin, now)?;
            if self
                .store
                .update_twin(
                    &identity.device,
                    identity.module.as_ref(),
                    &stored.twin,
                    previous_version,
                )
                .await?
            {
                let view = self.view(stored).await?;
                return Ok((view, change));
            }
        }
        Err(HubError::Throttled(format!(
            "twin of {identity} is being written concurrently, retry"
        )))
    }

    async fn notify_desired_change(&self, identity: &Identity, change: &TwinChange) {
        let Some(desired) = &change.desired else {
            return;
        };
        let Some(connections) = self.connections() else {
            return;
        };
        let mut body = desired.document.clone();
        body.insert("$version".to_owned(), Value::from(desired.version));
        let body = Bytes::from(Value::Object(body).to_string());
        connections
            .send_desired_patch(identity, desired.version, body)
            .await;
    }
}
