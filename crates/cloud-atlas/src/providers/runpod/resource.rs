//! The list/get/create/update/delete shape RunPod v2 gives templates, serverless
//! endpoints and network volumes: one implementation, described per surface by a [`Kind`].

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::logs::enc;
use super::ratelimit::Rest;
use super::{decode, decode_list, WithRaw};
use crate::error::{Error, Result};
use crate::http::Idempotency;

/// What differs between the surfaces: path, list key, and names for errors and spans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    /// Collection path (`/v2/templates`).
    pub(crate) path: &'static str,
    /// Key of the array in the list answer (`templates`).
    pub(crate) list_key: &'static str,
    /// "a template id is required".
    pub(crate) id_required: &'static str,
    /// Operation names: list, get, create, update, delete.
    pub(crate) ops: [&'static str; 5],
}

/// One CRUD surface of the REST API.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    rest: Rest,
    kind: Kind,
}

impl Resource {
    pub(crate) fn new(rest: Rest, kind: Kind) -> Resource {
        Resource { rest, kind }
    }

    fn item(&self, id: &str) -> Result<String> {
        if id.trim().is_empty() {
            return Err(Error::validation("id", self.kind.id_required));
        }
        Ok(format!("{}/{}", self.kind.path, enc(id)))
    }

    /// `GET {path}` → the `list_key` array.
    pub(crate) async fn list<T: DeserializeOwned + WithRaw>(&self) -> Result<Vec<T>> {
        let rq = self
            .rest
            .api()
            .get(self.kind.path)
            .operation(self.kind.ops[0]);
        let v: Value = self.rest.json(rq).await?;
        decode_list(&v, self.kind.list_key)
    }

    /// `GET {path}/{id}`.
    pub(crate) async fn get<T: DeserializeOwned + WithRaw>(&self, id: &str) -> Result<T> {
        let rq = self
            .rest
            .api()
            .get(&self.item(id)?)
            .operation(self.kind.ops[1]);
        decode(&self.rest.json(rq).await?)
    }

    /// `POST {path}` (a create: never replayed once sent).
    pub(crate) async fn create<T: DeserializeOwned + WithRaw>(&self, body: Value) -> Result<T> {
        let rq = self
            .rest
            .api()
            .post(self.kind.path)
            .body(body)
            .idempotency(Idempotency::Unsafe)
            .operation(self.kind.ops[2]);
        decode(&self.rest.json(rq).await?)
    }

    /// `PATCH {path}/{id}`.
    pub(crate) async fn update<T: DeserializeOwned + WithRaw>(
        &self,
        id: &str,
        body: Value,
    ) -> Result<T> {
        let rq = self
            .rest
            .api()
            .patch(&self.item(id)?)
            .body(body)
            .idempotency(Idempotency::Idempotent)
            .operation(self.kind.ops[3]);
        decode(&self.rest.json(rq).await?)
    }

    /// `DELETE {path}/{id}`.
    pub(crate) async fn delete(&self, id: &str) -> Result<()> {
        let rq = self
            .rest
            .api()
            .delete(&self.item(id)?)
            .operation(self.kind.ops[4]);
        self.rest.send(rq).await.map(|_| ())
    }
}
