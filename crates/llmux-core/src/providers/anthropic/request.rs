//! Canonical (OpenAI) request → Anthropic Messages request.

use crate::json;
use crate::types::{
    ApiError, ChatCompletionRequest, ChatMessage, ContentPart, ImageUrl, KnownPart, MessageContent,
    Role, Stop, ToolChoice,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// The tool a `response_format` becomes (LiteLLM's name, so clients that
/// know LiteLLM see the same thing).
pub const JSON_TOOL: &str = "json_tool_call";
/// Anthropic accepts at most this many `cache_control` breakpoints.
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

/// OpenAI fields with no Anthropic meaning that are hints, not
/// instructions: dropped without an error.
const IGNORED_HINTS: &[&str] = &[
    "prompt_cache_key",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "stream_options",
    "drop_params",
    "num_retries",
];
/// OpenAI fields Anthropic cannot honour: a 400 naming them, unless
/// `drop_params`.
const UNSUPPORTED: &[&str] = &[
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "audio",
    "modalities",
    "prediction",
    "functions",
    "function_call",
    "verbosity",
];

/// What the response side needs to know about how the request was built.
#[derive(Debug)]
pub struct Built<'a> {
    pub body: MessagesRequest<'a>,
    /// `anthropic-beta` features the request uses.
    pub betas: Vec<&'static str>,
    /// `response_format` was turned into the forced JSON tool.
    pub json_tool: bool,
}

/// A Messages request, borrowing the client's text, schemas and marks
/// from the canonical request: serializing it writes them once, with no
/// JSON tree built and copied in between. Fields in Anthropic's order.
#[derive(Debug, Serialize)]
pub struct MessagesRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Block<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Choice<'a>>,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Cow<'a, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<&'a Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// Every request to Anthropic is written this way: text blocks, the most
/// of a request's bytes, by hand, and the rarer parts by serde.
/// `serde_json::to_vec` writes the same bytes (every fixture checks).
impl json::WriteJson for MessagesRequest<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"model\":");
        json::write_str(out, self.model);
        out.extend_from_slice(b",\"messages\":");
        json::write_list(out, &self.messages, |out, turn| {
            out.extend_from_slice(b"{\"role\":");
            json::write_str(out, turn.role);
            out.extend_from_slice(b",\"content\":");
            write_blocks(out, &turn.content)?;
            out.push(b'}');
            Ok(())
        })?;
        if !self.system.is_empty() {
            out.extend_from_slice(b",\"system\":");
            write_blocks(out, &self.system)?;
        }
        if !self.tools.is_empty() {
            out.extend_from_slice(b",\"tools\":");
            json::write_list(out, &self.tools, |out, tool| match tool {
                ToolDef::Function {
                    name,
                    description,
                    input_schema,
                    cache_control,
                } => {
                    out.extend_from_slice(b"{\"name\":");
                    json::write_str(out, name);
                    json::write_opt_str(out, b",\"description\":", *description);
                    out.extend_from_slice(b",\"input_schema\":");
                    json::write_tree(out, input_schema)?;
                    close_with_mark(out, *cache_control)
                }
                native => json::write_value(out, native),
            })?;
        }
        json::write_opt_value(out, b",\"tool_choice\":", self.tool_choice.as_ref())?;
        out.extend_from_slice(b",\"max_tokens\":");
        json::write_u64(out, self.max_tokens);
        json::write_opt_tree(out, b",\"thinking\":", self.thinking.as_deref())?;
        json::write_opt_value(out, b",\"temperature\":", self.temperature.as_ref())?;
        json::write_opt_value(out, b",\"top_p\":", self.top_p.as_ref())?;
        json::write_opt_tree(out, b",\"top_k\":", self.top_k)?;
        if !self.stop_sequences.is_empty() {
            out.extend_from_slice(b",\"stop_sequences\":");
            json::write_value(out, &self.stop_sequences)?;
        }
        json::write_opt_value(out, b",\"metadata\":", self.metadata.as_ref())?;
        if self.stream {
            out.extend_from_slice(b",\"stream\":true");
        }
        out.push(b'}');
        Ok(())
    }
}

