//! Claude Code's requests, translated for a model that is not Claude, and
//! the answers translated back.

use super::*;
use crate::providers::StreamEvent;
use crate::types::anthropic::MessagesRequest;
use crate::types::{ChatCompletionResponse, MessageContent, Role};
use bytes::Bytes;
use serde_json::{Value, json};

fn canonical(v: Value, target: Target) -> crate::types::ChatCompletionRequest {
    let req: MessagesRequest = serde_json::from_value(v).unwrap();
    let c = to_canonical(req, target).unwrap();
    // The route writes it by hand: byte for byte what serde writes.
    let sent = crate::json::written_body(&c, 0).unwrap();
    assert_eq!(sent, serde_json::to_vec(&c).unwrap());
    c
}

const CLAUDE_CODE: &str = r#"{
  "model": "claude-sonnet-4-20250514", "max_tokens": 32000, "stream": true,
  "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
  "messages": [
    {"role": "user", "content": [{"type": "text", "text": "Fix the bug in main.rs"}]},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "Look first.", "signature": "EqQB"},
      {"type": "text", "text": "Reading it."},
      {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "main.rs"}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "fn main() {}"}]},
      {"type": "text", "text": "go on", "cache_control": {"type": "ephemeral"}}]}
  ],
  "tools": [{"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}],
  "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
  "metadata": {"user_id": "user_abc"},
  "temperature": 1,
  "thinking": {"type": "enabled", "budget_tokens": 10000}
}"#;

#[test]
fn claude_code_request_becomes_a_canonical_request() {
    let v: Value = serde_json::from_str(CLAUDE_CODE).unwrap();
    let c = canonical(
        v,
        Target {
            openai_proper: true,
            supports_reasoning: true,
            claude: false,
            plain_system: false,
            deepseek: false,
            drop_params: false,
        },
    );
    assert_eq!(c.max_completion_tokens, Some(32000));
    assert!(c.max_tokens.is_none());
    assert!(
        c.is_stream() && c.include_usage(),
        "usage is needed for message_delta"
    );
    assert_eq!(c.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(c.user.as_deref(), Some("user_abc"));
    assert_eq!(c.parallel_tool_calls, Some(false));
    assert_eq!(
        c.tools.as_ref().unwrap()[0].as_function().unwrap().name,
        "Read"
    );

    let roles: Vec<Role> = c.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    let sys = serde_json::to_value(&c.messages[0]).unwrap();
    assert_eq!(sys["content"][0]["cache_control"]["type"], "ephemeral");
    let asst = &c.messages[2];
    assert_eq!(asst.content.as_ref().unwrap().text(), "Reading it.");
    assert!(
        asst.thinking_blocks.is_none(),
        "Claude's signed thinking is not sent to other models"
    );
    let call = &asst.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (call.id.as_str(), call.function.arguments.as_str()),
        ("toolu_01", "{\"file_path\":\"main.rs\"}")
    );
    assert_eq!(c.messages[3].tool_call_id.as_deref(), Some("toolu_01"));
    assert_eq!(
        c.messages[3].content.as_ref().unwrap().text(),
        "fn main() {}"
    );
    let MessageContent::Parts(p) = c.messages[4].content.as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(
        serde_json::to_value(&p[0]).unwrap()["cache_control"]["type"],
        "ephemeral"
    );
}

#[test]
fn non_openai_targets_keep_max_tokens_and_top_k_and_drop_thinking_they_cannot_do() {
    let c = canonical(
        json!({"model": "m", "max_tokens": 100, "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 2000},
               "messages": [{"role": "user", "content": "hi"}]}),
        Target::default(),
    );
    assert_eq!(c.max_tokens, Some(100));
    assert_eq!(c.extra["top_k"], 5);
    assert!(c.reasoning_effort.is_none());
}

#[test]
fn system_role_inside_messages_and_images_and_tool_errors() {
    let c = canonical(
        json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "run", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true}]}]}),
        Target::default(),
    );
    assert_eq!(c.messages[0].role, Role::System);
    let img = serde_json::to_value(&c.messages[1]).unwrap();
    assert_eq!(
        img["content"][0]["image_url"]["url"],
        "data:image/png;base64,iVBO"
    );
    assert_eq!(
        c.messages[3].content.as_ref().unwrap().text(),
        "Error: boom"
    );
}

