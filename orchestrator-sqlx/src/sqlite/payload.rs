//! How SQLite keeps delivery payloads: zstd-compressed by default.
//!
//! PostgreSQL compresses large values on its own (TOAST); SQLite writes them as they are, so a
//! 28 KiB `pull_request` body costs its writer 28 KiB of B-tree pages, written once to the WAL
//! and once more by the checkpoint. Compressed with zstd (level 1, about 20 µs per 28 KiB) the
//! same body is about 3 KiB, and the one writer, which every delivery waits for, moves a ninth
//! of the bytes. The work is done before the commit where it can be
//! ([`BatchStore::prepare`](orchestrator_core::store::BatchStore::prepare), called by the group
//! committer in each request's task, and by the store before it takes the write lock); what it
//! makes, a [`PreparedPayload`], travels beside the event, never inside it.
//!
//! The `payload_encoding` column says how `payload` holds the body: `NULL` means the JSON text
//! as received (small bodies, rows written before the column existed, or a store opened with
//! compression off), `'zstd'` a BLOB holding one zstd frame of the bytes as received. Reading
//! decompresses, so the store returns the body byte for byte either way. Binaries from before
//! the column cannot read `'zstd'` rows.

use std::io::Read;

use bytes::Bytes;
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::event::NewEvent;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{Encode, Sqlite, Type};

/// Bodies shorter than this are stored as text: compressing them saves little.
const MIN_COMPRESSED_LEN: usize = 1024;

/// zstd level: the fastest standard level, already about 9x on GitHub payloads.
const LEVEL: i32 = 1;

/// Largest body a stored frame may expand to (GitHub caps payloads at 25 MB).
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

/// The `payload_encoding` value of a compressed body.
pub(super) const ZSTD: &str = "zstd";

/// A payload as it goes into the `payload` column.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum StoredPayload {
    /// The body as UTF-8 text (`payload_encoding` NULL).
    Text(String),
    /// One zstd frame of the body (`payload_encoding` `'zstd'`).
    Zstd(Vec<u8>),
}

/// A delivery payload compressed ahead of the commit by the SQLite store's
/// [`BatchStore::prepare`](orchestrator_core::store::BatchStore::prepare) (opaque: only the store
/// that made it reads it). It keeps the body it was made from, so a body changed after
/// preparing is never stored as its old compressed form.
#[derive(Debug)]
pub struct PreparedPayload {
    source: Bytes,
    frame: Vec<u8>,
}

impl PreparedPayload {
    /// The compressed form of `payload`, when the store would compress it (`compress` on and
    /// the body long enough); `None` otherwise, without copying anything.
    pub(super) fn new(payload: &Bytes, compress: bool) -> Option<Self> {
        Some(Self {
            source: payload.clone(),
            frame: compressed(payload, compress)?,
        })
    }
}

/// One zstd frame of `payload`, if the store compresses it.
fn compressed(payload: &Bytes, compress: bool) -> Option<Vec<u8>> {
    if !compress || payload.len() < MIN_COMPRESSED_LEN {
        return None;
    }
    zstd::bulk::compress(payload, LEVEL).ok()
}

impl StoredPayload {
    /// `payload` as the store keeps it; with `compress` off, or for a short body, the text.
    pub(super) fn encode(payload: &Bytes, compress: bool) -> Self {
        if let Some(frame) = compressed(payload, compress) {
            return Self::Zstd(frame);
        }
        // A body that is not UTF-8 (it was verified and parsed, so this is rare) is stored
        // lossily as text, or byte for byte when compressed.
        Self::Text(match std::str::from_utf8(payload) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(payload).into_owned(),
        })
    }

    /// What `event` stores: `prepared`, the compressed form made ahead of the commit, if it was
    /// made from this very body, else the body encoded now.
    pub(super) fn of(event: &NewEvent, prepared: Option<&PreparedPayload>, compress: bool) -> Self {
        match prepared {
            // Usually the very same buffer; comparing contents only when it is not.
            Some(prepared)
                if (prepared.source.as_ptr() == event.payload.as_ptr()
                    && prepared.source.len() == event.payload.len())
                    || prepared.source == event.payload =>
            {
                Self::Zstd(prepared.frame.clone())
            }
            _ => Self::encode(&event.payload, compress),
        }
    }

    /// The `payload_encoding` column's value.
    pub(super) fn encoding(&self) -> Option<&'static str> {
        match self {
            Self::Text(_) => None,
            Self::Zstd(_) => Some(ZSTD),
        }
    }
}