/// A list of blocks: text, tool calls and tool results (most of a coding
/// agent's conversation) by hand, the others by serde.
fn write_blocks(out: &mut Vec<u8>, blocks: &[Block<'_>]) -> serde_json::Result<()> {
    json::write_list(out, blocks, |out, block| match block {
        Block::Text {
            text,
            cache_control,
        } => {
            out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
            json::write_str(out, text);
            close_with_mark(out, *cache_control)
        }
        Block::ToolUse {
            id,
            name,
            input,
            cache_control,
        } => {
            out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
            json::write_str(out, id);
            out.extend_from_slice(b",\"name\":");
            json::write_str(out, name);
            out.extend_from_slice(b",\"input\":");
            out.extend_from_slice(input.get().as_bytes());
            close_with_mark(out, *cache_control)
        }
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache_control,
        } => {
            out.extend_from_slice(b"{\"type\":\"tool_result\",\"tool_use_id\":");
            json::write_str(out, tool_use_id);
            match content {
                Some(ToolResultContent::Text(text)) => {
                    out.extend_from_slice(b",\"content\":");
                    json::write_str(out, text);
                }
                Some(ToolResultContent::Blocks(inner)) => {
                    out.extend_from_slice(b",\"content\":");
                    write_blocks(out, inner)?;
                }
                None => {}
            }
            if *is_error {
                out.extend_from_slice(b",\"is_error\":true");
            }
            close_with_mark(out, *cache_control)
        }
        other => json::write_value(out, other),
    })
}

/// The end of a block or tool: its `cache_control` mark, if it has one,
/// and the closing brace.
fn close_with_mark(out: &mut Vec<u8>, mark: Option<&Value>) -> serde_json::Result<()> {
    json::write_opt_tree(out, b",\"cache_control\":", mark)?;
    out.push(b'}');
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Turn<'a> {
    pub role: &'static str,
    pub content: Vec<Block<'a>>,
}

#[derive(Debug, Serialize)]
pub struct Metadata<'a> {
    pub user_id: &'a str,
}

