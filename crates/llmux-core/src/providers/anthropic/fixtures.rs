//! Fixtures: what coding agents send, what Claude answers.

use super::request::{JSON_TOOL, build};
use super::response::to_openai;
use super::stream::AnthropicStream;
use crate::providers::{StreamEvent, StreamTranslator};
use crate::types::ChatCompletionRequest;
use crate::types::anthropic::MessagesResponse;
use serde_json::{Value, json};

fn req(v: Value) -> ChatCompletionRequest {
    serde_json::from_value(v).unwrap()
}

fn body(v: Value) -> Value {
    let r = req(v);
    let built = build(&r, "claude-sonnet-4-20250514", Some(64000), false).unwrap();
    // What is sent is written by hand: byte for byte what serde writes.
    let sent = crate::json::written_body(&built.body, 0).unwrap();
    assert_eq!(sent, serde_json::to_vec(&built.body).unwrap());
    serde_json::from_slice(&sent).unwrap()
}

#[test]
fn system_messages_anywhere_become_system_blocks_and_turns_alternate() {
    let b = body(json!({"model": "m", "messages": [
        {"role": "system", "content": "You are Roo."},
        {"role": "user", "content": "one"},
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}]},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "ok"},
        {"role": "assistant", "content": "and more"},
        {"role": "developer", "content": "dev rule"}
    ]}));
    let sys: Vec<&str> = b["system"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert_eq!(sys, ["You are Roo.", "Be brief.", "Use tools.", "dev rule"]);
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["content"].as_array().unwrap().len(), 2);
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(
        b["max_tokens"], 64000,
        "required upstream: the catalog's max output"
    );
}

#[test]
fn a_final_assistant_message_is_a_prefill_without_trailing_space() {
    let b = body(json!({"model": "m", "messages": [
        {"role": "user", "content": "Write JSON"}, {"role": "assistant", "content": "{\n  "}]}));
    let last = b["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "assistant");
    assert_eq!(last["content"][0]["text"], "{");
}

#[test]
fn a_conversation_opening_with_the_assistant_gets_a_user_turn_first() {
    let b = body(json!({"model": "m", "messages": [
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "fix it"}]}));
    let roles: Vec<&str> = b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
}

