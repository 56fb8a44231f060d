//! Canonical (OpenAI) request → Bedrock Converse request.

use crate::json::{self, WriteJson};
use crate::providers::anthropic::request::{JSON_TOOL, claude_thinking, is_on, parse_data_url};
use crate::types::{
    ApiError, ChatCompletionRequest, ChatMessage, ContentPart, KnownPart, MessageContent, Role,
    ToolChoice,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
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
/// Converse's own top-level request fields: sent where Converse reads
/// them, not to the model.
const CONVERSE_FIELDS: &[&str] = &[
    "guardrailConfig",
    "performanceConfig",
    "requestMetadata",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "serviceTier",
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
    /// How the model takes `reasoning_effort`, when it is not Claude.
    pub effort: Effort,
}

/// Where a model other than Claude reads a reasoning effort, in
/// `additionalModelRequestFields`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Effort {
    /// Nowhere: it is not sent.
    #[default]
    None,
    /// OpenAI's open-weight models (gpt-oss): `reasoning_effort`, as in
    /// OpenAI's API, `low`, `medium` or `high`; they always reason.
    OpenAi,
    /// Nova 2: `reasoningConfig: {type: enabled, maxReasoningEffort}`;
    /// off unless asked for.
    Nova2,
}

impl Effort {
    /// The field for a client's `reasoning_effort`, if the model takes one.
    fn field(self, effort: &str) -> Option<(&'static str, Value)> {
        // OpenAI's scale (`none`, `minimal` … `xhigh`) onto the three
        // levels these models take.
        let level = match effort {
            "none" | "minimal" | "low" => "low",
            "xhigh" | "max" | "high" => "high",
            _ => "medium",
        };
        match self {
            Effort::None => None,
            Effort::OpenAi => Some(("reasoning_effort", json!(level))),
            Effort::Nova2 if effort == "none" => None,
            Effort::Nova2 => Some((
                "reasoningConfig",
                json!({"type": "enabled", "maxReasoningEffort": level}),
            )),
        }
    }
}

pub struct Built<'a> {
    pub body: ConverseRequest<'a>,
    pub json_tool: bool,
}

/// A Converse request, its text, images and tool schemas borrowed from the
/// canonical request it is built from, not copied into a JSON tree first.
/// Written by hand ([`WriteJson`]); serde writes the same bytes (tested).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Block<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub inference_config: Map<String, Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub additional_model_request_fields: Map<String, Value>,
    /// Converse's own top-level fields the client sent by name
    /// (`guardrailConfig`, `performanceConfig`, …), and `serviceTier`.
    #[serde(flatten)]
    pub converse_fields: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct Turn<'a> {
    pub role: &'static str,
    pub content: Vec<Block<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    pub tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Serialize)]
pub enum ToolEntry<'a> {
    #[serde(rename = "toolSpec")]
    Spec(ToolSpec<'a>),
    #[serde(rename = "cachePoint")]
    CachePoint(CachePoint),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: InputSchema<'a>,
}

#[derive(Debug, Serialize)]
pub struct InputSchema<'a> {
    pub json: Cow<'a, Value>,
}