/// A content block. Each kind can carry a `cache_control` mark; a block
/// the client wrote in Anthropic's own shape passes as written.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    Image {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    Document {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    Thinking {
        thinking: Option<&'a Value>,
        signature: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    RedactedThinking {
        data: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: &'a str,
        /// The call's arguments as the client wrote them, checked to be a
        /// JSON object (serde_json's skim: what it lets by, such as a lone
        /// `\ud800`, Anthropic refuses itself), not read into a tree and
        /// written again.
        input: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    #[serde(untagged)]
    AsWritten(Cow<'a, Value>),
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolResultContent<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source<'a> {
    Base64 {
        media_type: &'a str,
        data: &'a str,
    },
    Url {
        url: &'a str,
    },
    Text {
        media_type: &'static str,
        data: Cow<'a, str>,
    },
    File {
        file_id: &'a str,
    },
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolDef<'a> {
    Function {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        input_schema: Cow<'a, Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    /// Anthropic's own tool types (computer use, bash, text editor), and
    /// tools written in Anthropic's shape, as the client wrote them.
    Native {
        #[serde(rename = "type", skip_serializing_if = "str::is_empty")]
        kind: &'a str,
        #[serde(flatten)]
        fields: &'a Map<String, Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    /// A server tool built from an OpenAI option (`web_search_options`).
    Server(Cow<'a, Value>),
}

#[derive(Debug, Serialize)]
pub struct Choice<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// Where a block keeps its `cache_control` mark.
enum Mark<'m, 'a> {
    Field(&'m mut Option<&'a Value>),
    Key(&'m mut Cow<'a, Value>),
}

impl<'a> Mark<'_, 'a> {
    fn is_set(&self) -> bool {
        match self {
            Mark::Field(f) => f.is_some(),
            Mark::Key(v) => v.get("cache_control").is_some_and(|c| !c.is_null()),
        }
    }

    fn set(self, cc: &'a Value) {
        match self {
            Mark::Field(f) => *f = Some(cc),
            Mark::Key(v) => {
                if let Some(o) = v.to_mut().as_object_mut() {
                    o.insert("cache_control".into(), cc.clone());
                }
            }
        }
    }

    fn clear(self) {
        match self {
            Mark::Field(f) => *f = None,
            Mark::Key(v) => {
                if let Some(o) = v.to_mut().as_object_mut() {
                    o.remove("cache_control");
                }
            }
        }
    }
}

impl<'a> Block<'a> {
    fn text(text: &'a str, cache_control: Option<&'a Value>) -> Self {
        Block::Text {
            text,
            cache_control,
        }
    }

    fn mark(&mut self) -> Mark<'_, 'a> {
        match self {
            Block::Text { cache_control, .. }
            | Block::Image { cache_control, .. }
            | Block::Document { cache_control, .. }
            | Block::Thinking { cache_control, .. }
            | Block::RedactedThinking { cache_control, .. }
            | Block::ToolUse { cache_control, .. }
            | Block::ToolResult { cache_control, .. } => Mark::Field(cache_control),
            Block::AsWritten(v) => Mark::Key(v),
        }
    }

    fn is_tool_result(&self) -> bool {
        match self {
            Block::ToolResult { .. } => true,
            Block::AsWritten(v) => v.get("type").and_then(Value::as_str) == Some("tool_result"),
            _ => false,
        }
    }
}

impl<'a> ToolDef<'a> {
    fn mark(&mut self) -> Mark<'_, 'a> {
        match self {
            ToolDef::Function { cache_control, .. } | ToolDef::Native { cache_control, .. } => {
                Mark::Field(cache_control)
            }
            ToolDef::Server(tool) => Mark::Key(tool),
        }
    }
}

/// Builds the Anthropic request. `default_max_tokens` is the model's max
/// output from the catalog (Anthropic requires `max_tokens`).
pub fn build<'a>(
    req: &'a ChatCompletionRequest,
    upstream_model: &'a str,
    default_max_tokens: Option<u64>,
    drop_params: bool,
) -> Result<Built<'a>, ApiError> {
    check_params(req, drop_params)?;
    let mut betas = Vec::new();
    let mut system: Vec<Block<'a>> = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::new();

    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => {
                let mut blocks = text_blocks(msg, i)?;
                apply_message_cache(&mut blocks, msg);
                system.extend(blocks);
            }
            Role::User => {
                let mut blocks = user_blocks(msg, i, drop_params, &mut betas)?;
                apply_message_cache(&mut blocks, msg);
                push_turn(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = assistant_blocks(msg, i)?;
                apply_message_cache(&mut blocks, msg);
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool | Role::Function => {
                let block = tool_result_block(msg, i)?;
                push_turn(&mut turns, "user", vec![block]);
            }
        }
    }
    // Anthropic wants the first turn to be the user's; OpenAI does not.
    if turns.first().is_some_and(|t| t.role == "assistant") {
        turns.insert(
            0,
            Turn {
                role: "user",
                content: vec![Block::text(".", None)],
            },
        );
    }
    // A final assistant turn is a prefill; Anthropic refuses trailing
    // whitespace there.
    if let Some(turn) = turns.last_mut().filter(|t| t.role == "assistant") {
        match turn.content.last_mut() {
            Some(Block::Text { text, .. }) => *text = text.trim_end(),
            Some(Block::AsWritten(v)) => {
                if let Some(Value::String(t)) = v.get("text") {
                    if t.trim_end().len() != t.len() {
                        let trimmed = t.trim_end().to_owned();
                        if let Some(o) = v.to_mut().as_object_mut() {
                            o.insert("text".into(), trimmed.into());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if turns.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "Anthropic needs at least one user or assistant message.",
        ));
    }

    // Tools, tool choice, and response_format as a forced tool.
    let mut tools: Vec<ToolDef<'a>> = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        let Some(function) = t.as_function() else {
            if !anthropic_tool(t) {
                // Another provider's tool (Gemini's `{"googleSearch": {}}`,
                // OpenAI's free-form `custom` tool): named here, not sent
                // for Anthropic to refuse (a refusal a fallback would try
                // again elsewhere).
                if drop_params {
                    continue;
                }
                let name = t.kind_name();
                return Err(ApiError::invalid_field(
                    &format!("tools[{i}]"),
                    format!(
                        "`{name}` is not a tool Claude knows: a tool is a `function`, or one of \
                         Anthropic's, as Anthropic writes it (such as `{{\"type\": \"web_search_20250305\", \
                         \"name\": \"web_search\"}}`). Remove it, or set `drop_params: true` to drop it."
                    ),
                ));
            }
            if let Some(beta) = beta_for_tool(&t.kind) {
                betas.push(beta);
            }
            tools.push(ToolDef::Native {
                kind: &t.kind,
                fields: &t.extra,
                cache_control: t.cache_control.as_ref(),
            });
            continue;
        };
        tools.push(ToolDef::Function {
            name: &function.name,
            description: function.description.as_deref(),
            input_schema: function
                .parameters
                .as_ref()
                .map_or_else(|| Cow::Owned(empty_schema()), Cow::Borrowed),
            cache_control: t.cache_control.as_ref(),
        });
    }
    if let Some(options) = req.extra.get("web_search_options").filter(|v| !v.is_null()) {
        tools.push(ToolDef::Server(Cow::Owned(web_search_tool(options)?)));
    }
    let choice = |kind, name| Choice {
        kind,
        name,
        disable_parallel_tool_use: None,
    };
    let thinking = claude_thinking(req);
    let thinking_on = thinking.as_deref().is_some_and(is_on);
    let mut tool_choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Mode(m) if m == "none" => choice("none", None),
        ToolChoice::Mode(m) if m == "required" || m == "any" => choice("any", None),
        ToolChoice::Mode(_) => choice("auto", None),
        ToolChoice::Named(n) => choice("tool", Some(n.function.name.as_str())),
    });
    let mut json_tool = false;
    if let Some(schema) = json_schema(req.response_format.as_ref())? {
        tools.push(ToolDef::Function {
            name: JSON_TOOL,
            description: Some("Respond with a JSON object that matches this schema."),
            input_schema: schema,
            cache_control: None,
        });
        // Claude refuses a forced tool while it thinks: the tool is then
        // offered, not forced, as LiteLLM does; its input or the text is
        // the answer either way.
        if !thinking_on {
            tool_choice = Some(choice("tool", Some(JSON_TOOL)));
        }
        json_tool = true;
    }
    if req.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let c = tool_choice.get_or_insert_with(|| choice("auto", None));
        if c.kind != "none" {
            c.disable_parallel_tool_use = Some(true);
        }
    }
    if tools.is_empty() {
        tool_choice = None;
    }

    let budget = thinking
        .as_ref()
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    let mut max_tokens = req
        .max_output_tokens()
        .or(default_max_tokens)
        .unwrap_or(4096);
    if let Some(b) = budget {
        if max_tokens <= b {
            // The answer needs room beyond the thinking budget.
            max_tokens = b + default_max_tokens.unwrap_or(4096).min(8192);
        }
    }

    let mut body = MessagesRequest {
        model: upstream_model,
        messages: turns,
        system,
        tools,
        tool_choice,
        max_tokens,
        thinking,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.extra.get("top_k").filter(|v| !v.is_null()),
        stop_sequences: req
            .stop
            .as_ref()
            .map_or(&[][..], Stop::as_slice)
            .iter()
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect(),
        metadata: req
            .user
            .as_deref()
            .filter(|u| anthropic_user_id(u))
            .map(|user_id| Metadata { user_id }),
        stream: req.is_stream(),
    };
    limit_cache_breakpoints(&mut body);
    betas.sort_unstable();
    betas.dedup();
    Ok(Built {
        body,
        betas,
        json_tool,
    })
}

fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

fn check_params(req: &ChatCompletionRequest, drop_params: bool) -> Result<(), ApiError> {
    if drop_params {
        return Ok(());
    }
    let refuse = |name: &str| {
        ApiError::invalid_field(
            name,
            format!(
                "Anthropic does not support the parameter `{name}`. Remove it, or set \
                 `drop_params: true` (in the request or litellm_settings) to drop it."
            ),
        )
    };
    if req.n.is_some_and(|n| n > 1) {
        return Err(refuse("n"));
    }
    for name in [
        ("presence_penalty", req.presence_penalty.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("seed", req.seed.is_some()),
    ] {
        if name.1 {
            return Err(refuse(name.0));
        }
    }
    // Everything else the client sent that has no Anthropic meaning,
    // known OpenAI parameters first so the error names the likely one.
    let mut unknown: Vec<&str> = req
        .extra
        .iter()
        .filter(|(k, v)| {
            !v.is_null()
                && !IGNORED_HINTS.contains(&k.as_str())
                && !crate::providers::GATEWAY_FIELDS.contains(&k.as_str())
        })
        .map(|(k, _)| k.as_str())
        .filter(|k| !matches!(*k, "thinking" | "top_k" | "web_search_options"))
        .collect();
    unknown.sort_by_key(|k| !UNSUPPORTED.contains(k));
    if let Some(k) = unknown.first() {
        return Err(refuse(k));
    }
    Ok(())
}

/// OpenAI's `web_search_options` as Anthropic's web search tool, as
/// LiteLLM maps it: `search_context_size` as the most searches a turn
/// (low 1, medium 5, high 10), `user_location.approximate` as the tool's
/// approximate location.
fn web_search_tool(options: &Value) -> Result<Value, ApiError> {
    let bad = |why: &str| {
        ApiError::invalid_field(
            "web_search_options",
            format!("Invalid `web_search_options`: {why}"),
        )
    };
    let Value::Object(o) = options else {
        return Err(bad("expected an object"));
    };
    let mut tool = json!({"type": "web_search_20250305", "name": "web_search"});
    match o.get("search_context_size").and_then(Value::as_str) {
        None if o.get("search_context_size").is_none_or(Value::is_null) => {}
        Some("low") => tool["max_uses"] = 1.into(),
        Some("medium") => tool["max_uses"] = 5.into(),
        Some("high") => tool["max_uses"] = 10.into(),
        _ => return Err(bad("`search_context_size` must be low, medium or high")),
    }
    if let Some(place) = o
        .get("user_location")
        .and_then(|l| l.get("approximate"))
        .and_then(Value::as_object)
    {
        let mut location = Map::new();
        location.insert("type".into(), "approximate".into());
        for key in ["city", "region", "country", "timezone"] {
            if let Some(v) = place.get(key).filter(|v| v.is_string()) {
                location.insert(key.into(), v.clone());
            }
        }
        tool["user_location"] = Value::Object(location);
    }
    Ok(tool)
}

/// The thinking a request asks Claude for: `thinking` as Anthropic spells
/// it, or `reasoning_effort` as a budget. Claude on Anthropic and on
/// Bedrock take it alike.
pub fn claude_thinking(req: &ChatCompletionRequest) -> Option<Cow<'_, Value>> {
    match req.extra.get("thinking") {
        Some(t) if !t.is_null() => Some(Cow::Borrowed(t)),
        _ => req
            .reasoning_effort
            .as_deref()
            .and_then(budget_for_effort)
            .map(|b| Cow::Owned(json!({"type": "enabled", "budget_tokens": b}))),
    }
}

