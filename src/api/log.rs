//! ConsentService's log methods: checkpoints and proofs of the tenant's
//! append-only log, proto <-> domain. The proofs are computed here from
//! the few stored leaves and block roots they need (`domain::merkle`).

use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    ConsentApi,
    convert::{UnaryRequest, timestamp},
    error::Error,
    handler::Rpc,
    proto::{self, LogLeafKind, LogLeafState},
};
use crate::{
    domain::{
        auth::Scope,
        merkle::{Blocks, Hash, LOG_BLOCK_HEIGHTS, ProofError, Wanted},
        preference::claims::event_claims,
        receipt::canonical_claims,
        tlog::{GetCheckpoint, GetConsistencyProof, GetInclusionProof, LeafKind, LeafRef},
        validation::{Checked, ValidationError, Violations},
    },
    store::{self, LeafRecord, StoredCheckpoint},
};

/// A size field: 0 means "the default", negative is refused.
fn size(v: &mut Violations, field: &str, value: i64) -> Checked<Option<u64>> {
    match u64::try_from(value) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(v.add(field, "must not be negative")),
    }
}

/// The scope that shows a leaf's claims: its record's or its event's.
fn reader(kind: LeafKind) -> Scope {
    match kind {
        LeafKind::ConsentRecord => Scope::ConsentRead,
        LeafKind::PreferenceEvent => Scope::PreferenceRead,
    }
}

/// INVALID_ARGUMENT for one field of a request that decoded.
fn invalid(field: &str, description: impl Into<String>) -> Status {
    let mut v = Violations::new();
    let bad = v.add(field, description);
    match v.finish::<()>(Err(bad)) {
        Err(error) => error.into(),
        Ok(()) => Status::internal("a violation vanished"),
    }
}

impl UnaryRequest for proto::GetCheckpointRequest {
    type Command = GetCheckpoint;
}

impl UnaryRequest for proto::GetConsistencyProofRequest {
    type Command = GetConsistencyProof;
}

impl TryFrom<proto::GetCheckpointRequest> for GetCheckpoint {
    type Error = ValidationError;

    fn try_from(r: proto::GetCheckpointRequest) -> Result<Self, ValidationError> {
        let mut v = Violations::new();
        let size = size(&mut v, "tree_size", r.tree_size);
        v.finish(size.map(|size| GetCheckpoint { size }))
    }
}

impl TryFrom<proto::GetInclusionProofRequest> for GetInclusionProof {
    type Error = ValidationError;

    fn try_from(r: proto::GetInclusionProofRequest) -> Result<Self, ValidationError> {
        use proto::get_inclusion_proof_request::Leaf;
        let mut v = Violations::new();
        let leaf = match r.leaf {
            Some(Leaf::RecordId(id)) => Uuid::parse_str(&id)
                .map(LeafRef::Record)
                .map_err(|_| v.add("record_id", "must be a record id (a UUID)")),
            Some(Leaf::PreferenceEventId(id)) => Uuid::parse_str(&id)
                .map(LeafRef::PreferenceEvent)
                .map_err(|_| {
                    v.add(
                        "preference_event_id",
                        "must be a preference event id (a UUID)",
                    )
                }),
            Some(Leaf::LeafIndex(index)) => u64::try_from(index)
                .map(LeafRef::Index)
                .map_err(|_| v.add("leaf_index", "must not be negative")),
            None => Err(v.add(
                "record_id",
                "a record id, a preference event id or a leaf index is required",
            )),
        };
        let size = size(&mut v, "tree_size", r.tree_size);
        let parsed = leaf.and_then(|leaf| Ok(GetInclusionProof { leaf, size: size? }));
        v.finish(parsed)
    }
}

impl TryFrom<proto::GetConsistencyProofRequest> for GetConsistencyProof {
    type Error = ValidationError;

    fn try_from(r: proto::GetConsistencyProofRequest) -> Result<Self, ValidationError> {
        let mut v = Violations::new();
        let old_size = match size(&mut v, "old_size", r.old_size) {
            Ok(None) => Err(v.add("old_size", "required: at least 1")),
            other => other.map(Option::unwrap_or_default),
        };
        let new_size = size(&mut v, "new_size", r.new_size);
        let new_size = match (old_size, new_size) {
            (Ok(old), Ok(Some(new))) if new < old => {
                Err(v.add("new_size", "must not be below old_size"))
            }
            (_, new) => new,
        };
        let parsed = old_size.and_then(|old_size| {
            Ok(GetConsistencyProof {
                old_size,
                new_size: new_size?,
            })
        });
        v.finish(parsed)
    }
}

fn checkpoint_message(stored: StoredCheckpoint) -> proto::LogCheckpoint {
    proto::LogCheckpoint {
        origin: stored.checkpoint.origin,
        tree_size: stored.checkpoint.size as i64,
        root_hash: stored.checkpoint.root.to_vec(),
        create_time: Some(timestamp(stored.create_time)),
        note: stored.note,
    }
}

