//! Fixtures: what coding agents send, what Gemini answers.

use super::request::{SKIP_SIGNATURE, build};
use super::response::{GenerateResponse, to_openai};
use super::stream::GeminiStream;
use crate::providers::{StreamEvent, StreamTranslator};
use crate::types::ChatCompletionRequest;
use serde_json::{Value, json};

fn body(v: Value, model: &str) -> Value {
    let req: ChatCompletionRequest = serde_json::from_value(v).unwrap();
    let built = build(&req, model, false).unwrap();
    // What is sent is written by hand: byte for byte what serde writes.
    let sent = crate::json::written_body(&built, 0).unwrap();
    assert_eq!(sent, serde_json::to_vec(&built).unwrap());
    serde_json::from_slice(&sent).unwrap()
}

#[test]
fn messages_become_contents_with_system_instruction_and_merged_turns() {
    let b = body(
        json!({"model": "g", "messages": [
            {"role": "system", "content": "You are Roo."},
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.webp"}}]},
            {"role": "assistant", "content": "ok"}
        ]}),
        "gemini-2.5-pro",
    );
    assert_eq!(
        b["systemInstruction"],
        json!({"parts": [{"text": "You are Roo."}]})
    );
    let contents = b["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 2);
    assert_eq!(contents[0]["role"], "user");
    assert_eq!(
        contents[0]["parts"][2],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBO"}})
    );
    assert_eq!(
        contents[0]["parts"][3],
        json!({"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a.webp"}})
    );
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [{"text": "ok"}]})
    );
}

#[test]
fn tool_calls_and_results_match_by_id_and_keep_signatures() {
    let b = body(
        json!({"model": "g", "messages": [
        {"role": "user", "content": "weather in a and b"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"a\"}"},
             "provider_specific_fields": {"thought_signature": "sig-1"}},
            {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    ], "tools": [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true}},
        {"type": "function", "function": {"name": "time", "parameters": {"type": "object", "properties": {}}}}
    ], "tool_choice": {"type": "function", "function": {"name": "weather"}}}),
        "gemini-3-pro-preview",
    );
    let c = b["contents"].as_array().unwrap();
    assert_eq!(
        c[1]["parts"][0],
        json!({"functionCall": {"name": "weather", "args": {"city": "a"}}, "thoughtSignature": "sig-1"})
    );
    assert_eq!(
        c[1]["parts"][1]["thoughtSignature"], SKIP_SIGNATURE,
        "Gemini 3 needs a signature on every call"
    );
    assert_eq!(c[2]["role"], "user");
    assert_eq!(
        c[2]["parts"][0],
        json!({"functionResponse": {"name": "time", "response": {"content": "noon"}}})
    );
    assert_eq!(c[2]["parts"][1]["functionResponse"]["name"], "weather");
    let decls = b["tools"][0]["functionDeclarations"].as_array().unwrap();
    assert!(decls[0]["parameters"].get("additionalProperties").is_none());
    assert!(
        decls[1].get("parameters").is_none(),
        "an empty object schema is left out"
    );
    assert_eq!(
        b["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
    );
}