/// Every block a user turn can carry, as the canonical request holds it:
/// images and documents as data URLs, files or text; tool results as tool
/// messages first, their text joined by lines and their images after them
/// in the user message; cache breakpoints kept where they were set.
#[test]
fn every_block_of_a_user_turn_lands_where_openai_wants_it() {
    let cc = json!({"type": "ephemeral"});
    let c = canonical(
        json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look", "cache_control": cc},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}, "cache_control": cc},
            {"type": "image", "source": {"type": "base64", "data": "iVBO"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}, "title": "a.pdf"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}, "cache_control": cc},
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "tool_result", "tool_use_id": "t1", "cache_control": cc, "content": [
                {"type": "text", "text": "line 1"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"}},
                {"type": "text", "text": "line 2"}]},
            {"type": "tool_result", "tool_use_id": "t2", "is_error": true, "content": "Error: already said"}]}]}),
        Target::default(),
    );
    assert_eq!(
        serde_json::to_value(&c.messages).unwrap(),
        json!([
            {"role": "tool", "tool_call_id": "t1", "content": "line 1\nline 2", "cache_control": cc},
            {"role": "tool", "tool_call_id": "t2", "content": "Error: already said"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}},
                {"type": "text", "text": "look", "cache_control": cc},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}, "cache_control": cc},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
                {"type": "text", "text": "notes", "cache_control": cc}]}
        ])
    );
    // Read back as a client's request, it is the same request.
    let again: crate::types::ChatCompletionRequest =
        serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn server_tools_and_unknown_fields_are_refused_by_name_unless_dropped() {
    let v = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]});
    let req: MessagesRequest = serde_json::from_value(v.clone()).unwrap();
    let e = to_canonical(req, Target::default()).unwrap_err();
    assert!(e.message.contains("web_search"), "{}", e.message);
    let req: MessagesRequest = serde_json::from_value(v).unwrap();
    assert!(
        to_canonical(
            req,
            Target {
                drop_params: true,
                ..Default::default()
            }
        )
        .unwrap()
        .tools
        .is_none()
    );

    let req: MessagesRequest = serde_json::from_value(json!({"model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}], "mcp_servers": []}))
    .unwrap();
    assert_eq!(
        to_canonical(req, Target::default())
            .unwrap_err()
            .param
            .as_deref(),
        Some("mcp_servers")
    );

    // The gateway's own fields are the route's to read, not the model's.
    let c = canonical(
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
               "drop_params": false, "num_retries": 2, "service_tier": "auto"}),
        Target::default(),
    );
    assert!(c.extra.is_empty(), "{:?}", c.extra);
}

#[test]
fn canonical_response_becomes_a_message() {
    let resp: ChatCompletionResponse = serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"a\"}"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_tokens_details": {"cached_tokens": 60}}
    })).unwrap();
    let m = serde_json::to_value(from_canonical(resp, "claude-sonnet-4")).unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["model"], "claude-sonnet-4");
    assert_eq!(
        m["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    assert_eq!(
        m["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "a"}})
    );
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["usage"]["input_tokens"], 40);
    assert_eq!(m["usage"]["cache_read_input_tokens"], 60);
    assert_eq!(m["usage"]["output_tokens"], 20);
}

fn chunk(v: Value) -> StreamEvent {
    StreamEvent::Data(Bytes::from(v.to_string()))
}

fn events(raw: &[StreamEvent]) -> Vec<(String, Value)> {
    let mut out = vec![];
    for e in raw {
        let StreamEvent::Raw(b) = e else {
            panic!("{e:?}")
        };
        for ev in std::str::from_utf8(b)
            .unwrap()
            .split("\n\n")
            .filter(|s| !s.is_empty())
        {
            let mut lines = ev.lines();
            let name = lines
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_owned();
            let data: Value =
                serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap())
                    .unwrap();
            assert_eq!(
                data["type"],
                name.as_str(),
                "event name and data type agree"
            );
            out.push((name, data));
        }
    }
    out
}

#[test]
fn canonical_chunks_become_anthropic_events() {
    let c = |delta: Value, finish: Value| {
        chunk(
            json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let mut enc = MessagesEncoder::new("claude-sonnet-4");
    let mut evs = vec![
        c(json!({"role": "assistant", "content": ""}), Value::Null),
        c(json!({"reasoning_content": "hmm"}), Value::Null),
        c(json!({"content": "Hel"}), Value::Null),
        c(json!({"content": "lo"}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "Read", "arguments": ""}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"file_path\":"}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a\"}"}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "Read", "arguments": "{}"}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        chunk(
            json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
            "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}}),
        ),
        StreamEvent::Done,
    ];
    enc.encode(&mut evs);
    let got = events(&evs);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got[1].1["content_block"]["type"], "thinking");
    assert_eq!(
        got[5].1["delta"],
        json!({"type": "text_delta", "text": "Hel"})
    );
    assert_eq!(got[8].1["content_block"]["id"], "call_a");
    assert_eq!(got[8].1["index"], 2);
    assert_eq!(got[9].1["delta"]["partial_json"], "{\"file_path\":");
    assert_eq!(got[12].1["index"], 3);
    assert_eq!(got[15].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(got[15].1["usage"]["output_tokens"], 9);
    assert_eq!(got[15].1["usage"]["input_tokens"], 50);
}

