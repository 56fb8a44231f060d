//! Gemini response → canonical (OpenAI) response.

use crate::types::usage::{CompletionTokensDetails, PromptTokensDetails};
use crate::types::{
    ApiError, ChatCompletionResponse, Choice, FunctionCall, ResponseMessage, ToolCall, Usage,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub prompt_feedback: Option<Value>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub response_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default)]
    pub content: Option<CandidateContent>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub finish_message: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub grounding_metadata: Option<Value>,
    #[serde(default)]
    pub url_context_metadata: Option<Value>,
    #[serde(default)]
    pub safety_ratings: Option<Value>,
    #[serde(default)]
    pub citation_metadata: Option<Value>,
}

/// What Gemini says about its candidates beside their parts: the Google
/// Search grounding (queries, sources, which text each supports), the
/// URLs read, safety ratings and citations. LiteLLM gives each as a list
/// at the top of the response, one entry per candidate that has it; so
/// does llmux.
#[derive(Debug, Default)]
pub struct Metadata {
    grounding: Vec<Value>,
    url_context: Vec<Value>,
    safety: Vec<Value>,
    citation: Vec<Value>,
}

impl Metadata {
    pub fn add(
        &mut self,
        grounding: Option<Value>,
        url_context: Option<Value>,
        safety: Option<Value>,
        citation: Option<Value>,
    ) {
        let lists = [
            (&mut self.grounding, grounding),
            (&mut self.url_context, url_context),
            (&mut self.safety, safety),
            (&mut self.citation, citation),
        ];
        for (list, v) in lists {
            list.extend(v.filter(|v| !v.is_null()));
        }
    }

    /// Grounding, URLs read or citations: what a stream passes on as it
    /// comes (safety ratings, which may come with every event, wait for
    /// the end).
    pub fn has_sources(&self) -> bool {
        !(self.grounding.is_empty() && self.url_context.is_empty() && self.citation.is_empty())
    }

    /// Safety ratings, taken out.
    pub fn take_safety(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.safety)
    }

    pub fn set_safety(&mut self, safety: Vec<Value>) {
        self.safety = safety;
    }

    /// Answers grounded with Google Search: candidates whose grounding
    /// lists queries. Google bills Gemini 2.x grounding per grounded
    /// prompt, and LiteLLM counts it so.
    pub fn searches(&self) -> u64 {
        self.grounding.iter().filter(|g| grounded(g)).count() as u64
    }

    /// The four lists into `fields`, under LiteLLM's names.
    pub fn into_fields(self, fields: &mut Map<String, Value>) {
        let lists = [
            ("vertex_ai_grounding_metadata", self.grounding),
            ("vertex_ai_url_context_metadata", self.url_context),
            ("vertex_ai_safety_results", self.safety),
            ("vertex_ai_citation_metadata", self.citation),
        ];
        for (key, list) in lists {
            fields.insert(key.into(), Value::Array(list));
        }
    }
}

/// A candidate's grounding lists the Google searches it ran.
pub fn grounded(grounding: &Value) -> bool {
    grounding
        .get("webSearchQueries")
        .and_then(Value::as_array)
        .is_some_and(|q| !q.is_empty())
}

/// Searches counted in usage, as for Claude's web search.
pub fn count_searches(usage: &mut Usage, searches: u64) {
    if searches > 0 {
        usage.server_tool_use = Some(crate::types::usage::ServerToolUse {
            web_search_requests: Some(searches),
            web_fetch_requests: None,
        });
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CandidateContent {
    #[serde(default)]
    pub parts: Vec<Value>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub thoughts_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Thinking tokens count as completion tokens, as OpenAI counts them.
    pub fn to_openai(&self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let completion = self.candidates_token_count + thoughts;
        Usage {
            prompt_tokens: self.prompt_token_count,
            completion_tokens: completion,
            total_tokens: self.prompt_token_count + completion,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(self.cached_content_token_count.unwrap_or(0)),
                ..Default::default()
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: Some(thoughts),
                ..Default::default()
            }),
            cache_read_input_tokens: None,
            cache_creation_input_tokens: None,
            prompt_cache_hit_tokens: None,
            cost: None,
            server_tool_use: None,
        }
    }
}

/// Gemini's `finishReason` as OpenAI's `finish_reason`.
pub fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> Option<String> {
    let r = match reason? {
        _ if has_tool_calls => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "LANGUAGE" => "content_filter",
        // STOP, OTHER, FINISH_REASON_UNSPECIFIED, and the failures below
        // once the answer has something in it.
        _ => "stop",
    };
    Some(r.to_owned())
}