impl Type<Sqlite> for StoredPayload {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty) || <Vec<u8> as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for StoredPayload {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            Self::Text(text) => <String as Encode<Sqlite>>::encode_by_ref(text, buf),
            Self::Zstd(frame) => <Vec<u8> as Encode<Sqlite>>::encode_by_ref(frame, buf),
        }
    }

    fn encode(self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            Self::Text(text) => <String as Encode<Sqlite>>::encode(text, buf),
            Self::Zstd(frame) => <Vec<u8> as Encode<Sqlite>>::encode(frame, buf),
        }
    }

    fn produces(&self) -> Option<SqliteTypeInfo> {
        Some(match self {
            Self::Text(_) => <String as Type<Sqlite>>::type_info(),
            Self::Zstd(_) => <Vec<u8> as Type<Sqlite>>::type_info(),
        })
    }
}

/// Expands one stored zstd frame.
pub(super) fn decompress(frame: &[u8]) -> Result<Bytes, StoreError> {
    let corrupt = |error: std::io::Error| {
        StoreError::with_source(
            StoreErrorKind::Internal,
            "stored payload does not decompress",
            error,
        )
    };
    let mut body = Vec::new();
    zstd::stream::read::Decoder::new(frame)
        .map_err(corrupt)?
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut body)
        .map_err(corrupt)?;
    if body.len() as u64 > MAX_DECOMPRESSED {
        return Err(StoreError::new(
            StoreErrorKind::Internal,
            "stored payload expands beyond 256 MiB",
        ));
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    fn round_trip(payload: &Bytes) -> Bytes {
        match StoredPayload::encode(payload, true) {
            StoredPayload::Zstd(frame) => decompress(&frame).unwrap(),
            StoredPayload::Text(text) => Bytes::from(text),
        }
    }

    #[test]
    fn large_bodies_are_compressed_and_small_ones_kept_as_text() {
        let large = Bytes::from(format!(r#"{{"body":"{}"}}"#, "abc".repeat(1000)));
        let StoredPayload::Zstd(frame) = StoredPayload::encode(&large, true) else {
            panic!("a 3 KB body is compressed")
        };
        assert!(frame.len() < large.len() / 10);
        assert_eq!(decompress(&frame).unwrap(), large);
        let small = Bytes::from_static(br#"{"zen":"Keep it logically awesome."}"#);
        assert_eq!(
            StoredPayload::encode(&small, true),
            StoredPayload::Text(String::from_utf8(small.to_vec()).unwrap())
        );
        assert!(matches!(
            StoredPayload::encode(&large, false),
            StoredPayload::Text(_)
        ));
    }

    #[test]
    fn a_body_changed_after_preparing_is_stored_as_it_is_now() {
        let first = Bytes::from(format!(r#"{{"body":"{}"}}"#, "first ".repeat(300)));
        let second = Bytes::from(format!(r#"{{"body":"{}"}}"#, "second ".repeat(300)));
        let mut event = NewEvent {
            delivery_id: "d".to_owned(),
            event_type: "push".to_owned(),
            action: None,
            source: "github".to_owned(),
            repository: None,
            installation_id: None,
            payload: first.clone(),
            headers: Vec::new(),
            received_at: chrono::Utc::now(),
            parse_error: None,
        };
        let prepared = PreparedPayload::new(&first, true).unwrap();
        let stored = |event: &NewEvent| match StoredPayload::of(event, Some(&prepared), true) {
            StoredPayload::Zstd(frame) => decompress(&frame).unwrap(),
            StoredPayload::Text(_) => panic!("long bodies are compressed"),
        };
        assert_eq!(stored(&event), first);
        // A copy of the same bytes in another buffer still uses the prepared frame.
        event.payload = Bytes::from(first.to_vec());
        assert_eq!(stored(&event), first);
        event.payload = second.clone();
        assert_eq!(stored(&event), second);
        assert!(PreparedPayload::new(&second, false).is_none());
        assert!(PreparedPayload::new(&Bytes::from_static(b"{}"), true).is_none());
    }

    #[test]
    fn a_corrupt_frame_is_an_error_not_a_panic() {
        let error = decompress(b"\x28\xb5\x2f\xfd garbage").unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Internal);
    }

    proptest! {
        /// Any UTF-8 body comes back byte for byte, compressed or not.
        #[test]
        fn text_bodies_round_trip(body in ".{0,3000}") {
            let payload = Bytes::from(body);
            prop_assert_eq!(round_trip(&payload), payload);
        }

        /// Compressed bodies come back byte for byte even when they are not UTF-8.
        #[test]
        fn compressed_bodies_round_trip(body in proptest::collection::vec(any::<u8>(), 1024..4096)) {
            let payload = Bytes::from(body);
            let StoredPayload::Zstd(frame) = StoredPayload::encode(&payload, true) else {
                panic!("long bodies are compressed")
            };
            prop_assert_eq!(decompress(&frame).unwrap(), payload);
        }
    }
}