#[test]
fn an_upstream_failure_mid_stream_becomes_an_error_event() {
    let mut enc = MessagesEncoder::new("m");
    let mut evs = vec![
        chunk(
            json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "par"}, "finish_reason": null}]}),
        ),
        StreamEvent::error(crate::types::ApiError::bad_gateway("The stream broke off")),
    ];
    enc.encode(&mut evs);
    let got = events(&evs);
    let (name, data) = got.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["message"], "The stream broke off");
    assert!(!got.iter().any(|(n, _)| n == "message_stop"));
}

#[test]
fn claude_behind_another_api_gets_its_thinking_and_signatures_back() {
    let v: Value = serde_json::from_str(CLAUDE_CODE).unwrap();
    let claude = Target {
        supports_reasoning: true,
        claude: true,
        ..Default::default()
    };
    let c = canonical(v.clone(), claude);
    assert_eq!(
        c.extra["thinking"],
        json!({"type": "enabled", "budget_tokens": 10000}),
        "the budget as the client set it, not an effort level"
    );
    assert!(c.reasoning_effort.is_none());
    assert_eq!(
        c.messages[2].thinking_blocks,
        Some(vec![
            json!({"type": "thinking", "thinking": "Look first.", "signature": "EqQB"})
        ])
    );
    // Redacted thinking goes back too; unsigned thinking cannot.
    let mut v2 = v;
    v2["messages"][1]["content"] = json!([
        {"type": "thinking", "thinking": "unsigned", "signature": ""},
        {"type": "redacted_thinking", "data": "EmwK"},
        {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {}}]);
    let c = canonical(v2, claude);
    assert_eq!(
        c.messages[2].thinking_blocks,
        Some(vec![json!({"type": "redacted_thinking", "data": "EmwK"})])
    );
}

#[test]
fn adaptive_thinking_and_output_config_map_for_other_models() {
    let ask = |extra: Value, target: Target| {
        let mut v = json!({"model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        canonical(v, target)
    };
    let reasons = Target {
        supports_reasoning: true,
        ..Default::default()
    };
    let c = ask(
        json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}),
        reasons,
    );
    assert_eq!(c.reasoning_effort.as_deref(), Some("high"));
    assert!(c.extra.get("output_config").is_none());
    let c = ask(json!({"thinking": {"type": "adaptive"}}), reasons);
    assert_eq!(c.reasoning_effort.as_deref(), Some("medium"));
    let c = ask(
        json!({"output_config": {"format": {"type": "json_schema",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}),
        Target::default(),
    );
    assert_eq!(
        c.response_format.as_ref().unwrap()["json_schema"]["schema"]["properties"]["a"]["type"],
        "string"
    );
}

#[test]
fn signed_and_redacted_thinking_come_back_whole_and_streamed() {
    let resp: ChatCompletionResponse = serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
            "content": "Hi", "reasoning_content": "think",
            "thinking_blocks": [{"type": "thinking", "thinking": "think", "signature": "SIG"},
                                {"type": "redacted_thinking", "data": "RED"}]}}]}))
    .unwrap();
    let m = serde_json::to_value(from_canonical(resp, "claude")).unwrap();
    assert_eq!(
        m["content"],
        json!([{"type": "thinking", "thinking": "think", "signature": "SIG"},
               {"type": "redacted_thinking", "data": "RED"},
               {"type": "text", "text": "Hi"}])
    );

    let c = |delta: Value| {
        chunk(
            json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
        "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
        )
    };
    let mut enc = MessagesEncoder::new("claude");
    let mut evs = vec![
        c(
            json!({"reasoning_content": "a", "thinking_blocks": [{"type": "thinking", "thinking": "a"}]}),
        ),
        c(
            json!({"reasoning_content": "b", "thinking_blocks": [{"type": "thinking", "thinking": "b"}]}),
        ),
        c(json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "SIG"}]})),
        c(json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "RED"}]})),
        c(json!({"content": "Hi"})),
        StreamEvent::Done,
    ];
    enc.encode(&mut evs);
    let got = events(&evs);
    let deltas: Vec<&Value> = got
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| &d["delta"])
        .collect();
    assert_eq!(
        deltas,
        [
            &json!({"type": "thinking_delta", "thinking": "a"}),
            &json!({"type": "thinking_delta", "thinking": "b"}),
            &json!({"type": "signature_delta", "signature": "SIG"}),
            &json!({"type": "text_delta", "text": "Hi"}),
        ]
    );
    let starts: Vec<(&Value, &Value)> = got
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| (&d["index"], &d["content_block"]))
        .collect();
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[0].1["type"], "thinking");
    assert_eq!(
        starts[1],
        (
            &json!(1),
            &json!({"type": "redacted_thinking", "data": "RED"})
        )
    );
    assert_eq!(starts[2].1["type"], "text");
}

