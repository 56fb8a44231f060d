//! Fixtures: what agents send, what Converse answers, binary stream frames.

use super::request::{Effort, ModelTraits, build, tool_id};
use super::response::to_openai;
use super::stream::BedrockStream;
use super::{encode_model_id, sign_request};
use crate::providers::anthropic::request::JSON_TOOL;
use crate::providers::{AwsCredentials, StreamEvent, StreamTranslator};
use crate::types::{ChatCompletionRequest, Secret};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as EsValue, Message};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

const CLAUDE: ModelTraits = ModelTraits {
    claude: true,
    nova: false,
    prompt_caching: true,
    effort: Effort::None,
};

fn body(v: Value, traits: ModelTraits) -> Value {
    let req: ChatCompletionRequest = serde_json::from_value(v).unwrap();
    let built = build(&req, traits, false).unwrap().body;
    // What is sent is written by hand: byte for byte what serde writes.
    let sent = crate::json::written_body(&built, 0).unwrap();
    assert_eq!(sent, serde_json::to_vec(&built).unwrap());
    serde_json::from_slice(&sent).unwrap()
}

#[test]
fn messages_tools_and_results_become_converse_blocks() {
    let b = body(
        json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You are Roo.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [{"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
        {"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "call_abc.def:123", "type": "function", "function": {"name": "read", "arguments": "{\"p\":\"a\"}"}},
            {"id": "tooluse_ok", "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_abc.def:123", "content": "A"},
        {"role": "tool", "tool_call_id": "tooluse_ok", "content": "", "is_error": true}
    ], "tools": [{"type": "function", "function": {"name": "read", "description": "Read", "parameters": {"type": "object"}}}],
       "tool_choice": "required", "max_tokens": 100, "temperature": 0.2, "stop": ["END"]}),
        CLAUDE,
    );
    assert_eq!(
        b["system"],
        json!([{"text": "You are Roo."}, {"cachePoint": {"type": "default"}}])
    );
    let m = b["messages"].as_array().unwrap();
    assert_eq!(
        m[0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBO"}}})
    );
    let rewritten = tool_id("call_abc.def:123");
    assert!(
        rewritten.len() <= 64
            && rewritten
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    );
    assert_eq!(m[1]["content"][1]["toolUse"]["toolUseId"], &*rewritten);
    assert_eq!(
        m[1]["content"][2]["toolUse"]["toolUseId"], "tooluse_ok",
        "valid ids stay as they are"
    );
    assert_eq!(m[2]["content"][0]["toolResult"]["toolUseId"], &*rewritten);
    assert_eq!(m[2]["content"][1]["toolResult"]["status"], "error");
    assert_eq!(b["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        b["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"],
        "object"
    );
    assert_eq!(
        b["inferenceConfig"],
        json!({"maxTokens": 100, "temperature": 0.2, "stopSequences": ["END"]})
    );
}

#[test]
fn long_or_odd_ids_stay_distinct_and_stable() {
    let long = "x".repeat(100);
    let a = tool_id(&long);
    assert!(a.len() <= 64);
    assert_eq!(a, tool_id(&long));
    assert_ne!(tool_id("a.b"), tool_id("a:b"));
}

#[test]
fn history_with_tool_blocks_but_no_tools_gets_a_minimal_tool_config() {
    let b = body(
        json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "r"},
        {"role": "user", "content": "thanks"}]}),
        ModelTraits::default(),
    );
    assert_eq!(b["toolConfig"]["tools"][0]["toolSpec"]["name"], "search");
    assert!(b["toolConfig"].get("toolChoice").is_none());
}

