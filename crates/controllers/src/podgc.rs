//! The podgc controller (not written yet).

use futures::future::BoxFuture;

use crate::Context;

/// Registers the controller's handlers and returns its workers.
pub fn start(_ctx: &Context) -> BoxFuture<'static, ()> {
    Box::pin(async {})
}
