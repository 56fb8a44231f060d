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

    let mut events = Vec::with_capacity(16);
    for (name, pieces) in [
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
        g.throughput(Throughput::Bytes(SSE.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| translate_stream(black_box(&pieces), &mut events))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
