//! Cost of a request: usage × the deployment's prices.

use crate::catalog::ModelInfo;
use crate::types::Usage;

/// A model's prices per token, read from its catalog entry once (a lookup
/// by name per price and request cost more than the arithmetic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    /// A web search the provider ran (Claude's web search tool).
    search: f64,
}

impl Prices {
    /// `None` when the model's input or output price is unknown. Cache
    /// reads and writes without their own price cost the input price.
    pub fn of(info: &ModelInfo) -> Option<Prices> {
        let input = info.f64("input_cost_per_token")?;
        Some(Prices {
            input,
            output: info.f64("output_cost_per_token")?,
            cache_read: info.f64("cache_read_input_token_cost").unwrap_or(input),
            cache_write: info.f64("cache_creation_input_token_cost").unwrap_or(input),
            search: search_price(info).unwrap_or(0.0),
        })
    }

    /// USD for `usage`.
    ///
    /// `prompt_tokens` includes cached reads and cache writes (OpenAI's
    /// convention, which llmux keeps for every provider), so those are
    /// priced at their own rates and the rest at the input rate.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens();
        let written = usage.cache_write_tokens();
        let uncached = usage.prompt_tokens.saturating_sub(cached + written);
        uncached as f64 * self.input
            + cached as f64 * self.cache_read
            + written as f64 * self.cache_write
            + usage.completion_tokens as f64 * self.output
            + usage.web_searches() as f64 * self.search
    }
}

/// USD a web search, from LiteLLM's `search_context_cost_per_query`: an
/// object of prices by search context size, of which a search the size
/// was not chosen for (Claude's) costs the medium one; a number is taken
/// as the price of any search.
fn search_price(info: &ModelInfo) -> Option<f64> {
    let v = info.0.get("search_context_cost_per_query")?;
    v.as_f64()
        .or_else(|| v.get("search_context_size_medium")?.as_f64())
        .filter(|p| p.is_finite() && *p >= 0.0)
}

/// USD, or `None` when the model's prices are unknown.
pub fn cost(usage: &Usage, info: &ModelInfo) -> Option<f64> {
    Some(Prices::of(info)?.cost(usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(v: serde_json::Value) -> ModelInfo {
        ModelInfo(v.as_object().unwrap().clone())
    }

    #[test]
    fn prices_cached_and_written_tokens_at_their_rates() {
        let i = info(json!({
            "input_cost_per_token": 3e-6, "output_cost_per_token": 15e-6,
            "cache_read_input_token_cost": 0.3e-6, "cache_creation_input_token_cost": 3.75e-6
        }));
        let u = Usage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            total_tokens: 1100,
            cache_read_input_tokens: Some(600),
            cache_creation_input_tokens: Some(300),
            ..Default::default()
        };
        let c = cost(&u, &i).unwrap();
        let expected = 100.0 * 3e-6 + 600.0 * 0.3e-6 + 300.0 * 3.75e-6 + 100.0 * 15e-6;
        assert!((c - expected).abs() < 1e-12, "{c} vs {expected}");
    }

    #[test]
    fn prices_web_searches_per_search() {
        let mut u = Usage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            total_tokens: 1100,
            server_tool_use: Some(crate::types::usage::ServerToolUse {
                web_search_requests: Some(3),
                web_fetch_requests: None,
            }),
            ..Default::default()
        };
        let tokens = 1000.0 * 3e-6 + 100.0 * 15e-6;
        let by_size = info(json!({
            "input_cost_per_token": 3e-6, "output_cost_per_token": 15e-6,
            "search_context_cost_per_query": {
                "search_context_size_low": 0.005,
                "search_context_size_medium": 0.01,
                "search_context_size_high": 0.02
            }
        }));
        let c = cost(&u, &by_size).unwrap();
        assert!((c - (tokens + 0.03)).abs() < 1e-12, "{c}");
        let flat = info(json!({
            "input_cost_per_token": 3e-6, "output_cost_per_token": 15e-6,
            "search_context_cost_per_query": 0.02
        }));
        assert!((cost(&u, &flat).unwrap() - (tokens + 0.06)).abs() < 1e-12);
        // No search price: the searches are not guessed at.
        let unpriced = info(json!({"input_cost_per_token": 3e-6, "output_cost_per_token": 15e-6}));
        assert!((cost(&u, &unpriced).unwrap() - tokens).abs() < 1e-12);
        u.server_tool_use = None;
        assert!((cost(&u, &by_size).unwrap() - tokens).abs() < 1e-12);
    }

    #[test]
    fn unknown_prices_mean_unknown_cost() {
        assert_eq!(cost(&Usage::default(), &ModelInfo::default()), None);
    }
}
