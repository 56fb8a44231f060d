//! A local estimate for `/v1/messages/count_tokens` when the model is not
//! Claude (Claude deployments ask Anthropic). OpenAI's o200k tokenizer over
//! the text, tool definitions and tool calls, a small overhead per message,
//! and flat amounts for images and documents: an estimate, as documented.

use crate::types::anthropic::{Block, Content, KnownBlock, MessagesRequest};
use std::sync::OnceLock;
use tiktoken_rs::CoreBPE;

/// Anthropic bills a typical image at about this many tokens.
const IMAGE_TOKENS: u64 = 1_600;
const DOCUMENT_TOKENS: u64 = 1_500;
const PER_MESSAGE: u64 = 3;

fn bpe() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn count(text: &str) -> u64 {
    match bpe() {
        Some(b) => b.encode_ordinary(text).len() as u64,
        // Without the tokenizer: about four characters a token.
        None => (text.len() as u64).div_ceil(4),
    }
}

pub fn estimate(req: &MessagesRequest) -> u64 {
    let mut n = 0;
    if let Some(s) = &req.system {
        n += content(s) + PER_MESSAGE;
    }
    for m in &req.messages {
        n += content(&m.content) + PER_MESSAGE;
    }
    for t in req.tools.iter().flatten() {
        n += count(&t.name) + t.description.as_deref().map_or(0, count);
        n += t.input_schema.as_ref().map_or(0, |s| count(&s.to_string()));
    }
    n
}

fn content(c: &Content) -> u64 {
    match c {
        Content::Text(t) => count(t),
        Content::Blocks(blocks) => blocks.iter().map(block).sum(),
    }
}

fn block(b: &Block) -> u64 {
    match b {
        Block::Known(KnownBlock::Text { text, .. }) => count(text),
        Block::Known(KnownBlock::Image { .. }) => IMAGE_TOKENS,
        Block::Known(KnownBlock::Document { .. }) => DOCUMENT_TOKENS,
        Block::Known(KnownBlock::ToolUse { name, input, .. }) => {
            count(name) + count(&input.to_string())
        }
        Block::Known(KnownBlock::ToolResult { content: c, .. }) => c.as_ref().map_or(0, content),
        Block::Known(KnownBlock::Thinking { thinking, .. }) => count(thinking),
        Block::Known(KnownBlock::RedactedThinking { .. }) => 0,
        Block::Other(v) => count(&v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_grow_with_the_prompt() {
        let small: MessagesRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello, world"}]})).unwrap();
        let n = estimate(&small);
        assert!((3..20).contains(&n), "{n}");
        let big: MessagesRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "max_tokens": 10, "system": "You are a careful coding agent.",
            "messages": [{"role": "user", "content": "Hello, world ".repeat(100)}],
            "tools": [{"name": "read_file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]})).unwrap();
        assert!(estimate(&big) > n + 150);
    }
}
