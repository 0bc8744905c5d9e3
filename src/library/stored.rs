//! Where a blob's bytes are: inline in the database (at or under the
//! inline size, see `blob::inline`) or in the blob store. The one place
//! that decides, for writing, reading and removing bytes, so uploads,
//! renditions, reads, the scrub and the MD5 worker all agree.

use std::sync::Arc;

use bytes::Bytes;

use md5::Digest as _;

use super::{
    Library,
    upload::{Received, blocking},
};
use crate::{
    blob::{
        BlobReader, StagedBlob,
        inline::{INLINE_MAX, MemReader, MemStaged},
        read_exact_at,
    },
    domain::{ContentHash, Md5Digest},
    error::{Error, Result},
    repo::{Repo, WriteTx},
};

async fn open_inline(repo: &Repo, hash: &ContentHash) -> Result<Option<Box<dyn BlobReader>>> {
    Ok(repo
        .inline_blob(hash)
        .await?
        .map(|data| Box::new(MemReader::new(Bytes::from(data))) as Box<dyn BlobReader>))
}

impl Library {
    /// Largest blob kept inline in the database.
    pub(super) fn inline_max(&self) -> u64 {
        self.inner.limits.inline_max_size
    }

    /// Opens blob `hash` of `size` bytes wherever it is; `None` when it is
    /// in neither place. Blobs at or under the inline size are looked for
    /// in the database first; larger ones up to [`INLINE_MAX`] in the store
    /// first and then in the database (stored inline before the inline
    /// size was lowered); larger still only in the store.
    pub(super) async fn open_blob(
        &self,
        hash: &ContentHash,
        size: u64,
    ) -> Result<Option<Box<dyn BlobReader>>> {
        let (repo, inline_max) = (&self.inner.repo, self.inline_max());
        if size <= inline_max
            && let Some(reader) = open_inline(repo, hash).await?
        {
            return Ok(Some(reader));
        }
        let store = Arc::clone(&self.inner.blobs);
        let h = *hash;
        let opened = blocking(move || match store.open(&h) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("opening blob {h}"), e)),
        })
        .await?;
        match opened {
            Some(r) => Ok(Some(r)),
            None if size > inline_max && size <= INLINE_MAX => open_inline(repo, hash).await,
            None => Ok(None),
        }
    }

    /// Stores new bytes under `hash`, whose row `tx` has just claimed with
    /// no committed reference: inline in `tx` when small, else staged and
    /// published to the store (durable before `tx` commits).
    pub(super) async fn store_new_bytes(
        &self,
        tx: &mut WriteTx,
        hash: ContentHash,
        bytes: Vec<u8>,
    ) -> Result<()> {
        if bytes.len() as u64 <= self.inline_max() {
            return tx.put_inline(vec![(hash, bytes)]).await;
        }
        let store = Arc::clone(&self.inner.blobs);
        blocking(move || {
            let publish = || {
                let mut staged = store.stage()?;
                staged.write(&bytes)?;
                store.publish(vec![(staged, hash)])
            };
            publish().map_err(|e| Error::io(format!("storing blob {hash}"), e))
        })
        .await
    }

    /// The bytes of a small staged file, read into memory to be stored
    /// inline (with their MD5, which the row then has from the start), and
    /// the file, for the caller to drop once they are stored.
    pub(super) async fn read_into_memory(
        &self,
        received: Received,
    ) -> Result<(Received, Box<dyn StagedBlob>)> {
        blocking(move || {
            let Received {
                staged, hash, size, ..
            } = received;
            let len = usize::try_from(size).unwrap_or(usize::MAX);
            let mut data = vec![0u8; len];
            read_exact_at(|b, at| staged.read_at(b, at), &mut data, 0)
                .map_err(|e| Error::io(format!("reading the staged bytes of blob {hash}"), e))?;
            let md5 = Md5Digest(md5::Md5::digest(&data).into());
            let inline = Received {
                staged: Box::new(MemStaged::new(data)),
                hash,
                md5: Some(md5),
                size,
            };
            Ok((inline, staged))
        })
        .await
    }

    /// Removes the bytes of blobs whose rows `tx` has just deleted (and
    /// keeps locked): inline ones with the transaction, the others from
    /// the store now. (A blob with both, a file from before the inline
    /// size was raised and an inline copy another tenant's upload wrote,
    /// leaves its file to garbage collection.)
    pub(super) async fn remove_bytes(&self, tx: &mut WriteTx, gone: &[ContentHash]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let inline = tx.remove_inline(gone).await?;
        let files: Vec<ContentHash> = if inline.is_empty() {
            gone.to_vec()
        } else {
            let inline: std::collections::HashSet<_> = inline.into_iter().collect();
            gone.iter()
                .filter(|h| !inline.contains(h))
                .copied()
                .collect()
        };
        if files.is_empty() {
            return Ok(());
        }
        self.delete_blob_files(&files).await
    }
}