#[test]
fn parameters_map_to_generation_config() {
    let b = body(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.3, "top_p": 0.8, "top_k": 40, "max_completion_tokens": 500, "stop": "END",
        "n": 2, "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object",
            "properties": {"a": {"type": "integer"}}, "additionalProperties": false}}},
        "reasoning_effort": "medium",
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}),
        "gemini-2.5-flash",
    );
    let g = &b["generationConfig"];
    assert_eq!(g["temperature"], 0.3);
    assert_eq!(g["topK"], 40);
    assert_eq!(g["maxOutputTokens"], 500);
    assert_eq!(g["stopSequences"], json!(["END"]));
    assert_eq!(g["candidateCount"], 2);
    assert_eq!(g["seed"], 7);
    assert_eq!(g["responseMimeType"], "application/json");
    assert!(g["responseSchema"].get("additionalProperties").is_none());
    assert_eq!(
        g["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
    assert_eq!(b["safetySettings"][0]["threshold"], "BLOCK_NONE");

    let b = body(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"}),
        "gemini-3-pro-preview",
    );
    assert_eq!(
        b["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "high", "includeThoughts": true})
    );
}

#[test]
fn unsupported_parameters_are_named_unless_dropped() {
    let req: ChatCompletionRequest = serde_json::from_value(json!({"model": "g",
        "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 1}}))
    .unwrap();
    let e = build(&req, "gemini-2.5-pro", false).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("logit_bias")));
    assert!(build(&req, "gemini-2.5-pro", true).is_ok());
}

const RESPONSE: &str = r#"{
  "candidates": [{"content": {"role": "model", "parts": [
      {"text": "Thinking about weather.", "thought": true},
      {"text": "Checking both."},
      {"functionCall": {"name": "weather", "args": {"city": "a"}}, "thoughtSignature": "CiQB"},
      {"functionCall": {"name": "weather", "args": {"city": "b"}}}]},
    "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 170,
                    "cachedContentTokenCount": 100, "thoughtsTokenCount": 20},
  "modelVersion": "gemini-2.5-pro", "responseId": "resp-1"
}"#;

#[test]
fn response_becomes_tool_calls_reasoning_and_usage() {
    let r: GenerateResponse = serde_json::from_str(RESPONSE).unwrap();
    let out = to_openai(r, "gemini-2.5-pro", 1).unwrap();
    let m = &out.choices[0].message;
    assert_eq!(m.content.as_deref(), Some("Checking both."));
    assert_eq!(
        m.reasoning_content.as_deref(),
        Some("Thinking about weather.")
    );
    let calls = m.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].id, calls[1].id, "generated ids are unique");
    assert_eq!(calls[0].function.arguments, "{\"city\":\"a\"}");
    assert_eq!(
        calls[0].extra["provider_specific_fields"]["thought_signature"],
        "CiQB"
    );
    assert_eq!(out.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let u = out.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (120, 50, 170)
    );
    assert_eq!(u.cached_tokens(), 100);
    assert_eq!(u.reasoning_tokens(), 20);
}

#[test]
fn finish_reasons_and_blocked_prompts() {
    use super::response::finish_reason;
    assert_eq!(finish_reason(Some("STOP"), false).as_deref(), Some("stop"));
    assert_eq!(
        finish_reason(Some("MAX_TOKENS"), false).as_deref(),
        Some("length")
    );
    for r in [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
    ] {
        assert_eq!(
            finish_reason(Some(r), false).as_deref(),
            Some("content_filter"),
            "{r}"
        );
    }
    let blocked: GenerateResponse =
        serde_json::from_value(json!({"promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 5}}))
        .unwrap();
    let e = to_openai(blocked, "g", 1).unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (400, Some("content_filter")));
    assert!(e.message.contains("SAFETY"));
}

fn run(input: &str, wants_usage: bool) -> (Vec<StreamEvent>, GeminiStream) {
    let mut t = GeminiStream::new(wants_usage, "gemini-2.5-pro", 1);
    let mut out = vec![];
    for b in input.as_bytes().chunks(9) {
        t.push(b, &mut out);
    }
    t.finish(&mut out);
    (out, t)
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
fn stream_events_become_chunks_with_whole_tool_calls_and_usage_last() {
    let input = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"hmm\",\"thought\":true}]}}],\"responseId\":\"r1\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"},{\"functionCall\":{\"name\":\"f\",\"args\":{\"x\":1}},\"thoughtSignature\":\"S1\"},{\"functionCall\":{\"name\":\"g\",\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2,\"totalTokenCount\":16}}\r\n\r\n";
    let (out, t) = run(input, true);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(c[0]["id"], "r1");
    assert_eq!(c[1]["choices"][0]["delta"]["reasoning_content"], "hmm");
    assert_eq!(c[2]["choices"][0]["delta"]["content"], "Hel");
    let t0 = &c[4]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (t0["index"].as_u64(), t0["function"]["name"].as_str()),
        (Some(0), Some("f"))
    );
    assert_eq!(t0["function"]["arguments"], "{\"x\":1}");
    assert_eq!(t0["provider_specific_fields"]["thought_signature"], "S1");
    assert_eq!(c[5]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
    assert_eq!(c[6]["choices"][0]["finish_reason"], "tool_calls");
    let usage = c.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 6);
    assert_eq!(
        usage["usage"]["completion_tokens_details"]["reasoning_tokens"],
        2
    );
    assert_eq!(t.usage().unwrap().prompt_tokens, 10);
}

/// Text comes through whatever its escapes: copied as it came when it can
/// be, decoded when not (`\u` escapes), and the same either way; empty
/// text and text that is not a string make no chunk.
#[test]
fn stream_text_keeps_every_escape() {
    let part = |p: &str| {
        format!(
            "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{p}]}},\"index\":0}}],\"responseId\":\"r\\u0031\"}}\r\n\r\n"
        )
    };
    let input = [
        part(r#"{"text":"a \"b\"\\\n\t\/"}"#),
        part(r#"{"text":"Z\u00fcrich \ud83e\udd80"}"#),
        part(r#"{"text":""}"#),
        part(r#"{"text":5}"#),
        part(r#"{"text":"","thoughtSignature":"S"}"#),
        part(r#"{"text":"think \u00e9","thought":true}"#),
        part(r#"{"text":"plain","thought":true}"#),
        part(r#"{"inlineData":{"mimeType":"image/png","data":"AAAA"}}"#),
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n".to_owned(),
    ]
    .concat();
    let (out, _) = run(&input, false);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    assert!(c.iter().all(|x| x["id"] == "r1"), "{c:?}");
    let deltas: Vec<&Value> = c.iter().map(|x| &x["choices"][0]["delta"]).collect();
    let content: Vec<&str> = deltas
        .iter()
        .filter_map(|d| d["content"].as_str())
        .collect();
    assert_eq!(
        content,
        ["", "a \"b\"\\\n\t/", "Z\u{fc}rich \u{1f980}", "!"]
    );
    let reasoning: Vec<&str> = deltas
        .iter()
        .filter_map(|d| d["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, ["think \u{e9}", "plain"]);
    // The role chunk, three texts, two thoughts, the image, the finish.
    assert_eq!(c.len(), 8, "{c:?}");
    assert_eq!(
        c[5]["choices"][0]["delta"]["images"][0]["image_url"]["url"],
        "data:image/png;base64,AAAA"
    );
    assert_eq!(c[7]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn an_error_event_or_a_cut_stream_is_an_error() {
    let (out, _) = run(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\ndata: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n",
        true,
    );
    let StreamEvent::Error(e) = out.last().unwrap() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (e.status, e.message.as_str()),
        (503, "The model is overloaded.")
    );
    assert!(e.retryable);
    let (out, _) = run(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n",
        true,
    );
    assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.status == 502));
}

#[test]
fn a_function_call_gemini_could_not_write_is_a_retryable_error_not_an_empty_stop() {
    let failed = |reason: &str, parts: Value| -> GenerateResponse {
        serde_json::from_value(
            json!({"candidates": [{"content": {"role": "model", "parts": parts},
            "finishReason": reason, "finishMessage": "Malformed function call: print(x"}],
            "usageMetadata": {"promptTokenCount": 5}}),
        )
        .unwrap()
    };
    for reason in [
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
    ] {
        let e = to_openai(failed(reason, json!([])), "g", 1).unwrap_err();
        assert_eq!(e.status, 502, "{reason}");
        assert!(e.retryable, "{reason}");
        assert!(
            e.message.contains(reason) && e.message.contains("print(x"),
            "{}",
            e.message
        );
    }
    // An answer with text in it is an answer.
    let ok = to_openai(
        failed("MALFORMED_FUNCTION_CALL", json!([{"text": "Partly done."}])),
        "g",
        1,
    )
    .unwrap();
    assert_eq!(
        ok.choices[0].message.content.as_deref(),
        Some("Partly done.")
    );
    assert_eq!(ok.choices[0].finish_reason.as_deref(), Some("stop"));
    // Streamed: an error event instead of a finish chunk.
    let (out, _) = run(
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"MALFORMED_FUNCTION_CALL\"}]}\n\n",
        false,
    );
    assert!(
        chunks(&out)
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    let err = out.iter().find_map(|e| match e {
        StreamEvent::Error(e) => Some(e),
        _ => None,
    });
    assert!(
        err.is_some_and(|e| e.message.contains("MALFORMED_FUNCTION_CALL")),
        "{out:?}"
    );
    use super::response::finish_reason;
    assert_eq!(
        finish_reason(Some("IMAGE_PROHIBITED_CONTENT"), false).as_deref(),
        Some("content_filter")
    );
}

#[test]
fn media_types_come_from_the_client_then_the_extension() {
    let b = body(
        json!({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat", "format": "image/png"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
            {"type": "file", "file": {"file_id": "https://generativelanguage.googleapis.com/v1beta/files/abc123", "format": "application/pdf"}},
            {"type": "file", "file": {"file_id": "gs://bucket/clip.mov"}},
            {"type": "file", "file": {"file_id": "https://www.youtube.com/watch?v=x1"}},
            {"type": "file", "file": {"file_id": "https://example.com/notes.csv?sig=1"}}]}]}),
        "gemini-2.5-pro",
    );
    let types: Vec<&str> = b["contents"][0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|p| p["fileData"]["mimeType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "image/png",
            "image/jpeg",
            "application/pdf",
            "video/mov",
            "video/mp4",
            "text/csv"
        ]
    );
    // A file of no known type is not guessed.
    let req: ChatCompletionRequest = serde_json::from_value(json!({"model": "g", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}}]}]}))
    .unwrap();
    let e = build(&req, "gemini-2.5-pro", false).unwrap_err();
    assert_eq!(e.status, 400);
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));
    assert!(e.message.contains("format"), "{}", e.message);
}

#[test]
fn images_the_model_makes_reach_the_client_whole_and_streamed() {
    let r: GenerateResponse = serde_json::from_value(
        json!({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Here is a cat."},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}}]}, "finishReason": "STOP"}]}),
    )
    .unwrap();
    let out = to_openai(r, "gemini-2.5-flash-image", 1).unwrap();
    let m = serde_json::to_value(&out.choices[0].message).unwrap();
    assert_eq!(m["content"], "Here is a cat.");
    assert_eq!(
        m["images"],
        json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}, "index": 0}])
    );
    // An answer that is only an image is an answer, not a failure.
    let r: GenerateResponse = serde_json::from_value(
        json!({"candidates": [{"content": {"role": "model", "parts": [
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}}]}, "finishReason": "STOP"}]}),
    )
    .unwrap();
    assert!(to_openai(r, "g", 1).is_ok());

    let (out, _) = run(
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"A cat:\"}]}}]}\n\n\
         data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"iVBORw0K\"}}]},\"finishReason\":\"STOP\"}]}\n\n",
        false,
    );
    let c = chunks(&out);
    let images: Vec<&Value> = c
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("images"))
        .collect();
    assert_eq!(
        images,
        [
            &json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}, "index": 0}])
        ]
    );
    assert_eq!(c.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[test]
fn thinking_off_and_adaptive_per_model_family() {
    let config = |extra: Value, model: &str| {
        let mut v = json!({"model": "g", "messages": [{"role": "user", "content": "x"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body(v, model)["generationConfig"]["thinkingConfig"].clone()
    };
    // Off: Gemini 2.5 Flash stops thinking; Gemini 3 and 2.5 Pro cannot,
    // and think least, where without a config they would think their most.
    for off in [
        json!({"reasoning_effort": "none"}),
        json!({"thinking": {"type": "disabled"}}),
    ] {
        assert_eq!(
            config(off.clone(), "gemini-2.5-flash"),
            json!({"thinkingBudget": 0})
        );
        assert_eq!(
            config(off.clone(), "gemini-3-pro-preview"),
            json!({"thinkingLevel": "low", "includeThoughts": false})
        );
        assert_eq!(
            config(off, "gemini-2.5-pro"),
            json!({"thinkingBudget": 128, "includeThoughts": false}),
            "2.5 Pro refuses a budget of 0"
        );
    }
    // Thinking without a budget: the model's own choice.
    let adaptive = json!({"thinking": {"type": "adaptive"}});
    assert_eq!(
        config(adaptive.clone(), "gemini-2.5-pro"),
        json!({"thinkingBudget": -1, "includeThoughts": true})
    );
    assert_eq!(
        config(adaptive, "gemini-3-pro-preview"),
        json!({"includeThoughts": true})
    );
    assert_eq!(
        config(
            json!({"thinking": {"type": "enabled", "budget_tokens": 3000}}),
            "gemini-2.5-pro"
        ),
        json!({"thinkingBudget": 3000, "includeThoughts": true})
    );
}

#[test]
fn gemini_tools_and_web_search_options_become_grounding_with_google_search() {
    let f = json!({"type": "function", "function": {"name": "read",
        "parameters": {"type": "object", "properties": {"p": {"type": "string"}}}}});
    // Its own tools, written as Gemini takes them, go as written, after
    // the functions.
    let b = body(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"googleSearch": {}}, f, {"url_context": {}}]}),
        "gemini-2.5-flash",
    );
    assert_eq!(b["tools"][0]["functionDeclarations"][0]["name"], "read");
    assert_eq!(b["tools"][1], json!({"googleSearch": {}}));
    assert_eq!(b["tools"][2], json!({"url_context": {}}));
    // OpenAI's web_search_options: Google Search, as LiteLLM maps it.
    let b = body(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "web_search_options": {"search_context_size": "low"}}),
        "gemini-2.5-flash",
    );
    assert_eq!(b["tools"], json!([{"googleSearch": {}}]));
    assert!(b.get("web_search_options").is_none() && b.get("toolConfig").is_none());
    // Not twice when the client offered it too.
    let b = body(
        json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"google_search": {}}], "web_search_options": {}}),
        "gemini-2.5-flash",
    );
    assert_eq!(b["tools"], json!([{"google_search": {}}]));
    // Another provider's tool type is named, not dropped unseen.
    let req: ChatCompletionRequest = serde_json::from_value(json!({"model": "g",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))
    .unwrap();
    let e = build(&req, "gemini-2.5-flash", false).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("tools[0]")));
    assert!(e.message.contains("web_search_20250305"), "{}", e.message);
    assert!(
        build(&req, "gemini-2.5-flash", true)
            .unwrap()
            .tools
            .is_none()
    );
}

