//! Slots and codes in the library: reads by the client's names, the
//! early refusal of an upload whose code or slot is taken, and the
//! deletion of media an upload displaced from their slot.

use super::Library;
use crate::{
    domain::{MediaId, MediaRef, SlotPolicy, TenantId, UploadSpec},
    error::{Error, Reason, Resource, Result},
    repo::{code_taken, slot_taken},
};

/// Displaced media deleted per page of the start-up sweep.
const SWEEP_PAGE: u64 = 1000;
/// Pages the start-up sweep takes at most.
const SWEEP_PAGES: usize = 100;

impl Library {
    /// The id of the tenant's media named by `r`; NOT_FOUND if none.
    pub async fn media_id_by(&self, tenant: TenantId, r: &MediaRef) -> Result<MediaId> {
        self.inner
            .repo
            .media_id_of(tenant, r)
            .await?
            .ok_or_else(|| match r {
                MediaRef::Id(id) => Error::not_found(Resource::Media, id.to_string()),
                MediaRef::Slot(slot) => {
                    Error::not_found(Resource::Media, format!("in slot {slot}"))
                }
                MediaRef::Code(code) => {
                    Error::not_found(Resource::Media, format!("with code {code:?}"))
                }
            })
    }

    /// Refuses, before any byte, an upload whose code another media has,
    /// or whose slot is taken when it asked to be refused then. The commit
    /// checks again: this only saves sending the bytes.
    pub(super) async fn check_names(&self, spec: &UploadSpec) -> Result<()> {
        if let Some(code) = &spec.code
            && let Some(holder) = self
                .inner
                .repo
                .media_id_of(spec.tenant, &MediaRef::Code(code.clone()))
                .await?
        {
            return Err(code_taken(code, holder));
        }
        if let Some(slot) = &spec.slot
            && spec.slot_policy == SlotPolicy::Refuse
            && let Some(holder) = self
                .inner
                .repo
                .media_id_of(spec.tenant, &MediaRef::Slot(slot.clone()))
                .await?
        {
            return Err(slot_taken(slot, holder));
        }
        Ok(())
    }

    /// Deletes media displaced from their slots, with their bytes if
    /// nothing else uses them; a bound one stays, out of any slot. A
    /// failure leaves them marked, for the next start.
    pub(super) async fn release_replaced(&self, tenant: TenantId, ids: &[MediaId]) {
        for id in ids {
            match self.delete_many(tenant, &[*id], false).await {
                Ok(_) => {}
                Err(Error::FailedPrecondition {
                    reason: Reason::MediaBound,
                    ..
                }) => {
                    if let Err(e) = self.inner.repo.keep_replaced(tenant, *id).await {
                        tracing::warn!(media = %id, error = %e, "could not keep a bound media out of its slot; retried at the next start");
                    }
                }
                Err(e) => {
                    tracing::warn!(media = %id, error = %e, "could not delete a media displaced from its slot; retried at the next start");
                }
            }
        }
    }

    /// At start-up: deletes what displacements a crash interrupted left.
    pub(super) async fn sweep_replaced(&self) -> Result<()> {
        // Bounded: what fails stays marked, and must not make this spin.
        for _ in 0..SWEEP_PAGES {
            let page = self.inner.repo.replaced_media(SWEEP_PAGE).await?;
            for (tenant, id) in &page {
                self.release_replaced(*tenant, std::slice::from_ref(id))
                    .await;
            }
            if (page.len() as u64) < SWEEP_PAGE {
                break;
            }
        }
        Ok(())
    }
}