/// Whether thinking `t` is on (enabled or adaptive): Claude then refuses
/// a forced tool.
pub fn is_on(t: &Value) -> bool {
    t.get("type").and_then(Value::as_str) != Some("disabled")
}

/// LiteLLM's mapping of OpenAI effort levels to thinking budgets.
fn budget_for_effort(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        _ => None,
    }
}

/// A tool written as Anthropic's API takes it: one of its own tool types,
/// every one of which carries its version's date (`web_search_20250305`,
/// `bash_20250124`, `computer_20250124`, …), or a tool with its
/// `input_schema` (typed `custom`, or untyped, as LiteLLM passes it on).
fn anthropic_tool(t: &crate::types::Tool) -> bool {
    let dated = t.kind.rsplit_once('_').is_some_and(|(name, date)| {
        !name.is_empty() && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())
    });
    dated || (matches!(t.kind.as_str(), "custom" | "") && t.extra.contains_key("input_schema"))
}

fn beta_for_tool(kind: &str) -> Option<&'static str> {
    match kind {
        "computer_20241022" | "text_editor_20241022" | "bash_20241022" => {
            Some("computer-use-2024-10-22")
        }
        k if k.starts_with("computer_") => Some("computer-use-2025-01-24"),
        _ => None,
    }
}

