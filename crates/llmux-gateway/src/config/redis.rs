//! The Redis that replicas count the virtual keys' rate limits in, named
//! as LiteLLM's configs name it: `litellm_settings.cache_params` (with
//! `cache: true`; LiteLLM's proxy counts its limits in that cache's Redis),
//! else `router_settings.redis_host` / `redis_url`, each filled in from
//! `REDIS_URL` or `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`,
//! `REDIS_USERNAME` and `REDIS_SSL` where the config names no server.

use super::{ConfigError, Env};
use llmux_core::Secret;

/// A Redis server to connect to.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub target: Target,
    /// Put before every key llmux writes (`cache_params.namespace`), so
    /// a Redis shared with other programs keeps them apart.
    pub namespace: Option<String>,
    /// The setting it was named by, for messages.
    pub from: &'static str,
}

#[derive(Debug, Clone)]
pub enum Target {
    /// `redis://`, `rediss://` or `unix://`: a secret, as it may hold a
    /// password.
    Url(Secret),
    Host {
        host: String,
        port: u16,
        username: Option<String>,
        password: Option<Secret>,
        tls: bool,
        db: i64,
    },
}

/// A Redis client and how its connections behave.
pub struct RedisClient {
    client: redis::Client,
    config: redis::aio::ConnectionManagerConfig,
}

impl RedisClient {
    /// A new connection, made on its first call, on the current runtime.
    pub fn connect(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        redis::aio::ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.config.clone(),
        )
    }
}

/// The fields one setting gave, already read from `os.environ/`.
#[derive(Default)]
pub(super) struct Parts {
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl: Option<String>,
    pub db: Option<String>,
    pub namespace: Option<String>,
}

impl Parts {
    /// Each field the config leaves out, from the environment, as
    /// LiteLLM's Redis client lays its settings over `REDIS_*` (and, as
    /// there, a URL from either is taken before a host).
    fn or_env(self, env: &Env) -> Parts {
        let from = |mine: Option<String>, name: &str| mine.or_else(|| env.get(name));
        Parts {
            url: from(self.url, "REDIS_URL"),
            host: from(self.host, "REDIS_HOST"),
            port: from(self.port, "REDIS_PORT"),
            username: from(self.username, "REDIS_USERNAME"),
            password: from(self.password, "REDIS_PASSWORD"),
            ssl: from(self.ssl, "REDIS_SSL"),
            db: from(self.db, "REDIS_DB"),
            namespace: self.namespace,
        }
    }
}

/// The Redis `parts` name (or the environment does), checked; None, with
/// a warning, if no server is named.
pub(super) fn settings(
    parts: Parts,
    from: &'static str,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<Option<RedisSettings>, ConfigError> {
    let parts = parts.or_env(env);
    let namespace = parts.namespace.clone().filter(|n| !n.is_empty());
    let target = if let Some(url) = parts.url.filter(|u| !u.trim().is_empty()) {
        let url = url.trim().to_owned();
        // Not echoed in errors: it may hold a password.
        let scheme_ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|s| url.starts_with(s));
        if !scheme_ok || redis::IntoConnectionInfo::into_connection_info(url.as_str()).is_err() {
            return Err(ConfigError::Invalid(format!(
                "{from}: the Redis URL does not read (redis://[user:password@]host:port[/db], \
                 rediss:// for TLS)"
            )));
        }
        Target::Url(Secret::new(url))
    } else if let Some(host) = parts.host.filter(|h| !h.trim().is_empty()) {
        let port = match parts.port.as_deref().map(str::trim) {
            None | Some("") => 6379,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                ConfigError::Invalid(format!("{from}: the Redis port must be 1 to 65535"))
            })?,
        };
        let db = match parts.db.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(d) => d.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                ConfigError::Invalid(format!("{from}: the Redis db must be a number from 0"))
            })?,
        };
        let tls = match parts.ssl.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(s) if s.eq_ignore_ascii_case("true") || s == "1" => true,
            Some(s) if s.eq_ignore_ascii_case("false") || s == "0" => false,
            Some(_) => {
                return Err(ConfigError::Invalid(format!(
                    "{from}: the Redis ssl setting must be true or false"
                )));
            }
        };
        Target::Host {
            host: host.trim().to_owned(),
            port,
            username: parts.username.filter(|u| !u.is_empty()),
            password: parts.password.filter(|p| !p.is_empty()).map(Secret::new),
            tls,
            db,
        }
    } else {
        warnings.push(format!(
            "{from}: names no Redis server (host or url, or REDIS_HOST / REDIS_URL); \
             rate limits are counted per process"
        ));
        return Ok(None);
    };
    Ok(Some(RedisSettings {
        target,
        namespace,
        from,
    }))
}

impl RedisSettings {
    /// How the client connects.
    pub fn connection_info(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        // Small calls answered at once: no Nagle delay; and a connection
        // whose peer went silent fails within seconds, not the kernel's
        // quarter of an hour.
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        #[cfg(target_os = "linux")]
        let tcp = tcp.set_user_timeout(std::time::Duration::from_secs(5));
        Ok(self.target_info()?.set_tcp_settings(tcp))
    }

