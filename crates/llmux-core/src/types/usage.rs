//! Token usage in OpenAI's shape, with the cache fields LiteLLM clients read.

use crate::json;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Anthropic-style counts, as LiteLLM reports them: prompt tokens read
    /// from the cache and written to it (both included in `prompt_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// DeepSeek's count of prompt tokens served from its cache (its
    /// `prompt_tokens_details.cached_tokens` may say 0 beside it).
    #[serde(default, skip_serializing)]
    pub prompt_cache_hit_tokens: Option<u64>,
    /// What the provider says the call cost, in USD (OpenRouter's
    /// `usage.cost`): the price actually charged, over the catalog's.
    #[serde(default, skip_serializing)]
    pub cost: Option<f64>,
    /// Searches and fetches the provider ran for the answer (Anthropic's
    /// `usage.server_tool_use`, as LiteLLM reports it); each is priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUse>,
}

/// Anthropic's count of server tool calls, in the same shape on both APIs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerToolUse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_fetch_requests: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// DeepSeek/OpenRouter-style cache writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_prediction_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_prediction_tokens: Option<u64>,
}

impl Usage {
    /// As JSON at the end of `out`: the bytes serde_json writes for it
    /// (tested), without escaping each key again. Every translated answer
    /// and every stream's usage chunk carries one.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"prompt_tokens\":");
        json::write_u64(out, self.prompt_tokens);
        out.extend_from_slice(b",\"completion_tokens\":");
        json::write_u64(out, self.completion_tokens);
        out.extend_from_slice(b",\"total_tokens\":");
        json::write_u64(out, self.total_tokens);
        if let Some(d) = &self.prompt_tokens_details {
            out.extend_from_slice(b",\"prompt_tokens_details\":");
            write_counts(
                out,
                &[
                    (b"\"cached_tokens\":", d.cached_tokens),
                    (b"\"audio_tokens\":", d.audio_tokens),
                    (b"\"cache_write_tokens\":", d.cache_write_tokens),
                ],
            );
        }
        if let Some(d) = &self.completion_tokens_details {
            out.extend_from_slice(b",\"completion_tokens_details\":");
            write_counts(
                out,
                &[
                    (b"\"reasoning_tokens\":", d.reasoning_tokens),
                    (b"\"audio_tokens\":", d.audio_tokens),
                    (
                        b"\"accepted_prediction_tokens\":",
                        d.accepted_prediction_tokens,
                    ),
                    (
                        b"\"rejected_prediction_tokens\":",
                        d.rejected_prediction_tokens,
                    ),
                ],
            );
        }
        if let Some(n) = self.cache_read_input_tokens {
            out.extend_from_slice(b",\"cache_read_input_tokens\":");
            json::write_u64(out, n);
        }
        if let Some(n) = self.cache_creation_input_tokens {
            out.extend_from_slice(b",\"cache_creation_input_tokens\":");
            json::write_u64(out, n);
        }
        if let Some(s) = &self.server_tool_use {
            out.extend_from_slice(b",\"server_tool_use\":");
            write_counts(
                out,
                &[
                    (b"\"web_search_requests\":", s.web_search_requests),
                    (b"\"web_fetch_requests\":", s.web_fetch_requests),
                ],
            );
        }
        out.push(b'}');
    }

    /// Prompt tokens served from the provider's cache, wherever the
    /// provider reported them.
    pub fn cached_tokens(&self) -> u64 {
        self.cache_read_input_tokens
            .or(self.prompt_cache_hit_tokens.filter(|&n| n > 0))
            .or_else(|| {
                self.prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens)
            })
            .unwrap_or(0)
    }

    /// Prompt tokens written to the provider's cache.
    pub fn cache_write_tokens(&self) -> u64 {
        self.cache_creation_input_tokens
            .or_else(|| {
                self.prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cache_write_tokens)
            })
            .unwrap_or(0)
    }

    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
    }

    /// Web searches the provider ran and charges for.
    pub fn web_searches(&self) -> u64 {
        self.server_tool_use
            .and_then(|s| s.web_search_requests)
            .unwrap_or(0)
    }
}