#[test]
fn groq_and_deepseek_get_plain_text_and_deepseek_its_reasoning_back() {
    let v: Value = serde_json::from_str(CLAUDE_CODE).unwrap();
    // Groq: the system prompt as a string; other messages as they are.
    let groq = Target {
        plain_system: true,
        ..Default::default()
    };
    let c = canonical(v.clone(), groq);
    assert_eq!(
        c.messages[0].content,
        Some(MessageContent::Text("You are Claude Code.".into()))
    );
    assert!(matches!(
        c.messages[1].content,
        Some(MessageContent::Parts(_))
    ));
    assert!(c.messages[2].reasoning_content.is_none());
    // DeepSeek: every message's text as a string, and its reasoning (the
    // thinking it showed) back on the assistant turn.
    let deepseek = Target {
        plain_system: true,
        deepseek: true,
        supports_reasoning: true,
        ..Default::default()
    };
    let c = canonical(v, deepseek);
    for m in &c.messages {
        assert!(
            !matches!(m.content, Some(MessageContent::Parts(_))),
            "{m:?}"
        );
    }
    assert_eq!(
        c.messages[1].content.as_ref().unwrap().text(),
        "Fix the bug in main.rs"
    );
    assert_eq!(
        c.messages[2].reasoning_content.as_deref(),
        Some("Look first.")
    );
    assert!(c.messages[2].thinking_blocks.is_none());
    // Not on a turn without tool calls, where older models refuse it.
    let mut v: Value = serde_json::from_str(CLAUDE_CODE).unwrap();
    v["messages"][1]["content"].as_array_mut().unwrap().pop();
    v["messages"][2]["content"] = json!("go on");
    let c = canonical(v, deepseek);
    assert!(
        c.messages[2].reasoning_content.is_none(),
        "{:?}",
        c.messages[2]
    );
}

#[test]
fn reasoning_named_reasoning_is_thinking_too() {
    // OpenRouter names it `reasoning`; the provider layer gives it
    // LiteLLM's name, whole and streamed, before the Messages route reads it.
    use crate::deployment::Deployment;
    use crate::providers::{self, ChatCall, ProviderKind};
    use crate::types::RawChatRequest;
    let dep = Deployment::new("or", ProviderKind::OpenRouter, "some/model");
    let raw = RawChatRequest::parse(br#"{"model":"or","messages":[]}"#).unwrap();
    let call = ChatCall {
        request: &raw,
        typed: None,
        drop_params: false,
    };
    let body = json!({
        "id": "gen-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
            "content": "Hi", "reasoning": "thought it over"}}]});
    let resp = providers::typed_chat_response(
        &dep,
        &call,
        200,
        &http::HeaderMap::new(),
        Bytes::from(body.to_string()),
    )
    .unwrap()
    .into_typed()
    .unwrap();
    let m = serde_json::to_value(from_canonical(resp, "claude")).unwrap();
    assert_eq!(m["content"][0]["thinking"], "thought it over");
    let mut upstream = providers::chat_stream(&dep, &call).unwrap();
    let mut evs = Vec::new();
    let sse = format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"id": "gen-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"reasoning": "hmm"}, "finish_reason": null}]})
    );
    upstream.push(sse.as_bytes(), &mut evs);
    let mut enc = MessagesEncoder::new("claude");
    enc.encode(&mut evs);
    let got = events(&evs);
    assert_eq!(got[1].1["content_block"]["type"], "thinking");
    assert_eq!(
        got[2].1["delta"],
        json!({"type": "thinking_delta", "thinking": "hmm"})
    );
}
