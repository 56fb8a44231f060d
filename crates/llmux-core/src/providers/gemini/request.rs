//! Canonical (OpenAI) request → Gemini `generateContent` request.

use super::schema;
use crate::json::{self, WriteJson};
use crate::providers::anthropic::request::parse_data_url;
use crate::types::{
    ApiError, ChatCompletionRequest, ChatMessage, ContentPart, ImageUrl, KnownPart, MessageContent,
    Role, ToolChoice,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
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
    "web_search_options",
];

/// Gemini 3 takes a thinking level; 2.x a token budget.
fn is_gemini3(model: &str) -> bool {
    model.starts_with("gemini-3")
}

/// A `generateContent` request, its text borrowed from the canonical
/// request it is built from: a coding agent's conversation is copied once,
/// into the body, not first into a JSON tree. Written by hand
/// ([`WriteJson`]); serde writes the same bytes (tested).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest<'a> {
    pub contents: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Parts<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<GeminiTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub generation_config: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_settings: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_content: Option<&'a Value>,
}

#[derive(Debug, Serialize)]
pub struct Turn<'a> {
    pub role: &'static str,
    pub parts: Vec<Part<'a>>,
}

#[derive(Debug, Serialize)]
pub struct Parts<'a> {
    pub parts: Vec<Part<'a>>,
}

/// One of `tools`: the functions, or one of Gemini's own tools as the
/// client wrote it (`{"googleSearch": {}}`, `{"urlContext": {}}`,
/// `{"codeExecution": {}}`, …).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum GeminiTool<'a> {
    Functions(Declarations<'a>),
    Native(Cow<'a, Map<String, Value>>),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Declarations<'a> {
    pub function_declarations: Vec<Declaration<'a>>,
}

#[derive(Debug, Serialize)]
pub struct Declaration<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// The tool's schema as Gemini takes it ([`schema::clean`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Part<'a> {
    Text {
        text: &'a str,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<&'a str>,
    },
    FunctionResponse {
        #[serde(rename = "functionResponse")]
        function_response: FunctionResponse<'a>,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: Media<'a>,
    },
    FileData {
        #[serde(rename = "fileData")]
        file_data: FileRef<'a>,
    },
    /// A part of a kind llmux does not know, sent as the client wrote it.
    Other(&'a Value),
}

#[derive(Debug, Serialize)]
pub struct FunctionCall<'a> {
    pub name: &'a str,
    /// The call's arguments as the client wrote them (checked to be JSON).
    pub args: &'a RawValue,
}

#[derive(Debug, Serialize)]
pub struct FunctionResponse<'a> {
    pub name: &'a str,
    pub response: ResponseContent<'a>,
}

#[derive(Debug, Serialize)]
pub struct ResponseContent<'a> {
    pub content: Cow<'a, str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Media<'a> {
    pub mime_type: Cow<'a, str>,
    pub data: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRef<'a> {
    pub mime_type: Cow<'a, str>,
    pub file_uri: &'a str,
}

impl WriteJson for GenerateRequest<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"contents\":");
        json::write_list(out, &self.contents, |out, turn| {
            out.extend_from_slice(b"{\"role\":");
            json::write_str(out, turn.role);
            out.extend_from_slice(b",\"parts\":");
            write_parts(out, &turn.parts)?;
            out.push(b'}');
            Ok(())
        })?;
        if let Some(system) = &self.system_instruction {
            out.extend_from_slice(b",\"systemInstruction\":{\"parts\":");
            write_parts(out, &system.parts)?;
            out.push(b'}');
        }
        if let Some(tools) = &self.tools {
            out.extend_from_slice(b",\"tools\":");
            json::write_list(out, tools, |out, tool| match tool {
                GeminiTool::Functions(f) => {
                    out.extend_from_slice(b"{\"functionDeclarations\":");
                    json::write_list(out, &f.function_declarations, |out, d| {
                        out.extend_from_slice(b"{\"name\":");
                        json::write_str(out, d.name);
                        json::write_opt_str(out, b",\"description\":", d.description);
                        json::write_opt_tree(out, b",\"parameters\":", d.parameters.as_ref())?;
                        out.push(b'}');
                        Ok(())
                    })?;
                    out.push(b'}');
                    Ok(())
                }
                GeminiTool::Native(t) => json::write_value(out, t),
            })?;
        }
        json::write_opt_tree(out, b",\"toolConfig\":", self.tool_config.as_ref())?;
        if !self.generation_config.is_empty() {
            out.extend_from_slice(b",\"generationConfig\":");
            json::write_value(out, &self.generation_config)?;
        }
        json::write_opt_tree(out, b",\"safetySettings\":", self.safety_settings)?;
        json::write_opt_tree(out, b",\"cachedContent\":", self.cached_content)?;
        out.push(b'}');
        Ok(())
    }
}

