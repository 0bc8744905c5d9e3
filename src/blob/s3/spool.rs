//! An upload's bytes on their way in.
//!
//! The content-addressed name is known only at the end, so a large upload
//! is staged under a temporary key (`staging/<uuid>`): as soon as more
//! than a part has arrived, its parts are sent on as a multipart upload
//! while the rest is still coming, and the object is completed when the
//! upload ends. Analysis then reads it there (ranged GETs), and publishing
//! copies it to its name inside the store (`CopyObject`: metadata only on
//! stores that share blocks, such as Garage; in parts above 5 GiB) and
//! deletes the temporary object. The bytes cross the network once and
//! never touch the server's disk: on a small machine, writing a spool file
//! costs as much CPU as receiving the upload.
//!
//! A blob of at most one part is spooled to a local file instead (most
//! uploads above the inline size and below a part are photos), read there
//! by analysis and sent by one PUT when published.
//!
//! Memory stays bounded: an upload holds at most `concurrency` part
//! buffers, the one being filled among them, so a new part waits for the
//! oldest in flight while `concurrency` are (slowing the client's stream,
//! not the server). Parts grow past S3's 10,000-part limit: every
//! 2,000 parts, they double.
//!
//! A transfer that fails (the store unreachable after the client's
//! retries, or the upload aborted by garbage collection because no part
//! arrived for its grace period) fails the upload, which the client sends
//! again: the bytes are nowhere else. A blob dropped
//! unpublished (a failed or duplicate upload) aborts its multipart upload
//! or deletes its temporary object; what a killed process leaves is
//! removed by garbage collection once older than its grace period.

use std::{any::Any, io, sync::Arc};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::task::JoinHandle;

use super::{MAX_PARTS, Shared, reader::S3Reader};
use crate::{
    blob::{BlobReader, StagedBlob, read_new},
    error::StoreUnavailable,
};

/// Parts of one size before the size doubles.
const PARTS_PER_SIZE: u64 = 2_000;

/// An upload's bytes: spooled locally while they fit in a part, else sent
/// ahead to a temporary object.
#[derive(Debug)]
pub(super) struct Spooled {
    shared: Arc<Shared>,
    /// The bytes while they fit in one part.
    local: Box<dyn StagedBlob>,
    len: u64,
    state: State,
}

#[derive(Debug)]
enum State {
    /// At most one part so far: all in `local`.
    Local,
    /// Being sent as a multipart upload.
    Sending(Ahead),
    /// Complete under the temporary key `key`, and read there.
    Sent { key: String, reader: S3Reader },
    /// Published, or failed (`Some(why)`): nothing of it is left to
    /// clean.
    Done(Option<Failure>),
}

/// A multipart upload under a temporary key, fed as bytes arrive.
#[derive(Debug)]
struct Ahead {
    key: String,
    id: String,
    /// Bytes not sent yet (always some once sending began: the last part
    /// is sent when the upload ends).
    buf: BytesMut,
    /// The parts in order; `settled` of them have answered.
    parts: Vec<Part>,
    settled: usize,
    /// Buffers of sent parts, filled again by later parts: a fresh
    /// buffer costs a page fault per 4 KiB, about a tenth of the server's
    /// CPU on an upload.
    spare: Vec<BytesMut>,
}

#[derive(Debug)]
enum Part {
    /// Sending; answers the ETag, and the body back to be reused.
    Sending(JoinHandle<io::Result<(String, Bytes)>>),
    /// The part's ETag.
    Sent(String),
}

impl Spooled {
    pub(super) fn new(local: Box<dyn StagedBlob>, shared: Arc<Shared>) -> Self {
        Self {
            shared,
            local,
            len: 0,
            state: State::Local,
        }
    }

