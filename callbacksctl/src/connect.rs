//! The gRPC channels to the registry and the dispatcher, presenting the
//! operator's token (`service_kit::callers` on the other side).

use service_kit::telemetry::{Outbound, OutboundChannel};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub(crate) async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<OutboundChannel> {
    let outbound = Outbound::new(token)?;
    let channel = Channel::from_shared(url.to_owned())?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    Ok(InterceptedService::new(channel, outbound))
}