fn write_parts(out: &mut Vec<u8>, parts: &[Part<'_>]) -> serde_json::Result<()> {
    json::write_list(out, parts, |out, part| {
        match part {
            Part::Text { text } => {
                out.extend_from_slice(b"{\"text\":");
                json::write_str(out, text);
            }
            Part::FunctionCall {
                function_call,
                thought_signature,
            } => {
                out.extend_from_slice(b"{\"functionCall\":{\"name\":");
                json::write_str(out, function_call.name);
                out.extend_from_slice(b",\"args\":");
                out.extend_from_slice(function_call.args.get().as_bytes());
                out.push(b'}');
                json::write_opt_str(out, b",\"thoughtSignature\":", *thought_signature);
            }
            Part::FunctionResponse { function_response } => {
                out.extend_from_slice(b"{\"functionResponse\":{\"name\":");
                json::write_str(out, function_response.name);
                out.extend_from_slice(b",\"response\":{\"content\":");
                json::write_str(out, &function_response.response.content);
                out.extend_from_slice(b"}}");
            }
            Part::InlineData { inline_data } => {
                out.extend_from_slice(b"{\"inlineData\":{\"mimeType\":");
                json::write_str(out, &inline_data.mime_type);
                out.extend_from_slice(b",\"data\":");
                json::write_str(out, inline_data.data);
                out.push(b'}');
            }
            Part::FileData { file_data } => {
                out.extend_from_slice(b"{\"fileData\":{\"mimeType\":");
                json::write_str(out, &file_data.mime_type);
                out.extend_from_slice(b",\"fileUri\":");
                json::write_str(out, file_data.file_uri);
                out.push(b'}');
            }
            Part::Other(v) => return json::write_tree(out, v),
        }
        out.push(b'}');
        Ok(())
    })
}

pub fn build<'a>(
    req: &'a ChatCompletionRequest,
    model: &str,
    drop_params: bool,
) -> Result<GenerateRequest<'a>, ApiError> {
    check_params(req, drop_params)?;
    let mut system_parts = Vec::new();
    let mut contents: Vec<Turn<'a>> = Vec::with_capacity(req.messages.len());
    // Tool-call id → function name, for functionResponse parts.
    let mut call_names: HashMap<&str, &str> = HashMap::new();

    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => text_parts(msg, &mut system_parts),
            Role::User => {
                let mut parts = Vec::new();
                user_parts(msg, i, &mut parts)?;
                push(&mut contents, "user", parts);
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                text_parts(msg, &mut parts);
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                    let text = match call.function.arguments.trim() {
                        "" => "{}",
                        a => a,
                    };
                    let args = serde_json::from_str::<&RawValue>(text).map_err(|_| {
                        ApiError::invalid_field(
                            &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                            "Tool call arguments must be a JSON object.",
                        )
                    })?;
                    let signature = call
                        .extra
                        .get("provider_specific_fields")
                        .and_then(|p| p.get("thought_signature"))
                        .and_then(Value::as_str);
                    let thought_signature = match signature {
                        Some(sig) => Some(sig),
                        // Gemini 3 refuses unsigned calls in the history.
                        None if is_gemini3(model) => Some(SKIP_SIGNATURE),
                        None => None,
                    };
                    parts.push(Part::FunctionCall {
                        function_call: FunctionCall {
                            name: &call.function.name,
                            args,
                        },
                        thought_signature,
                    });
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
                let content = match &msg.content {
                    Some(MessageContent::Text(t)) => Cow::Borrowed(t.as_str()),
                    Some(c) => Cow::Owned(c.text()),
                    None => Cow::Borrowed(""),
                };
                let part = Part::FunctionResponse {
                    function_response: FunctionResponse {
                        name,
                        response: ResponseContent { content },
                    },
                };
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

    let mut declarations: Vec<Declaration<'a>> = Vec::new();
    let mut native: Vec<GeminiTool<'a>> = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        if let Some(f) = t.as_function() {
            declarations.push(Declaration {
                name: &f.name,
                description: f.description.as_deref(),
                // Gemini refuses an object with no properties: leave it out.
                parameters: f.parameters.as_ref().map(schema::clean).filter(|p| {
                    p.get("properties")
                        .and_then(Value::as_object)
                        .is_some_and(|o| !o.is_empty())
                }),
            });
        } else if t.kind.is_empty() {
            // Written as Gemini takes it: sent as it is.
            native.push(GeminiTool::Native(Cow::Borrowed(&t.extra)));
        } else if !drop_params {
            return Err(ApiError::invalid_field(
                &format!("tools[{i}]"),
                format!(
                    "Gemini has no tool of type `{}`. Its own tools are written as objects \
                     (`{{\"googleSearch\": {{}}}}`, `{{\"urlContext\": {{}}}}`, \
                     `{{\"codeExecution\": {{}}}}`). Remove it, or set `drop_params: true` \
                     to drop it.",
                    t.kind
                ),
            ));
        }
    }
    // OpenAI's web search as Gemini's, as LiteLLM maps it: grounding with
    // Google Search (once, if the client did not offer it already).
    let web_search = req
        .extra
        .get("web_search_options")
        .is_some_and(|v| !v.is_null());
    let searching = native.iter().any(|t| {
        matches!(t, GeminiTool::Native(m) if m.keys().any(|k| matches!(k.as_str(),
            "googleSearch" | "google_search" | "googleSearchRetrieval" | "google_search_retrieval")))
    });
    if web_search && !searching {
        let mut search = Map::new();
        search.insert("googleSearch".into(), json!({}));
        native.push(GeminiTool::Native(Cow::Owned(search)));
    }
    let mut tool_config = None;
    let mut tools = if declarations.is_empty() {
        None
    } else {
        if let Some(choice) = &req.tool_choice {
            let config = match choice {
                ToolChoice::Mode(m) if m == "none" => json!({"mode": "NONE"}),
                ToolChoice::Mode(m) if m == "required" || m == "any" => json!({"mode": "ANY"}),
                ToolChoice::Mode(_) => json!({"mode": "AUTO"}),
                ToolChoice::Named(n) => {
                    json!({"mode": "ANY", "allowedFunctionNames": [n.function.name]})
                }
            };
            tool_config = Some(json!({"functionCallingConfig": config}));
        }
        Some(vec![GeminiTool::Functions(Declarations {
            function_declarations: declarations,
        })])
    };
    if !native.is_empty() {
        tools.get_or_insert_with(Vec::new).extend(native);
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
    Ok(GenerateRequest {
        contents,
        system_instruction: (!system_parts.is_empty()).then_some(Parts {
            parts: system_parts,
        }),
        tools,
        tool_config,
        generation_config: config,
        safety_settings: req
            .extra
            .get("safety_settings")
            .or_else(|| req.extra.get("safetySettings")),
        cached_content: req.extra.get("cached_content").filter(|v| !v.is_null()),
    })
}

