//! Property tests of the byte bound under both overflow policies: the log never holds more than
//! its bound, refusals happen only when the bound would be crossed, and what is kept is exactly
//! what the policy promises.

use bytes::Bytes;
use proptest::prelude::*;
use store::{LogHandle, LogOptions, OverflowPolicy, ReadLimits, StoreError};

fn payload(index: usize, length: usize) -> Bytes {
    let mut bytes = format!("{index}:").into_bytes();
    bytes.resize(bytes.len().max(length), b'=');
    Bytes::from(bytes)
}

async fn run(
    policy: OverflowPolicy,
    limit_bytes: u64,
    payload_lengths: Vec<usize>,
) -> Result<(), TestCaseError> {
    let directory = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_max_bytes: 200,
        max_total_bytes: Some(limit_bytes),
        overflow_policy: policy,
        index_interval_bytes: 50,
        ..LogOptions::default()
    };
    let log = LogHandle::open(directory.path(), options).await.unwrap();
    let mut acknowledged = Vec::new();
    for (index, length) in payload_lengths.into_iter().enumerate() {
        let before = log.stats();
        let payload = payload(index, length);
        match log.append_at(payload.clone(), 0).await {
            Ok(offset) => {
                prop_assert_eq!(offset, before.next_offset);
                acknowledged.push((offset, payload));
            }
            Err(StoreError::StoreFull {
                used_bytes,
                limit_bytes: reported_limit,
                requested_bytes,
            }) => {
                prop_assert_eq!(reported_limit, limit_bytes);
                prop_assert!(used_bytes + requested_bytes > limit_bytes);
                if policy == OverflowPolicy::RefuseNew {
                    prop_assert_eq!(used_bytes, before.total_bytes);
                    prop_assert_eq!(log.stats(), before);
                } else {
                    // Only a record that does not fit even into an otherwise empty log (its
                    // frame, its segment's header and the sealed segment's header while it is
                    // being replaced) is refused.
                    let frame_bytes = 24 + payload.len() as u64;
                    prop_assert!(frame_bytes + 2 * 24 > limit_bytes);
                }
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
        let after = log.stats();
        prop_assert!(
            after.total_bytes <= limit_bytes,
            "{after:?} over {limit_bytes}"
        );
    }

    let stored: Vec<(u64, Bytes)> = log
        .read_from(
            0,
            ReadLimits {
                max_records: usize::MAX,
                max_bytes: usize::MAX,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|record| (record.offset, record.payload))
        .collect();
    match policy {
        // Nothing is ever dropped: every acknowledged record is there.
        OverflowPolicy::RefuseNew => prop_assert_eq!(&stored, &acknowledged),
        // A suffix of the acknowledged records is kept, and the newest one is in it.
        OverflowPolicy::DropOldest => {
            let kept_from = acknowledged.len() - stored.len();
            prop_assert_eq!(&stored[..], &acknowledged[kept_from..]);
            if let Some(newest) = acknowledged.last() {
                prop_assert_eq!(stored.last(), Some(newest));
            }
        }
    }
    log.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_byte_bound_holds(
        refuse in any::<bool>(),
        limit_bytes in 150u64..1_200,
        payload_lengths in proptest::collection::vec(0usize..120, 1..30),
    ) {
        let policy = if refuse { OverflowPolicy::RefuseNew } else { OverflowPolicy::DropOldest };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(policy, limit_bytes, payload_lengths))?;
    }
}
