//! Credentials the gateway fetches for providers (which do no I/O): Vertex
//! AI access tokens from a service-account key — a signed JWT exchanged at
//! the key's `token_uri`, cached, and refreshed before it expires.

use crate::transport::Transport;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use llmux_core::providers::Credentials;
use llmux_core::{ApiError, Deployment, ProviderKind, Secret};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Tokens are refreshed this long before they expire (at most a quarter of
/// their life).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct CredentialStore {
    google: HashMap<String, Arc<GoogleToken>>,
}

impl CredentialStore {
    pub fn new(deployments: &[Deployment]) -> Result<CredentialStore, String> {
        let mut google = HashMap::new();
        for d in deployments {
            if let (ProviderKind::VertexAi, Some(v)) = (d.provider, &d.vertex) {
                if let Some(json) = &v.credentials {
                    let key = ServiceAccount::parse(json.expose())
                        .map_err(|e| format!("deployment `{}`: {e}", d.model_name))?;
                    google.insert(d.id.clone(), Arc::new(GoogleToken::new(key)));
                }
            }
        }
        Ok(CredentialStore { google })
    }

    /// What a call to this deployment needs beyond its static config.
    pub async fn for_deployment(
        &self,
        dep: &Deployment,
        transport: &Transport,
    ) -> Result<Credentials, ApiError> {
        match self.google.get(&dep.id) {
            Some(t) => Ok(Credentials {
                bearer: Some(t.get(transport).await?),
            }),
            None => Ok(Credentials::default()),
        }
    }
}

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(skip)]
    key: Option<EncodingKey>,
}

impl ServiceAccount {
    fn parse(json: &str) -> Result<ServiceAccount, String> {
        let mut sa: ServiceAccount = serde_json::from_str(json)
            .map_err(|_| "the Vertex credentials are not a service-account key".to_owned())?;
        sa.key = Some(
            EncodingKey::from_rsa_pem(sa.private_key.as_bytes())
                .map_err(|_| "the service-account private_key is not an RSA PEM key".to_owned())?,
        );
        Ok(sa)
    }

    fn token_uri(&self) -> &str {
        self.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI)
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct GoogleToken {
    account: ServiceAccount,
    /// One refresh at a time; readers wait for it rather than stampede.
    cached: Mutex<Option<(Secret, Instant)>>,
}

impl GoogleToken {
    fn new(account: ServiceAccount) -> GoogleToken {
        GoogleToken {
            account,
            cached: Mutex::new(None),
        }
    }

    async fn get(&self, transport: &Transport) -> Result<Secret, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref() {
            if Instant::now() < *refresh_at {
                return Ok(token.clone());
            }
        }
        let (token, ttl) = self.fetch(transport).await?;
        let margin = REFRESH_MARGIN.min(ttl / 4);
        *cached = Some((token.clone(), Instant::now() + ttl.saturating_sub(margin)));
        Ok(token)
    }

    async fn fetch(&self, transport: &Transport) -> Result<(Secret, Duration), ApiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let uri = self.account.token_uri();
        let claims = Claims {
            iss: &self.account.client_email,
            scope: SCOPE,
            aud: uri,
            iat: now,
            exp: now + 3600,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.account.private_key_id.clone();
        let key = self
            .account
            .key
            .as_ref()
            .ok_or_else(|| ApiError::internal("The service-account key was not loaded."))?;
        let assertion = jsonwebtoken::encode(&header, &claims, key).map_err(|e| {
            ApiError::internal(format!("Could not sign the Vertex AI token request: {e}"))
        })?;
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let (status, text) = transport
            .post_form(uri, body, Duration::from_secs(30))
            .await
            .map_err(|mut e| {
                e.message = format!(
                    "Vertex AI authentication failed: the token endpoint: {}",
                    e.message
                );
                e
            })?;
        if !(200..300).contains(&status) {
            let detail: String = String::from_utf8_lossy(&text).chars().take(300).collect();
            return Err(ApiError::new(
                if status == 400 || status == 401 {
                    401
                } else {
                    502
                },
                format!(
                    "Vertex AI authentication failed at {}: {detail}",
                    crate::transport::host_of(uri)
                ),
            )
            .retryable(status >= 500));
        }
        let t: TokenResponse = serde_json::from_slice(&text).map_err(|e| {
            ApiError::bad_gateway(format!(
                "The token endpoint answered an unreadable token: {e}"
            ))
        })?;
        let ttl = Duration::from_secs(t.expires_in.unwrap_or(3600).max(1));
        tracing::debug!(ttl_secs = ttl.as_secs(), "Vertex AI access token refreshed");
        Ok((Secret::new(t.access_token), ttl))
    }
}