#[test]
fn images_and_documents_become_sources() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "spec.pdf"}}
        ]}]}),
    );
    let c = &b["messages"][0]["content"];
    assert_eq!(
        c[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        c[2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
    );
    assert_eq!(c[3]["type"], "document");
    assert_eq!(
        c[3]["source"],
        json!({"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="})
    );
    assert_eq!(c[3]["title"], "spec.pdf");
}

#[test]
fn cache_control_lands_on_the_matching_blocks() {
    let eph = json!({"type": "ephemeral"});
    let b = body(json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": eph}]},
        {"role": "user", "content": "hello", "cache_control": eph},
        {"role": "assistant", "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "result", "cache_control": eph}
    ], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}, "cache_control": eph}]}));
    assert_eq!(b["system"][0]["cache_control"], eph);
    assert_eq!(b["messages"][0]["content"][0]["cache_control"], eph);
    assert_eq!(b["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(b["messages"][2]["content"][0]["cache_control"], eph);
    assert_eq!(b["tools"][0]["cache_control"], eph);
}

#[test]
fn anthropic_native_tools_pass_with_their_cache_mark_and_beta() {
    let eph = json!({"type": "ephemeral"});
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "computer_20250124", "function": {"name": "computer"}, "name": "computer",
                   "display_width_px": 1024, "cache_control": eph}]}),
    );
    let built = build(&r, "c", None, false).unwrap();
    assert_eq!(built.betas, ["computer-use-2025-01-24"]);
    assert_eq!(
        serde_json::to_value(&built.body).unwrap()["tools"][0],
        json!({"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "cache_control": eph})
    );
}

#[test]
fn tool_call_arguments_are_sent_as_written_and_must_be_json() {
    let call = |args: &str| {
        req(json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                "function": {"name": "f", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"}]}))
    };
    let r = call(" {\"path\": \"caf\\u00e9\", \"n\": [1, 2]} ");
    let bytes = serde_json::to_vec(&build(&r, "c", None, false).unwrap().body).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(r#""input":{"path": "caf\u00e9", "n": [1, 2]}"#),
        "{text}"
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v["messages"][1]["content"][0]["input"],
        json!({"path": "café", "n": [1, 2]})
    );
    let r = call("  ");
    let v = serde_json::to_value(build(&r, "c", None, false).unwrap().body).unwrap();
    assert_eq!(v["messages"][1]["content"][0]["input"], json!({}));
    for bad in ["{\"path\": ", "[1, 2]", "5", "\"text\""] {
        let r = call(bad);
        let e = build(&r, "c", None, false).unwrap_err();
        assert_eq!(
            (e.status, e.param.as_deref()),
            (400, Some("messages[1].tool_calls[0].function.arguments")),
            "{bad}"
        );
    }
}

#[test]
fn breakpoints_are_counted_on_tools_as_written_blocks_and_inside_tool_results() {
    let eph = json!({"type": "ephemeral"});
    // In prefix order: a function tool, a native tool, a system block, a
    // block passed as written, a text block inside a tool result, the
    // result itself, and the last user text. Seven marks: the first three go.
    let r = req(json!({"model": "m",
        "tools": [
            {"type": "function", "function": {"name": "f"}, "cache_control": eph},
            {"type": "bash_20250124", "function": {"name": "bash"}, "name": "bash", "cache_control": eph}],
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": eph}]},
            {"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t",
                "content": [], "cache_control": eph}]},
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "cache_control": eph,
             "content": [{"type": "text", "text": "inner", "cache_control": eph}]},
            {"role": "user", "content": "last", "cache_control": eph}]}));
    let before = r.clone();
    let b = serde_json::to_value(build(&r, "c", None, false).unwrap().body).unwrap();
    assert_eq!(r, before, "the client's request is not changed");
    assert!(b["tools"][0].get("cache_control").is_none());
    assert!(b["tools"][1].get("cache_control").is_none());
    assert!(b["system"][0].get("cache_control").is_none());
    let m = &b["messages"];
    assert_eq!(m[0]["content"][0]["type"], "search_result");
    assert_eq!(m[0]["content"][0]["cache_control"], eph);
    assert_eq!(m[2]["content"][0]["type"], "tool_result");
    assert_eq!(m[2]["content"][0]["content"][0]["cache_control"], eph);
    assert_eq!(m[2]["content"][0]["cache_control"], eph);
    assert_eq!(m[2]["content"][1]["cache_control"], eph);
    assert_eq!(b.to_string().matches("cache_control").count(), 4);

    // Two more marks later on: the as-written block's mark and the one
    // inside the tool result go too, the client's copy untouched.
    let mut v = serde_json::to_value(&before).unwrap();
    let msgs = v["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": "ok", "cache_control": eph}));
    msgs.push(json!({"role": "user", "content": "again", "cache_control": eph}));
    let r = req(v);
    let before = r.clone();
    let b = serde_json::to_value(build(&r, "c", None, false).unwrap().body).unwrap();
    assert_eq!(r, before);
    let m = &b["messages"];
    assert!(m[0]["content"][0].get("cache_control").is_none());
    assert_eq!(
        m[0]["content"][0]["title"], "t",
        "the rest of the block as written"
    );
    assert!(
        m[2]["content"][0]["content"][0]
            .get("cache_control")
            .is_none()
    );
    assert_eq!(m[2]["content"][0]["cache_control"], eph);
    assert_eq!(b.to_string().matches("cache_control").count(), 4);
}

#[test]
fn more_than_four_breakpoints_keep_the_last_four() {
    let eph = json!({"type": "ephemeral"});
    let mut messages = vec![
        json!({"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": eph}]}),
    ];
    for i in 0..6 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": [{"type": "text", "text": format!("m{i}"), "cache_control": eph}]}));
    }
    let b = body(json!({"model": "m", "messages": messages}));
    let s = b.to_string();
    assert_eq!(s.matches("cache_control").count(), 4, "{s}");
    assert!(
        b["system"][0].get("cache_control").is_none(),
        "the earliest go first"
    );
    assert_eq!(
        b["messages"][5]["content"][0]["cache_control"], eph,
        "the latest stay"
    );
}

#[test]
fn tools_choices_calls_and_results() {
    let b = body(json!({"model": "m",
        "messages": [
            {"role": "user", "content": "read a and b"},
            {"role": "assistant", "content": "Reading.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"b\"}"}}]},
            {"role": "tool", "tool_call_id": "call_a", "content": "A"},
            {"role": "tool", "tool_call_id": "call_b", "content": "", "is_error": true},
            {"role": "user", "content": "now summarise"}
        ],
        "tools": [{"type": "function", "function": {"name": "read_file", "description": "Read", "strict": true,
                   "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
        "tool_choice": "required", "parallel_tool_calls": false}));
    let tool = &b["tools"][0];
    assert_eq!(tool["name"], "read_file");
    assert!(tool.get("strict").is_none(), "Anthropic has no `strict`");
    assert_eq!(tool["input_schema"]["properties"]["path"]["type"], "string");
    assert_eq!(
        b["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    let asst = &b["messages"][1]["content"];
    assert_eq!(asst[0], json!({"type": "text", "text": "Reading."}));
    assert_eq!(
        asst[1],
        json!({"type": "tool_use", "id": "call_a", "name": "read_file", "input": {"path": "a"}})
    );
    let results = b["messages"][2]["content"].as_array().unwrap();
    assert_eq!(
        b["messages"].as_array().unwrap().len(),
        3,
        "results and the next user text share one turn"
    );
    assert_eq!(
        results[0],
        json!({"type": "tool_result", "tool_use_id": "call_a", "content": "A"})
    );
    assert_eq!(
        results[1],
        json!({"type": "tool_result", "tool_use_id": "call_b", "is_error": true})
    );
    assert_eq!(results[2]["text"], "now summarise");

    for (choice, want) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "read_file"}}),
            json!({"type": "tool", "name": "read_file"}),
        ),
    ] {
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "read_file"}}], "tool_choice": choice}),
        );
        assert_eq!(b["tool_choice"], want);
    }
}