#[test]
fn reasoning_for_claude_and_model_specific_fields() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low", "max_tokens": 500}),
        CLAUDE,
    );
    assert_eq!(
        b["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert!(b["inferenceConfig"]["maxTokens"].as_u64().unwrap() > 1024);
    let nova = ModelTraits {
        nova: true,
        prompt_caching: true,
        ..Default::default()
    };
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 20, "reasoning_effort": "low",
        "guardrail_hint": "x"}),
        nova,
    );
    assert_eq!(
        b["additionalModelRequestFields"]["inferenceConfig"]["topK"],
        20
    );
    assert_eq!(
        b["additionalModelRequestFields"]["guardrail_hint"], "x",
        "other fields go to the model"
    );
    assert!(
        b["additionalModelRequestFields"].get("thinking").is_none(),
        "Nova does not take Claude's thinking"
    );
    // Signed thinking goes back as reasoningContent.
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"},
        {"role": "assistant", "content": "a", "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "sig"}]},
        {"role": "user", "content": "y"}]}),
        CLAUDE,
    );
    assert_eq!(
        b["messages"][1]["content"][0],
        json!({"reasoningContent": {"reasoningText": {"text": "t", "signature": "sig"}}})
    );
}

#[test]
fn gpt_oss_and_nova_2_take_reasoning_effort_in_their_own_fields() {
    let ask = |effort: &str, traits: ModelTraits| {
        body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}),
            traits,
        )["additionalModelRequestFields"]
            .clone()
    };
    let oss = ModelTraits {
        effort: Effort::OpenAi,
        ..Default::default()
    };
    let nova2 = ModelTraits {
        nova: true,
        prompt_caching: true,
        effort: Effort::Nova2,
        ..Default::default()
    };
    for (asked, level) in [
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("minimal", "low"),
        ("xhigh", "high"),
    ] {
        assert_eq!(
            ask(asked, oss),
            json!({"reasoning_effort": level}),
            "{asked}"
        );
        assert_eq!(
            ask(asked, nova2),
            json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": level}}),
            "{asked}"
        );
    }
    // gpt-oss always reasons: `none` is its least; Nova 2's is off.
    assert_eq!(ask("none", oss), json!({"reasoning_effort": "low"}));
    assert!(ask("none", nova2).get("reasoningConfig").is_none());
    // A model that takes no effort is sent none; a client's own
    // reasoningConfig wins.
    assert!(
        ask("high", ModelTraits::default())
            .get("reasoning_effort")
            .is_none()
    );
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high",
            "reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}),
        nova2,
    );
    assert_eq!(
        b["additionalModelRequestFields"]["reasoningConfig"]["maxReasoningEffort"],
        "low"
    );
}

#[test]
fn https_images_are_refused_clearly_and_unsupported_params_named() {
    let req: ChatCompletionRequest = serde_json::from_value(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
    )
    .unwrap();
    let e = build(&req, CLAUDE, false).err().unwrap();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("data: URL"), "{}", e.message);
    let req: ChatCompletionRequest = serde_json::from_value(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 1}})).unwrap();
    assert_eq!(
        build(&req, CLAUDE, false).err().unwrap().param.as_deref(),
        Some("logit_bias")
    );
    assert!(build(&req, CLAUDE, true).is_ok());
}

#[test]
fn converse_response_becomes_tool_calls_reasoning_and_usage() {
    let resp = json!({"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "S"}}},
        {"text": "Reading."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "read", "input": {"p": "a"}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 45, "cacheReadInputTokens": 20, "cacheWriteInputTokens": 10}});
    let out = to_openai(&resp, "anthropic.claude", false, 1);
    let m = &out.choices[0].message;
    assert_eq!(m.content.as_deref(), Some("Reading."));
    assert_eq!(m.reasoning_content.as_deref(), Some("hmm"));
    assert_eq!(m.thinking_blocks.as_ref().unwrap()[0]["signature"], "S");
    assert_eq!(m.tool_calls.as_ref().unwrap()[0].id, "tooluse_1");
    assert_eq!(out.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let u = out.usage.unwrap();
    assert_eq!(
        (
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens(),
            u.cache_write_tokens()
        ),
        (40, 5, 20, 10)
    );
    for (stop, want) in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("stop_sequence", "stop"),
    ] {
        let r = json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": stop});
        assert_eq!(
            to_openai(&r, "m", false, 1).choices[0]
                .finish_reason
                .as_deref(),
            Some(want),
            "{stop}"
        );
    }
}

