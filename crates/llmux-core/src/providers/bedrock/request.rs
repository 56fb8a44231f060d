//! Canonical (OpenAI) request → Bedrock Converse request.

use crate::providers::anthropic::request::{JSON_TOOL, parse_data_url};
use crate::types::{
    ApiError, ChatCompletionRequest, ChatMessage, ContentPart, KnownPart, MessageContent, Role,
    ToolChoice,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// OpenAI fields that are hints with no Bedrock meaning: dropped.
const IGNORED_HINTS: &[&str] = &[
    "prompt_cache_key",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "stream_options",
    "drop_params",
    "num_retries",
    "thinking",
    "top_k",
];
/// OpenAI parameters Converse cannot honour: a 400 unless `drop_params`.
const UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
];

/// What shapes the request: the model's abilities from the catalog.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelTraits {
    pub claude: bool,
    pub nova: bool,
    pub prompt_caching: bool,
}

pub struct Built {
    pub body: Value,
    pub json_tool: bool,
}

/// Bedrock tool-use ids match `^[a-zA-Z0-9_-]+$` and are at most 64
/// characters: other ids are rewritten, the same way every time, so a
/// `toolUse` and its `toolResult` agree.
pub fn tool_id(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == id && id.len() <= 64 && !id.is_empty() {
        return clean;
    }
    // FNV-1a of the original keeps rewritten ids distinct.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let prefix: String = clean.chars().take(47).collect();
    format!("{prefix}_{h:016x}")
}

