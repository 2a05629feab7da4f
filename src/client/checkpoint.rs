//! `consentd checkpoint`: what an outside witness keeps of a tenant's log.
//! It fetches the latest signed checkpoint (or the one of `--size`), checks
//! its signature with keys the witness holds and, with `--since`, that the
//! checkpoint kept from before is the start of the new one, and only then
//! writes the new note. A log that forked, shrank or changed an old leaf
//! fails here, and the note kept stays as it was.
//!
//! The keys come from files, never from the server: a witness that took
//! the server's word for its keys would check nothing.

use std::path::{Path, PathBuf};

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Args;
use consentd::{
    api::proto::{
        GetCheckpointRequest, GetConsistencyProofRequest,
        consent_service_client::ConsentServiceClient,
    },
    domain::checkpoint::Checkpoint,
};
use tonic::transport::Channel;

use super::{
    Server, failed,
    verify::{ConsistencyProof, read, read_key_files},
};

#[derive(Args)]
#[command(after_help = "Example, run on a schedule by a witness:\n  \
    consentd checkpoint --since witness.txt --out witness.txt --public-key keys.json")]
pub struct Witness {
    /// Where to write the signed note (c2sp.org/tlog-checkpoint); replaced
    /// whole, so it may be the `--since` file.
    #[arg(long, value_name = "NOTE")]
    out: PathBuf,
    /// A checkpoint note kept from before: the new checkpoint must be of the
    /// same log and its tree must start with this one's (a consistency
    /// proof from the server, checked here).
    #[arg(long, value_name = "NOTE")]
    since: Option<PathBuf>,
    /// The tree size of the checkpoint to fetch; without it, the latest.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    size: Option<u64>,
    /// Files of the Ed25519 public keys the log signs with, in any form
    /// `consentd verify --public-key` takes. Repeat for more files.
    #[arg(long, value_name = "KEY_FILE", required = true)]
    public_key: Vec<PathBuf>,
    #[command(flatten)]
    server: Server,
}

pub async fn run(witness: Witness) -> Result<(), String> {
    let keys = read_key_files(&witness.public_key)?;
    let mut client = ConsentServiceClient::new(witness.server.connect().await?);
    let note = client
        .get_checkpoint(witness.server.request(GetCheckpointRequest {
            tree_size: witness.size.unwrap_or(0) as i64,
        })?)
        .await
        .map_err(failed)?
        .into_inner()
        .checkpoint
        .ok_or("the server answered without a checkpoint")?
        .note;
    let new = Checkpoint::open(&note, &keys).map_err(|e| format!("the served checkpoint: {e}"))?;
    if let Some(since) = &witness.since {
        extends(&mut client, &witness.server, &read(since)?, &note, &keys).await?;
    }
    write_whole(&witness.out, &note)?;
    println!(
        "checkpoint of {} leaves of {}, root {}, written to {}",
        new.size,
        new.origin,
        STANDARD.encode(new.root),
        witness.out.display()
    );
    Ok(())
}

/// Whether the log of `new_note` starts with the tree of `old_note`.
async fn extends(
    client: &mut ConsentServiceClient<Channel>,
    server: &Server,
    old_note: &str,
    new_note: &str,
    keys: &[[u8; 32]],
) -> Result<(), String> {
    let old = Checkpoint::open(old_note, keys).map_err(|e| format!("the kept checkpoint: {e}"))?;
    let new = Checkpoint::read_unverified(new_note)?;
    if old.size > new.size {
        return Err(format!(
            "the served checkpoint holds {} leaves, fewer than the {} of the kept one",
            new.size, old.size
        ));
    }
    if old.size == new.size || old.size == 0 {
        if old.origin != new.origin || (old.size > 0 && old.root != new.root) {
            return Err(format!(
                "the served checkpoint ({} leaves of {}) is not the kept one ({} leaves of {})",
                new.size, new.origin, old.size, old.origin
            ));
        }
        return Ok(());
    }
    let proof = client
        .get_consistency_proof(server.request(GetConsistencyProofRequest {
            old_size: old.size as i64,
            new_size: new.size as i64,
        })?)
        .await
        .map_err(failed)?
        .into_inner();
    ConsistencyProof::from_response(proof)?
        .check(old_note, new_note, keys)
        .map_err(|e| format!("the log does not extend the kept checkpoint: {e}"))
}

/// Writes `note` to `path` through a file beside it, renamed over it, so an
/// interrupted run never leaves half a note where the witness keeps its
/// state.
fn write_whole(path: &Path, note: &str) -> Result<(), String> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, note)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
