//! `consentd proof`: the PDF proof of one record, from a running consentd.

use std::path::PathBuf;

use clap::Args;
use consentd::api::proto::{GetConsentProofRequest, consent_service_client::ConsentServiceClient};

use super::{Server, failed};

#[derive(Args)]
pub struct Proof {
    /// The record's id.
    record_id: String,
    /// Where to write the PDF.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    server: Server,
}

pub async fn run(proof: Proof) -> Result<(), String> {
    let mut client = ConsentServiceClient::new(proof.server.connect().await?);
    let response = client
        .get_consent_proof(proof.server.request(GetConsentProofRequest {
            record_id: proof.record_id,
            include_document: true,
        })?)
        .await
        .map_err(failed)?
        .into_inner();
    std::fs::write(&proof.out, response.document_pdf)
        .map_err(|e| format!("{}: {e}", proof.out.display()))
}