fn frame(kind: &str, name: &str, payload: Value) -> Vec<u8> {
    let type_header = if kind == "exception" {
        ":exception-type"
    } else {
        ":event-type"
    };
    let m = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            EsValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            type_header,
            EsValue::String(name.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            EsValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

fn stream_bytes() -> Vec<u8> {
    [
        frame("event", "messageStart", json!({"role": "assistant"})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "SIG"}}})),
        frame("event", "contentBlockStop", json!({"contentBlockIndex": 0})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"text": "Hi"}})),
        frame("event", "contentBlockStop", json!({"contentBlockIndex": 1})),
        frame("event", "contentBlockStart", json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "read"}}})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"p\":"}}})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"a\"}"}}})),
        frame("event", "contentBlockStop", json!({"contentBlockIndex": 2})),
        frame("event", "messageStop", json!({"stopReason": "tool_use"})),
        frame("event", "metadata", json!({"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10, "cacheReadInputTokens": 2}, "metrics": {"latencyMs": 5}})),
    ]
    .concat()
}

fn chunks(out: &[StreamEvent]) -> Vec<Value> {
    out.iter()
        .filter_map(|e| match e {
            StreamEvent::Data(d) => Some(serde_json::from_slice(d).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn binary_frames_split_anywhere_become_chunks_with_usage_last() {
    let bytes = stream_bytes();
    for split in [1usize, 7, 13, 64, bytes.len()] {
        let mut t = BedrockStream::new(true, false, "anthropic.claude", 1);
        let mut out = vec![];
        for part in bytes.chunks(split) {
            t.push(part, &mut out);
        }
        t.finish(&mut out);
        assert_eq!(out.last(), Some(&StreamEvent::Done), "split {split}");
        let c = chunks(&out);
        assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(c[1]["choices"][0]["delta"]["reasoning_content"], "hmm");
        assert_eq!(
            c[2]["choices"][0]["delta"]["thinking_blocks"][0]["signature"],
            "SIG"
        );
        assert_eq!(c[3]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            c[4]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "tooluse_a"
        );
        assert_eq!(
            c[6]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "\"a\"}"
        );
        assert_eq!(c[7]["choices"][0]["finish_reason"], "tool_calls");
        let u = c.last().unwrap();
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["prompt_tokens"], 9);
        assert_eq!(t.usage().unwrap().cached_tokens(), 2);
    }
}

/// Text and tool input come through whatever their escapes (copied as
/// they came, or decoded), Bedrock's `p` padding is skipped, and an event
/// whose payload is not what its type says ends the stream with a 502.
#[test]
fn stream_strings_keep_every_escape_and_a_broken_payload_is_an_error() {
    let bytes = [
        frame("event", "messageStart", json!({"role": "assistant", "p": "abcd"})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "a \"b\"\\\n\t/"}, "p": "abcdefgh"})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Z\u{fc}rich \u{1}"}})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": 5}})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"citation": {"title": "x"}}})),
        frame("event", "contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "write"}}, "p": "ab"})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"s\":\"\u{1}\","}}})),
        frame("event", "contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"t\":\"a\\nb\"}"}}})),
        frame("event", "contentBlockStop", json!({"contentBlockIndex": 1})),
        frame("event", "messageStop", json!({"stopReason": "tool_use", "p": "abc"})),
    ]
    .concat();
    let mut t = BedrockStream::new(false, false, "m", 1);
    let mut out = vec![];
    t.push(&bytes, &mut out);
    t.finish(&mut out);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    let content: Vec<&str> = c
        .iter()
        .filter_map(|x| x["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, ["", "a \"b\"\\\n\t/", "Z\u{fc}rich \u{1}"]);
    let args: String = c
        .iter()
        .filter_map(|x| x["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"s\":\"\u{1}\",\"t\":\"a\\nb\"}");
    assert_eq!(
        c.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    for broken in [
        frame(
            "event",
            "contentBlockDelta",
            json!({"contentBlockIndex": "one", "delta": {"text": "a"}}),
        ),
        frame("event", "messageStop", json!("end_turn")),
        frame("event", "metadata", json!(5)),
    ] {
        let mut t = BedrockStream::new(false, false, "m", 1);
        let mut out = vec![];
        t.push(
            &frame("event", "messageStart", json!({"role": "assistant"})),
            &mut out,
        );
        t.push(&broken, &mut out);
        let Some(StreamEvent::Error(e)) = out.last() else {
            panic!("{out:?}")
        };
        assert_eq!((e.status, e.retryable), (502, true));
        assert!(e.message.contains("malformed"), "{}", e.message);
    }
}

/// With `response_format`, the forced JSON tool's input streams to the
/// client as the answer's text and the answer ends with `stop`, as the
/// non-streaming answer does; a real tool call beside it stays a tool call.
#[test]
fn a_json_mode_stream_is_text_to_the_client() {
    let start = |i: u64, name: &str| {
        frame(
            "event",
            "contentBlockStart",
            json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": format!("t{i}"), "name": name}}}),
        )
    };
    let input = |i: u64, s: &str| {
        frame(
            "event",
            "contentBlockDelta",
            json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": s}}}),
        )
    };
    let stop = frame("event", "messageStop", json!({"stopReason": "tool_use"}));
    let mut bytes = [
        frame("event", "messageStart", json!({"role": "assistant"})),
        start(0, JSON_TOOL),
        input(0, "{\"city\": "),
        input(0, "\"Z\u{fc}rich\u{1}\"}"),
        frame("event", "contentBlockStop", json!({"contentBlockIndex": 0})),
    ]
    .concat();
    bytes.extend(&stop);
    let mut t = BedrockStream::new(false, true, "m", 1);
    let mut out = vec![];
    t.push(&bytes, &mut out);
    t.finish(&mut out);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    let text: String = c
        .iter()
        .filter_map(|x| x["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "{\"city\": \"Z\u{fc}rich\u{1}\"}");
    assert!(
        c.iter()
            .all(|x| x["choices"][0]["delta"].get("tool_calls").is_none())
    );
    assert_eq!(c.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // Without JSON mode the same tool is an ordinary tool call.
    let mut t = BedrockStream::new(false, false, "m", 1);
    let mut out = vec![];
    t.push(&bytes, &mut out);
    let c = chunks(&out);
    assert_eq!(
        c[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        JSON_TOOL
    );
    assert_eq!(
        c.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // A real tool call beside the JSON answer: a tool call, and the finish says so.
    let bytes = [
        frame("event", "messageStart", json!({"role": "assistant"})),
        start(0, "read"),
        input(0, "{}"),
        start(1, JSON_TOOL),
        input(1, "{}"),
        stop,
    ]
    .concat();
    let mut t = BedrockStream::new(false, true, "m", 1);
    let mut out = vec![];
    t.push(&bytes, &mut out);
    let c = chunks(&out);
    assert_eq!(
        c[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "read"
    );
    assert_eq!(
        c.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn an_exception_frame_mid_stream_is_a_retryable_error() {
    let mut bytes = frame("event", "messageStart", json!({"role": "assistant"}));
    bytes.extend(frame(
        "exception",
        "throttlingException",
        json!({"message": "Too many tokens, please wait before trying again."}),
    ));
    let mut t = BedrockStream::new(true, false, "m", 1);
    let mut out = vec![];
    t.push(&bytes, &mut out);
    t.finish(&mut out);
    let StreamEvent::Error(e) = out.last().unwrap() else {
        panic!("{out:?}")
    };
    assert_eq!((e.status, e.retryable), (429, true));
    assert!(e.message.starts_with("Too many tokens"));
}

#[test]
fn a_corrupt_frame_or_a_cut_stream_is_an_error() {
    let mut bytes = frame("event", "messageStart", json!({"role": "assistant"}));
    let n = bytes.len();
    bytes[n - 1] ^= 0xff; // break the message CRC
    let mut t = BedrockStream::new(true, false, "m", 1);
    let mut out = vec![];
    t.push(&bytes, &mut out);
    assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.status == 502));
    let mut t = BedrockStream::new(true, false, "m", 1);
    let mut out = vec![];
    t.push(
        &frame("event", "messageStart", json!({"role": "assistant"})),
        &mut out,
    );
    t.finish(&mut out);
    assert!(matches!(out.last(), Some(StreamEvent::Error(_))));
}

#[test]
fn model_ids_are_one_encoded_path_segment_and_requests_are_signed() {
    assert_eq!(
        encode_model_id("amazon.nova-pro-v1:0"),
        "amazon.nova-pro-v1%3A0"
    );
    assert_eq!(
        encode_model_id(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
        ),
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0"
    );
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let creds = AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: Some(Secret::new("token-1")),
    };
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600); // 2025-01-01
    sign_request(
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/amazon.nova-pro-v1%3A0/converse",
        b"{}",
        &mut h,
        &creds,
        "us-west-2",
        time,
    )
    .unwrap();
    let auth = h["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-west-2/bedrock/aws4_request"
        ),
        "{auth}"
    );
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
        "{auth}"
    );
    assert_eq!(h["x-amz-date"], "20250101T000000Z");
    assert_eq!(h["x-amz-security-token"], "token-1");
}

fn error(v: Value) -> crate::types::ApiError {
    let req: ChatCompletionRequest = serde_json::from_value(v).unwrap();
    build(&req, CLAUDE, false).err().unwrap()
}

fn file(data: &str, name: Option<&str>) -> Value {
    let mut f = json!({"file_data": data});
    if let Some(n) = name {
        f["filename"] = n.into();
    }
    json!({"type": "file", "file": f})
}

#[test]
fn files_become_documents_of_converse_formats_with_unique_names_or_images() {
    let b = body(
        json!({"model": "m", "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "read these"},
            file("data:text/plain;base64,SGk=", None),
            file("data:text/markdown;base64,IyBI", Some("notes   v2.md")),
            file("data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,UEs=", Some("spec.docx")),
            file("data:image/png;base64,iVBO", Some("shot.png"))]},
        {"role": "assistant", "content": "Read."},
        {"role": "user", "content": [
            {"type": "text", "text": "and this"},
            file("data:application/pdf;base64,JVBE", None),
            file("data:text/csv;base64,YSxi", Some("spec.docx"))]}]}),
        CLAUDE,
    );
    let m = b["messages"].as_array().unwrap();
    let doc = |turn: usize, block: usize| m[turn]["content"][block]["document"].clone();
    assert_eq!(doc(0, 1)["format"], "txt");
    assert_eq!(doc(0, 1)["name"], "document");
    assert_eq!(doc(0, 1)["source"]["bytes"], "SGk=");
    assert_eq!(doc(0, 2)["format"], "md");
    assert_eq!(
        doc(0, 2)["name"],
        "notes v2-md",
        "one space in a row at most"
    );
    assert_eq!(doc(0, 3)["format"], "docx");
    assert_eq!(
        m[0]["content"][4],
        json!({"image": {"format": "png", "source": {"bytes": "iVBO"}}}),
        "an image sent as a file is an image"
    );
    // Names already used in the request get a number.
    assert_eq!(doc(2, 1)["format"], "pdf");
    assert_eq!(doc(2, 1)["name"], "document (2)");
    assert_eq!(doc(2, 2)["format"], "csv");
    assert_eq!(doc(2, 2)["name"], "spec-docx (2)");

    let e = error(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        file("data:application/zip;base64,UEs=", Some("a.zip"))]}]}),
    );
    assert_eq!(e.status, 400);
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));
    assert!(e.message.contains("application/zip"), "{}", e.message);
}

