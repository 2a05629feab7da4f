//! Page tokens and export streams, shared by every list and export.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::Status;

use super::Error;
use crate::{
    domain::page::{Cursor, PageFilter, PageTokens},
    metrics::metrics,
    store::{ExportChunks, Page},
};

/// `(next_page_token, resume_page_token)` of a page (AIP-158): the next
/// token is empty at the end of the list; the resume token is always set.
pub fn page_tokens<T>(
    page: &Page<T>,
    filter: &impl PageFilter,
    tokens: &PageTokens,
) -> (String, String) {
    let next = page
        .next
        .map(|cursor| tokens.seal(cursor, filter))
        .unwrap_or_default();
    // A poller that saw nothing yet resumes from the start.
    let resume = tokens.seal(page.resume.unwrap_or(Cursor::START), filter);
    (next, resume)
}

/// The token an export chunk carries: it resumes after `last`, the chunk's
/// last item.
pub fn resume_token(last: Option<Cursor>, filter: &impl PageFilter, tokens: &PageTokens) -> String {
    last.map(|cursor| tokens.seal(cursor, filter))
        .unwrap_or_default()
}

pub type ExportStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

/// Turns the store's chunks into stream messages; a failed read ends the
/// stream with its status.
pub fn export_stream<T: Send + 'static, M: Send + 'static>(
    chunks: ExportChunks<T>,
    message: impl Fn(Vec<T>) -> M + Send + 'static,
) -> ExportStream<M> {
    let open = ExportOpen::new();
    Box::pin(ReceiverStream::new(chunks).map(move |chunk| {
        let _open = &open;
        match chunk {
            Ok(items) => {
                metrics().exported_records.inc_by(items.len() as u64);
                Ok(message(items))
            }
            Err(error) => Err(Error::from(error).into()),
        }
    }))
}

/// Counts an export stream in flight until it is dropped: at its end, or
/// when the client leaves.
struct ExportOpen;

impl ExportOpen {
    fn new() -> Self {
        metrics().exports_in_flight.inc();
        Self
    }
}

impl Drop for ExportOpen {
    fn drop(&mut self) {
        metrics().exports_in_flight.dec();
    }
}