fn json_schema(format: Option<&Value>) -> Result<Option<Cow<'_, Value>>, ApiError> {
    let Some(f) = format else { return Ok(None) };
    match f.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = f
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "response_format",
                        "`response_format.json_schema.schema` is required.",
                    )
                })?;
            Ok(Some(Cow::Borrowed(schema)))
        }
        Some("json_object") => Ok(Some(Cow::Owned(
            json!({"type": "object", "additionalProperties": true}),
        ))),
        Some("text") | None => Ok(None),
        Some(other) => Err(ApiError::invalid_field(
            "response_format",
            format!("Unknown response_format type `{other}`."),
        )),
    }
}

/// Appends blocks to the last turn when it has the same role (Anthropic
/// wants alternating turns), else starts a new one.
fn push_turn<'a>(turns: &mut Vec<Turn<'a>>, role: &'static str, blocks: Vec<Block<'a>>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(t) if t.role == role => {
            // Tool results must lead a user turn: keep them before other
            // user blocks when a user message follows results.
            t.content.extend(blocks);
            if role == "user" {
                t.content.sort_by_key(|b| !b.is_tool_result());
            }
        }
        _ => turns.push(Turn {
            role,
            content: blocks,
        }),
    }
}

/// A message-level `cache_control` marks the message's last block.
fn apply_message_cache<'a>(blocks: &mut [Block<'a>], msg: &'a ChatMessage) {
    if let (Some(cc), Some(last)) = (&msg.cache_control, blocks.last_mut()) {
        last.mark().set(cc);
    }
}

/// System messages: text only.
fn text_blocks(msg: &ChatMessage, i: usize) -> Result<Vec<Block<'_>>, ApiError> {
    let mut out = Vec::new();
    match &msg.content {
        None => {}
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => out.push(Block::text(t, None)),
        Some(MessageContent::Text(_)) => {}
        Some(MessageContent::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) => {
                        if !text.trim().is_empty() {
                            out.push(Block::text(text, cache_control.as_ref()));
                        }
                    }
                    _ => {
                        return Err(ApiError::invalid_field(
                            &format!("messages[{i}].content"),
                            "System messages may only contain text.",
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn user_blocks<'a>(
    msg: &'a ChatMessage,
    i: usize,
    drop_params: bool,
    betas: &mut Vec<&'static str>,
) -> Result<Vec<Block<'a>>, ApiError> {
    let mut out = Vec::new();
    match &msg.content {
        None => {}
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => out.push(Block::text(t, None)),
        Some(MessageContent::Text(_)) => {}
        Some(MessageContent::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let refuse = |message: &str| {
                    ApiError::invalid_field(&format!("messages[{i}].content[{j}]"), message)
                };
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) => {
                        if !text.trim().is_empty() {
                            out.push(Block::text(text, cache_control.as_ref()));
                        }
                    }
                    ContentPart::Known(KnownPart::ImageUrl {
                        image_url,
                        cache_control,
                    }) => out.push(Block::Image {
                        source: image_source(image_url).ok_or_else(|| refuse(IMAGE_URL))?,
                        cache_control: cache_control.as_ref(),
                    }),
                    ContentPart::Known(KnownPart::File {
                        file,
                        cache_control,
                    }) => {
                        let (source, beta) = document_source(file).ok_or_else(|| {
                            refuse(
                                "A file part needs `file_data` (a data: URL), `file_id` or `url`.",
                            )
                        })?;
                        if let Some(beta) = beta {
                            betas.push(beta);
                        }
                        out.push(Block::Document {
                            source,
                            title: file.get("filename").and_then(Value::as_str),
                            cache_control: cache_control.as_ref(),
                        });
                    }
                    ContentPart::Known(KnownPart::InputAudio { .. }) if drop_params => {}
                    ContentPart::Known(KnownPart::InputAudio { .. }) => {
                        return Err(refuse("Anthropic does not accept audio input."));
                    }
                    // Anthropic-native blocks sent through the OpenAI API
                    // (documents, search results) pass as written.
                    ContentPart::Other(v) => out.push(Block::AsWritten(Cow::Borrowed(v))),
                }
            }
        }
    }
    Ok(out)
}