#[test]
fn cache_points_stay_after_what_they_cache_when_turns_merge() {
    // A document marked for caching, then the question: one user turn,
    // the cache point between them.
    let b = body(
        json!({"model": "m", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "a long document", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "the question"}]}),
        CLAUDE,
    );
    assert_eq!(
        b["messages"][0]["content"],
        json!([{"text": "a long document"}, {"cachePoint": {"type": "default"}}, {"text": "the question"}])
    );
    // Tool results lead the turn, each with its own cache point; the
    // user's text keeps its cache point after it.
    let b = body(
        json!({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "read", "arguments": "{}"}},
            {"id": "t2", "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "A", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": [{"type": "text", "text": "note", "cache_control": {"type": "ephemeral"}}]},
        {"role": "tool", "tool_call_id": "t2", "content": "B"}],
        "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]}),
        CLAUDE,
    );
    let cp = json!({"cachePoint": {"type": "default"}});
    let turn = b["messages"][2]["content"].as_array().unwrap();
    assert_eq!(turn.len(), 5, "{turn:?}");
    assert_eq!(turn[0]["toolResult"]["toolUseId"], "t1");
    assert_eq!(turn[1], cp);
    assert_eq!(turn[2]["toolResult"]["toolUseId"], "t2");
    assert_eq!(turn[3], json!({"text": "note"}));
    assert_eq!(turn[4], cp);
}

