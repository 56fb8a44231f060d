//! Canonical (OpenAI) request → Gemini `generateContent` request.

use super::schema;
use crate::providers::anthropic::request::parse_data_url;
use crate::types::{
    ApiError, ChatCompletionRequest, ChatMessage, ContentPart, ImageUrl, KnownPart, MessageContent,
    Role, ToolChoice,
};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The value Google documents for skipping thought-signature validation
/// of function calls that did not come from Gemini.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// OpenAI fields that are hints with no Gemini meaning: dropped.
const IGNORED_HINTS: &[&str] = &[
    "prompt_cache_key",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "stream_options",
    "drop_params",
    "num_retries",
    "parallel_tool_calls",
    "user",
];
/// Fields llmux maps itself (kept in `extra` by the canonical type).
const MAPPED_EXTRA: &[&str] = &[
    "top_k",
    "thinking",
    "safety_settings",
    "safetySettings",
    "cached_content",
];

/// Gemini 3 takes a thinking level; 2.x a token budget.
fn is_gemini3(model: &str) -> bool {
    model.starts_with("gemini-3")
}

pub fn build(
    req: &ChatCompletionRequest,
    model: &str,
    drop_params: bool,
) -> Result<Value, ApiError> {
    check_params(req, drop_params)?;
    let mut system_parts: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Tool-call id → function name, for functionResponse parts.
    let mut call_names: HashMap<&str, &str> = HashMap::new();

    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => system_parts.extend(text_parts(msg)),
            Role::User => push(&mut contents, "user", user_parts(msg, i)?),
            Role::Assistant => {
                let mut parts = text_parts(msg);
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                    let args: Value = match call.function.arguments.trim() {
                        "" => json!({}),
                        a => serde_json::from_str(a).map_err(|_| {
                            ApiError::invalid_field(
                                &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                                "Tool call arguments must be a JSON object.",
                            )
                        })?,
                    };
                    let mut part =
                        json!({"functionCall": {"name": call.function.name, "args": args}});
                    let signature = call
                        .extra
                        .get("provider_specific_fields")
                        .and_then(|p| p.get("thought_signature"))
                        .and_then(Value::as_str);
                    match signature {
                        Some(sig) => part["thoughtSignature"] = sig.into(),
                        // Gemini 3 refuses unsigned calls in the history.
                        None if is_gemini3(model) => {
                            part["thoughtSignature"] = SKIP_SIGNATURE.into()
                        }
                        None => {}
                    }
                    parts.push(part);
                }
                push(&mut contents, "model", parts);
            }
            Role::Tool | Role::Function => {
                let id = msg.tool_call_id.as_deref().unwrap_or_default();
                let name = call_names
                    .get(id)
                    .copied()
                    .or(msg.name.as_deref())
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            &format!("messages[{i}].tool_call_id"),
                            format!("No earlier assistant tool call has the id `{id}`."),
                        )
                    })?;
                let text = msg
                    .content
                    .as_ref()
                    .map(MessageContent::text)
                    .unwrap_or_default();
                let part =
                    json!({"functionResponse": {"name": name, "response": {"content": text}}});
                push(&mut contents, "user", vec![part]);
            }
        }
    }
    if contents.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "Gemini needs at least one user message.",
        ));
    }

    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system_parts.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system_parts}));
    }

    let declarations: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .filter(|t| t.kind == "function")
        .map(|t| {
            let mut d = json!({"name": t.function.name});
            if let Some(desc) = &t.function.description {
                d["description"] = desc.clone().into();
            }
            // Gemini refuses an object with no properties: leave it out.
            let params = t.function.parameters.as_ref().map(schema::clean);
            if let Some(p) = params.filter(|p| {
                p.get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(|o| !o.is_empty())
            }) {
                d["parameters"] = p;
            }
            d
        })
        .collect();
    if !declarations.is_empty() {
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
        if let Some(choice) = &req.tool_choice {
            let config = match choice {
                ToolChoice::Mode(m) if m == "none" => json!({"mode": "NONE"}),
                ToolChoice::Mode(m) if m == "required" || m == "any" => json!({"mode": "ANY"}),
                ToolChoice::Mode(_) => json!({"mode": "AUTO"}),
                ToolChoice::Named(n) => {
                    json!({"mode": "ANY", "allowedFunctionNames": [n.function.name]})
                }
            };
            body.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": config}),
            );
        }
    }

    let mut config = Map::new();
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), p.into());
    }
    if let Some(k) = req.extra.get("top_k").filter(|v| !v.is_null()) {
        config.insert("topK".into(), k.clone());
    }
    if let Some(m) = req.max_output_tokens() {
        config.insert("maxOutputTokens".into(), m.into());
    }
    if let Some(stop) = &req.stop {
        config.insert("stopSequences".into(), stop.to_vec().into());
    }
    if let Some(n) = req.n {
        config.insert("candidateCount".into(), n.into());
    }
    if let Some(seed) = req.seed {
        config.insert("seed".into(), seed.into());
    }
    if let Some(p) = req.presence_penalty {
        config.insert("presencePenalty".into(), p.into());
    }
    if let Some(f) = req.frequency_penalty {
        config.insert("frequencyPenalty".into(), f.into());
    }
    match req
        .response_format
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(s) = req
                .response_format
                .as_ref()
                .and_then(|f| f.pointer("/json_schema/schema"))
            {
                config.insert("responseSchema".into(), schema::clean(s));
            }
        }
        Some("text") | None => {}
        Some(other) => {
            return Err(ApiError::invalid_field(
                "response_format",
                format!("Unknown response_format type `{other}`."),
            ));
        }
    }
    if let Some(t) = thinking_config(req, model) {
        config.insert("thinkingConfig".into(), t);
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(s) = req
        .extra
        .get("safety_settings")
        .or_else(|| req.extra.get("safetySettings"))
    {
        body.insert("safetySettings".into(), s.clone());
    }
    if let Some(c) = req.extra.get("cached_content").filter(|v| !v.is_null()) {
        body.insert("cachedContent".into(), c.clone());
    }
    Ok(Value::Object(body))
}

