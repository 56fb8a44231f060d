//! The OpenAI pass-through hot path, without the network: the request
//! rewrite (`RawChatRequest::parse` + `write`), the answer's check and
//! usage (`chat_response`) and the stream relay (`PassthroughStream` fed an
//! SSE body). The bodies are the ones the load
//! benchmark sends and answers (bench/lib/), plus a large coding-agent
//! conversation. `cargo bench -p llmux-core -- --quick` runs them in seconds.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use llmux_core::providers::openai_compat::{PassthroughStream, chat_response};
use llmux_core::providers::{StreamEvent, StreamTranslator};
use llmux_core::types::RawChatRequest;
use llmux_core::types::raw::Rewrite;
use std::hint::black_box;

const REQUEST: &str = include_str!("../../../bench/lib/request.json");
const REQUEST_STREAM: &str = include_str!("../../../bench/lib/request-stream.json");
const SSE: &str = include_str!("../../../bench/lib/response.sse");
const RESPONSE: &str = include_str!("../../../bench/lib/response.json");

/// Fields the gateway removes before sending upstream.
const GATEWAY_FIELDS: &[&str] = &["drop_params", "num_retries"];

/// A coding agent's request late in a task: a long system prompt, tools and
/// 40 turns of history (about 100 KB), the kind Roo Code sends.
fn large_request() -> String {
    let system = "You are Roo, a highly skilled software engineer. ".repeat(300);
    let mut messages = vec![serde_json::json!({"role": "system", "content": system})];
    for i in 0..40 {
        messages.push(serde_json::json!({
            "role": "user",
            "content": format!("<file path=\"src/lib{i}.rs\">\n{}</file>\nExplain \"this\" \u{e9}.", "fn main() { println!(\"hi\"); }\n".repeat(40)),
        }));
        messages
            .push(serde_json::json!({"role": "assistant", "content": "It prints hi. ".repeat(20)}));
    }
    let tools: Vec<_> = (0..8)
        .map(|i| serde_json::json!({"type": "function", "function": {"name": format!("tool_{i}"), "description": "Does a thing.", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}))
        .collect();
    serde_json::json!({
        "model": "bench",
        "messages": messages,
        "tools": tools,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
    .to_string()
}

/// What the gateway does per request on this path: split, route fields, rewrite.
fn rewrite(body: &[u8]) -> Vec<u8> {
    match RawChatRequest::parse(body) {
        Ok(req) => {
            black_box((req.model(), req.is_stream(), req.include_usage()));
            req.write(&Rewrite {
                model: "gpt-4o-mini-2024-07-18",
                remove: GATEWAY_FIELDS,
                ..Default::default()
            })
        }
        Err(_) => Vec::new(),
    }
}

fn bench_rewrite(c: &mut Criterion) {
    let large = large_request();
    let mut g = c.benchmark_group("openai_rewrite");
    for (name, body) in [
        ("small", REQUEST),
        ("small_stream", REQUEST_STREAM),
        ("large_100k", large.as_str()),
    ] {
        let out = rewrite(body.as_bytes());
        assert!(!out.is_empty(), "{name}: the request did not parse");
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| rewrite(black_box(body.as_bytes())))
        });
    }
    g.finish();
}

/// A non-streaming answer passed through: checked to be JSON, usage read.
fn bench_response(c: &mut Criterion) {
    let mut g = c.benchmark_group("openai_response");
    let headers = http::HeaderMap::new();
    let body = bytes::Bytes::from_static(RESPONSE.as_bytes());
    let usage = chat_response(200, &headers, body.clone()).map(|r| r.usage);
    assert!(matches!(usage, Ok(Some(_))), "the answer did not parse");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("small", |b| {
        b.iter(|| chat_response(200, &headers, black_box(body.clone())).map(|r| r.usage))
    });
    g.finish();
}

/// A long answer: the role chunk, `n` content chunks, finish, usage, [DONE].
fn long_stream(n: usize) -> String {
    let mut events: Vec<&str> = SSE.split_inclusive("\n\n").collect();
    let content = events[1];
    let tail = events.split_off(2);
    let mut out = String::with_capacity(SSE.len() + n * content.len());
    out.push_str(events[0]);
    for _ in 0..n {
        out.push_str(content);
    }
    for e in tail {
        out.push_str(e);
    }
    out
}

/// Feeds a stream in the given pieces, as the transport hands them over.
fn relay(pieces: &[&[u8]], events: &mut Vec<StreamEvent>) -> usize {
    let mut t = PassthroughStream::new(true);
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

fn bench_stream(c: &mut Criterion) {
    let long = long_stream(200);
    let mut g = c.benchmark_group("openai_stream");
    let cases: Vec<(&str, Vec<&[u8]>, &str)> = vec![
        // The whole body in one read (nginx's fixed SSE answer).
        ("one_read", vec![SSE.as_bytes()], SSE),
        // One read per event, as a real upstream sends them.
        (
            "per_event",
            SSE.split_inclusive("\n\n").map(str::as_bytes).collect(),
            SSE,
        ),
        // Reads cut at 7 bytes: the parser's worst case for partial events.
        ("tiny_reads", SSE.as_bytes().chunks(7).collect(), SSE),
        (
            "long_200_chunks",
            long.split_inclusive("\n\n").map(str::as_bytes).collect(),
            long.as_str(),
        ),
    ];
    for (name, pieces, whole) in &cases {
        let mut events = Vec::with_capacity(16);
        let expected = whole.matches("data: ").count();
        assert_eq!(relay(pieces, &mut events), expected, "{name}: events lost");
        g.throughput(Throughput::Bytes(whole.len() as u64));
        g.bench_function(*name, |b| b.iter(|| relay(black_box(pieces), &mut events)));
    }
    g.finish();
}

criterion_group!(benches, bench_rewrite, bench_response, bench_stream);
criterion_main!(benches);