#[test]
fn json_mode_is_offered_not_forced_while_claude_thinks() {
    let ask = |extra: Value| {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "JSON please"}],
            "response_format": {"type": "json_object"}});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body(v, CLAUDE)
    };
    let b = ask(json!({}));
    assert_eq!(
        b["toolConfig"]["toolChoice"],
        json!({"tool": {"name": JSON_TOOL}})
    );
    let b = ask(json!({"reasoning_effort": "low"}));
    assert_eq!(b["toolConfig"]["tools"][0]["toolSpec"]["name"], JSON_TOOL);
    assert!(
        b["toolConfig"].get("toolChoice").is_none(),
        "Claude refuses a forced tool with thinking: {b}"
    );
    assert_eq!(
        b["additionalModelRequestFields"]["thinking"]["type"],
        "enabled"
    );
    // Thinking turned off forces the tool as before.
    let b = ask(json!({"thinking": {"type": "disabled"}}));
    assert_eq!(
        b["toolConfig"]["toolChoice"],
        json!({"tool": {"name": JSON_TOOL}})
    );
}

#[test]
fn tool_choice_none_offers_no_tools_and_empty_stops_are_left_out() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "just talk"}],
        "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}],
        "tool_choice": "none", "stop": ["", "END", " "]}),
        CLAUDE,
    );
    assert!(b.get("toolConfig").is_none(), "{b}");
    assert_eq!(b["inferenceConfig"]["stopSequences"], json!(["END"]));
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ""}),
        CLAUDE,
    );
    assert!(b.get("inferenceConfig").is_none(), "{b}");
    // With tool blocks in the history Converse still needs a toolConfig:
    // the placeholder one, with no choice.
    let b = body(
        json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "r"}],
        "tools": [{"type": "function", "function": {"name": "read", "description": "Read", "parameters": {"type": "object"}}}],
        "tool_choice": "none"}),
        CLAUDE,
    );
    assert_eq!(b["toolConfig"]["tools"][0]["toolSpec"]["name"], "read");
    assert!(
        b["toolConfig"]["tools"][0]["toolSpec"]
            .get("description")
            .is_none()
    );
    assert!(b["toolConfig"].get("toolChoice").is_none());
}

