//! `POST /devices/query`: twin queries over every device or module twin, with paging.

use query::{Collection, ItemType, Query};
use serde_json::Value;

use crate::error::HubError;
use crate::hub::Hub;
use crate::storage::{IdentityKey, IdentityScope};

/// Default and maximum page size (`x-ms-max-item-count`).
pub const MAX_QUERY_PAGE_SIZE: usize = 1000;
/// Twins read from the store per batch while scanning.
const SCAN_BATCH: usize = 500;

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    /// The rows: full twins for `SELECT *`, projected or aggregated rows otherwise.
    pub items: Vec<Value>,
    /// `x-ms-item-type`: `twin`, `raw` or `deviceJob`.
    pub item_type: &'static str,
    /// `x-ms-continuation` for the next page; `None` on the last page.
    pub continuation: Option<String>,
}

impl Hub {
    /// Runs a twin query and returns the page starting at `continuation` (as returned by the
    /// previous page) with at most `max_items` rows (default and cap 1000).
    pub async fn query(
        &self,
        text: &str,
        continuation: Option<&str>,
        max_items: Option<usize>,
    ) -> Result<QueryPage, HubError> {
        let parsed = Query::parse(text).map_err(|error| {
            HubError::InvalidArgument(format!("invalid query: {}", error.render(text)))
        })?;
        let page_size = max_items
            .unwrap_or(MAX_QUERY_PAGE_SIZE)
            .clamp(1, MAX_QUERY_PAGE_SIZE);
        let start = match continuation
            .map(str::trim)
            .filter(|token| !token.is_empty())
        {
            None => 0,
            Some(token) => token.parse::<usize>().map_err(|_| {
                HubError::InvalidArgument(format!("invalid continuation token {token:?}"))
            })?,
        };
        let item_type = match parsed.item_type() {
            ItemType::Twin => "twin",
            ItemType::Raw => "raw",
            ItemType::DeviceJob => "deviceJob",
        };
        let scope = match parsed.collection() {
            Collection::Devices => IdentityScope::Devices,
            Collection::Modules => IdentityScope::AllModules,
            // Jobs are not stored by this hub yet, so the job collection is empty.
            Collection::Jobs => {
                return Ok(QueryPage {
                    items: Vec::new(),
                    item_type,
                    continuation: None,
                });
            }
        };
        let twins = self.all_service_twins(scope).await?;
        let rows = parsed.execute(twins.iter());
        let end = start.saturating_add(page_size).min(rows.len());
        let items = rows
            .get(start.min(end)..end)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        let continuation = (end < rows.len()).then(|| end.to_string());
        Ok(QueryPage {
            items,
            item_type,
            continuation,
        })
    }

    async fn all_service_twins(&self, scope: IdentityScope<'_>) -> Result<Vec<Value>, HubError> {
        let mut twins = Vec::new();
        let mut after: Option<IdentityKey> = None;
        loop {
            let batch = self
                .list_identities(scope, after.as_ref(), SCAN_BATCH)
                .await?;
            let Some(last) = batch.last() else { break };
            after = Some(IdentityKey {
                device_id: last.record.device_id.to_string(),
                module_id: last
                    .record
                    .module_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            });
            let batch_length = batch.len();
            twins.extend(batch.iter().map(|view| view.service_twin_json()));
            if batch_length < SCAN_BATCH {
                break;
            }
        }
        Ok(twins)
    }
}