#[test]
fn parameters_map_and_unsupported_ones_are_named() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "max_completion_tokens": 100, "temperature": 0.2, "top_p": 0.9, "top_k": 5,
        "stop": ["END", " "], "user": "u-42", "prompt_cache_key": "roo-task-1", "stream": true}),
    );
    assert_eq!(b["max_tokens"], 100);
    assert_eq!(b["stream"], true);
    assert_eq!(b["temperature"], 0.2);
    assert_eq!(b["top_k"], 5);
    assert_eq!(b["stop_sequences"], json!(["END"]));
    assert_eq!(b["metadata"], json!({"user_id": "u-42"}));

    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "presence_penalty": 0.5}),
    );
    let e = build(&r, "c", None, false).unwrap_err();
    assert_eq!(
        (e.status, e.param.as_deref()),
        (400, Some("presence_penalty"))
    );
    assert!(e.message.contains("drop_params"));
    let dropped = serde_json::to_value(build(&r, "c", None, true).unwrap().body).unwrap();
    assert!(dropped.get("presence_penalty").is_none());
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}, "n": 2}),
    );
    assert_eq!(
        build(&r, "c", None, false).unwrap_err().param.as_deref(),
        Some("n")
    );
}

#[test]
fn response_format_becomes_a_forced_tool_and_comes_back_as_text() {
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
    );
    let built = build(&r, "c", None, false).unwrap();
    assert!(built.json_tool);
    let body = serde_json::to_value(&built.body).unwrap();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": JSON_TOOL})
    );
    assert_eq!(
        body["tools"][0]["input_schema"]["properties"]["a"]["type"],
        "integer"
    );

    let resp: MessagesResponse = serde_json::from_value(json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude", "content": [{"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {"a": 1}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}})).unwrap();
    let out = to_openai(resp, true, 1);
    assert_eq!(out.choices[0].message.content.as_deref(), Some("{\"a\":1}"));
    assert!(out.choices[0].message.tool_calls.is_none());
    assert_eq!(out.choices[0].finish_reason.as_deref(), Some("stop"));
}

#[test]
fn reasoning_effort_and_thinking_map_and_signatures_round_trip() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high", "max_tokens": 1000}),
    );
    assert_eq!(
        b["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert!(
        b["max_tokens"].as_u64().unwrap() > 4096,
        "room beyond the budget"
    );
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled", "budget_tokens": 2000}}),
    );
    assert_eq!(b["thinking"]["budget_tokens"], 2000);

    // A previous turn's thinking goes back with its signature, first.
    let b = body(json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "answer", "reasoning_content": "hmm",
         "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                             {"type": "redacted_thinking", "data": "opaque"}]},
        {"role": "user", "content": "y"}]}));
    let asst = &b["messages"][1]["content"];
    assert_eq!(
        asst[0],
        json!({"type": "thinking", "thinking": "hmm", "signature": "sig=="})
    );
    assert_eq!(
        asst[1],
        json!({"type": "redacted_thinking", "data": "opaque"})
    );
    assert_eq!(asst[2]["text"], "answer");
}