#[test]
fn converse_fields_go_to_the_top_level_and_service_tier_maps() {
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
        "performanceConfig": {"latency": "optimized"},
        "requestMetadata": {"team": "search"},
        "service_tier": "flex",
        "fallbacks": ["other-model"],
        "top_k": 5}),
        CLAUDE,
    );
    assert_eq!(
        b["guardrailConfig"],
        json!({"guardrailIdentifier": "gr-1", "guardrailVersion": "1"})
    );
    assert_eq!(b["performanceConfig"], json!({"latency": "optimized"}));
    assert_eq!(b["requestMetadata"], json!({"team": "search"}));
    assert_eq!(b["serviceTier"], json!({"type": "flex"}));
    assert_eq!(
        b["additionalModelRequestFields"],
        json!({"top_k": 5}),
        "only the model's own fields go to the model"
    );
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "service_tier": "auto"}),
        CLAUDE,
    );
    assert!(b.get("serviceTier").is_none());
}

#[test]
fn answers_and_streams_get_ids_of_their_own() {
    let r = json!({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}});
    let a = to_openai(&r, "m", false, 1).id;
    let b = to_openai(&r, "m", false, 1).id;
    assert!(a.starts_with("chatcmpl-"), "{a}");
    assert_ne!(a, b, "two answers in the same second");
    let mut s1 = BedrockStream::new(false, false, "m", 1);
    let mut s2 = BedrockStream::new(false, false, "m", 1);
    let first = |s: &mut BedrockStream| {
        let mut out = Vec::new();
        s.push(&stream_bytes(), &mut out);
        chunks(&out)[0]["id"].as_str().unwrap().to_owned()
    };
    assert_ne!(first(&mut s1), first(&mut s2));
}