const IMAGE_URL: &str = "image_url must be a data: URL (base64) or an http(s) URL.";

/// `data:` URLs become base64 sources, http(s) URLs url sources.
fn image_source(image: &ImageUrl) -> Option<Source<'_>> {
    let url = image.url();
    if let Some((media_type, data)) = parse_data_url(url) {
        return Some(Source::Base64 { media_type, data });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Some(Source::Url { url });
    }
    None
}

fn document_source(file: &Value) -> Option<(Source<'_>, Option<&'static str>)> {
    if let Some(data) = file.get("file_data").and_then(Value::as_str) {
        if let Some((media_type, b64)) = parse_data_url(data) {
            if media_type == "text/plain" {
                let data = decode_text(b64);
                return Some((
                    Source::Text {
                        media_type: "text/plain",
                        data,
                    },
                    None,
                ));
            }
            return Some((
                Source::Base64 {
                    media_type,
                    data: b64,
                },
                None,
            ));
        }
    }
    if let Some(file_id) = file.get("file_id").and_then(Value::as_str) {
        return Some((Source::File { file_id }, Some("files-api-2025-04-14")));
    }
    if let Some(url) = file.get("url").and_then(Value::as_str) {
        return Some((Source::Url { url }, None));
    }
    None
}

/// Plain-text documents are sent as text, not base64.
fn decode_text(b64: &str) -> Cow<'_, str> {
    use base64::Engine;
    // Not decodable: keep the data as it came, and Anthropic reports a
    // clear error.
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map_or(Cow::Borrowed(b64), Cow::Owned)
}

/// `data:<media type>;base64,<data>`
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn assistant_blocks(msg: &ChatMessage, i: usize) -> Result<Vec<Block<'_>>, ApiError> {
    let mut out = Vec::new();
    // Thinking first, with the signatures Claude needs to see again.
    for b in msg.thinking_blocks.iter().flatten() {
        match b.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                if let Some(signature) = b
                    .get("signature")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    out.push(Block::Thinking {
                        thinking: b.get("thinking"),
                        signature,
                        cache_control: None,
                    });
                }
            }
            Some("redacted_thinking") => out.push(Block::RedactedThinking {
                data: b.get("data"),
                cache_control: None,
            }),
            // Unsigned thinking cannot be sent back; Claude re-thinks.
            _ => {}
        }
    }
    match &msg.content {
        Some(MessageContent::Text(t)) if !t.trim().is_empty() => out.push(Block::text(t, None)),
        Some(MessageContent::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) if !text.trim().is_empty() => {
                        out.push(Block::text(text, cache_control.as_ref()));
                    }
                    ContentPart::Other(v) => out.push(Block::AsWritten(Cow::Borrowed(v))),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let input = serde_json::from_str::<&RawValue>(if args.is_empty() { "{}" } else { args })
            .ok()
            .filter(|v| v.get().starts_with('{'))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    "Tool call arguments must be a JSON object.",
                )
            })?;
        out.push(Block::ToolUse {
            id: tool_id(&call.id),
            name: &call.function.name,
            input,
            cache_control: None,
        });
    }
    Ok(out)
}