/// `reasoning_effort` or `thinking` → `thinkingConfig`, per model family.
fn thinking_config(req: &ChatCompletionRequest, model: &str) -> Option<Value> {
    // Gemini 3 and 2.5 Pro cannot stop thinking: the least they do is
    // Gemini 3's `low` level or 2.5 Pro's smallest budget, shown to no
    // one. Without a thinkingConfig they would think their most.
    let off = || {
        Some(if is_gemini3(model) {
            json!({"thinkingLevel": "low", "includeThoughts": false})
        } else if model.starts_with("gemini-2.5-pro") {
            json!({"thinkingBudget": 128, "includeThoughts": false})
        } else {
            json!({"thinkingBudget": 0})
        })
    };
    if let Some(t) = req.extra.get("thinking").filter(|t| !t.is_null()) {
        return match t.get("type").and_then(Value::as_str) {
            Some("disabled") => off(),
            _ => match t.get("budget_tokens").and_then(Value::as_u64) {
                Some(budget) => Some(json!({"thinkingBudget": budget, "includeThoughts": true})),
                // No budget (adaptive thinking): the model decides, as
                // Gemini's dynamic budget (-1) or Gemini 3's default level.
                None if is_gemini3(model) => Some(json!({"includeThoughts": true})),
                None => Some(json!({"thinkingBudget": -1, "includeThoughts": true})),
            },
        };
    }
    let effort = req.reasoning_effort.as_deref()?;
    if effort == "none" || effort == "disable" {
        return off();
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
                && !crate::providers::GATEWAY_FIELDS.contains(&k.as_str())
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
fn push<'a>(contents: &mut Vec<Turn<'a>>, role: &'static str, parts: Vec<Part<'a>>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(turn) if turn.role == role => turn.parts.extend(parts),
        _ => contents.push(Turn { role, parts }),
    }
}

