//! Credentials the gateway fetches for providers (which do no I/O): Vertex
//! AI access tokens from a service-account key — a signed JWT exchanged at
//! the key's `token_uri`, cached, and refreshed before it expires.

use crate::config::Env;
use crate::transport::Transport;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use llmux_core::deployment::AwsParams;
use llmux_core::providers::AwsCredentials;
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
    aws: HashMap<String, Arc<AwsSource>>,
}

impl CredentialStore {
    pub fn new(deployments: &[Deployment], env: &Env) -> Result<CredentialStore, String> {
        let mut google = HashMap::new();
        let mut aws = HashMap::new();
        for d in deployments {
            if let (ProviderKind::VertexAi, Some(v)) = (d.provider, &d.vertex) {
                if let Some(json) = &v.credentials {
                    let key = ServiceAccount::parse(json.expose())
                        .map_err(|e| format!("deployment `{}`: {e}", d.model_name))?;
                    google.insert(d.id.clone(), Arc::new(GoogleToken::new(key)));
                }
            }
            if let (ProviderKind::Bedrock, Some(a)) = (d.provider, &d.aws) {
                aws.insert(d.id.clone(), Arc::new(AwsSource::new(a, env)));
            }
        }
        Ok(CredentialStore { google, aws })
    }

    /// What a call to this deployment needs beyond its static config.
    pub async fn for_deployment(
        &self,
        dep: &Deployment,
        transport: &Transport,
    ) -> Result<Credentials, ApiError> {
        // By provider too: a wildcard entry's id may hold both kinds.
        if let Some(t) = self
            .google
            .get(&dep.id)
            .filter(|_| dep.provider == ProviderKind::VertexAi)
        {
            // Boxed: a token exchange is a whole HTTPS request, and an
            // unboxed future would make every request's future that large.
            return Ok(Credentials {
                bearer: Some(Box::pin(t.get(transport)).await?),
                aws: None,
            });
        }
        if let Some(a) = self
            .aws
            .get(&dep.id)
            .filter(|_| dep.provider == ProviderKind::Bedrock)
        {
            return a.get(dep);
        }
        Ok(Credentials::default())
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

/// Where a Bedrock deployment's AWS credentials come from, first found:
/// a Bedrock API key (bearer), static keys in the config, the environment,
/// then a profile in the shared credentials and config files. Files are
/// read again every few minutes, so credentials that a login or rotation
/// rewrites there (temporary ones with a session token) are picked up
/// before they expire.
struct AwsSource {
    bearer: Option<Secret>,
    fixed: Option<AwsCredentials>,
    profile: String,
    credentials_file: Option<std::path::PathBuf>,
    config_file: Option<std::path::PathBuf>,
    from_files: std::sync::Mutex<Option<(Option<AwsCredentials>, Instant)>>,
}

/// How long credentials read from files are trusted before a re-read.
const FILE_RECHECK: Duration = Duration::from_secs(300);

impl AwsSource {
    fn new(p: &AwsParams, env: &Env) -> AwsSource {
        let fixed = match (&p.access_key_id, &p.secret_access_key) {
            (Some(id), Some(secret)) => Some(AwsCredentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: p.session_token.clone(),
            }),
            _ => match (
                env.get("AWS_ACCESS_KEY_ID"),
                env.get("AWS_SECRET_ACCESS_KEY"),
            ) {
                // Profile named explicitly in the config wins over the environment.
                (Some(id), Some(secret)) if p.profile.is_none() => Some(AwsCredentials {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    session_token: env.get("AWS_SESSION_TOKEN").map(Secret::new),
                }),
                _ => None,
            },
        };
        let home = env.get("HOME").map(std::path::PathBuf::from);
        AwsSource {
            bearer: p.bearer_token.clone(),
            fixed,
            profile: p
                .profile
                .clone()
                .or_else(|| env.get("AWS_PROFILE"))
                .unwrap_or_else(|| "default".to_owned()),
            credentials_file: env
                .get("AWS_SHARED_CREDENTIALS_FILE")
                .map(Into::into)
                .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials"))),
            config_file: env
                .get("AWS_CONFIG_FILE")
                .map(Into::into)
                .or_else(|| home.as_ref().map(|h| h.join(".aws/config"))),
            from_files: std::sync::Mutex::new(None),
        }
    }

    fn get(&self, dep: &Deployment) -> Result<Credentials, ApiError> {
        if let Some(b) = &self.bearer {
            return Ok(Credentials {
                bearer: Some(b.clone()),
                aws: None,
            });
        }
        if let Some(c) = &self.fixed {
            return Ok(Credentials {
                bearer: None,
                aws: Some(c.clone()),
            });
        }
        let mut cached = self
            .from_files
            .lock()
            .map_err(|_| ApiError::internal("AWS credential cache poisoned"))?;
        let fresh = matches!(cached.as_ref(), Some((_, at)) if at.elapsed() < FILE_RECHECK);
        if !fresh {
            *cached = Some((self.read_files(), Instant::now()));
        }
        match cached.as_ref().and_then(|(c, _)| c.clone()) {
            Some(c) => Ok(Credentials {
                bearer: None,
                aws: Some(c),
            }),
            None => Err(ApiError::unauthorized(format!(
                "No AWS credentials for `{}`: set aws_access_key_id and aws_secret_access_key, the AWS_* \
                 variables, AWS_BEARER_TOKEN_BEDROCK, or profile `{}` in the shared credentials file.",
                dep.model_name, self.profile
            ))),
        }
    }

    fn read_files(&self) -> Option<AwsCredentials> {
        let creds = self
            .credentials_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| profile_keys(&t, &self.profile));
        let from_config = || {
            let section = if self.profile == "default" {
                "default".to_owned()
            } else {
                format!("profile {}", self.profile)
            };
            self.config_file
                .as_ref()
                .and_then(|f| std::fs::read_to_string(f).ok())
                .and_then(|t| profile_keys(&t, &section))
        };
        creds.or_else(from_config)
    }
}