/// Whether OpenAI's `user` can be Anthropic's `metadata.user_id`, which
/// refuses anything that looks like an email address or a phone number
/// (as LiteLLM checks); such a `user` is not sent.
fn anthropic_user_id(user: &str) -> bool {
    let digits = user.chars().filter(char::is_ascii_digit).count();
    let phone = digits >= 7
        && user
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    !user.is_empty() && !user.contains('@') && !phone
}

/// Tool-use ids as Anthropic takes them (`^[a-zA-Z0-9_-]+$`): a call
/// another model made (`functions.read_file:0`) is renamed, the same way
/// in its result.
fn tool_id(id: &str) -> Cow<'_, str> {
    crate::providers::clean_tool_id(id, usize::MAX)
}

fn tool_result_block(msg: &ChatMessage, i: usize) -> Result<Block<'_>, ApiError> {
    let tool_use_id = msg
        .tool_call_id
        .as_deref()
        .or(msg.name.as_deref())
        .ok_or_else(|| {
            ApiError::invalid_field(
                &format!("messages[{i}].tool_call_id"),
                "A tool message needs `tool_call_id`.",
            )
        })?;
    let content = match &msg.content {
        Some(MessageContent::Text(t)) if !t.is_empty() => Some(ToolResultContent::Text(t)),
        Some(MessageContent::Parts(parts)) => {
            let mut blocks = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p {
                    ContentPart::Known(KnownPart::Text {
                        text,
                        cache_control,
                    }) if !text.is_empty() => {
                        blocks.push(Block::text(text, cache_control.as_ref()));
                    }
                    ContentPart::Known(KnownPart::ImageUrl { image_url, .. }) => {
                        let source = image_source(image_url).ok_or_else(|| {
                            ApiError::invalid_field(
                                &format!("messages[{i}].content[{j}]"),
                                IMAGE_URL,
                            )
                        })?;
                        blocks.push(Block::Image {
                            source,
                            cache_control: None,
                        });
                    }
                    _ => {}
                }
            }
            (!blocks.is_empty()).then_some(ToolResultContent::Blocks(blocks))
        }
        _ => None,
    };
    Ok(Block::ToolResult {
        tool_use_id: tool_id(tool_use_id),
        content,
        is_error: msg.extra.get("is_error").and_then(Value::as_bool) == Some(true),
        cache_control: msg.cache_control.as_ref(),
    })
}

/// More than four `cache_control` marks: keep the last four (in the
/// order tools → system → messages, which is Anthropic's prefix order:
/// a later breakpoint caches a longer prefix), drop the earlier ones.
fn limit_cache_breakpoints(body: &mut MessagesRequest<'_>) {
    let mut set = 0;
    for_each_mark(body, &mut |m| set += usize::from(m.is_set()));
    let mut excess = set.saturating_sub(MAX_CACHE_BREAKPOINTS);
    if excess == 0 {
        return;
    }
    for_each_mark(body, &mut |m| {
        if excess > 0 && m.is_set() {
            m.clear();
            excess -= 1;
        }
    });
}

/// Every mark of the request, in prefix order: tools, system, then each
/// turn's blocks, a tool result's own blocks before the result's mark.
fn for_each_mark<'a>(body: &mut MessagesRequest<'a>, f: &mut dyn FnMut(Mark<'_, 'a>)) {
    for t in &mut body.tools {
        f(t.mark());
    }
    blocks_marks(&mut body.system, f);
    for turn in &mut body.messages {
        blocks_marks(&mut turn.content, f);
    }
}

fn blocks_marks<'a>(blocks: &mut [Block<'a>], f: &mut dyn FnMut(Mark<'_, 'a>)) {
    for b in blocks {
        if let Block::ToolResult {
            content: Some(ToolResultContent::Blocks(inner)),
            cache_control,
            ..
        } = b
        {
            blocks_marks(inner, f);
            f(Mark::Field(cache_control));
        } else {
            f(b.mark());
        }
    }
}