#[test]
fn response_with_thinking_text_tools_and_cache_usage() {
    let resp: MessagesResponse = serde_json::from_value(json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "content": [
            {"type": "thinking", "thinking": "Let me look.", "signature": "EqQBCgIYAhIM"},
            {"type": "text", "text": "I'll read both."},
            {"type": "tool_use", "id": "toolu_01", "name": "read_file", "input": {"path": "a"}},
            {"type": "tool_use", "id": "toolu_02", "name": "read_file", "input": {"path": "b"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 50, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 300}
    })).unwrap();
    let out = to_openai(resp, false, 7);
    let m = &out.choices[0].message;
    assert_eq!(m.content.as_deref(), Some("I'll read both."));
    assert_eq!(m.reasoning_content.as_deref(), Some("Let me look."));
    assert_eq!(
        m.thinking_blocks.as_ref().unwrap()[0]["signature"],
        "EqQBCgIYAhIM"
    );
    let calls = m.tool_calls.as_ref().unwrap();
    assert_eq!(
        (calls[1].id.as_str(), calls[1].function.arguments.as_str()),
        ("toolu_02", "{\"path\":\"b\"}")
    );
    assert_eq!(out.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let u = out.usage.unwrap();
    assert_eq!(u.prompt_tokens, 420, "input + cache reads + cache writes");
    assert_eq!(u.completion_tokens, 50);
    assert_eq!(u.cached_tokens(), 300);
    assert_eq!(u.cache_read_input_tokens, Some(300));
    assert_eq!(u.cache_creation_input_tokens, Some(20));
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    use super::response::finish_reason;
    assert_eq!(finish_reason(Some("end_turn"), false), "stop");
    assert_eq!(finish_reason(Some("stop_sequence"), false), "stop");
    assert_eq!(finish_reason(Some("max_tokens"), false), "length");
    assert_eq!(finish_reason(Some("tool_use"), true), "tool_calls");
    assert_eq!(finish_reason(Some("refusal"), false), "content_filter");
    assert_eq!(finish_reason(Some("pause_turn"), false), "stop");
}

const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-20250514\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Reading\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"read_file\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\\\":\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"a\\\"}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"read_file\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn chunks(out: &[StreamEvent]) -> Vec<Value> {
    out.iter()
        .filter_map(|e| match e {
            StreamEvent::Data(d) => Some(serde_json::from_slice(d).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn stream_events_become_openai_chunks_in_order() {
    let mut t = AnthropicStream::new(true, false, "claude-sonnet-4", 1);
    let mut out = vec![];
    // Byte by byte: events split across reads must not matter.
    for b in STREAM.as_bytes().chunks(7) {
        t.push(b, &mut out);
    }
    t.finish(&mut out);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(c[0]["id"], "msg_s");
    assert_eq!(c[1]["choices"][0]["delta"]["reasoning_content"], "Let me");
    assert_eq!(
        c[2]["choices"][0]["delta"]["thinking_blocks"][0]["signature"],
        "EqQB"
    );
    assert_eq!(c[3]["choices"][0]["delta"]["content"], "Reading");
    let t0 = &c[4]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (
            t0["index"].as_u64(),
            t0["id"].as_str(),
            t0["function"]["name"].as_str()
        ),
        (Some(0), Some("toolu_a"), Some("read_file"))
    );
    let args: String = c
        .iter()
        .filter_map(|x| x["choices"].get(0)?["delta"]["tool_calls"].get(0).cloned())
        .filter(|tc| tc["index"] == 0)
        .filter_map(|tc| tc["function"]["arguments"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(args, "{\"path\":\"a\"}");
    assert!(c.iter().any(|x| {
        x["choices"]
            .get(0)
            .is_some_and(|ch| ch["delta"]["tool_calls"][0]["index"] == 1)
    }));
    let finish = &c[c.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = c.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 35);
    assert_eq!(usage["usage"]["completion_tokens"], 42);
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
    assert_eq!(t.usage().unwrap().completion_tokens, 42);
}

/// With `response_format` the answer comes as the forced JSON tool's
/// arguments and goes to the client as text: pieces copied as they came and
/// pieces decoded (a `\u` escape) alike, and the answer ends with `stop`.
#[test]
fn a_json_mode_stream_is_text_to_the_client() {
    let stream = format!(
        "event: message_start\n\
data: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_j\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"usage\":{{\"input_tokens\":5,\"output_tokens\":1}}}}}}\n\n\
event: content_block_start\n\
data: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"toolu_j\",\"name\":\"{JSON_TOOL}\",\"input\":{{}}}}}}\n\n\
event: content_block_delta\n\
data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{{\\\"city\\\": \"}}}}\n\n\
event: content_block_delta\n\
data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Z\\u00fcrich\\\"}}\"}}}}\n\n\
event: content_block_stop\n\
data: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
event: message_delta\n\
data: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"tool_use\"}},\"usage\":{{\"output_tokens\":9}}}}\n\n\
event: message_stop\n\
data: {{\"type\":\"message_stop\"}}\n\n"
    );
    let mut t = AnthropicStream::new(false, true, "claude", 1);
    let mut out = vec![];
    t.push(stream.as_bytes(), &mut out);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    let text: String = c
        .iter()
        .filter_map(|x| x["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "{\"city\": \"Z\u{fc}rich\"}");
    assert!(
        c.iter()
            .all(|x| x["choices"][0]["delta"].get("tool_calls").is_none())
    );
    assert_eq!(c.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[test]
fn an_error_event_mid_stream_is_an_error_not_a_short_success() {
    let mut t = AnthropicStream::new(true, false, "c", 1);
    let mut out = vec![];
    let head = STREAM.split("event: content_block_stop").next().unwrap();
    t.push(head.as_bytes(), &mut out);
    t.push(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", &mut out);
    t.finish(&mut out);
    let StreamEvent::Error(e) = out.last().unwrap() else {
        panic!("{out:?}")
    };
    assert_eq!((e.status, e.message.as_str()), (503, "Overloaded"));
    assert!(e.retryable);
    assert!(!out.contains(&StreamEvent::Done));
}

#[test]
fn stream_blocks_are_told_apart_by_index_and_a_wild_index_is_an_error() {
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let start = ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude", "content": [], "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    );
    // A tool block at index 2 opened before the text block at 0: each
    // delta goes by its block's kind.
    let body = [
        start.clone(),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":1}"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "never opened"}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
    .concat();
    let mut t = AnthropicStream::new(false, false, "c", 1);
    let mut out = vec![];
    t.push(body.as_bytes(), &mut out);
    let c = chunks(&out);
    let deltas: Vec<&Value> = c.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[1]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(
        deltas[2]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":1}"
    );
    assert_eq!(deltas[3]["content"], "hi");
    assert_eq!(
        c.len(),
        5,
        "the delta of a block never opened is skipped: {c:?}"
    );
    assert_eq!(out.last(), Some(&StreamEvent::Done));

    // A block past the table's end: an error, and nothing of the block
    // before it.
    for block in [
        json!({"type": "text", "text": "early text"}),
        json!({"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}),
    ] {
        let wild = ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 4_000_000_000u32, "content_block": block}),
        );
        let mut t = AnthropicStream::new(false, false, "c", 1);
        let mut out = vec![];
        t.push(format!("{start}{wild}").as_bytes(), &mut out);
        assert_eq!(out.len(), 2, "the role chunk, then the error: {out:?}");
        let StreamEvent::Error(e) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(e.status, 502);
        assert!(
            e.message.contains("content block 4000000000"),
            "{}",
            e.message
        );
    }
}

#[test]
fn a_stream_cut_before_message_stop_is_an_error() {
    let mut t = AnthropicStream::new(false, false, "c", 1);
    let mut out = vec![];
    t.push(
        STREAM
            .split("event: message_delta")
            .next()
            .unwrap()
            .as_bytes(),
        &mut out,
    );
    t.finish(&mut out);
    assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.status == 502));
    assert!(t.usage().is_some(), "what was used is still known");
}

/// Text deltas in the canonical form are copied into the chunks as the
/// JSON strings they came as; any other form, or one with `\u` escapes, is
/// decoded and written again. The client reads the same text either way.
#[test]
fn text_deltas_reach_the_client_as_the_same_text_whichever_way_they_are_read() {
    let delta = |text: &str| {
        format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#
        )
    };
    let events = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_t","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}"#.to_owned(),
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_owned(),
        ),
        ("content_block_delta", delta(r#""Plain""#)),
        ("content_block_delta", delta(r#"" \"q\" \\ \n\t\/ é""#)),
        ("content_block_delta", delta(r#""\u00e9\ud83e\udd80""#)),
        (
            "content_block_delta",
            r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}"#.to_owned(),
        ),
        // A text delta for a block that was never opened is not text.
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":5,"delta":{"type":"text_delta","text":"lost"}}"#.to_owned(),
        ),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.to_owned()),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#.to_owned(),
        ),
        ("message_stop", r#"{"type":"message_stop"}"#.to_owned()),
    ];
    let stream: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    let mut t = AnthropicStream::new(false, false, "claude", 1);
    let mut out = vec![];
    t.push(stream.as_bytes(), &mut out);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    let text: Vec<&str> = c
        .iter()
        .filter_map(|x| x["choices"].get(0)?["delta"]["content"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(text, ["Plain", " \"q\" \\ \n\t/ é", "é🦀", "!"]);
    for x in &c[1..c.len() - 1] {
        assert_eq!(x["id"], "msg_t");
        assert_eq!(x["object"], "chat.completion.chunk");
        assert_eq!(x["choices"][0]["index"], 0);
        assert_eq!(x["choices"][0]["finish_reason"], Value::Null);
    }
    assert_eq!(c.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // A lone half of a surrogate pair is refused, not relayed.
    let bad = stream.replace(r#"\ud83e\udd80"#, r#"\ud83e"#);
    let mut t = AnthropicStream::new(false, false, "claude", 1);
    let mut out = vec![];
    t.push(bad.as_bytes(), &mut out);
    assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.status == 502));
}

#[test]
fn json_mode_is_offered_not_forced_while_claude_thinks() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "JSON please"}],
        "response_format": {"type": "json_object"}, "reasoning_effort": "low"}),
    );
    assert_eq!(b["tools"][0]["name"], JSON_TOOL);
    assert!(
        b.get("tool_choice").is_none(),
        "Claude refuses a forced tool with thinking: {b}"
    );
    assert_eq!(b["thinking"]["type"], "enabled");
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "JSON please"}],
        "response_format": {"type": "json_object"}, "thinking": {"type": "disabled"}}),
    );
    assert_eq!(b["tool_choice"], json!({"type": "tool", "name": JSON_TOOL}));
}

