//! The erasure audit trail, shared by every erase.

use tokio_postgres::Transaction;
use uuid::Uuid;

use super::Result;
use crate::domain::{
    auth::{Caller, Scope},
    erasure::AuditKey,
};

/// What an erasure did.
#[derive(Debug)]
pub struct Erasure {
    pub erased_count: i64,
    pub audit_id: Uuid,
}

/// Whose data an erasure removed, as the audit trail names it.
pub(super) struct ErasedIdentifiers<'a> {
    pub scope: Scope,
    pub place: Option<&'a str>,
    pub subject_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

/// Writes the audit entry of an erasure inside its transaction, with keyed
/// digests in place of the identifiers.
pub(super) async fn record_erasure(
    transaction: &Transaction<'_>,
    caller: &Caller,
    erased: ErasedIdentifiers<'_>,
    erased_count: i64,
    audit_key: &AuditKey,
) -> Result<Erasure> {
    let audit_id = Uuid::now_v7();
    let subject_hmac = erased
        .subject_id
        .map(|id| audit_key.digest("subject_id", id).to_vec());
    let user_hmac = erased
        .user_id
        .map(|id| audit_key.digest("user_id", id).to_vec());
    transaction
        .execute(
            include_str!("sql/insert_erasure_audit.sql"),
            &[
                &caller.tenant_id,
                &audit_id,
                &caller.key_id,
                &erased.scope.as_str(),
                &erased.place,
                &subject_hmac,
                &user_hmac,
                &erased_count,
            ],
        )
        .await?;
    Ok(Erasure {
        erased_count,
        audit_id,
    })
}
