//! Remote images for providers that only take them inline (Bedrock): when
//! enabled (`general_settings.fetch_image_urls`), http(s) image URLs are
//! fetched and inlined as `data:` URLs — with a size limit, a timeout, no
//! redirects, and a refusal of private, loopback and link-local addresses,
//! checked on the addresses actually connected to (so DNS cannot be used to
//! slip past the check).

use llmux_core::ApiError;
use llmux_core::types::{ChatCompletionRequest, ContentPart, ImageUrl, KnownPart, MessageContent};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Bedrock's own limit for one image.
pub const MAX_IMAGE_BYTES: usize = 3_750_000;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ImageFetcher {
    client: reqwest::Client,
    allow_private: bool,
}

/// Addresses a fetch must never reach unless explicitly allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// A resolver that drops internal addresses, so the connection can only go
/// to public ones.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{} resolves only to private, loopback or link-local addresses",
                    name.as_str()
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl ImageFetcher {
    pub fn new(allow_private: bool) -> Result<ImageFetcher, reqwest::Error> {
        let mut b = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            b = b.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(ImageFetcher {
            client: b.build()?,
            allow_private,
        })
    }

    /// The request with every http(s) image inlined, or `None` when it has none.
    /// Boxed: fetching is rare, and its future is large (reqwest's, for
    /// each image); unboxed, every request's future would carry its size.
    pub fn inline<'a>(
        &'a self,
        req: &'a ChatCompletionRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Option<ChatCompletionRequest>, ApiError>> + Send + 'a>>
    {
        Box::pin(self.inline_now(req))
    }

    async fn inline_now(
        &self,
        req: &ChatCompletionRequest,
    ) -> Result<Option<ChatCompletionRequest>, ApiError> {
        // Copied only when there is something to fetch.
        let remote = |p: &ContentPart| {
            matches!(p, ContentPart::Known(KnownPart::ImageUrl { image_url, .. })
                if is_remote(image_url.url()))
        };
        let any_remote = req.messages.iter().any(|m| match &m.content {
            Some(MessageContent::Parts(parts)) => parts.iter().any(remote),
            _ => false,
        });
        if !any_remote {
            return Ok(None);
        }
        let mut out = req.clone();
        let mut changed = false;
        for (i, m) in out.messages.iter_mut().enumerate() {
            let Some(MessageContent::Parts(parts)) = m.content.as_mut() else {
                continue;
            };
            for (j, p) in parts.iter_mut().enumerate() {
                if let ContentPart::Known(KnownPart::ImageUrl { image_url, .. }) = p {
                    let url = image_url.url().to_owned();
                    if is_remote(&url) {
                        let data = self
                            .fetch(&url, &format!("messages[{i}].content[{j}]"))
                            .await?;
                        *image_url = ImageUrl::Object {
                            url: data,
                            detail: None,
                            format: None,
                        };
                        changed = true;
                    }
                }
            }
        }
        Ok(changed.then_some(out))
    }

    async fn fetch(&self, url: &str, at: &str) -> Result<String, ApiError> {
        let refuse = |why: String| {
            ApiError::invalid_field(at, format!("Could not fetch the image at {url}: {why}"))
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| refuse(e.to_string()))?;
        // An address written in the URL does not go through the resolver.
        if let Some(host) = parsed.host_str() {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                if is_internal(ip) && !self.allow_private {
                    return Err(refuse(
                        "private, loopback and link-local addresses are refused".into(),
                    ));
                }
            }
        }
        let mut resp = self.client.get(parsed).send().await.map_err(|e| {
            let mut detail = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                detail = s.to_string();
                src = s.source();
            }
            refuse(detail)
        })?;
        if !resp.status().is_success() {
            return Err(refuse(format!("HTTP {}", resp.status().as_u16())));
        }
        let mime = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !matches!(
            mime.as_str(),
            "image/png" | "image/jpeg" | "image/jpg" | "image/gif" | "image/webp"
        ) {
            return Err(refuse(format!("unsupported content type `{mime}`")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| refuse(e.to_string()))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_IMAGE_BYTES {
                return Err(refuse(format!("larger than {MAX_IMAGE_BYTES} bytes")));
            }
        }
        Ok(format!("data:{mime};base64,{}", base64(&bytes)))
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An image the provider cannot take by reference: fetched and inlined.
fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[tokio::test]
    async fn an_allowed_image_is_inlined_and_limits_apply() {
        use axum::routing::get;
        let png: &'static [u8] = b"\x89PNG\r\n\x1a\nfake";
        let app = axum::Router::new()
            .route(
                "/a.png",
                get(move || async move { ([(http::header::CONTENT_TYPE, "image/png")], png) }),
            )
            .route(
                "/page",
                get(|| async { ([(http::header::CONTENT_TYPE, "text/html")], "<html>") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let req: ChatCompletionRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": format!("http://{addr}/a.png")}}]}]}))
            .unwrap();
        // Allowed (an internal image server the operator trusts): inlined.
        let out = ImageFetcher::new(true)
            .unwrap()
            .inline(&req)
            .await
            .unwrap()
            .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            v["messages"][0]["content"][1]["image_url"]["url"],
            format!("data:image/png;base64,{}", base64(png))
        );
        // The default refuses the same loopback address.
        let e = ImageFetcher::new(false)
            .unwrap()
            .inline(&req)
            .await
            .unwrap_err();
        assert!(e.message.contains("refused"), "{}", e.message);
        // Not an image: refused by type.
        let page: ChatCompletionRequest = serde_json::from_value(serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": format!("http://{addr}/page")}}]}]})).unwrap();
        let e = ImageFetcher::new(true)
            .unwrap()
            .inline(&page)
            .await
            .unwrap_err();
        assert!(e.message.contains("content type"), "{}", e.message);
        // Nothing remote (text, a data URL): nothing to do, not even a copy.
        let inline: ChatCompletionRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": "http://example.com/a.png"},
            {"role": "user", "content": [{"type": "text", "text": "https://example.com/a.png"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]}]}))
            .unwrap();
        assert!(
            ImageFetcher::new(false)
                .unwrap()
                .inline(&inline)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn loopback_and_metadata_urls_are_refused_without_connecting() {
        let f = ImageFetcher::new(false).unwrap();
        for url in [
            "http://127.0.0.1:9/a.png",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/a.png",
            "http://localhost:9/a.png",
        ] {
            let e = f.fetch(url, "messages[0].content[0]").await.unwrap_err();
            assert_eq!(e.status, 400, "{url}");
            assert!(
                e.message.contains("private") || e.message.contains("loopback"),
                "{url}: {}",
                e.message
            );
        }
    }
}