/// `reasoning_effort` or `thinking` → `thinkingConfig`, per model family.
fn thinking_config(req: &ChatCompletionRequest, model: &str) -> Option<Value> {
    if let Some(t) = req.extra.get("thinking").filter(|t| !t.is_null()) {
        return match t.get("type").and_then(Value::as_str) {
            Some("disabled") => Some(json!({"thinkingBudget": 0})),
            _ => {
                let budget = t
                    .get("budget_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(1024);
                Some(json!({"thinkingBudget": budget, "includeThoughts": true}))
            }
        };
    }
    let effort = req.reasoning_effort.as_deref()?;
    if effort == "none" || effort == "disable" {
        return (!is_gemini3(model)).then(|| json!({"thinkingBudget": 0}));
    }
    if is_gemini3(model) {
        let level = if matches!(effort, "minimal" | "low") {
            "low"
        } else {
            "high"
        };
        return Some(json!({"thinkingLevel": level, "includeThoughts": true}));
    }
    let budget = match effort {
        "minimal" | "low" => 1024,
        "medium" => 2048,
        _ => 4096,
    };
    Some(json!({"thinkingBudget": budget, "includeThoughts": true}))
}

fn check_params(req: &ChatCompletionRequest, drop_params: bool) -> Result<(), ApiError> {
    if drop_params {
        return Ok(());
    }
    let unknown = req
        .extra
        .iter()
        .filter(|(k, v)| {
            !v.is_null()
                && !IGNORED_HINTS.contains(&k.as_str())
                && !MAPPED_EXTRA.contains(&k.as_str())
        })
        .map(|(k, _)| k.as_str())
        .next();
    match unknown {
        Some(k) => Err(ApiError::invalid_field(
            k,
            format!(
                "Gemini does not support the parameter `{k}`. Remove it, or set `drop_params: true` \
                 (in the request or litellm_settings) to drop it."
            ),
        )),
        None => Ok(()),
    }
}

/// Appends parts to the last turn when it has the same role.
fn push(contents: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some((r, p)) if *r == role => p.extend(parts),
        _ => contents.push((role, parts)),
    }
}

fn text_parts(msg: &ChatMessage) -> Vec<Value> {
    match &msg.content {
        Some(MessageContent::Text(t)) if !t.is_empty() => vec![json!({"text": t})],
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Known(KnownPart::Text { text, .. }) if !text.is_empty() => {
                    Some(json!({"text": text}))
                }
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn user_parts(msg: &ChatMessage, i: usize) -> Result<Vec<Value>, ApiError> {
    let parts = match &msg.content {
        Some(MessageContent::Parts(parts)) => parts,
        _ => return Ok(text_parts(msg)),
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match p {
            ContentPart::Known(KnownPart::Text { text, .. }) => {
                if !text.is_empty() {
                    out.push(json!({"text": text}));
                }
            }
            ContentPart::Known(KnownPart::ImageUrl { image_url, .. }) => {
                out.push(media_part(image_url_str(image_url), &at)?)
            }
            ContentPart::Known(KnownPart::File { file, .. }) => {
                let url = file
                    .get("file_data")
                    .or_else(|| file.get("file_id"))
                    .or_else(|| file.get("url"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            &at,
                            "A file part needs `file_data`, `file_id` or `url`.",
                        )
                    })?;
                out.push(media_part(url, &at)?);
            }
            ContentPart::Known(KnownPart::InputAudio { input_audio }) => {
                let data = input_audio
                    .get("data")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let format = input_audio
                    .get("format")
                    .and_then(Value::as_str)
                    .unwrap_or("wav");
                out.push(
                    json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
                );
            }
            ContentPart::Other(v) => out.push(v.clone()),
        }
    }
    Ok(out)
}

fn image_url_str(i: &ImageUrl) -> &str {
    i.url()
}

/// `data:` URLs inline, http(s) and gs:// URLs by reference.
fn media_part(url: &str, at: &str) -> Result<Value, ApiError> {
    if let Some((mime, data)) = parse_data_url(url) {
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://") {
        return Ok(json!({"fileData": {"mimeType": mime_from_extension(url), "fileUri": url}}));
    }
    Err(ApiError::invalid_field(
        at,
        "Media must be a data: URL or an http(s)/gs:// URL.",
    ))
}

fn mime_from_extension(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("pdf") => "application/pdf",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        Some("txt") => "text/plain",
        _ => "image/jpeg",
    }
}
