//! The Messages API served by a deployment that is not Claude (Claude Code
//! pointed at another model), without the network: the Messages request to
//! the canonical request and the bytes sent on, the canonical answer back
//! to a Messages response, and OpenAI chunks to Messages events. The small
//! bodies are the load benchmark's (bench/lib/); the large request is a
//! Claude Code conversation late in a task.
//! `cargo bench -p llmux-core --bench messages -- --quick` runs them in seconds.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use llmux_core::inbound::anthropic::{MessagesEncoder, Target, from_canonical, to_canonical};
use llmux_core::json::{translated_size, written_body};
use llmux_core::providers::StreamEvent;
use llmux_core::types::anthropic::MessagesRequest;
use llmux_core::types::{ChatCompletionResponse, RawChatRequest};
use serde_json::json;
use std::hint::black_box;

const REQUEST: &str = include_str!("../../../bench/lib/anthropic-request.json");
const RESPONSE: &str = include_str!("../../../bench/lib/response.json");
const SSE: &str = include_str!("../../../bench/lib/response.sse");

/// Claude Code late in a task: a long system prompt, 16 tools with schemas
/// and 30 rounds of tool calls whose results are source files (about 150 KB).
fn large_request() -> String {
    let system = "You are Claude Code, Anthropic's official CLI for Claude. ".repeat(200);
    let tools: Vec<_> = (0..16)
        .map(|i| json!({"name": format!("tool_{i}"),
            "description": "Reads a file from the local filesystem. Use \"absolute\" paths.\n- Lines are numbered.".repeat(4),
            "input_schema": {"type": "object", "properties": {"file_path": {"type": "string", "description": "The absolute path"},
                "offset": {"type": "number"}, "limit": {"type": "number"}}, "required": ["file_path"], "additionalProperties": false}}))
        .collect();
    let mut messages =
        vec![json!({"role": "user", "content": "Fix the failing test in src/lib.rs."})];
    for i in 0..30 {
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": "Let me read the file."},
            {"type": "tool_use", "id": format!("toolu_{i:04}"), "name": "tool_0", "input": {"file_path": format!("/src/lib{i}.rs")}}]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i:04}"),
             "content": "     1\tfn main() {\n     2\t    println!(\"hi\\t{}\", 1);\n     3\t}\n".repeat(40)}]}));
    }
    json!({"model": "bench", "max_tokens": 32000, "stream": true,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "tools": tools, "messages": messages})
    .to_string()
}

/// What the route does before the upstream call: read the Messages
/// request, translate it, write the canonical request and split it.
fn translate_request(body: &[u8]) -> usize {
    let Ok(req) = serde_json::from_slice::<MessagesRequest>(body) else {
        return 0;
    };
    let Ok(canonical) = to_canonical(req, Target::default()) else {
        return 0;
    };
    let Ok(bytes) = written_body(&canonical, translated_size(body.len())) else {
        return 0;
    };
    RawChatRequest::parse(&bytes).map_or(0, |raw| raw.body_len())
}

/// The canonical answer's bytes → a Messages response's bytes.
fn translate_response(body: &[u8]) -> Vec<u8> {
    let Ok(resp) = serde_json::from_slice::<ChatCompletionResponse>(body) else {
        return Vec::new();
    };
    serde_json::to_vec(&from_canonical(resp, "claude-sonnet-4-5")).unwrap_or_default()
}

/// OpenAI chunks, one event at a time → framed Messages events; their bytes.
fn translate_stream(chunks: &[StreamEvent], events: &mut Vec<StreamEvent>) -> usize {
    let mut encoder = MessagesEncoder::new("claude-sonnet-4-5");
    let mut n = 0;
    for chunk in chunks {
        events.push(chunk.clone());
        encoder.encode(events);
        n += events
            .drain(..)
            .map(|e| match e {
                StreamEvent::Raw(b) => b.len(),
                _ => 0,
            })
            .sum::<usize>();
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("messages");

    let large = large_request();
    for (name, body) in [("small", REQUEST), ("claude_code_150k", large.as_str())] {
        assert!(
            translate_request(body.as_bytes()) > 0,
            "{name}: not translated"
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("request", name), body, |b, body| {
            b.iter(|| translate_request(black_box(body.as_bytes())))
        });
    }

    assert!(!translate_response(RESPONSE.as_bytes()).is_empty());
    g.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    g.bench_function("response", |b| {
        b.iter(|| translate_response(black_box(RESPONSE.as_bytes())))
    });

    let chunks: Vec<StreamEvent> = SSE
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| match d {
            "[DONE]" => StreamEvent::Done,
            d => StreamEvent::Data(bytes::Bytes::copy_from_slice(d.as_bytes())),
        })
        .collect();
    let mut events = Vec::with_capacity(4);
    assert!(translate_stream(&chunks, &mut events) > 0, "stream lost");
    g.throughput(Throughput::Bytes(SSE.len() as u64));
    g.bench_function("stream", |b| {
        b.iter(|| translate_stream(black_box(&chunks), &mut events))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
