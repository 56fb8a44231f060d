#!/usr/bin/env python3
"""Before any load: nginx serves the fixtures byte for byte, and llmux turns
each of them into a correct OpenAI answer (content, usage, stream framing),
so every row measures a working path. Usage: check.py NGINX_URL LLMUX_URL KEY"""

import json
import os
import sys
import urllib.request

LIB = os.path.dirname(os.path.abspath(__file__))
STREAMED = "Here is an iterative version:\n\n```rust\nfn fib(n: u64) -> u64 { ... }\n```"


def read(name):
    with open(os.path.join(LIB, name), "rb") as f:
        return f.read()


def post(url, body, key):
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def fail(msg):
    sys.exit(f"check failed: {msg}")


def check_json(name, body, text):
    d = json.loads(body)
    got = d["choices"][0]["message"]["content"]
    if got != text or d["usage"]["completion_tokens"] != 58:
        fail(f"{name}: unexpected answer {d}")


def check_stream(name, body):
    events = [l[6:] for l in body.decode().split("\n") if l.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        fail(f"{name}: the stream does not end with [DONE]:\n{body.decode()}")
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    usage = [c for c in chunks if c["choices"] == [] and c.get("usage")]
    if text != STREAMED or len(usage) != 1:
        fail(f"{name}: content {text!r}, {len(usage)} usage chunks:\n{body.decode()}")


def main():
    nginx, llmux, key = sys.argv[1:4]
    for path, req, fixture in [
        ("/v1/chat/completions", "request.json", "response.json"),
        ("/stream/v1/chat/completions", "request-stream.json", "response.sse"),
        ("/anthropic/v1/messages", "anthropic-request.json", "anthropic-response.json"),
        ("/anthropic-stream/v1/messages", "anthropic-request-stream.json", "anthropic-response.sse"),
    ]:
        status, body = post(nginx + path, read(req), key)
        if status != 200 or body != read(fixture):
            fail(f"nginx {path} does not serve {fixture}")
    text = json.loads(read("response.json"))["choices"][0]["message"]["content"]
    for req in ["request.json", "request-claude.json"]:
        check_json(req, post(llmux + "/v1/chat/completions", read(req), key)[1], text)
    for req in ["request-stream.json", "request-claude-stream.json"]:
        check_stream(req, post(llmux + "/v1/chat/completions", read(req), key)[1])
    print("ok: nginx serves the fixtures; llmux answers each path correctly")


if __name__ == "__main__":
    main()
