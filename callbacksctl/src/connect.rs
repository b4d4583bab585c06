//! The gRPC channels to the registry and the dispatcher, presenting the
//! operator's token (`service_kit::callers` on the other side).

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel whose calls present the operator's token, if one is given.
pub type Authed = InterceptedService<Channel, Token>;

#[derive(Debug, Clone)]
pub struct Token(Option<AsciiMetadataValue>);

impl Interceptor for Token {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

pub async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Authed> {
    let token = token
        .map(|t| format!("Bearer {t}").parse())
        .transpose()
        .map_err(|_| anyhow::anyhow!("a token must be printable ASCII"))?;
    let channel = Channel::from_shared(url.to_owned())?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    Ok(InterceptedService::new(channel, Token(token)))
}