/// `{"type": "default"}`, the one kind of cache point.
#[derive(Debug, Serialize)]
pub struct CachePoint {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

const CACHE_POINT: CachePoint = CachePoint { kind: "default" };

/// A content block of a turn or of the system prompt.
#[derive(Debug, Serialize)]
pub enum Block<'a> {
    #[serde(rename = "text")]
    Text(&'a str),
    #[serde(rename = "cachePoint")]
    CachePoint(CachePoint),
    #[serde(rename = "reasoningContent")]
    Reasoning(Reasoning<'a>),
    #[serde(rename = "toolUse")]
    ToolUse(ToolUse<'a>),
    #[serde(rename = "toolResult")]
    ToolResult(ToolResult<'a>),
    #[serde(rename = "image")]
    Image(Media<'a>),
    #[serde(rename = "document")]
    Document(Document<'a>),
    /// A block the client wrote in Converse's own shape, sent as written.
    #[serde(untagged)]
    Other(&'a Value),
}

#[derive(Debug, Serialize)]
pub enum Reasoning<'a> {
    #[serde(rename = "reasoningText")]
    Text {
        text: Option<&'a Value>,
        signature: &'a str,
    },
    #[serde(rename = "redactedContent")]
    Redacted(Option<&'a Value>),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub name: &'a str,
    /// The call's arguments as the client wrote them (checked to be JSON).
    pub input: &'a RawValue,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub content: [ResultText<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ResultText<'a> {
    pub text: Cow<'a, str>,
}

#[derive(Debug, Serialize)]
pub struct Media<'a> {
    pub format: &'static str,
    pub source: Bytes<'a>,
}

#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub format: &'static str,
    pub name: String,
    pub source: Bytes<'a>,
}

/// Base64, as a data URL carried it.
#[derive(Debug, Serialize)]
pub struct Bytes<'a> {
    pub bytes: &'a str,
}

impl Block<'_> {
    fn is_tool_result(&self) -> bool {
        match self {
            Block::ToolResult(_) => true,
            Block::Other(v) => v.get("toolResult").is_some(),
            _ => false,
        }
    }

    fn is_cache_point(&self) -> bool {
        match self {
            Block::CachePoint(_) => true,
            Block::Other(v) => v.get("cachePoint").is_some(),
            _ => false,
        }
    }
}

/// Tool results lead a user turn, as Converse wants when tool messages and
/// user text merge into one turn. A cache point stays right after the block
/// it followed, so it still caches what the client marked.
fn tool_results_first(content: &mut Vec<Block<'_>>) {
    let mut seen_other = false;
    let ordered = content.iter().all(|b| {
        if b.is_cache_point() {
            return true;
        }
        let ok = !(seen_other && b.is_tool_result());
        seen_other |= !b.is_tool_result();
        ok
    });
    if ordered {
        return;
    }
    let mut results = Vec::with_capacity(content.len());
    let mut rest = Vec::new();
    let mut last_was_result = false;
    for b in content.drain(..) {
        if !b.is_cache_point() {
            last_was_result = b.is_tool_result();
        }
        if last_was_result {
            results.push(b);
        } else {
            rest.push(b);
        }
    }
    results.append(&mut rest);
    *content = results;
}

impl WriteJson for ConverseRequest<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"messages\":");
        json::write_list(out, &self.messages, |out, turn| {
            out.extend_from_slice(b"{\"role\":");
            json::write_str(out, turn.role);
            out.extend_from_slice(b",\"content\":");
            json::write_list(out, &turn.content, write_block)?;
            out.push(b'}');
            Ok(())
        })?;
        if !self.system.is_empty() {
            out.extend_from_slice(b",\"system\":");
            json::write_list(out, &self.system, write_block)?;
        }
        if let Some(config) = &self.tool_config {
            out.extend_from_slice(b",\"toolConfig\":{\"tools\":");
            json::write_list(out, &config.tools, |out, entry| {
                match entry {
                    ToolEntry::Spec(spec) => {
                        out.extend_from_slice(b"{\"toolSpec\":{\"name\":");
                        json::write_str(out, spec.name);
                        json::write_opt_str(out, b",\"description\":", spec.description);
                        out.extend_from_slice(b",\"inputSchema\":{\"json\":");
                        json::write_tree(out, &spec.input_schema.json)?;
                        out.extend_from_slice(b"}}}");
                    }
                    ToolEntry::CachePoint(_) => out.extend_from_slice(CACHE_POINT_JSON),
                }
                Ok(())
            })?;
            json::write_opt_tree(out, b",\"toolChoice\":", config.tool_choice.as_ref())?;
            out.push(b'}');
        }
        if !self.inference_config.is_empty() {
            out.extend_from_slice(b",\"inferenceConfig\":");
            json::write_value(out, &self.inference_config)?;
        }
        if !self.additional_model_request_fields.is_empty() {
            out.extend_from_slice(b",\"additionalModelRequestFields\":");
            json::write_value(out, &self.additional_model_request_fields)?;
        }
        for (k, v) in &self.converse_fields {
            out.push(b',');
            json::write_str(out, k);
            out.push(b':');
            json::write_tree(out, v)?;
        }
        out.push(b'}');
        Ok(())
    }
}

const CACHE_POINT_JSON: &[u8] = b"{\"cachePoint\":{\"type\":\"default\"}}";

fn write_block(out: &mut Vec<u8>, block: &Block<'_>) -> serde_json::Result<()> {
    match block {
        Block::Text(text) => {
            out.extend_from_slice(b"{\"text\":");
            json::write_str(out, text);
        }
        Block::CachePoint(_) => {
            out.extend_from_slice(CACHE_POINT_JSON);
            return Ok(());
        }
        Block::Reasoning(Reasoning::Text { text, signature }) => {
            out.extend_from_slice(b"{\"reasoningContent\":{\"reasoningText\":{\"text\":");
            write_or_null(out, *text)?;
            out.extend_from_slice(b",\"signature\":");
            json::write_str(out, signature);
            out.extend_from_slice(b"}}");
        }
        Block::Reasoning(Reasoning::Redacted(data)) => {
            out.extend_from_slice(b"{\"reasoningContent\":{\"redactedContent\":");
            write_or_null(out, *data)?;
            out.push(b'}');
        }
        Block::ToolUse(call) => {
            out.extend_from_slice(b"{\"toolUse\":{\"toolUseId\":");
            json::write_str(out, &call.tool_use_id);
            out.extend_from_slice(b",\"name\":");
            json::write_str(out, call.name);
            out.extend_from_slice(b",\"input\":");
            out.extend_from_slice(call.input.get().as_bytes());
            out.push(b'}');
        }
        Block::ToolResult(result) => {
            out.extend_from_slice(b"{\"toolResult\":{\"toolUseId\":");
            json::write_str(out, &result.tool_use_id);
            out.extend_from_slice(b",\"content\":[{\"text\":");
            json::write_str(out, &result.content[0].text);
            out.extend_from_slice(b"}]");
            json::write_opt_str(out, b",\"status\":", result.status);
            out.push(b'}');
        }
        Block::Image(image) => {
            out.extend_from_slice(b"{\"image\":{\"format\":");
            json::write_str(out, image.format);
            out.extend_from_slice(b",\"source\":{\"bytes\":");
            json::write_str(out, image.source.bytes);
            out.extend_from_slice(b"}}");
        }
        Block::Document(doc) => {
            out.extend_from_slice(b"{\"document\":{\"format\":");
            json::write_str(out, doc.format);
            out.extend_from_slice(b",\"name\":");
            json::write_str(out, &doc.name);
            out.extend_from_slice(b",\"source\":{\"bytes\":");
            json::write_str(out, doc.source.bytes);
            out.extend_from_slice(b"}}");
        }
        Block::Other(v) => return json::write_tree(out, v),
    }
    out.push(b'}');
    Ok(())
}

fn write_or_null(out: &mut Vec<u8>, v: Option<&Value>) -> serde_json::Result<()> {
    match v {
        Some(v) => json::write_tree(out, v),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// Bedrock tool-use ids match `^[a-zA-Z0-9_-]+$` and are at most 64
/// characters: other ids are rewritten ([`clean_tool_id`]).
pub fn tool_id(id: &str) -> Cow<'_, str> {
    crate::providers::clean_tool_id(id, 64)
}

pub fn build<'a>(
    req: &'a ChatCompletionRequest,
    traits: ModelTraits,
    drop_params: bool,
) -> Result<Built<'a>, ApiError> {
    let (mut extra_fields, converse_fields) = check_params(req, drop_params)?;
    let cache = |v: &Option<Value>| traits.prompt_caching && v.is_some();
    let mut system: Vec<Block<'a>> = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::with_capacity(req.messages.len());
    let mut history_tools: BTreeSet<&'a str> = BTreeSet::new();
    let mut doc_names = DocNames::default();

    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => {
                for (text, cc) in texts(msg) {
                    system.push(Block::Text(text));
                    if cache(cc) {
                        system.push(Block::CachePoint(CACHE_POINT));
                    }
                }
                if cache(&msg.cache_control) {
                    system.push(Block::CachePoint(CACHE_POINT));
                }
            }
            Role::User => {
                let mut blocks = user_blocks(msg, i, traits, drop_params, &mut doc_names)?;
                if cache(&msg.cache_control) && !blocks.is_empty() {
                    blocks.push(Block::CachePoint(CACHE_POINT));
                }
                push(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                for b in msg.thinking_blocks.iter().flatten() {
                    match b.get("type").and_then(Value::as_str) {
                        Some("thinking") => {
                            if let Some(signature) = b
                                .get("signature")
                                .and_then(Value::as_str)
                                .filter(|s| !s.is_empty())
                            {
                                blocks.push(Block::Reasoning(Reasoning::Text {
                                    text: b.get("thinking"),
                                    signature,
                                }));
                            }
                        }
                        Some("redacted_thinking") => {
                            blocks.push(Block::Reasoning(Reasoning::Redacted(b.get("data"))));
                        }
                        _ => {}
                    }
                }
                for (text, _) in texts(msg) {
                    blocks.push(Block::Text(text));
                }
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    let arguments = match call.function.arguments.trim() {
                        "" => "{}",
                        a => a,
                    };
                    let input = serde_json::from_str::<&RawValue>(arguments).map_err(|_| {
                        ApiError::invalid_field(
                            &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                            "Tool call arguments must be a JSON object.",
                        )
                    })?;
                    history_tools.insert(&call.function.name);
                    blocks.push(Block::ToolUse(ToolUse {
                        tool_use_id: tool_id(&call.id),
                        name: &call.function.name,
                        input,
                    }));
                }
                if cache(&msg.cache_control) && !blocks.is_empty() {
                    blocks.push(Block::CachePoint(CACHE_POINT));
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
                let text = match &msg.content {
                    Some(MessageContent::Text(t)) => Cow::Borrowed(t.as_str()),
                    Some(c) => Cow::Owned(c.text()),
                    None => Cow::Borrowed(""),
                };
                let mut blocks = vec![Block::ToolResult(ToolResult {
                    tool_use_id: tool_id(id),
                    content: [ResultText {
                        text: if text.is_empty() {
                            Cow::Borrowed(" ")
                        } else {
                            text
                        },
                    }],
                    status: (msg.extra.get("is_error").and_then(Value::as_bool) == Some(true))
                        .then_some("error"),
                })];
                if cache(&msg.cache_control) {
                    blocks.push(Block::CachePoint(CACHE_POINT));
                }
                push(&mut turns, "user", blocks);
            }
        }
    }
    if turns.first().is_some_and(|t| t.role == "assistant") {
        turns.insert(
            0,
            Turn {
                role: "user",
                content: vec![Block::Text(".")],
            },
        );
    }
    if turns.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "Bedrock needs at least one user message.",
        ));
    }

    // Reasoning, for Claude models, as Anthropic's API takes it.
    let thinking = claude_thinking(req).filter(|_| traits.claude);
    let thinking_on = thinking.as_deref().is_some_and(is_on);

    // Tools; response_format as a forced tool (as for Anthropic).
    // `tool_choice: "none"` offers none: Converse has no such choice.
    let offered = !matches!(&req.tool_choice, Some(ToolChoice::Mode(m)) if m == "none");
    let mut tools: Vec<ToolEntry<'a>> = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        if !offered {
            break;
        }
        let Some(function) = t.as_function() else {
            // Converse takes function tools only: another kind (a
            // provider's web search) is named, not dropped unseen.
            if drop_params {
                continue;
            }
            let kind = t.kind_name();
            return Err(ApiError::invalid_field(
                &format!("tools[{i}]"),
                format!(
                    "Bedrock's Converse API takes only function tools, not `{kind}`. \
                     Remove it, or set `drop_params: true` to drop it."
                ),
            ));
        };
        tools.push(ToolEntry::Spec(ToolSpec {
            name: &function.name,
            description: function.description.as_deref(),
            input_schema: InputSchema {
                json: match &function.parameters {
                    Some(p) => Cow::Borrowed(p),
                    None => Cow::Owned(empty_schema()),
                },
            },
        }));
        if cache(&t.cache_control) {
            tools.push(ToolEntry::CachePoint(CACHE_POINT));
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
        tools.push(ToolEntry::Spec(ToolSpec {
            name: JSON_TOOL,
            description: Some("Respond with a JSON object that matches this schema."),
            input_schema: InputSchema {
                json: Cow::Owned(schema),
            },
        }));
        // Claude refuses a forced tool while it thinks: the tool is then
        // offered, not forced, as LiteLLM does; its input or the text is
        // the answer either way.
        if !thinking_on {
            choice = Some(json!({"tool": {"name": JSON_TOOL}}));
        }
        json_tool = true;
    }
    if tools.is_empty() && !history_tools.is_empty() {
        // The history holds tool blocks: Bedrock wants a toolConfig even
        // when this request offers no tools.
        for name in history_tools {
            tools.push(ToolEntry::Spec(ToolSpec {
                name,
                description: None,
                input_schema: InputSchema {
                    json: Cow::Owned(empty_schema()),
                },
            }));
        }
        choice = None;
    }
    let tool_config = (!tools.is_empty()).then_some(ToolConfig {
        tools,
        tool_choice: choice,
    });

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
    // Converse refuses an empty stop sequence.
    let stops: Vec<&str> = req
        .stop
        .as_ref()
        .map_or(&[][..], crate::types::Stop::as_slice)
        .iter()
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    if !stops.is_empty() {
        inference.insert("stopSequences".into(), stops.into());
    }

    if let Some(t) = thinking {
        let budget = t
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(1024);
        let max = inference
            .get("maxTokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if thinking_on && max <= budget {
            inference.insert("maxTokens".into(), (budget + 4096).into());
        }
        extra_fields.insert("thinking".into(), t.into_owned());
    }
    if let Some((name, value)) = req
        .reasoning_effort
        .as_deref()
        .and_then(|e| traits.effort.field(e))
    {
        extra_fields.entry(name.to_owned()).or_insert(value);
    }
    if let Some(k) = req.extra.get("top_k").filter(|v| !v.is_null()) {
        if traits.nova {
            extra_fields.insert("inferenceConfig".into(), json!({"topK": k}));
        } else {
            extra_fields.insert("top_k".into(), k.clone());
        }
    }
    Ok(Built {
        body: ConverseRequest {
            messages: turns,
            system,
            tool_config,
            inference_config: inference,
            additional_model_request_fields: extra_fields,
            converse_fields,
        },
        json_tool,
    })
}