/// An object of optional counts, the ones present in order: `{}` if none
/// is.
fn write_counts(out: &mut Vec<u8>, counts: &[(&[u8], Option<u64>)]) {
    out.push(b'{');
    let mut first = true;
    for (key, count) in counts {
        if let Some(n) = count {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            json::write_u64(out, *n);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mix of the optional counts is written as serde writes it.
    #[test]
    fn usage_is_written_as_serde_writes_it() {
        for mask in 0u32..(1 << 14) {
            let n = |bit: u32| (mask & (1 << bit) != 0).then_some(u64::from(bit) * 1000 + 1);
            let u = Usage {
                prompt_tokens: 123,
                completion_tokens: 45,
                total_tokens: 168,
                prompt_tokens_details: (mask & 1 != 0).then(|| PromptTokensDetails {
                    cached_tokens: n(1),
                    audio_tokens: n(2),
                    cache_write_tokens: n(3),
                }),
                completion_tokens_details: (mask & (1 << 4) != 0).then(|| {
                    CompletionTokensDetails {
                        reasoning_tokens: n(5),
                        audio_tokens: n(6),
                        accepted_prediction_tokens: n(7),
                        rejected_prediction_tokens: n(8),
                    }
                }),
                cache_read_input_tokens: n(9),
                cache_creation_input_tokens: n(10),
                prompt_cache_hit_tokens: None,
                cost: None,
                server_tool_use: (mask & (1 << 11) != 0).then(|| ServerToolUse {
                    web_search_requests: n(12),
                    web_fetch_requests: n(13),
                }),
            };
            let mut out = Vec::new();
            u.write_json(&mut out);
            assert_eq!(out, serde_json::to_vec(&u).unwrap(), "{u:?}");
        }
    }

    #[test]
    fn reads_openai_cached_tokens() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,
                "prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":3}}"#,
        )
        .unwrap();
        assert_eq!(u.cached_tokens(), 64);
        assert_eq!(u.reasoning_tokens(), 3);
        assert_eq!(u.cache_write_tokens(), 0);
    }

    #[test]
    fn reads_anthropic_style_cache_fields() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,
                "cache_read_input_tokens":40,"cache_creation_input_tokens":50}"#,
        )
        .unwrap();
        assert_eq!(u.cached_tokens(), 40);
        assert_eq!(u.cache_write_tokens(), 50);
    }

    #[test]
    fn reads_the_cost_a_provider_reports() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"cost":0.00042,
                "cost_details":{"upstream_inference_cost":null}}"#,
        )
        .unwrap();
        assert_eq!(u.cost, Some(0.00042));
        // Never written back: a translated answer's usage is OpenAI's.
        assert!(serde_json::to_value(&u).unwrap().get("cost").is_none());
    }

    #[test]
    fn reads_deepseek_cache_hits_even_beside_a_zero_openai_count() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":1000,"completion_tokens":5,"total_tokens":1005,
                "prompt_tokens_details":{"cached_tokens":0},
                "prompt_cache_hit_tokens":896,"prompt_cache_miss_tokens":104}"#,
        )
        .unwrap();
        assert_eq!(u.cached_tokens(), 896);
        // Priced at the cache rate: 104 × 2 + 896 × 0.5 + 5 × 10 (per token).
        let info = crate::catalog::ModelInfo(
            serde_json::json!({"input_cost_per_token": 2.0, "output_cost_per_token": 10.0,
                "cache_read_input_token_cost": 0.5})
            .as_object()
            .unwrap()
            .clone(),
        );
        assert_eq!(
            crate::cost::cost(&u, &info),
            Some(104.0 * 2.0 + 896.0 * 0.5 + 50.0)
        );
        // A zero beside OpenAI's own count does not hide it.
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,
                "prompt_tokens_details":{"cached_tokens":64},"prompt_cache_hit_tokens":0}"#,
        )
        .unwrap();
        assert_eq!(u.cached_tokens(), 64);
    }
}