pub fn build(
    req: &ChatCompletionRequest,
    traits: ModelTraits,
    drop_params: bool,
) -> Result<Built, ApiError> {
    let mut extra_fields = check_params(req, drop_params)?;
    let cache = |v: &Option<Value>| traits.prompt_caching && v.is_some();
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut history_tools: BTreeSet<String> = BTreeSet::new();

    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => {
                for (text, cc) in texts(msg) {
                    system.push(json!({"text": text}));
                    if cache(&cc) {
                        system.push(json!({"cachePoint": {"type": "default"}}));
                    }
                }
                if cache(&msg.cache_control) {
                    system.push(json!({"cachePoint": {"type": "default"}}));
                }
            }
            Role::User => {
                let mut blocks = user_blocks(msg, i, traits, drop_params)?;
                if cache(&msg.cache_control) && !blocks.is_empty() {
                    blocks.push(json!({"cachePoint": {"type": "default"}}));
                }
                push(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                for b in msg.thinking_blocks.iter().flatten() {
                    match b.get("type").and_then(Value::as_str) {
                        Some("thinking") => {
                            if let Some(sig) = b
                                .get("signature")
                                .and_then(Value::as_str)
                                .filter(|s| !s.is_empty())
                            {
                                blocks.push(json!({"reasoningContent": {"reasoningText": {
                                    "text": b.get("thinking").cloned().unwrap_or_default(), "signature": sig}}}));
                            }
                        }
                        Some("redacted_thinking") => {
                            blocks.push(json!({"reasoningContent": {"redactedContent": b.get("data").cloned().unwrap_or_default()}}));
                        }
                        _ => {}
                    }
                }
                for (text, _) in texts(msg) {
                    blocks.push(json!({"text": text}));
                }
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    let input: Value = match call.function.arguments.trim() {
                        "" => json!({}),
                        a => serde_json::from_str(a).map_err(|_| {
                            ApiError::invalid_field(
                                &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                                "Tool call arguments must be a JSON object.",
                            )
                        })?,
                    };
                    history_tools.insert(call.function.name.clone());
                    blocks.push(json!({"toolUse": {"toolUseId": tool_id(&call.id), "name": call.function.name, "input": input}}));
                }
                if cache(&msg.cache_control) && !blocks.is_empty() {
                    blocks.push(json!({"cachePoint": {"type": "default"}}));
                }
                push(&mut turns, "assistant", blocks);
            }
            Role::Tool | Role::Function => {
                let id = msg
                    .tool_call_id
                    .as_deref()
                    .or(msg.name.as_deref())
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            &format!("messages[{i}].tool_call_id"),
                            "A tool message needs `tool_call_id`.",
                        )
                    })?;
                let text = msg
                    .content
                    .as_ref()
                    .map(MessageContent::text)
                    .unwrap_or_default();
                let mut result = json!({"toolUseId": tool_id(id), "content": [{"text": if text.is_empty() { " ".to_owned() } else { text }}]});
                if msg.extra.get("is_error").and_then(Value::as_bool) == Some(true) {
                    result["status"] = "error".into();
                }
                let mut blocks = vec![json!({"toolResult": result})];
                if cache(&msg.cache_control) {
                    blocks.push(json!({"cachePoint": {"type": "default"}}));
                }
                push(&mut turns, "user", blocks);
            }
        }
    }
    if turns.first().is_some_and(|(r, _)| *r == "assistant") {
        turns.insert(0, ("user", vec![json!({"text": "."})]));
    }
    if turns.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "Bedrock needs at least one user message.",
        ));
    }

    let mut body = Map::new();
    body.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(r, c)| json!({"role": r, "content": c}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }

    // Tools; response_format as a forced tool (as for Anthropic).
    let mut tools: Vec<Value> = Vec::new();
    for t in req.tools.iter().flatten().filter(|t| t.kind == "function") {
        let mut spec = json!({"name": t.function.name, "inputSchema": {"json": t.function.parameters.clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}))}});
        if let Some(d) = &t.function.description {
            spec["description"] = d.clone().into();
        }
        tools.push(json!({"toolSpec": spec}));
        if cache(&t.cache_control) {
            tools.push(json!({"cachePoint": {"type": "default"}}));
        }
    }
    let mut choice = match &req.tool_choice {
        Some(ToolChoice::Mode(m)) if m == "required" || m == "any" => Some(json!({"any": {}})),
        Some(ToolChoice::Named(n)) => Some(json!({"tool": {"name": n.function.name}})),
        Some(ToolChoice::Mode(m)) if m == "auto" => Some(json!({"auto": {}})),
        _ => None,
    };
    let mut json_tool = false;
    if let Some(schema) = json_schema(req.response_format.as_ref())? {
        tools.push(json!({"toolSpec": {"name": JSON_TOOL, "description": "Respond with a JSON object that matches this schema.",
            "inputSchema": {"json": schema}}}));
        choice = Some(json!({"tool": {"name": JSON_TOOL}}));
        json_tool = true;
    }
    if tools.is_empty() && !history_tools.is_empty() {
        // The history holds tool blocks: Bedrock wants a toolConfig even
        // when this request offers no tools.
        for name in history_tools {
            tools.push(json!({"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object", "properties": {}}}}}));
        }
    }
    if !tools.is_empty() {
        let mut config = json!({"tools": tools});
        if let Some(c) = choice {
            config["toolChoice"] = c;
        }
        body.insert("toolConfig".into(), config);
    }

    let mut inference = Map::new();
    if let Some(m) = req.max_output_tokens() {
        inference.insert("maxTokens".into(), m.into());
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), p.into());
    }
    if let Some(stop) = &req.stop {
        inference.insert("stopSequences".into(), stop.to_vec().into());
    }

    // Reasoning for Claude models.
    let thinking = match req.extra.get("thinking").filter(|t| !t.is_null()) {
        Some(t) => Some(t.clone()),
        None => req
            .reasoning_effort
            .as_deref()
            .and_then(|e| match e {
                "minimal" | "low" => Some(1024),
                "medium" => Some(2048),
                "high" => Some(4096),
                _ => None,
            })
            .map(|b: u64| json!({"type": "enabled", "budget_tokens": b})),
    };
    if let Some(t) = thinking.filter(|_| traits.claude) {
        let budget = t
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(1024);
        let max = inference
            .get("maxTokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if max <= budget {
            inference.insert("maxTokens".into(), (budget + 4096).into());
        }
        extra_fields.insert("thinking".into(), t);
    }
    if let Some(k) = req.extra.get("top_k").filter(|v| !v.is_null()) {
        if traits.nova {
            extra_fields.insert("inferenceConfig".into(), json!({"topK": k}));
        } else {
            extra_fields.insert("top_k".into(), k.clone());
        }
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if !extra_fields.is_empty() {
        body.insert(
            "additionalModelRequestFields".into(),
            Value::Object(extra_fields),
        );
    }
    Ok(Built {
        body: Value::Object(body),
        json_tool,
    })
}