/// The schema of a tool that takes no arguments.
fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// `additionalModelRequestFields`, and Converse's own top-level fields.
type Fields = (Map<String, Value>, Map<String, Value>);

/// Refuses what Converse cannot do; returns the model-specific fields that
/// go to `additionalModelRequestFields`, and Converse's own top-level ones.
fn check_params(req: &ChatCompletionRequest, drop_params: bool) -> Result<Fields, ApiError> {
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
    let mut converse = Map::new();
    for (k, v) in &req.extra {
        if v.is_null()
            || IGNORED_HINTS.contains(&k.as_str())
            || crate::providers::GATEWAY_FIELDS.contains(&k.as_str())
        {
            continue;
        }
        if CONVERSE_FIELDS.contains(&k.as_str()) {
            converse.insert(k.clone(), v.clone());
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
    // OpenAI's `service_tier` names Bedrock's tiers too ("auto" is the
    // default either way).
    if let Some(tier) = req.extra.get("service_tier").and_then(Value::as_str) {
        if matches!(tier, "default" | "flex" | "priority") && !converse.contains_key("serviceTier")
        {
            converse.insert("serviceTier".into(), json!({"type": tier}));
        }
    }
    Ok((fields, converse))
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

fn push<'a>(turns: &mut Vec<Turn<'a>>, role: &'static str, blocks: Vec<Block<'a>>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(turn) if turn.role == role => {
            turn.content.extend(blocks);
            if role == "user" {
                tool_results_first(&mut turn.content);
            }
        }
        _ => turns.push(Turn {
            role,
            content: blocks,
        }),
    }
}

/// Converse's name for an image's media type.
fn image_format(mime: &str) -> Option<&'static str> {
    Some(match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    })
}