    /// Appends `data`, sending every part it completes.
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let part = self.shared.part_size as u64;
        let mut first = None;
        if matches!(self.state, State::Local) {
            if self.local.len() + data.len() as u64 <= part {
                return self.local.write(data);
            }
            // Past one part: from here on the bytes go to the store,
            // those spooled so far first.
            let held = usize::try_from(self.local.len()).map_err(io::Error::other)?;
            first = Some(read_new(|b, o| self.local.read_at(b, o), 0, held)?);
            let key = format!("{}staging/{}", self.shared.prefix, uuid::Uuid::now_v7());
            let id = self.shared.block(self.shared.create_multipart(&key))?;
            self.state = State::Sending(Ahead {
                key,
                id,
                buf: BytesMut::new(),
                parts: Vec::new(),
                settled: 0,
                spare: Vec::new(),
            });
        }
        let State::Sending(ahead) = &mut self.state else {
            return Err(self.unwritable());
        };
        if let Some(first) = first {
            ahead.push(&self.shared, &first)?;
        }
        ahead.push(&self.shared, data)
    }

    /// Sends the last part and completes the temporary object, which
    /// reads serve from then on.
    async fn finish(&mut self) -> io::Result<()> {
        if !matches!(self.state, State::Sending(_)) {
            return Ok(());
        }
        let State::Sending(ahead) = std::mem::replace(&mut self.state, State::Done(None)) else {
            return Ok(());
        };
        let key = ahead.key.clone();
        match ahead.complete(&self.shared).await {
            Ok(()) => {
                let reader = S3Reader::new(Arc::clone(&self.shared), key.clone(), self.len);
                self.state = State::Sent { key, reader };
                Ok(())
            }
            Err(e) => {
                self.state = State::Done(Some(Failure::of(&e)));
                Err(e)
            }
        }
    }

    /// Sends the blob to `key`: copies the temporary object there (then
    /// deletes it), or sends the local spool.
    pub(super) async fn publish(mut self: Box<Self>, key: &str) -> io::Result<()> {
        self.finish().await?;
        let shared = Arc::clone(&self.shared);
        match std::mem::replace(&mut self.state, State::Done(None)) {
            State::Local => {
                // At most one part: one PUT.
                let len = usize::try_from(self.len).map_err(io::Error::other)?;
                let body = read_new(|b, o| self.local.read_at(b, o), 0, len)?;
                shared.put(key, body).await
            }
            State::Sent { key: temp, .. } => {
                let copied = shared.copy(&temp, key, self.len).await;
                if let Err(e) = shared.delete(&temp).await {
                    tracing::warn!(key = temp, error = %e, "cannot delete a temporary object; garbage collection will");
                }
                copied
            }
            State::Done(why) => Err(failed(why)),
            State::Sending(_) => Err(io::Error::other("an upload was published unfinished")),
        }
    }

    /// Why no more bytes can be written.
    fn unwritable(&self) -> io::Error {
        match &self.state {
            State::Done(why) => failed(why.clone()),
            _ => io::Error::other("bytes were written to a finished upload"),
        }
    }
}

/// Why sending an upload failed, kept for the writes that follow: its
/// message, and whether the store was unavailable (so that every later
/// write answers as the first did).
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    unavailable: Option<StoreUnavailable>,
}

impl Failure {
    fn of(e: &io::Error) -> Self {
        Self {
            message: e.to_string(),
            unavailable: StoreUnavailable::of(e),
        }
    }
}

fn failed(why: Option<Failure>) -> io::Error {
    match why {
        Some(Failure {
            message,
            unavailable: Some(mark),
        }) => StoreUnavailable::error(
            io::ErrorKind::Other,
            mark.cause,
            format!("sending the upload to the object store failed: {message}"),
        ),
        Some(Failure { message, .. }) => io::Error::other(format!(
            "sending the upload to the object store failed: {message}"
        )),
        None => io::Error::other("the upload was already published"),
    }
}

impl Ahead {
    /// The size of part `n` (from 1): the configured size, doubled every
    /// `PARTS_PER_SIZE` parts.
    fn part_len(shared: &Shared, n: u64) -> usize {
        shared.part_size << ((n - 1) / PARTS_PER_SIZE)
    }

