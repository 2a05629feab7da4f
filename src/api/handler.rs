//! The steps every RPC takes around its own work, written once so that no
//! handler can skip one: authorize the caller for the RPC's scope, parse the
//! request into its domain command (every violation at once), run, and map
//! what failed through the one mapping to a status.

use tonic::{Request, Response, Status};

use super::{
    ApiContext, Authenticator,
    convert::{ListRequest, UnaryRequest, list_command},
};
use crate::domain::{
    auth::{Caller, Scope},
    page::PageTokens,
};

/// A service whose RPCs run through [`Rpc::unary`] and [`Rpc::paged`].
pub(super) trait Rpc: Sync {
    /// Whom the service asks about keys, and what it knows besides.
    fn parts(&self) -> (&Authenticator, &ApiContext);

    /// An RPC whose request parses on its own.
    async fn unary<R: UnaryRequest, Reply>(
        &self,
        request: Request<R>,
        scope: Scope,
        run: impl AsyncFnOnce(Caller, R::Command) -> Result<Reply, Status>,
    ) -> Result<Response<Reply>, Status> {
        let caller = self.parts().0.authorize(&request, scope).await?;
        let command = R::Command::try_from(request.into_inner())?;
        Ok(Response::new(run(caller, command).await?))
    }

    /// A list or an export: its page token is bound to the caller's tenant,
    /// so the request is parsed with the caller's tokens, which `run` gets
    /// too, to seal the tokens it answers with.
    async fn paged<R: ListRequest, Reply>(
        &self,
        request: Request<R>,
        scope: Scope,
        run: impl AsyncFnOnce(Caller, PageTokens, R::Command) -> Result<Reply, Status>,
    ) -> Result<Response<Reply>, Status> {
        let (auth, context) = self.parts();
        let caller = auth.authorize(&request, scope).await?;
        let tokens = PageTokens::new(&context.audit_key, caller.tenant_id);
        let command = list_command(request.into_inner(), &tokens)?;
        Ok(Response::new(run(caller, tokens, command).await?))
    }
}
