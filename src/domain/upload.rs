//! Resumable uploads: their state and the rules for each write.

use super::{MediaId, TenantId, UploadId, UploadSpec};
use crate::error::{Error, Reason, Result};

/// Where a resumable upload is. Stored as a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Accepting bytes.
    Active = 1,
    /// The media exists.
    Finished = 2,
    /// Cancelled by a client, or by a finish whose bytes did not match.
    Cancelled = 3,
    /// Not finished in time; its bytes are gone.
    Expired = 4,
}

impl UploadState {
    /// The state stored as `v`.
    pub fn from_i16(v: i16) -> Option<Self> {
        Some(match v {
            1 => Self::Active,
            2 => Self::Finished,
            3 => Self::Cancelled,
            4 => Self::Expired,
            _ => return None,
        })
    }
}

/// A resumable upload.
#[derive(Debug, Clone)]
pub struct UploadSession {
    /// Id.
    pub id: UploadId,
    /// Owner.
    pub tenant: TenantId,
    /// The validated header, kept until the finish creates the media.
    pub spec: UploadSpec,
    /// Bytes held durably; the next write starts here.
    pub committed: u64,
    /// State as stored (an active upload past its expiry is reported as
    /// expired by [`UploadSession::state_at`]).
    pub state: UploadState,
    /// The media, once finished.
    pub media: Option<MediaId>,
    /// µs since the epoch after which an unfinished upload is discarded.
    pub expires_at: i64,
    /// µs since the epoch.
    pub created_at: i64,
    /// µs since the epoch of the last change.
    pub updated_at: i64,
}

impl UploadSession {
    /// The state at time `now`.
    pub fn state_at(&self, now: i64) -> UploadState {
        if self.state == UploadState::Active && now >= self.expires_at {
            UploadState::Expired
        } else {
            self.state
        }
    }

    /// Refuses writes unless the upload is active at `now`.
    pub fn check_writable(&self, now: i64) -> Result<()> {
        let id = self.id;
        match self.state_at(now) {
            UploadState::Active => Ok(()),
            UploadState::Finished => Err(Error::precondition(
                Reason::UploadFinished,
                format!("upload {id} has already finished; QueryUpload returns its media"),
            )),
            UploadState::Cancelled => Err(Error::precondition(
                Reason::UploadCancelled,
                format!("upload {id} was cancelled; start a new upload"),
            )),
            UploadState::Expired => Err(Error::precondition(
                Reason::UploadExpired,
                format!("upload {id} expired before it finished; start a new upload"),
            )),
        }
    }
}

/// What to do with one write of `len` bytes at `offset` when `held` bytes
/// are already held: the part of the data that is new, as a range of the
/// data. Bytes below `held` were received before (a re-send after a broken
/// stream) and are skipped; an offset past `held` would leave a gap.
pub fn new_part(
    upload: UploadId,
    held: u64,
    offset: u64,
    len: usize,
) -> Result<std::ops::Range<usize>> {
    if offset > held {
        return Err(Error::OutOfRange {
            reason: Reason::WriteOffsetPastCommitted,
            field: "write_offset".into(),
            message: format!(
                "write_offset {offset} is past the {held} bytes upload {upload} holds; \
                 resume from write_offset {held} (QueryUpload tells the committed size)"
            ),
        });
    }
    let skip = usize::try_from(held - offset)
        .unwrap_or(usize::MAX)
        .min(len);
    Ok(skip..len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_skip_what_is_held_and_refuse_gaps() {
        let id = UploadId::new();
        assert_eq!(new_part(id, 10, 10, 5).ok(), Some(0..5));
        assert_eq!(new_part(id, 10, 8, 5).ok(), Some(2..5));
        assert_eq!(new_part(id, 10, 0, 5).ok(), Some(5..5));
        assert_eq!(new_part(id, 10, 5, 5).ok(), Some(5..5));
        let gap = new_part(id, 10, 11, 5).err().map(|e| e.to_string());
        assert!(
            gap.as_deref()
                .is_some_and(|m| m.contains("resume from write_offset 10")),
            "{gap:?}"
        );
    }
}