#[test]
fn tool_ids_from_other_models_are_renamed_the_same_in_call_and_result() {
    let b = body(json!({"model": "m", "messages": [
        {"role": "user", "content": "read"},
        {"role": "assistant", "tool_calls": [
            {"id": "functions.read_file:0", "type": "function", "function": {"name": "read_file", "arguments": "{}"}},
            {"id": "functions.read_file:1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}},
            {"id": "toolu_01abc", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.read_file:0", "content": "A"},
        {"role": "tool", "tool_call_id": "functions.read_file:1", "content": "B"},
        {"role": "tool", "tool_call_id": "toolu_01abc", "content": "C"}]}));
    let calls = &b["messages"][1]["content"];
    let results = &b["messages"][2]["content"];
    let valid = |id: &str| {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    for i in 0..3 {
        let id = calls[i]["id"].as_str().unwrap();
        assert!(valid(id), "{id}");
        assert_eq!(results[i]["tool_use_id"], id, "call {i} and its result");
    }
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[2]["id"], "toolu_01abc", "Claude's own ids stay");
}

#[test]
fn a_user_that_is_an_email_or_phone_number_is_not_sent_as_user_id() {
    for (user, sent) in [
        ("u-42", true),
        ("alice@example.com", false),
        ("+1 (555) 010-2030", false),
        ("team-7", true),
    ] {
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "user": user}),
        );
        assert_eq!(b.get("metadata").is_some(), sent, "{user}: {b}");
    }
}

#[test]
fn web_search_options_become_anthropics_web_search_tool() {
    let ask = |options: Value| {
        body(
            json!({"model": "m", "messages": [{"role": "user", "content": "news?"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "web_search_options": options}),
        )
    };
    let b = ask(json!({"search_context_size": "high",
        "user_location": {"type": "approximate", "approximate": {"city": "Lyon", "country": "FR", "timezone": "Europe/Paris", "zip": "69001"}}}));
    assert_eq!(b["tools"][0]["name"], "f");
    assert_eq!(
        b["tools"][1],
        json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 10,
            "user_location": {"type": "approximate", "city": "Lyon", "country": "FR", "timezone": "Europe/Paris"}})
    );
    assert!(b.get("web_search_options").is_none());
    // No options set: the tool with Anthropic's defaults.
    assert_eq!(
        ask(json!({}))["tools"][1],
        json!({"type": "web_search_20250305", "name": "web_search"})
    );
    // A size it does not know is named.
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "web_search_options": {"search_context_size": "huge"}}),
    );
    let e = build(&r, "claude-sonnet-4-20250514", Some(64000), false).unwrap_err();
    assert!(e.message.contains("search_context_size"), "{}", e.message);
}