impl ConsentApi {
    /// The checkpoint of `size`, if one was signed at that size.
    async fn checkpoint_at(
        &self,
        tenant_id: Uuid,
        size: u64,
    ) -> Result<Option<proto::LogCheckpoint>, Status> {
        match self.store.log_checkpoint(tenant_id, Some(size)).await {
            Ok(stored) => Ok(Some(checkpoint_message(stored))),
            Err(store::Error::NotFound) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// A proof from the few stored hashes it needs (`merkle::blocks`).
    async fn log_proof(
        &self,
        tenant_id: Uuid,
        wanted: Result<Wanted<'_>, ProofError>,
    ) -> Result<Vec<Hash>, Status> {
        let wanted = wanted.map_err(|error| Status::internal(error.to_string()))?;
        let fetched = self.store.log_hashes(tenant_id, &wanted).await?;
        wanted
            .proof(|node| fetched.get(&node).copied())
            .map_err(|node| {
                tracing::error!(?node, "a leaf or block of the log is not stored");
                Status::internal("the log is missing a hash its proof needs")
            })
    }

    /// `size`, or the latest checkpoint's; checked against the log's size.
    async fn tree_size(
        &self,
        tenant_id: Uuid,
        field: &str,
        size: Option<u64>,
    ) -> Result<u64, Status> {
        let size = match size {
            Some(size) => size,
            None => {
                self.store
                    .log_checkpoint(tenant_id, None)
                    .await?
                    .checkpoint
                    .size
            }
        };
        let logged = self.store.log_tree_size(tenant_id).await?;
        if size > logged {
            return Err(invalid(field, format!("the log holds {logged} leaves")));
        }
        Ok(size)
    }

    pub(super) async fn log_checkpoint(
        &self,
        request: Request<proto::GetCheckpointRequest>,
    ) -> Result<Response<proto::GetCheckpointResponse>, Status> {
        self.unary(request, Scope::ConsentRead, async |caller, get| {
            let checkpoint = self.store.log_checkpoint(caller.tenant_id, get.size);
            Ok(proto::GetCheckpointResponse {
                checkpoint: Some(checkpoint_message(checkpoint.await?)),
            })
        })
        .await
    }

    pub(super) async fn log_inclusion_proof(
        &self,
        request: Request<proto::GetInclusionProofRequest>,
    ) -> Result<Response<proto::GetInclusionProofResponse>, Status> {
        use proto::get_inclusion_proof_request::Leaf;
        // A leaf shows its record's or its event's claims: each is the
        // reader's of that kind to see.
        let asked = match request.get_ref().leaf {
            Some(Leaf::PreferenceEventId(_)) => LeafKind::PreferenceEvent,
            _ => LeafKind::ConsentRecord,
        };
        let caller = self.auth.authorize(&request, reader(asked)).await?;
        let get = GetInclusionProof::try_from(request.into_inner())?;
        let proof = self.inclusion(caller.tenant_id, get).await?;
        let shown = reader(match proof.leaf_kind() {
            LogLeafKind::PreferenceEvent => LeafKind::PreferenceEvent,
            _ => LeafKind::ConsentRecord,
        });
        if !caller.may(shown) {
            return Err(Error::PermissionDenied(shown).into());
        }
        Ok(Response::new(proof))
    }

    /// The inclusion proof GetInclusionProof answers with, also put in the
    /// proof document.
    pub(super) async fn inclusion(
        &self,
        tenant_id: Uuid,
        get: GetInclusionProof,
    ) -> Result<proto::GetInclusionProofResponse, Status> {
        let leaf = self.store.log_leaf(tenant_id, get.leaf).await?;
        let size = self.tree_size(tenant_id, "tree_size", get.size).await?;
        if leaf.index >= size {
            return Err(invalid(
                "tree_size",
                format!("must be above the leaf's index {}", leaf.index),
            ));
        }
        let proof = self
            .log_proof(
                tenant_id,
                Blocks::new(LOG_BLOCK_HEIGHTS).inclusion(leaf.index, size),
            )
            .await?;
        let id = leaf.record_id.to_string();
        let (leaf_kind, record_id, preference_event_id) = match leaf.kind {
            LeafKind::ConsentRecord => (LogLeafKind::ConsentRecord, id, String::new()),
            LeafKind::PreferenceEvent => (LogLeafKind::PreferenceEvent, String::new(), id),
        };
        let (state, claims_json, salt) = match leaf.record {
            LeafRecord::Present { record, salt } => (
                LogLeafState::Present,
                String::from_utf8(canonical_claims(tenant_id, &record)).unwrap_or_default(),
                salt,
            ),
            LeafRecord::Event { event, salt } => (
                LogLeafState::Present,
                String::from_utf8(event_claims(tenant_id, &event)).unwrap_or_default(),
                salt,
            ),
            LeafRecord::Erased => (LogLeafState::Erased, String::new(), Vec::new()),
            LeafRecord::Missing => (LogLeafState::Missing, String::new(), Vec::new()),
        };
        Ok(proto::GetInclusionProofResponse {
            leaf_index: leaf.index as i64,
            tree_size: size as i64,
            leaf_hash: leaf.hash.to_vec(),
            hashes: proof.into_iter().map(|hash| hash.to_vec()).collect(),
            record_id,
            preference_event_id,
            leaf_kind: leaf_kind.into(),
            state: state.into(),
            claims_json,
            salt,
            checkpoint: self.checkpoint_at(tenant_id, size).await?,
        })
    }

    pub(super) async fn log_consistency_proof(
        &self,
        request: Request<proto::GetConsistencyProofRequest>,
    ) -> Result<Response<proto::GetConsistencyProofResponse>, Status> {
        self.unary(request, Scope::ConsentRead, async |caller, get| {
            let tenant_id = caller.tenant_id;
            let new_size = self.tree_size(tenant_id, "new_size", get.new_size).await?;
            if get.old_size > new_size {
                return Err(invalid("old_size", format!("must not be above {new_size}")));
            }
            let proof = self
                .log_proof(
                    tenant_id,
                    Blocks::new(LOG_BLOCK_HEIGHTS).consistency(get.old_size, new_size),
                )
                .await?;
            Ok(proto::GetConsistencyProofResponse {
                old_size: get.old_size as i64,
                new_size: new_size as i64,
                hashes: proof.into_iter().map(|hash| hash.to_vec()).collect(),
                old_checkpoint: self.checkpoint_at(tenant_id, get.old_size).await?,
                new_checkpoint: self.checkpoint_at(tenant_id, new_size).await?,
            })
        })
        .await
    }
}