/// Keys of one `[section]` of an AWS INI file.
fn profile_keys(text: &str, section: &str) -> Option<AwsCredentials> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == section;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(AwsCredentials {
        access_key_id: id?,
        secret_access_key: Secret::new(secret?),
        session_token: token.map(Secret::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_profile_from_an_ini_file() {
        let text = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n[work]\n# comment\naws_access_key_id=AKIAWORK\naws_secret_access_key=s2\naws_session_token=tok\n";
        let work = profile_keys(text, "work").unwrap();
        assert_eq!(work.access_key_id, "AKIAWORK");
        assert_eq!(work.session_token.unwrap().expose(), "tok");
        assert_eq!(
            profile_keys(text, "default")
                .unwrap()
                .secret_access_key
                .expose(),
            "s1"
        );
        assert!(profile_keys(text, "missing").is_none());
    }

    #[test]
    fn sources_in_order_bearer_config_env_files() {
        let dir = std::env::temp_dir().join(format!("llmux-aws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[p1]\naws_access_key_id=AKIAFILE\naws_secret_access_key=fs\n",
        )
        .unwrap();
        let dep = |aws: AwsParams| Deployment {
            id: "d".into(),
            aws: Some(aws),
            ..Deployment::new("m", ProviderKind::Bedrock, "x")
        };
        let env = Env::fixed(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "es"),
            ("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap()),
        ]);
        let get = |p: AwsParams| {
            let d = dep(p.clone());
            AwsSource::new(&p, &env).get(&d).unwrap()
        };
        let c = get(AwsParams {
            bearer_token: Some(Secret::new("bk")),
            ..Default::default()
        });
        assert_eq!(c.bearer.unwrap().expose(), "bk");
        let c = get(AwsParams {
            access_key_id: Some("AKIACFG".into()),
            secret_access_key: Some(Secret::new("cs")),
            ..Default::default()
        });
        assert_eq!(c.aws.unwrap().access_key_id, "AKIACFG");
        assert_eq!(
            get(AwsParams::default()).aws.unwrap().access_key_id,
            "AKIAENV"
        );
        let c = get(AwsParams {
            profile: Some("p1".into()),
            ..Default::default()
        });
        assert_eq!(c.aws.unwrap().access_key_id, "AKIAFILE");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
