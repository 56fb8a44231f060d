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
    }
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
    fn unknown_prices_mean_unknown_cost() {
        assert_eq!(cost(&Usage::default(), &ModelInfo::default()), None);
    }
}