    /// Adds `data` to the part being filled; a full part is sent once a
    /// byte past it arrives (so the last part is never empty). Each part
    /// gets a buffer of its own, a spare one where there is one, once
    /// fewer than `concurrency` buffers are in use: the parts in flight
    /// and the one being filled.
    fn push(&mut self, shared: &Arc<Shared>, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.parts.len() as u64 + 1;
            let len = Self::part_len(shared, n);
            if self.buf.len() == len {
                self.send(shared, n)?;
                continue;
            }
            if self.buf.capacity() == 0 {
                self.settle(shared)?;
                self.buf = match self.spare.pop() {
                    Some(b) if b.capacity() >= len => b,
                    _ => BytesMut::with_capacity(len),
                };
            }
            let take = (len - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Sends the full buffer as part `n` (fewer than `concurrency` were in
    /// flight when [`Self::push`] began to fill it).
    fn send(&mut self, shared: &Arc<Shared>, n: u64) -> io::Result<()> {
        if n >= MAX_PARTS {
            return Err(io::Error::other(format!(
                "the upload needs more than S3's {MAX_PARTS} parts; raise --s3-part-size"
            )));
        }
        let body = std::mem::take(&mut self.buf).freeze();
        let (s, key, id) = (Arc::clone(shared), self.key.clone(), self.id.clone());
        let task = shared.rt.spawn(async move {
            // The request holds a clone of the body only while it runs.
            let etag = s.upload_part(&key, &id, n, body.clone()).await?;
            Ok((etag, body))
        });
        self.parts.push(Part::Sending(task));
        Ok(())
    }

    /// Settles the parts that have answered, and waits for the oldest
    /// while `concurrency` are in flight. A failed part is an error.
    fn settle(&mut self, shared: &Shared) -> io::Result<()> {
        while self.settled < self.parts.len() {
            let in_flight = self.parts.len() - self.settled;
            let Part::Sending(task) = &mut self.parts[self.settled] else {
                self.settled += 1;
                continue;
            };
            let answer = if in_flight >= shared.concurrency {
                shared.block(task)
            } else {
                match task.now_or_never() {
                    Some(answer) => answer,
                    None => return Ok(()),
                }
            };
            let (etag, body) = answer.map_err(io::Error::other)??;
            if let Ok(mut b) = body.try_into_mut()
                && self.spare.len() < shared.concurrency
            {
                b.clear();
                self.spare.push(b);
            }
            self.parts[self.settled] = Part::Sent(etag);
            self.settled += 1;
        }
        Ok(())
    }

    /// Sends the last part, waits for every part and completes the
    /// upload; aborts it on failure.
    async fn complete(mut self, shared: &Arc<Shared>) -> io::Result<()> {
        let result = async {
            let n = self.parts.len() as u64 + 1;
            let body = std::mem::take(&mut self.buf).freeze();
            let last = shared.upload_part(&self.key, &self.id, n, body).await?;
            let mut etags = Vec::with_capacity(self.parts.len() + 1);
            for part in std::mem::take(&mut self.parts) {
                etags.push(match part {
                    Part::Sent(etag) => etag,
                    Part::Sending(task) => task.await.map_err(io::Error::other)??.0,
                });
            }
            etags.push(last);
            shared.complete_multipart(&self.key, &self.id, &etags).await
        }
        .await;
        if result.is_err() {
            self.abort(shared);
        }
        result
    }

    /// Cancels the parts in flight and aborts the upload in the
    /// background.
    fn abort(self, shared: &Arc<Shared>) {
        for part in self.parts {
            if let Part::Sending(task) = part {
                task.abort();
            }
        }
        let (s, key, id) = (Arc::clone(shared), self.key, self.id);
        shared.rt.spawn(async move {
            if let Err(e) = s.abort_multipart(&key, &id).await {
                tracing::warn!(key, error = %e, "cannot abort a multipart upload; garbage collection will");
            }
        });
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Done(None)) {
            State::Sending(ahead) => ahead.abort(&self.shared),
            State::Sent { key, .. } => {
                let s = Arc::clone(&self.shared);
                self.shared.rt.spawn(async move {
                    if let Err(e) = s.delete(&key).await {
                        tracing::warn!(key, error = %e, "cannot delete a temporary object; garbage collection will");
                    }
                });
            }
            State::Local | State::Done(_) => {}
        }
    }
}

impl StagedBlob for Spooled {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.append(data) {
            // The upload is broken while it is being written; a write
            // after its end (a caller's mistake) leaves it as it was.
            if matches!(self.state, State::Local | State::Sending(_))
                && let State::Sending(ahead) =
                    std::mem::replace(&mut self.state, State::Done(Some(Failure::of(&e))))
            {
                ahead.abort(&self.shared);
            }
            return Err(e);
        }
        self.len += data.len() as u64;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match &self.state {
            State::Local => self.local.read_at(buf, offset),
            State::Sent { reader, .. } => reader.read_at(buf, offset),
            State::Sending(_) => Err(io::Error::other(
                "an upload sent to the object store is read once it is finished",
            )),
            State::Done(why) => Err(failed(why.clone())),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        // The end of the upload: the temporary object is completed (S3
        // acknowledges it durable). A local spool need not survive a
        // crash: nothing is acknowledged until the store holds the bytes.
        let shared = Arc::clone(&self.shared);
        shared.block(self.finish())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
