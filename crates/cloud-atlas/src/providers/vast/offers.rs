//! The offer market: `POST /api/v0/bundles/` (spec operation `searchOffers`).

use serde_json::Value;

use super::translate::{self, Offer, OfferQuery};
use crate::error::Result;
use crate::http::{ApiClient, Idempotency};

/// Search client for Vast's offers.
#[derive(Debug, Clone)]
pub struct OffersApi {
    api: ApiClient,
}

impl OffersApi {
    pub(crate) fn new(api: ApiClient) -> OffersApi {
        OffersApi { api }
    }

    /// Search with a raw filter body (see [`translate::search_body`]); offers cheapest first.
    ///
    /// A search changes nothing, so it is retried like a read although it is a `POST`.
    pub async fn search_raw(&self, body: Value) -> Result<Vec<Offer>> {
        let answer: Value = self
            .api
            .post("/api/v0/bundles/")
            .body(body)
            .idempotency(Idempotency::Safe)
            .operation("search_offers")
            .json()
            .await?;
        Ok(translate::offers(&answer))
    }

    /// Offers matching `q`, cheapest first, checked against `q` client-side too.
    pub async fn search(&self, q: &OfferQuery) -> Result<Vec<Offer>> {
        let all = self.search_raw(translate::search_body(q)).await?;
        let total = all.len();
        let kept: Vec<Offer> = all.into_iter().filter(|o| q.accepts(o)).collect();
        if kept.len() < total {
            tracing::debug!(
                provider = translate::NAME,
                dropped = total - kept.len(),
                "offers that do not match the query were dropped"
            );
        }
        Ok(kept)
    }
}
