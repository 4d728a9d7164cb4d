//! The machine's root CA and this env's intermediate, and the Secret that hands the
//! intermediate to cert-manager.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};
use crate::env::EnvError;
use crate::pki;

pub struct Ca;

impl Step for Ca {
    fn name(&self) -> &'static str {
        "ca"
    }

    fn line(&self, _ctx: &Ctx<'_>) -> String {
        "root CA and this env's intermediate".into()
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let now = time::OffsetDateTime::now_utc();
            let (root, intermediate) = pki::ensure_env_ca(&ctx.settings.data_dir, ctx.env(), now)?;
            let root_info = root.info()?;
            let intermediate_info = intermediate.info()?;
            for warning in pki::expiry_warnings(
                now,
                &[
                    ("the root CA", &root_info),
                    ("this env's intermediate CA", &intermediate_info),
                ],
            ) {
                ctx.progress.warn(&warning);
            }
            let namespace = ctx.state().ca_secret_namespace().to_string();
            let _ = ctx
                .ca_secret
                .set(pki::root_ca_secret(&intermediate, &root, &namespace));
            Ok(format!("root {}", root_info.short_id()))
        })
    }
}