/// A finish that means the model failed to answer (a function call it
/// could not write, a call to a tool it was not given, …): with nothing
/// else in the answer, a retryable 502 naming it, not an empty success
/// an agent would take for the end of its task.
pub fn failed_answer(reason: Option<&str>, message: Option<&str>) -> Option<ApiError> {
    let reason = reason?;
    if !matches!(
        reason,
        "MALFORMED_FUNCTION_CALL"
            | "UNEXPECTED_TOOL_CALL"
            | "TOO_MANY_TOOL_CALLS"
            | "MISSING_THOUGHT_SIGNATURE"
            | "MALFORMED_RESPONSE"
    ) {
        return None;
    }
    Some(
        ApiError::bad_gateway(format!(
            "Gemini ended the answer with {reason} and nothing in it{}",
            message.map(|m| format!(": {m}")).unwrap_or_default()
        ))
        .retryable(true),
    )
}

/// Tool-call ids: Gemini has none, OpenAI clients need unique ones.
pub fn call_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "call_{nanos:08x}{:06x}",
        N.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
    )
}

/// A `functionCall` part as an OpenAI tool call, thought signature kept.
pub fn tool_call(part: &Value) -> Option<ToolCall> {
    let fc = part.get("functionCall")?;
    let signature = part.get("thoughtSignature").and_then(Value::as_str);
    Some(function_call(fc, signature))
}

/// A part's `functionCall` object, and its `thoughtSignature` if any, as an
/// OpenAI tool call.
pub fn function_call(fc: &Value, signature: Option<&str>) -> ToolCall {
    let mut extra = Map::new();
    if let Some(sig) = signature {
        extra.insert(
            "provider_specific_fields".into(),
            json!({"thought_signature": sig}),
        );
    }
    ToolCall {
        id: call_id(),
        kind: "function".into(),
        function: FunctionCall {
            name: fc
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: fc
                .get("args")
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string(),
        },
        extra,
    }
}

/// An image the model made (a part's `inlineData` of an image type) as
/// LiteLLM gives it: a `data:` URL in `message.images`, the `index`-th.
pub fn image(inline: &Value, index: usize) -> Option<Value> {
    let mime = inline.get("mimeType").and_then(Value::as_str)?;
    let data = inline.get("data").and_then(Value::as_str)?;
    mime.starts_with("image/").then(|| {
        json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{data}")}, "index": index})
    })
}

/// A prompt Gemini refused to answer, as a clear error.
pub fn blocked(feedback: &Value) -> Option<ApiError> {
    let reason = feedback.get("blockReason").and_then(Value::as_str)?;
    Some(
        ApiError::bad_request(format!(
            "Gemini blocked the prompt ({reason}){}",
            feedback
                .get("blockReasonMessage")
                .and_then(Value::as_str)
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ))
        .with_code("content_filter"),
    )
}

pub fn to_openai(
    resp: GenerateResponse,
    model: &str,
    created: u64,
) -> Result<ChatCompletionResponse, ApiError> {
    if resp.candidates.is_empty() {
        if let Some(err) = resp.prompt_feedback.as_ref().and_then(blocked) {
            return Err(err);
        }
    }
    let mut failed = None;
    let mut metadata = Metadata::default();
    let choices: Vec<Choice> = resp
        .candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            metadata.add(
                c.grounding_metadata,
                c.url_context_metadata,
                c.safety_ratings,
                c.citation_metadata,
            );
            let mut text = String::new();
            let mut reasoning = String::new();
            let mut calls = Vec::new();
            let mut images = Vec::new();
            for p in c.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(call) = tool_call(&p) {
                    calls.push(call);
                } else if let Some(image) = p.get("inlineData").and_then(|d| image(d, images.len()))
                {
                    images.push(image);
                } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                    if p.get("thought").and_then(Value::as_bool) == Some(true) {
                        reasoning.push_str(t);
                    } else {
                        text.push_str(t);
                    }
                }
            }
            let has_calls = !calls.is_empty();
            let mut extra = Map::new();
            if !images.is_empty() {
                extra.insert("images".into(), Value::Array(images));
            } else if !has_calls && text.is_empty() && failed.is_none() {
                failed = failed_answer(c.finish_reason.as_deref(), c.finish_message.as_deref());
            }
            Choice {
                index: c.index.unwrap_or(i as u32),
                finish_reason: finish_reason(c.finish_reason.as_deref(), has_calls)
                    .or(Some("stop".into())),
                message: ResponseMessage {
                    role: "assistant".into(),
                    content: (!text.is_empty() || !has_calls).then_some(text),
                    tool_calls: has_calls.then_some(calls),
                    reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                    extra,
                    ..Default::default()
                },
                logprobs: None,
            }
        })
        .collect();
    if let Some(err) = failed.filter(|_| choices.len() == 1) {
        return Err(err);
    }
    let mut usage = resp.usage_metadata.map(|u| u.to_openai());
    if let Some(u) = &mut usage {
        count_searches(u, metadata.searches());
    }
    let mut extra = Map::new();
    metadata.into_fields(&mut extra);
    Ok(ChatCompletionResponse {
        id: resp
            .response_id
            .unwrap_or_else(crate::providers::completion_id),
        object: "chat.completion".into(),
        created,
        model: resp.model_version.unwrap_or_else(|| model.to_owned()),
        choices,
        usage,
        system_fingerprint: None,
        extra,
    })
}
