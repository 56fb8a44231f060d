//! The translated path to Anthropic, without the network: an OpenAI chat
//! request to a Messages request, a Messages response back to an OpenAI
//! completion, and a Messages SSE stream to OpenAI chunks. The bodies are the
//! ones the load benchmark sends and nginx answers (bench/lib/).
//! `cargo bench -p llmux-core --bench anthropic -- --quick` runs them in seconds.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmux_core::providers::anthropic::{request, response, stream::AnthropicStream};
use llmux_core::providers::{StreamEvent, StreamTranslator};
use llmux_core::types::ChatCompletionRequest;
use llmux_core::types::anthropic::MessagesResponse;
use std::hint::black_box;

const REQUEST: &str = include_str!("../../../bench/lib/request-claude.json");
const RESPONSE: &str = include_str!("../../../bench/lib/anthropic-response.json");
const SSE: &str = include_str!("../../../bench/lib/anthropic-response.sse");
const MODEL: &str = "claude-sonnet-4-5-20250929";

/// A coding agent's usual turn: a sentence, then a tool call whose
/// arguments (a file to write) come in pieces, as Anthropic streams them.
fn tool_call_sse() -> String {
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let mut s = ev(
        "message_start",
        serde_json::json!({"type":"message_start","message":{"id":"msg_01BenchTool","type":"message","role":"assistant","model":MODEL,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2048,"cache_creation_input_tokens":0,"cache_read_input_tokens":1800,"output_tokens":1}}}),
    );
    s += &ev(
        "content_block_start",
        serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    for text in ["I'll", " write", " the", " file", " now."] {
        s += &ev(
            "content_block_delta",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
        );
    }
    s += &ev(
        "content_block_stop",
        serde_json::json!({"type":"content_block_stop","index":0}),
    );
    s += &ev(
        "content_block_start",
        serde_json::json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01BenchToolCall","name":"write_to_file","input":{}}}),
    );
    let args = serde_json::json!({"path":"src/fib.rs","content":"/// The n-th Fibonacci number.\npub fn fib(n: u64) -> u64 {\n    let (mut a, mut b) = (0, 1);\n    for _ in 0..n {\n        (a, b) = (b, a + b);\n    }\n    a\n}\n\n#[test]\nfn small() {\n    assert_eq!(fib(10), 55, \"fib(10)\");\n}\n"}).to_string();
    let mut piece = String::new();
    for c in std::iter::once("").chain(args.split_inclusive(' ')) {
        piece.push_str(c);
        if piece.len() >= 12 || c.is_empty() {
            s += &ev(
                "content_block_delta",
                serde_json::json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":piece}}),
            );
            piece.clear();
        }
    }
    if !piece.is_empty() {
        s += &ev(
            "content_block_delta",
            serde_json::json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":piece}}),
        );
    }
    s += &ev(
        "content_block_stop",
        serde_json::json!({"type":"content_block_stop","index":1}),
    );
    s += &ev(
        "message_delta",
        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":96}}),
    );
    s += &ev("message_stop", serde_json::json!({"type":"message_stop"}));
    s
}

/// OpenAI request bytes → Messages request bytes, as the gateway does it.
fn translate_request(body: &[u8]) -> bytes::Bytes {
    use llmux_core::json::{translated_size, written_body};
    let Ok(req) = llmux_core::json::from_bytes::<ChatCompletionRequest>(body) else {
        return bytes::Bytes::new();
    };
    request::build(&req, MODEL, Some(64000), false)
        .and_then(|built| written_body(&built.body, translated_size(body.len())))
        .unwrap_or_default()
}

/// Messages response bytes → OpenAI completion bytes.
fn translate_response(body: &[u8]) -> bytes::Bytes {
    use llmux_core::json::{translated_size, written_body};
    let Ok(resp) = llmux_core::json::from_bytes::<MessagesResponse>(body) else {
        return bytes::Bytes::new();
    };
    let out = response::to_openai(resp, false, 1_731_000_000);
    written_body(&out, translated_size(body.len())).unwrap_or_default()
}

/// A Messages stream in the given pieces → OpenAI chunks; the event count.
fn translate_stream(pieces: &[&[u8]], events: &mut Vec<StreamEvent>) -> usize {
    let mut t = AnthropicStream::new(true, false, MODEL, 1_731_000_000);
    let mut n = 0;
    for p in pieces {
        t.push(p, events);
        n += events.len();
        events.clear();
    }
    t.finish(events);
    n += events.len();
    events.clear();
    black_box(t.usage());
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("anthropic");

    let out = translate_request(REQUEST.as_bytes());
    assert!(!out.is_empty(), "the request did not translate");
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("request", |b| {
        b.iter(|| translate_request(black_box(REQUEST.as_bytes())))
    });

    let out = translate_response(RESPONSE.as_bytes());
    assert!(!out.is_empty(), "the response did not translate");
    g.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    g.bench_function("response", |b| {
        b.iter(|| translate_response(black_box(RESPONSE.as_bytes())))
    });

    let tools = tool_call_sse();
    let mut events = Vec::with_capacity(16);
    for (name, pieces) in [
        (
            "stream_tool_call",
            tools.split_inclusive("\n\n").map(str::as_bytes).collect(),
        ),
        ("stream_one_read", vec![SSE.as_bytes()]),
        (
            "stream_per_event",
            SSE.split_inclusive("\n\n").map(str::as_bytes).collect(),
        ),
    ] {
        assert!(
            translate_stream(&pieces, &mut events) > 10,
            "{name}: events lost"
        );
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| {
            b.iter(|| translate_stream(black_box(&pieces), &mut events))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