/// Refuses what Converse cannot do; returns the model-specific fields that
/// go to `additionalModelRequestFields`.
fn check_params(
    req: &ChatCompletionRequest,
    drop_params: bool,
) -> Result<Map<String, Value>, ApiError> {
    let refuse = |name: &str| {
        ApiError::invalid_field(
            name,
            format!(
                "Bedrock does not support the parameter `{name}`. Remove it, or set `drop_params: true` to drop it."
            ),
        )
    };
    if !drop_params {
        if req.n.is_some_and(|n| n > 1) {
            return Err(refuse("n"));
        }
        for (name, set) in [
            ("presence_penalty", req.presence_penalty.is_some()),
            ("frequency_penalty", req.frequency_penalty.is_some()),
            ("seed", req.seed.is_some()),
        ] {
            if set {
                return Err(refuse(name));
            }
        }
    }
    let mut fields = Map::new();
    for (k, v) in &req.extra {
        if v.is_null() || IGNORED_HINTS.contains(&k.as_str()) {
            continue;
        }
        if UNSUPPORTED.contains(&k.as_str()) {
            if drop_params {
                continue;
            }
            return Err(refuse(k));
        }
        // Anything else is the model's own parameter.
        fields.insert(k.clone(), v.clone());
    }
    Ok(fields)
}

fn json_schema(format: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(f) = format else { return Ok(None) };
    match f.get("type").and_then(Value::as_str) {
        Some("json_schema") => Ok(f.pointer("/json_schema/schema").cloned()),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("text") | None => Ok(None),
        Some(other) => Err(ApiError::invalid_field(
            "response_format",
            format!("Unknown response_format type `{other}`."),
        )),
    }
}

fn push(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, b)) if *r == role => {
            b.extend(blocks);
            if role == "user" {
                b.sort_by_key(|v| v.get("toolResult").is_none() && v.get("cachePoint").is_none());
            }
        }
        _ => turns.push((role, blocks)),
    }
}

fn texts(msg: &ChatMessage) -> Vec<(String, Option<Value>)> {
    match &msg.content {
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => vec![(t.clone(), None)],
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Known(KnownPart::Text {
                    text,
                    cache_control,
                }) if !text.trim().is_empty() => Some((text.clone(), cache_control.clone())),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn user_blocks(
    msg: &ChatMessage,
    i: usize,
    traits: ModelTraits,
    drop_params: bool,
) -> Result<Vec<Value>, ApiError> {
    let parts = match &msg.content {
        Some(MessageContent::Parts(p)) => p,
        _ => {
            return Ok(texts(msg)
                .into_iter()
                .map(|(t, _)| json!({"text": t}))
                .collect());
        }
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        let cc = match p {
            ContentPart::Known(KnownPart::Text {
                text,
                cache_control,
            }) => {
                if text.trim().is_empty() {
                    continue;
                }
                out.push(json!({"text": text}));
                cache_control.clone()
            }
            ContentPart::Known(KnownPart::ImageUrl {
                image_url,
                cache_control,
            }) => {
                let url = image_url.url();
                let (mime, data) = parse_data_url(url).ok_or_else(|| {
                    ApiError::invalid_field(
                        &at,
                        "Bedrock needs images inline: send a data: URL (fetching http(s) images is not enabled).",
                    )
                })?;
                let format = match mime {
                    "image/png" => "png",
                    "image/jpeg" | "image/jpg" => "jpeg",
                    "image/gif" => "gif",
                    "image/webp" => "webp",
                    other => {
                        return Err(ApiError::invalid_field(
                            &at,
                            format!("Bedrock does not accept images of type {other}."),
                        ));
                    }
                };
                out.push(json!({"image": {"format": format, "source": {"bytes": data}}}));
                cache_control.clone()
            }
            ContentPart::Known(KnownPart::File {
                file,
                cache_control,
            }) => {
                let data = file
                    .get("file_data")
                    .and_then(Value::as_str)
                    .and_then(parse_data_url);
                let Some((mime, b64)) = data else {
                    return Err(ApiError::invalid_field(
                        &at,
                        "Bedrock needs documents inline as `file_data` data: URLs.",
                    ));
                };
                let format = mime.rsplit('/').next().unwrap_or("pdf");
                let name = file
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or("document");
                // Document names allow letters, digits, spaces and a few marks.
                let name: String = name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || " -()[]".contains(c) {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                out.push(
                    json!({"document": {"format": format, "name": name, "source": {"bytes": b64}}}),
                );
                cache_control.clone()
            }
            ContentPart::Known(KnownPart::InputAudio { .. }) if drop_params => continue,
            ContentPart::Known(KnownPart::InputAudio { .. }) => {
                return Err(ApiError::invalid_field(
                    &at,
                    "Bedrock Converse does not accept audio input.",
                ));
            }
            ContentPart::Other(v) => {
                out.push(v.clone());
                None
            }
        };
        if traits.prompt_caching && cc.is_some() {
            out.push(json!({"cachePoint": {"type": "default"}}));
        }
    }
    Ok(out)
}
