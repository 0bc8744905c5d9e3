//! Reanalysis: running today's analyzers over media stored before they
//! learned something, so old rows get the fields new uploads get.
//!
//! The bytes are read where they are stored (the analysis of an upload
//! reads its staged file the same way) and only the analysed columns are
//! written, so a media's title, tags and other edits stay as they are.

use std::sync::Arc;

use super::Library;
use crate::{
    analyze::{self, ReadAtCursor, Sniffed},
    domain::{Media, MediaQuery, PageCursor, SortKey, SortValue, TenantId, year_month},
    error::{Error, Result},
};

/// What reanalysing one media did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reanalysis {
    /// Its analysed fields changed.
    Changed,
    /// The new analysis found what the row held.
    Unchanged,
    /// Its kind is not analysed (documents other than PDF, other files).
    Skipped,
}

impl Library {
    /// Analyses the stored bytes of `media` again and records what the
    /// analysis finds now.
    pub async fn reanalyze(&self, media: &Media) -> Result<Reanalysis> {
        let sniffed = Sniffed {
            mime: media.mime_type.clone(),
            kind: media.media_type,
        };
        if !analyze::worth_analyzing(&sniffed) {
            return Ok(Reanalysis::Skipped);
        }
        let opened = self.open_content(media.clone()).await?;
        let _slot = self.analysis_slot().await?;
        let reader = opened.reader;
        let mut analysis = tokio::task::spawn_blocking(move || {
            let reader: Arc<dyn crate::blob::BlobReader> = Arc::from(reader);
            let source = ReadAtCursor::new(reader.len(), move |buf, at| reader.read_at(buf, at));
            analyze::analyze(source, &sniffed)
        })
        .await
        .map_err(|e| Error::io("reanalysing a media", std::io::Error::other(e)))?;
        if analysis.taken_year.is_none() {
            // As at upload: without a date taken, group by upload date.
            let (year, month) = year_month(media.created_at);
            analysis.taken_year = Some(year);
            analysis.taken_month = Some(month);
        }
        if analysis == media.analysis {
            return Ok(Reanalysis::Unchanged);
        }
        self.inner
            .repo
            .set_media_analysis(media.tenant, media.id, &analysis)
            .await?;
        self.inner.served.changed();
        Ok(Reanalysis::Changed)
    }

    /// A page of the media a reanalysis walks, oldest first, after
    /// `after`: those of `query`'s folder (and below it if recursive), or
    /// every media of the tenant.
    pub async fn media_to_reanalyze(
        &self,
        tenant: TenantId,
        query: &MediaQuery,
        after: Option<&Media>,
        limit: u64,
    ) -> Result<Vec<Media>> {
        let query = MediaQuery {
            order: SortKey::Created,
            ascending: true,
            ..query.clone()
        };
        let cursor = after.map(|m| PageCursor {
            value: SortValue::Int(m.created_at),
            id: m.id,
        });
        let (page, _) = self
            .list(tenant, &query, cursor.as_ref(), limit, false)
            .await?;
        Ok(page)
    }
}