#[test]
fn an_arn_is_claude_when_its_catalog_entry_says_so() {
    use crate::catalog::ModelInfo;
    use crate::deployment::Deployment;
    use crate::providers::ProviderKind;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123";
    let dep = |key: Option<&str>| {
        let mut info = ModelInfo::default();
        if let Some(k) = key {
            info.0.insert("key".into(), k.into());
        }
        Deployment {
            info,
            ..Deployment::new("claude-profile", ProviderKind::Bedrock, arn)
        }
    };
    assert!(!super::traits(&dep(None)).claude);
    let t = super::traits(&dep(Some("anthropic.claude-sonnet-4-20250514-v1:0")));
    assert!(t.claude && t.prompt_caching);
    // So reasoning reaches the model instead of being dropped.
    let b = body(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"}),
        t,
    );
    assert_eq!(
        b["additionalModelRequestFields"]["thinking"]["budget_tokens"],
        4096
    );
}

#[test]
fn gpt_oss_and_nova_2_are_told_by_their_ids_and_profiles() {
    use crate::deployment::Deployment;
    use crate::providers::ProviderKind;
    let effort = |id: &str| super::traits(&Deployment::new("m", ProviderKind::Bedrock, id)).effort;
    assert_eq!(effort("openai.gpt-oss-120b-1:0"), Effort::OpenAi);
    assert_eq!(effort("us.openai.gpt-oss-20b-1:0"), Effort::OpenAi);
    assert_eq!(effort("global.amazon.nova-2-lite-v1:0"), Effort::Nova2);
    assert_eq!(effort("amazon.nova-pro-v1:0"), Effort::None);
    assert_eq!(effort("meta.llama3-3-70b-instruct-v1:0"), Effort::None);
}

#[test]
fn tools_converse_cannot_take_are_named_not_dropped() {
    let req: ChatCompletionRequest = serde_json::from_value(json!({"model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}, {"googleSearch": {}}]}))
    .unwrap();
    let e = build(&req, CLAUDE, false).err().unwrap();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("tools[1]")));
    assert!(e.message.contains("googleSearch"), "{}", e.message);
    let built = build(&req, CLAUDE, true).unwrap().body;
    let sent = serde_json::to_value(&built).unwrap();
    assert_eq!(sent["toolConfig"]["tools"].as_array().unwrap().len(), 1);
}
