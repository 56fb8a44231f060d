//! The translated path to Gemini, without the network: an OpenAI chat
//! request to a `generateContent` request, a response back to an OpenAI
//! completion, and a `streamGenerateContent?alt=sse` stream to OpenAI chunks.
//! `cargo bench -p llmux-core --bench gemini -- --quick` runs them in seconds.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmux_core::providers::gemini::{request, response, stream::GeminiStream};
use llmux_core::providers::{StreamEvent, StreamTranslator};
use llmux_core::types::ChatCompletionRequest;
use std::hint::black_box;

const REQUEST: &str = include_str!("../../../bench/lib/request-claude.json");
const MODEL: &str = "gemini-2.5-flash";
const RESPONSE: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Here is an iterative Fibonacci function with a doc comment and a unit test.\n\n```rust\n/// Returns the n-th Fibonacci number.\npub fn fib(n: u64) -> u64 {\n    let (mut a, mut b) = (0, 1);\n    for _ in 0..n {\n        (a, b) = (b, a + b);\n    }\n    a\n}\n```"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":48,"candidatesTokenCount":60,"totalTokenCount":108},"modelVersion":"gemini-2.5-flash","responseId":"bench"}"#;

fn sse() -> String {
    let words = "Here is an iterative Fibonacci function with a doc comment and a unit test that checks the first ten numbers";
    let mut s = String::new();
    for w in words.split(' ') {
        s.push_str(&format!(
            "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{{\"text\":\"{w} \"}}]}},\"index\":0}}],\"responseId\":\"bench\"}}\r\n\r\n"
        ));
    }
    s.push_str("data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":48,\"candidatesTokenCount\":20,\"totalTokenCount\":68}}\r\n\r\n");
    s
}

fn translate_request(body: &[u8]) -> bytes::Bytes {
    use llmux_core::json::{translated_size, written_body};
    let Ok(req) = serde_json::from_slice::<ChatCompletionRequest>(body) else {
        return bytes::Bytes::new();
    };
    request::build(&req, MODEL, false)
        .and_then(|v| written_body(&v, translated_size(body.len())))
        .unwrap_or_default()
}

fn translate_response(body: &[u8]) -> bytes::Bytes {
    use llmux_core::json::{translated_size, written_body};
    let Ok(resp) = serde_json::from_slice::<response::GenerateResponse>(body) else {
        return bytes::Bytes::new();
    };
    response::to_openai(resp, MODEL, 1_731_000_000)
        .and_then(|r| written_body(&r, translated_size(body.len())))
        .unwrap_or_default()
}

fn translate_stream(pieces: &[&[u8]], events: &mut Vec<StreamEvent>) -> usize {
    let mut t = GeminiStream::new(true, MODEL, 1_731_000_000);
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
    let mut g = c.benchmark_group("gemini");
    assert!(
        !translate_request(REQUEST.as_bytes()).is_empty(),
        "the request did not translate"
    );
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("request", |b| {
        b.iter(|| translate_request(black_box(REQUEST.as_bytes())))
    });

    assert!(
        !translate_response(RESPONSE.as_bytes()).is_empty(),
        "the response did not translate"
    );
    g.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    g.bench_function("response", |b| {
        b.iter(|| translate_response(black_box(RESPONSE.as_bytes())))
    });

    let sse = sse();
    let mut events = Vec::with_capacity(16);
    for (name, pieces) in [
        ("stream_one_read", vec![sse.as_bytes()]),
        (
            "stream_per_event",
            sse.split_inclusive("\r\n\r\n").map(str::as_bytes).collect(),
        ),
    ] {
        assert!(
            translate_stream(&pieces, &mut events) > 10,
            "{name}: events lost"
        );
        g.throughput(Throughput::Bytes(sse.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| translate_stream(black_box(&pieces), &mut events))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