/// Claude's answer after a web search, as the API documents it: the
/// search call and its results, and text that cites them.
fn web_search_answer() -> Value {
    json!({
        "id": "msg_ws", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
        "content": [
            {"type": "text", "text": "I'll search for that. "},
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search",
             "input": {"query": "claude shannon birth date"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
                {"type": "web_search_result", "url": "https://en.wikipedia.org/wiki/Claude_Shannon",
                 "title": "Claude Shannon - Wikipedia", "encrypted_content": "EqgfCioIARgBIiQ3",
                 "page_age": "April 30, 2025"}]},
            {"type": "text", "text": "Claude Shannon was born on April 30, 1916.",
             "citations": [{"type": "web_search_result_location",
                "url": "https://en.wikipedia.org/wiki/Claude_Shannon",
                "title": "Claude Shannon - Wikipedia", "encrypted_index": "Eo8BCioIAhgB",
                "cited_text": "Claude Elwood Shannon (April 30, 1916 – February 24, 2001)"}]}
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 6039, "output_tokens": 931, "cache_read_input_tokens": 0,
                  "server_tool_use": {"web_search_requests": 1}}
    })
}

#[test]
fn web_search_calls_results_and_citations_reach_the_client() {
    let answer = web_search_answer();
    let resp: MessagesResponse = serde_json::from_value(answer.clone()).unwrap();
    let out = to_openai(resp, false, 7);
    // As the gateway writes it (by hand; serde writes the same bytes).
    let written = crate::json::written_body(&out, 0).unwrap();
    assert_eq!(written, serde_json::to_vec(&out).unwrap());
    let v: Value = serde_json::from_slice(&written).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(
        m["content"],
        "I'll search for that. Claude Shannon was born on April 30, 1916."
    );
    // Anthropic ran the search: not a call for the client to make.
    assert!(m.get("tool_calls").is_none(), "{m}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let fields = &m["provider_specific_fields"];
    assert_eq!(
        fields["citations"],
        json!([answer["content"][3]["citations"]])
    );
    assert_eq!(fields["web_search_results"], json!([answer["content"][2]]));
    assert_eq!(fields["server_tool_use"], json!([answer["content"][1]]));
    assert_eq!(
        v["usage"]["server_tool_use"],
        json!({"web_search_requests": 1})
    );
    assert_eq!(v["usage"]["prompt_tokens"], 6039);

    // An answer without them has no such field.
    let plain: MessagesResponse = serde_json::from_value(json!({
        "id": "m", "type": "message", "role": "assistant", "model": "c",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1}
    }))
    .unwrap();
    let out = to_openai(plain, false, 7);
    assert!(out.choices[0].message.extra.is_empty());
    assert_eq!(out.usage.unwrap().server_tool_use, None);
}