    fn target_info(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        use redis::IntoConnectionInfo;
        match &self.target {
            Target::Url(url) => url.expose().into_connection_info(),
            Target::Host {
                host,
                port,
                username,
                password,
                tls,
                db,
            } => {
                let addr = if *tls {
                    redis::ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    redis::ConnectionAddr::Tcp(host.clone(), *port)
                };
                let mut settings = redis::RedisConnectionInfo::default().set_db(*db);
                if let Some(u) = username {
                    settings = settings.set_username(u);
                }
                if let Some(p) = password {
                    settings = settings.set_password(p.expose());
                }
                Ok(addr.into_connection_info()?.set_redis_settings(settings))
            }
        }
    }

    /// A client for it. Its connections are made on first use and again
    /// after a lost one; one that failed or timed out is for its owner to
    /// drop and make anew ([`RedisClient::connect`]), as it may never
    /// recover by itself (a silent peer, a failed AUTH kept as its error).
    pub fn client(&self) -> redis::RedisResult<RedisClient> {
        Ok(RedisClient {
            client: redis::Client::open(self.connection_info()?)?,
            config: redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
                .set_response_timeout(Some(std::time::Duration::from_secs(2)))
                .set_number_of_retries(1)
                .set_max_delay(std::time::Duration::from_millis(500)),
        })
    }

    /// A name for llmux's `name` in this Redis: after the `namespace`, if
    /// one is set.
    pub fn key(&self, name: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}:{name}"),
            None => name.to_owned(),
        }
    }

    /// Where it is, without user or password: `redis://host:port/db`.
    pub fn redacted(&self) -> String {
        match self.connection_info() {
            Ok(info) => {
                let scheme = match info.addr() {
                    redis::ConnectionAddr::TcpTls { .. } => "rediss",
                    redis::ConnectionAddr::Unix(_) => "unix",
                    _ => "redis",
                };
                let db = info.redis_settings().db();
                format!("{scheme}://{}/{db}", info.addr())
            }
            Err(_) => "redis (unreadable URL)".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::fixed(vars)
    }

    #[test]
    fn a_host_and_password_connect_and_print_without_the_password() {
        let mut w = vec![];
        let parts = Parts {
            host: Some("redis.internal".into()),
            port: Some("6380".into()),
            password: Some("s3cret-pw".into()),
            db: Some("2".into()),
            ..Default::default()
        };
        let r = settings(parts, "cache_params", &env(&[]), &mut w)
            .unwrap()
            .unwrap();
        let info = r.connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("s3cret-pw"));
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(r.redacted(), "redis://redis.internal:6380/2");
        assert!(!format!("{r:?}").contains("s3cret-pw"));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn the_environment_names_the_server_when_the_config_does_not() {
        let mut w = vec![];
        let e = env(&[
            ("REDIS_HOST", "10.0.0.5"),
            ("REDIS_PORT", "7000"),
            ("REDIS_PASSWORD", "pw-from-env"),
            ("REDIS_SSL", "True"),
        ]);
        let r = settings(Parts::default(), "cache", &e, &mut w)
            .unwrap()
            .unwrap();
        assert_eq!(r.redacted(), "rediss://10.0.0.5:7000/0");
        let info = r.connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("pw-from-env"));
        // REDIS_URL is taken before REDIS_HOST.
        let e = env(&[
            ("REDIS_URL", "redis://:pw@r.example:6390/1"),
            ("REDIS_HOST", "x"),
        ]);
        let r = settings(Parts::default(), "cache", &e, &mut w)
            .unwrap()
            .unwrap();
        assert_eq!(r.redacted(), "redis://r.example:6390/1");
    }

    #[test]
    fn a_field_the_config_leaves_out_comes_from_the_environment() {
        let mut w = vec![];
        let parts = Parts {
            host: Some("redis".into()),
            ..Default::default()
        };
        let e = env(&[("REDIS_PASSWORD", "pw-env"), ("REDIS_DB", "3")]);
        let r = settings(parts, "cache_params", &e, &mut w)
            .unwrap()
            .unwrap();
        let info = r.connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("pw-env"));
        assert_eq!(r.redacted(), "redis://redis:6379/3");
    }

    #[test]
    fn no_server_is_a_warning_and_a_bad_one_an_error_without_its_password() {
        let mut w = vec![];
        assert!(
            settings(Parts::default(), "cache", &env(&[]), &mut w)
                .unwrap()
                .is_none()
        );
        assert!(w[0].contains("names no Redis server"), "{w:?}");
        for (url, port) in [
            (Some("http://user:hunter2@h:1"), None),
            (None, Some("99999")),
        ] {
            let parts = Parts {
                url: url.map(str::to_owned),
                host: url.is_none().then(|| "h".to_owned()),
                port: port.map(str::to_owned),
                password: Some("hunter2".into()),
                ..Default::default()
            };
            let e = settings(parts, "router_settings", &env(&[]), &mut w).unwrap_err();
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