fn text_parts<'a>(msg: &'a ChatMessage, out: &mut Vec<Part<'a>>) {
    match &msg.content {
        Some(MessageContent::Text(t)) if !t.is_empty() => out.push(Part::Text { text: t }),
        Some(MessageContent::Parts(parts)) => out.extend(parts.iter().filter_map(|p| match p {
            ContentPart::Known(KnownPart::Text { text, .. }) if !text.is_empty() => {
                Some(Part::Text { text })
            }
            _ => None,
        })),
        _ => {}
    }
}

fn user_parts<'a>(msg: &'a ChatMessage, i: usize, out: &mut Vec<Part<'a>>) -> Result<(), ApiError> {
    let parts = match &msg.content {
        Some(MessageContent::Parts(parts)) => parts,
        _ => {
            text_parts(msg, out);
            return Ok(());
        }
    };
    for (j, p) in parts.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        match p {
            ContentPart::Known(KnownPart::Text { text, .. }) => {
                if !text.is_empty() {
                    out.push(Part::Text { text });
                }
            }
            ContentPart::Known(KnownPart::ImageUrl { image_url, .. }) => {
                let format = match image_url {
                    ImageUrl::Object { format, .. } => format.as_deref(),
                    ImageUrl::Url(_) => None,
                };
                let url = image_url_str(image_url);
                // An image link without a known extension is an image
                // still: JPEG unless the client says.
                let mime = format
                    .map(Cow::Borrowed)
                    .or_else(|| mime_from_extension(url).map(Cow::Borrowed))
                    .unwrap_or(Cow::Borrowed("image/jpeg"));
                out.push(media_part(url, mime, at)?)
            }
            ContentPart::Known(KnownPart::File { file, .. }) => {
                let url = file
                    .get("file_data")
                    .or_else(|| file.get("file_id"))
                    .or_else(|| file.get("url"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            &at(),
                            "A file part needs `file_data`, `file_id` or `url`.",
                        )
                    })?;
                // A file's type: the client's `format`, else its name's
                // extension; Gemini needs one, and a wrong guess is a 400
                // (or the file read as something it is not).
                let mime = file
                    .get("format")
                    .and_then(Value::as_str)
                    .or_else(|| mime_from_extension(url))
                    .or_else(|| {
                        file.get("filename")
                            .and_then(Value::as_str)
                            .and_then(mime_from_extension)
                    });
                let mime = match (mime, parse_data_url(url)) {
                    (Some(m), _) => m,
                    (None, Some((m, _))) => m,
                    (None, None) => {
                        return Err(ApiError::invalid_field(
                            &at(),
                            "The file's type is not known from its URL: set `format` to its MIME type \
                             (for example `application/pdf`).",
                        ));
                    }
                };
                out.push(media_part(url, Cow::Borrowed(mime), at)?);
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
                out.push(Part::InlineData {
                    inline_data: Media {
                        mime_type: Cow::Owned(format!("audio/{format}")),
                        data,
                    },
                });
            }
            ContentPart::Other(v) => out.push(Part::Other(v)),
        }
    }
    Ok(())
}

fn image_url_str(i: &ImageUrl) -> &str {
    i.url()
}

/// `data:` URLs inline (their own media type), http(s) and gs:// URLs by
/// reference, of type `mime`.
fn media_part<'a>(
    url: &'a str,
    mime: Cow<'a, str>,
    at: impl FnOnce() -> String,
) -> Result<Part<'a>, ApiError> {
    if let Some((own, data)) = parse_data_url(url) {
        return Ok(Part::InlineData {
            inline_data: Media {
                mime_type: Cow::Borrowed(own),
                data,
            },
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://") {
        return Ok(Part::FileData {
            file_data: FileRef {
                mime_type: mime,
                file_uri: url,
            },
        });
    }
    Err(ApiError::invalid_field(
        &at(),
        "Media must be a data: URL or an http(s)/gs:// URL.",
    ))
}

/// A media type from a URL's or a name's extension (YouTube links are
/// video), or `None`.
fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if ["youtube.com/", "youtu.be/"]
        .iter()
        .any(|h| path.contains(h))
    {
        return Some("video/mp4");
    }
    let file = path.rsplit('/').next().unwrap_or(&path);
    let (_, ext) = file.rsplit_once('.')?;
    Some(match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "m4a" => "audio/m4a",
        "aiff" => "audio/aiff",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "mpeg" | "mpg" => "video/mpeg",
        "avi" => "video/avi",
        "webm" => "video/webm",
        "wmv" => "video/wmv",
        "flv" => "video/x-flv",
        "3gp" => "video/3gpp",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "md" => "text/md",
        "xml" => "text/xml",
        "json" => "application/json",
        _ => return None,
    })
}