#[test]
fn other_server_tool_blocks_are_kept_under_their_own_keys() {
    use super::response::provider_field;
    assert_eq!(provider_field("web_fetch_tool_result"), "web_fetch_results");
    assert_eq!(provider_field("code_execution_tool_result"), "tool_results");
    assert_eq!(provider_field("mcp_tool_result"), "tool_results");
    assert_eq!(provider_field("mcp_tool_use"), "server_tool_use");
    assert_eq!(provider_field("container_upload"), "other_content_blocks");
}

/// The same answer streamed, as Claude streams a search: the call's input
/// in pieces, the results whole in their start event, a citation as a
/// delta of the text it belongs to, the search count in `message_delta`.
const WEB_SEARCH_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_ws\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-20250514\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":2679,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":3}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"I'll search. \"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_01\",\"name\":\"web_search\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\": \\\"weather \"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"NYC today\\\"}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_01\",\"content\":[{\"type\":\"web_search_result\",\"title\":\"Weather\",\"url\":\"https://weather.example/nyc\",\"encrypted_content\":\"Ev0DCioIAxgC\",\"page_age\":null}]}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"text\",\"text\":\"\",\"citations\":[]}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"citations_delta\",\"citation\":{\"type\":\"web_search_result_location\",\"cited_text\":\"Sunny, 21\\u00b0C\",\"url\":\"https://weather.example/nyc\",\"title\":\"Weather\",\"encrypted_index\":\"EpMBCioI\"}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"It is sunny.\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":10682,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":510,\"server_tool_use\":{\"web_search_requests\":1}}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[test]
fn a_streamed_web_search_reaches_the_client_with_its_results_and_citations() {
    for size in [1, 7, 4096] {
        let mut t = AnthropicStream::new(true, false, "claude-sonnet-4", 1);
        let mut out = vec![];
        for b in WEB_SEARCH_STREAM.as_bytes().chunks(size) {
            t.push(b, &mut out);
        }
        t.finish(&mut out);
        assert_eq!(out.last(), Some(&StreamEvent::Done));
        let c = chunks(&out);
        let deltas: Vec<&Value> = c
            .iter()
            .filter_map(|x| x["choices"].get(0).map(|ch| &ch["delta"]))
            .collect();
        let text: String = deltas
            .iter()
            .filter_map(|d| d["content"].as_str())
            .collect();
        assert_eq!(text, "I'll search. It is sunny.");
        assert!(deltas.iter().all(|d| d.get("tool_calls").is_none()));
        let fields: Vec<&Value> = deltas
            .iter()
            .filter_map(|d| d.get("provider_specific_fields"))
            .collect();
        assert_eq!(fields.len(), 3, "{fields:?}");
        assert_eq!(
            fields[0],
            &json!({"server_tool_use": [{"type": "server_tool_use", "id": "srvtoolu_01",
                "name": "web_search", "input": {"query": "weather NYC today"}}]})
        );
        assert_eq!(
            fields[1]["web_search_results"][0]["content"][0]["url"],
            "https://weather.example/nyc"
        );
        assert_eq!(fields[2]["citation"]["cited_text"], "Sunny, 21°C");
        let finish = &c[c.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = &c.last().unwrap()["usage"];
        assert_eq!(usage["server_tool_use"], json!({"web_search_requests": 1}));
        assert_eq!(usage["completion_tokens"], 510);
        assert_eq!(t.usage().unwrap().web_searches(), 1);
    }
}

#[test]
fn anthropics_tools_without_a_function_go_as_written_and_others_are_named() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3,
                   "allowed_domains": ["docs.rs"]}]}),
    );
    assert_eq!(
        b["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3,
                "allowed_domains": ["docs.rs"]}])
    );
    // Gemini's search is not Claude's: named, or dropped with drop_params.
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}, {"googleSearch": {}}]}),
    );
    let e = build(&r, "c", None, false).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("tools[1]")));
    assert!(e.message.contains("googleSearch"), "{}", e.message);
    let built = build(&r, "c", None, true).unwrap();
    let sent = serde_json::to_value(&built.body).unwrap();
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1);
    // OpenAI's free-form custom tool has no Claude equivalent; Anthropic's
    // own custom tool (with its input_schema) and dated tool types pass.
    let tools = |t: Value| {
        req(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [t]}))
    };
    let openai_custom =
        tools(json!({"type": "custom", "custom": {"name": "patch", "format": {"type": "text"}}}));
    let e = build(&openai_custom, "c", None, false).unwrap_err();
    assert!(
        e.message.contains("`custom` is not a tool Claude knows"),
        "{}",
        e.message
    );
    for ok in [
        json!({"type": "custom", "name": "patch", "input_schema": {"type": "object"}}),
        json!({"name": "patch", "description": "d", "input_schema": {"type": "object"}}),
        json!({"type": "bash_20250124", "name": "bash"}),
        json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}),
    ] {
        let b = body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [ok.clone()]}),
        );
        assert_eq!(b["tools"][0], ok);
    }
    for bad in ["web_search", "web_search_2025", "_20250305"] {
        let r = tools(json!({"type": bad, "name": "w"}));
        assert!(build(&r, "c", None, false).is_err(), "{bad}");
    }
}