/// An answer grounded with Google Search, as the API documents one: the
/// queries run, the pages found, which text each supports.
fn grounding() -> Value {
    json!({
        "webSearchQueries": ["UEFA Euro 2024 winner", "who won euro 2024"],
        "searchEntryPoint": {"renderedContent": "<style>.container{}</style><div class=\"container\"></div>"},
        "groundingChunks": [{"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AbC1", "title": "uefa.com"}}],
        "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 29, "text": "Spain won Euro 2024, 2 to 1."},
                               "groundingChunkIndices": [0]}]
    })
}

#[test]
fn a_grounded_answer_keeps_its_grounding_and_counts_its_searches() {
    let r: GenerateResponse = serde_json::from_value(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Spain won Euro 2024, 2 to 1."}]},
                        "finishReason": "STOP", "index": 0, "groundingMetadata": grounding(),
                        "urlContextMetadata": {"urlMetadata": [{"retrievedUrl": "https://uefa.com", "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"}]}}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9, "totalTokenCount": 21},
        "modelVersion": "gemini-2.5-flash"
    }))
    .unwrap();
    let out = to_openai(r, "gemini-2.5-flash", 1).unwrap();
    let written = crate::json::written_body(&out, 0).unwrap();
    assert_eq!(written, serde_json::to_vec(&out).unwrap());
    let v: Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Spain won Euro 2024, 2 to 1."
    );
    assert_eq!(v["vertex_ai_grounding_metadata"], json!([grounding()]));
    assert_eq!(
        v["vertex_ai_url_context_metadata"][0]["urlMetadata"][0]["retrievedUrl"],
        "https://uefa.com"
    );
    assert_eq!(v["vertex_ai_safety_results"], json!([]));
    assert_eq!(v["vertex_ai_citation_metadata"], json!([]));
    // One grounded answer (of two queries): Google bills 2.x grounding by
    // the prompt, and LiteLLM counts it so.
    assert_eq!(
        v["usage"]["server_tool_use"],
        json!({"web_search_requests": 1})
    );
    // Without grounding: the lists, empty, as LiteLLM gives them; no searches.
    let plain: GenerateResponse = serde_json::from_value(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}
    }))
    .unwrap();
    let out = to_openai(plain, "g", 1).unwrap();
    assert_eq!(out.extra["vertex_ai_grounding_metadata"], json!([]));
    assert_eq!(out.usage.unwrap().server_tool_use, None);
}