/// Converse's name for a document's media type: it takes these nine.
fn document_format(mime: &str) -> Option<&'static str> {
    Some(match mime.to_ascii_lowercase().as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" | "text/x-markdown" => "md",
        _ => return None,
    })
}

/// Document names, unique in a request: Converse refuses two documents of
/// one name, and a conversation sends every earlier turn's files again. A
/// name keeps letters, digits, single spaces and `-()[]`; a file without
/// one is `document`, and a name seen before gets ` (2)`, ` (3)`, ….
#[derive(Default)]
struct DocNames(BTreeSet<String>);

impl DocNames {
    fn name(&mut self, filename: Option<&str>) -> String {
        let mut clean = String::new();
        for c in filename.unwrap_or_default().chars() {
            let c = if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
                c
            } else if c.is_whitespace() {
                ' '
            } else {
                '-'
            };
            if !(c == ' ' && (clean.is_empty() || clean.ends_with(' '))) {
                clean.push(c);
            }
        }
        let clean = match clean.trim_end() {
            "" => "document".to_owned(),
            c => c.chars().take(180).collect(),
        };
        let mut name = clean.clone();
        let mut n = 1;
        while self.0.contains(&name) {
            n += 1;
            name = format!("{clean} ({n})");
        }
        self.0.insert(name.clone());
        name
    }
}