fn stream_of(events: &[Value]) -> Vec<Value> {
    let mut text = String::new();
    for e in events {
        text.push_str(&format!(
            "event: {}\ndata: {e}\n\n",
            e["type"].as_str().unwrap()
        ));
    }
    let mut t = AnthropicStream::new(false, false, "c", 1);
    let mut out = vec![];
    t.push(text.as_bytes(), &mut out);
    t.finish(&mut out);
    assert_eq!(out.last(), Some(&StreamEvent::Done), "{out:?}");
    chunks(&out)
}

fn server_calls(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["provider_specific_fields"].get("server_tool_use"))
        .flat_map(|v| v.as_array().unwrap().clone())
        .collect()
}

#[test]
fn server_calls_are_passed_on_whatever_the_stream_does() {
    let start = json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
        "model": "c", "content": [], "usage": {"input_tokens": 1, "output_tokens": 1}}});
    let open = |i: u32, id: &str| {
        json!({"type": "content_block_start", "index": i,
        "content_block": {"type": "server_tool_use", "id": id, "name": "web_search", "input": {}}})
    };
    let piece = |i: u32, p: &str| {
        json!({"type": "content_block_delta", "index": i,
        "delta": {"type": "input_json_delta", "partial_json": p}})
    };
    let stop = json!({"type": "message_stop"});
    // No content_block_stop, and index 0 used again: both calls still come.
    let c = stream_of(&[
        start.clone(),
        open(0, "a"),
        piece(0, "{\"query\":\"one\"}"),
        open(0, "b"),
        piece(0, "{\"query\":\"two\"}"),
        stop.clone(),
    ]);
    let calls = server_calls(&c);
    assert_eq!(calls.len(), 2, "{c:?}");
    assert_eq!(
        (calls[0]["id"].as_str(), calls[0]["input"]["query"].as_str()),
        (Some("a"), Some("one"))
    );
    assert_eq!(
        (calls[1]["id"].as_str(), calls[1]["input"]["query"].as_str()),
        (Some("b"), Some("two"))
    );
    // More input than is kept: the call comes with its start's input,
    // marked, never with part of the pieces (later small ones included).
    let big = "x".repeat(200 * 1024);
    let c = stream_of(&[
        start,
        open(0, "a"),
        piece(0, &format!("{{\"query\":\"{big}")),
        piece(0, &big),
        piece(0, "\"}"),
        json!({"type": "content_block_stop", "index": 0}),
        stop,
    ]);
    let calls = server_calls(&c);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["input"], json!({}));
    assert_eq!(calls[0]["input_truncated"], true);
}