#[test]
fn a_grounded_stream_carries_its_grounding_in_a_chunk_and_its_searches_in_usage() {
    let last = json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": " 2 to 1."}]},
                        "finishReason": "STOP", "groundingMetadata": grounding()}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9, "totalTokenCount": 21}
    });
    let input = format!(
        "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{{\"text\":\"Spain won Euro 2024,\"}}]}}}}]}}\r\n\r\n\
         data: {last}\r\n\r\n"
    );
    let (out, t) = run(&input, true);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    let text: String = c
        .iter()
        .filter_map(|x| {
            x["choices"].get(0)?["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Spain won Euro 2024, 2 to 1.");
    let grounded: Vec<&Value> = c
        .iter()
        .filter(|x| x.get("vertex_ai_grounding_metadata").is_some())
        .collect();
    assert_eq!(grounded.len(), 1);
    assert_eq!(
        grounded[0]["vertex_ai_grounding_metadata"],
        json!([grounding()])
    );
    assert_eq!(grounded[0]["object"], "chat.completion.chunk");
    assert_eq!(grounded[0]["choices"][0]["delta"], json!({}));
    let usage = &c.last().unwrap()["usage"];
    assert_eq!(usage["server_tool_use"], json!({"web_search_requests": 1}));
    assert_eq!(t.usage().unwrap().web_searches(), 1);
}

#[test]
fn safety_ratings_on_every_event_come_once_and_each_grounded_candidate_counts() {
    let safety = |p: &str| json!([{"category": "HARM_CATEGORY_HARASSMENT", "probability": p}]);
    let event = |index: u32, text: &str, last: bool, p: &str| {
        let mut c = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": index,
                           "safetyRatings": safety(p)});
        if last {
            c["finishReason"] = json!("STOP");
            c["groundingMetadata"] = grounding();
        }
        let mut e = json!({"candidates": [c]});
        if last {
            e["usageMetadata"] =
                json!({"promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9});
        }
        format!("data: {e}\r\n\r\n")
    };
    // Two candidates, each grounded in an event of its own; ratings on
    // every event.
    let input = [
        event(0, "a", false, "NEGLIGIBLE"),
        event(1, "b", false, "NEGLIGIBLE"),
        event(0, "c", true, "LOW"),
        event(1, "d", true, "MEDIUM"),
    ]
    .concat();
    let (out, t) = run(&input, true);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
    let c = chunks(&out);
    let with_fields: Vec<&Value> = c
        .iter()
        .filter(|x| x.get("vertex_ai_safety_results").is_some())
        .collect();
    // One chunk per grounded event, with the latest ratings once there is
    // a finish; none for the events with ratings only.
    assert_eq!(with_fields.len(), 2, "{c:?}");
    assert_eq!(
        with_fields[0]["vertex_ai_safety_results"],
        json!([safety("LOW")])
    );
    assert_eq!(with_fields[0]["choices"][0]["index"], 0);
    assert_eq!(
        with_fields[1]["vertex_ai_safety_results"],
        json!([safety("MEDIUM")])
    );
    assert_eq!(with_fields[1]["choices"][0]["index"], 1);
    assert_eq!(t.usage().unwrap().web_searches(), 2);
    assert_eq!(
        c.last().unwrap()["usage"]["server_tool_use"],
        json!({"web_search_requests": 2})
    );
}
