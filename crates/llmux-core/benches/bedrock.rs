//! The translated path to Bedrock, without the network: an OpenAI chat
//! request to a Converse request (and its SigV4 signature), a Converse
//! response back to an OpenAI completion, and a binary ConverseStream to
//! OpenAI chunks. `cargo bench -p llmux-core --bench bedrock -- --quick`.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmux_core::providers::bedrock::request::{ModelTraits, build};
use llmux_core::providers::bedrock::{response, sign_request, stream::BedrockStream};
use llmux_core::providers::{AwsCredentials, StreamEvent, StreamTranslator};
use llmux_core::types::{ChatCompletionRequest, Secret};
use serde_json::json;
use std::hint::black_box;

const REQUEST: &str = include_str!("../../../bench/lib/request-claude.json");
const TRAITS: ModelTraits = ModelTraits {
    claude: false,
    nova: true,
    prompt_caching: true,
    effort: llmux_core::providers::bedrock::request::Effort::None,
};
const URL: &str =
    "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1%3A0/converse";

fn frame(name: &str, payload: serde_json::Value) -> Vec<u8> {
    let m = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(name.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    let _ = write_message_to(&m, &mut out);
    out
}

fn stream_bytes() -> Vec<u8> {
    let mut out = frame("messageStart", json!({"role": "assistant"}));
    for w in "Here is an iterative Fibonacci function with a doc comment and a unit test that checks ten numbers".split(' ') {
        out.extend(frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": format!("{w} ")}})));
    }
    out.extend(frame("contentBlockStop", json!({"contentBlockIndex": 0})));
    out.extend(frame("messageStop", json!({"stopReason": "end_turn"})));
    out.extend(frame("metadata", json!({"usage": {"inputTokens": 48, "outputTokens": 20, "totalTokens": 68}, "metrics": {"latencyMs": 1}})));
    out
}

fn translate_request(body: &[u8]) -> bytes::Bytes {
    use llmux_core::json::{translated_size, written_body};
    let Ok(req) = serde_json::from_slice::<ChatCompletionRequest>(body) else {
        return bytes::Bytes::new();
    };
    build(&req, TRAITS, false)
        .and_then(|b| written_body(&b.body, translated_size(body.len())))
        .unwrap_or_default()
}

fn translate_stream(bytes: &[u8], piece: usize, events: &mut Vec<StreamEvent>) -> usize {
    let mut t = BedrockStream::new(true, false, "amazon.nova-pro-v1:0", 1_731_000_000);
    let mut n = 0;
    for p in bytes.chunks(piece) {
        t.push(p, events);
        n += events.len();
        events.clear();
    }
    t.finish(events);
    n += events.len();
    events.clear();
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("bedrock");
    let body = translate_request(REQUEST.as_bytes());
    assert!(!body.is_empty(), "the request did not translate");
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("request", |b| {
        b.iter(|| translate_request(black_box(REQUEST.as_bytes())))
    });

    let creds = AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: None,
    };
    g.bench_function("sigv4", |b| {
        b.iter(|| {
            let mut h = http::HeaderMap::new();
            h.insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            let _ = sign_request(
                URL,
                black_box(&body),
                &mut h,
                &creds,
                "us-east-1",
                std::time::SystemTime::now(),
            );
            h
        })
    });

    let resp = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Here is an iterative Fibonacci function."}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 48, "outputTokens": 20, "totalTokens": 68}});
    g.bench_function("response", |b| {
        b.iter(|| {
            let out = response::to_openai(black_box(&resp), "amazon.nova-pro-v1:0", false, 1);
            llmux_core::json::written_body(&out, 256).unwrap_or_default()
        })
    });

    let bytes = stream_bytes();
    let mut events = Vec::with_capacity(32);
    for (name, piece) in [("stream_one_read", bytes.len()), ("stream_small_reads", 64)] {
        assert!(
            translate_stream(&bytes, piece, &mut events) > 10,
            "{name}: events lost"
        );
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| translate_stream(black_box(&bytes), piece, &mut events))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