fn texts(msg: &ChatMessage) -> Vec<(&str, &Option<Value>)> {
    const NONE: &Option<Value> = &None;
    match &msg.content {
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => vec![(t, NONE)],
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Known(KnownPart::Text {
                    text,
                    cache_control,
                }) if !text.trim().is_empty() => Some((text.as_str(), cache_control)),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn user_blocks<'a>(
    msg: &'a ChatMessage,
    i: usize,
    traits: ModelTraits,
    drop_params: bool,
    doc_names: &mut DocNames,
) -> Result<Vec<Block<'a>>, ApiError> {
    let parts = match &msg.content {
        Some(MessageContent::Parts(p)) => p,
        _ => {
            return Ok(texts(msg)
                .into_iter()
                .map(|(t, _)| Block::Text(t))
                .collect());
        }
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        let cc = match p {
            ContentPart::Known(KnownPart::Text {
                text,
                cache_control,
            }) => {
                if text.trim().is_empty() {
                    continue;
                }
                out.push(Block::Text(text));
                cache_control
            }
            ContentPart::Known(KnownPart::ImageUrl {
                image_url,
                cache_control,
            }) => {
                let url = image_url.url();
                let (mime, data) = parse_data_url(url).ok_or_else(|| {
                    ApiError::invalid_field(
                        &at(),
                        "Bedrock needs images inline: send a data: URL (fetching http(s) images is not enabled).",
                    )
                })?;
                let format = image_format(mime).ok_or_else(|| {
                    ApiError::invalid_field(
                        &at(),
                        format!("Bedrock does not accept images of type {mime}."),
                    )
                })?;
                out.push(Block::Image(Media {
                    format,
                    source: Bytes { bytes: data },
                }));
                cache_control
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
                        &at(),
                        "Bedrock needs documents inline as `file_data` data: URLs.",
                    ));
                };
                if let Some(format) = image_format(mime) {
                    // An image sent as a file is an image to Converse.
                    out.push(Block::Image(Media {
                        format,
                        source: Bytes { bytes: b64 },
                    }));
                } else {
                    let format = document_format(mime).ok_or_else(|| {
                        ApiError::invalid_field(
                            &at(),
                            format!(
                                "Bedrock does not accept documents of type {mime}: it takes PDF, CSV, \
                                 DOC, DOCX, XLS, XLSX, HTML, TXT and Markdown."
                            ),
                        )
                    })?;
                    let name = doc_names.name(file.get("filename").and_then(Value::as_str));
                    out.push(Block::Document(Document {
                        format,
                        name,
                        source: Bytes { bytes: b64 },
                    }));
                }
                cache_control
            }
            ContentPart::Known(KnownPart::InputAudio { .. }) if drop_params => continue,
            ContentPart::Known(KnownPart::InputAudio { .. }) => {
                return Err(ApiError::invalid_field(
                    &at(),
                    "Bedrock Converse does not accept audio input.",
                ));
            }
            ContentPart::Other(v) => {
                out.push(Block::Other(v));
                &None
            }
        };
        if traits.prompt_caching && cc.is_some() {
            out.push(Block::CachePoint(CACHE_POINT));
        }
    }
    Ok(out)
}
