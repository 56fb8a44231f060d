#!/usr/bin/env python3
"""A stand-in for Amazon Bedrock Runtime that checks every request with botocore.

llmux signs its Bedrock requests with the Rust `aws-sigv4` crate and builds the
Converse bodies itself. This server is the independent check: for every
request it

1. recomputes the SigV4 signature with botocore (`SigV4Auth(Credentials(akid,
   secret, token), "bedrock", region)`) over an `AWSRequest` rebuilt from what
   arrived: the method, the URL with the raw path exactly as received (so a
   percent-encoded model id is signed the way AWS would see it), the headers
   the request says it signed (`SignedHeaders`) and the body. botocore is made
   to use the request's own `x-amz-date` (its clock is pinned to that value
   while it signs). botocore also adds `x-amz-security-token` when the
   credentials carry a session token, so a request that did not sign its
   token does not match. The whole `Authorization` is compared: the credential
   scope (key id, date, region, service `bedrock`), `SignedHeaders` and
   `Signature`;
2. validates the JSON body against botocore's `bedrock-runtime` input shape
   for the operation the path names (`/model/{modelId}/converse` → Converse,
   `/converse-stream` → ConverseStream) with `botocore.validate.ParamValidator`,
   after putting `modelId` (decoded from the path, where it travels) into the
   parameters. Blobs (image, document, video and audio `bytes`) arrive as
   base64 strings in JSON: they are decoded strictly (an invalid one is an
   error) and validated as bytes; nothing is stripped. Documents
   (`inputSchema.json`, `toolUse.input`, `additionalModelRequestFields`) are
   free-form JSON, as botocore's document rules have them.
   On top of botocore, which checks types, unknown and missing members,
   unions and minimums, the model's other constraints are checked too and
   reported prefixed `constraint:` (enums, maximum lengths and values,
   `pattern`s matched against the whole value), and a few rules the service
   enforces that the shapes cannot say, prefixed `bedrock:` (non-empty
   `messages` starting with a user turn and alternating, no blank text
   blocks, `toolConfig` whenever the history holds `toolUse`/`toolResult`
   blocks, every `toolResult` answering a `toolUse` of the assistant turn
   just before and every `toolUse` answered, Claude's thinking budget, at
   most 4 `cachePoint`s on Claude models);
3. records the outcome (GET /verifier/results: a JSON list, oldest first;
   DELETE /verifier/results forgets them);
4. answers like Bedrock: a 403 `InvalidSignatureException` when the signature
   does not match, a 400 `ValidationException` when the body is invalid,
   otherwise a minimal valid Converse response or, for converse-stream, an
   `application/vnd.amazon.eventstream` stream (messageStart,
   contentBlockDelta text ×N, contentBlockStop, messageStop, metadata)
   encoded here (prelude, CRC32s, string headers), sent chunked with frames
   split across chunks.

Usage:

    python bedrock_verifier.py [PORT] --access-key-id AKID --secret-access-key SECRET \
        [--session-token TOKEN] [--region us-east-1] \
        [--credential AKID,SECRET,TOKEN,REGION ...] [--bearer-token TOKEN]

PORT 0 (the default) picks a free port; the server prints
`listening on http://127.0.0.1:PORT` on stdout once it accepts connections.
Several credentials may be known (`--credential`, token may be empty): the
access key id in the request's credential scope picks the one to check
against, and that credential's region is the one expected. With
`--bearer-token`, `Authorization: Bearer <token>` (Bedrock API keys) is
accepted instead of SigV4.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock as _mock

import botocore.auth
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

SERVICE = "bedrock"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
DEFAULT_MAX_SKEW_S = 15 * 60  # AWS refuses requests dated further from its clock
MAX_RESULTS = 10_000
REPLY_TEXT = "Hello from the Bedrock verifier."

_PATH_RE = re.compile(r"^/model/([^/?#]+)/(converse|converse-stream)$")
_OPERATIONS = {"converse": "Converse", "converse-stream": "ConverseStream"}

_session = botocore.session.get_session()
SERVICE_MODEL = _session.get_service_model("bedrock-runtime")
_SERIALIZER = create_serializer("rest-json")

# botocore reads the clock through `botocore.auth.get_current_datetime`; it is
# pinned to the request's x-amz-date while one signature is computed.
_SIGN_LOCK = threading.Lock()


# ===========================================================================
# Signatures


@dataclass(frozen=True)
class Cred:
    access_key: str
    secret_key: str
    token: str | None
    region: str


def parse_authorization(value: str) -> dict[str, Any] | None:
    """`AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` → its parts."""
    if not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    parts: dict[str, str] = {}
    for item in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, sep, v = item.strip().partition("=")
        if sep:
            parts[k] = v
    if not {"Credential", "SignedHeaders", "Signature"} <= parts.keys():
        return None
    scope = parts["Credential"].split("/")
    return {
        "credential": parts["Credential"],
        "access_key": scope[0] if scope else "",
        "scope": scope,
        "signed_headers": parts["SignedHeaders"],
        "signature": parts["Signature"],
    }


class _RecordingSigV4(SigV4Auth):
    """botocore's SigV4Auth, keeping the canonical request and string to sign."""

    canonical: str = ""
    sts: str = ""

    def canonical_request(self, request):
        self.canonical = super().canonical_request(request)
        return self.canonical

    def string_to_sign(self, request, canonical_request):
        self.sts = super().string_to_sign(request, canonical_request)
        return self.sts


def botocore_sign(
    cred: Cred,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    amz_date: str,
) -> tuple[str, str, str]:
    """The Authorization botocore computes for this request at `amz_date`,
    with the canonical request and the string to sign."""
    req = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        req.headers[name] = value  # HTTPHeaders: adds, repeated names keep every value
    auth = _RecordingSigV4(
        Credentials(cred.access_key, cred.secret_key, cred.token), SERVICE, cred.region
    )
    when = datetime.datetime.strptime(amz_date, SIGV4_TIMESTAMP)
    with _SIGN_LOCK, _mock.patch.object(botocore.auth, "get_current_datetime", lambda: when):
        auth.add_auth(req)
    return req.headers["Authorization"], auth.canonical, auth.sts


# ===========================================================================
# Body validation


def expected_path(model_id: str, operation: str) -> str:
    """The path botocore's rest-json serializer builds for this model id."""
    op = SERVICE_MODEL.operation_model(operation)
    return _SERIALIZER.serialize_to_request({"modelId": model_id, "messages": []}, op)["url_path"]


def _decode_blobs(value: Any, shape, path: str, errors: list[str]) -> Any:
    """A copy of `value` with base64 blob strings decoded to bytes."""
    if shape is None:
        return value
    t = shape.type_name
    if t == "blob":
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as e:
                errors.append(f"constraint: {path} is not valid base64 ({e})")
                return value
        return value
    if shape.metadata.get("document"):
        return value
    if t == "structure" and isinstance(value, dict):
        return {
            k: _decode_blobs(v, shape.members.get(k), _join(path, k), errors)
            for k, v in value.items()
        }
    if t == "list" and isinstance(value, list):
        return [_decode_blobs(v, shape.member, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if t == "map" and isinstance(value, dict):
        return {k: _decode_blobs(v, shape.value, f"{path}.{k}", errors) for k, v in value.items()}
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _constraints(value: Any, shape, path: str, errors: list[str]) -> None:
    """The model's constraints ParamValidator leaves out: enum, max, pattern."""
    if shape is None or shape.metadata.get("document"):
        return
    md = shape.metadata
    t = shape.type_name
    if t == "string" and isinstance(value, str):
        enum = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            errors.append(f"constraint: {path} = {value!r} is not one of {enum}")
        if "max" in md and len(value) > md["max"]:
            errors.append(f"constraint: {path} is {len(value)} characters long, more than {md['max']}")
        if "pattern" in md and re.fullmatch(md["pattern"], value) is None:
            errors.append(f"constraint: {path} = {value!r} does not match the pattern {md['pattern']!r}")
    elif t in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in md and value > md["max"]:
            errors.append(f"constraint: {path} = {value} is above the maximum {md['max']}")
    elif t == "structure" and isinstance(value, dict):
        for k, v in value.items():
            _constraints(v, shape.members.get(k), _join(path, k), errors)
    elif t == "list" and isinstance(value, list):
        if "max" in md and len(value) > md["max"]:
            errors.append(f"constraint: {path} has {len(value)} items, more than {md['max']}")
        for i, v in enumerate(value):
            _constraints(v, shape.member, f"{path}[{i}]", errors)
    elif t == "map" and isinstance(value, dict):
        if "max" in md and len(value) > md["max"]:
            errors.append(f"constraint: {path} has {len(value)} entries, more than {md['max']}")
        for k, v in value.items():
            _constraints(v, shape.value, f"{path}.{k}", errors)


def _semantic(params: dict[str, Any], errors: list[str]) -> None:
    """Rules Bedrock enforces that the input shapes cannot express."""
    msgs = params.get("messages")
    if not isinstance(msgs, list) or not msgs:
        errors.append("bedrock: messages is required and must not be empty")
        return
    if not all(isinstance(m, dict) for m in msgs):
        return
    if msgs[0].get("role") != "user":
        errors.append("bedrock: A conversation must start with a user message.")
    for i in range(1, len(msgs)):
        if msgs[i].get("role") == msgs[i - 1].get("role"):
            errors.append(
                "bedrock: A conversation must alternate between user and assistant roles "
                f"(messages[{i - 1}] and messages[{i}] are both {msgs[i].get('role')!r})."
            )
    has_tool_blocks = False
    cache_points = sum(
        1 for b in (params.get("system") or []) if isinstance(b, dict) and "cachePoint" in b
    )
    for i, m in enumerate(msgs):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        if not content:
            errors.append(f"bedrock: messages[{i}].content must not be empty")
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            if "text" in block and isinstance(block["text"], str) and not block["text"].strip():
                errors.append(
                    f"bedrock: The text field in the ContentBlock object at messages.{i}.content.{j} "
                    "is blank. Add text to the text field, and try again."
                )
            if "toolUse" in block or "toolResult" in block:
                has_tool_blocks = True
            if "cachePoint" in block:
                cache_points += 1
            if "toolResult" in block and isinstance(block["toolResult"], dict):
                cache_points += sum(
                    1 for b in block["toolResult"].get("content") or [] if isinstance(b, dict) and "cachePoint" in b
                )
        # tool results answer the toolUse blocks of the assistant turn just before
        uses = [b["toolUse"].get("toolUseId") for b in content if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)]
        results = [
            b["toolResult"].get("toolUseId") for b in content if isinstance(b, dict) and isinstance(b.get("toolResult"), dict)
        ]
        if results:
            prev = msgs[i - 1] if i > 0 else {}
            prev_uses = [
                b["toolUse"].get("toolUseId")
                for b in (prev.get("content") or [])
                if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)
            ]
            for rid in results:
                if rid not in prev_uses:
                    errors.append(
                        f"bedrock: messages[{i}] has a toolResult for toolUseId {rid!r} with no toolUse "
                        f"of that id in the assistant message just before (ids there: {prev_uses})"
                    )
        if uses:
            if len(set(uses)) != len(uses):
                errors.append(f"bedrock: messages[{i}] repeats a toolUseId: {uses}")
            nxt = msgs[i + 1] if i + 1 < len(msgs) else None
            if nxt is not None:
                answered = {
                    b["toolResult"].get("toolUseId")
                    for b in (nxt.get("content") or [])
                    if isinstance(b, dict) and isinstance(b.get("toolResult"), dict)
                }
                missing = [u for u in uses if u not in answered]
                if missing:
                    errors.append(
                        f"bedrock: messages[{i}] has toolUse ids with no toolResult in the next message: {missing}"
                    )
    if has_tool_blocks and not params.get("toolConfig"):
        errors.append(
            "bedrock: The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    model_id = str(params.get("modelId", ""))
    if "anthropic" in model_id and cache_points > 4:
        errors.append(f"bedrock: at most 4 cachePoint blocks are allowed on Claude models, found {cache_points}")
    extra = params.get("additionalModelRequestFields")
    thinking = extra.get("thinking") if isinstance(extra, dict) else None
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        max_tokens = (params.get("inferenceConfig") or {}).get("maxTokens")
        if not isinstance(budget, int) or budget < 1024:
            errors.append(f"bedrock: thinking.budget_tokens must be an integer >= 1024, got {budget!r}")
        elif isinstance(max_tokens, int) and budget >= max_tokens:
            errors.append(
                f"bedrock: thinking.budget_tokens ({budget}) must be less than inferenceConfig.maxTokens ({max_tokens})"
            )


def validate_body(operation: str, model_id: str, body: Any) -> list[str]:
    """Every problem with this Converse/ConverseStream body, botocore's first."""
    errors: list[str] = []
    if not isinstance(body, dict):
        return [f"the body must be a JSON object, got {type(body).__name__}"]
    shape = SERVICE_MODEL.operation_model(operation).input_shape
    if "modelId" in body:
        errors.append("modelId travels in the path: it must not be in the body")
    params = dict(body)
    params["modelId"] = model_id
    params = _decode_blobs(params, shape, "", errors)
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        errors += [line for line in report.generate_report().splitlines() if line.strip()]
    _constraints(params, shape, "", errors)
    _semantic(params, errors)
    return errors


# ===========================================================================
# Responses


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One `application/vnd.amazon.eventstream` message with string headers."""
    hdr = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        hdr += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hdr) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdr))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + hdr + payload
    return msg + struct.pack(">I", zlib.crc32(msg) & 0xFFFFFFFF)


_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def event(event_type: str, body: dict[str, Any], pad: int = 0) -> bytes:
    """A Bedrock event frame; like Bedrock, payloads carry a `p` padding field."""
    if pad:
        body = {**body, "p": _PAD[:pad]}
    return encode_event(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(body, separators=(",", ":")).encode(),
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_event(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )


def _usage(body_len: int, words: int) -> dict[str, int]:
    inp = max(1, body_len // 4)
    return {"inputTokens": inp, "outputTokens": words, "totalTokens": inp + words}


def converse_response(body_len: int) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": REPLY_TEXT}]}},
        "stopReason": "end_turn",
        "usage": _usage(body_len, len(REPLY_TEXT.split())),
        "metrics": {"latencyMs": 1},
    }


def converse_stream_frames(body_len: int) -> list[bytes]:
    words = REPLY_TEXT.split(" ")
    frames = [event("messageStart", {"role": "assistant"}, pad=7)]
    for i, w in enumerate(words):
        text = w if i == 0 else " " + w
        frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}}, pad=11 + i))
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}, pad=3))
    frames.append(event("messageStop", {"stopReason": "end_turn"}, pad=20))
    frames.append(
        event("metadata", {"usage": _usage(body_len, len(words)), "metrics": {"latencyMs": 1}}, pad=5)
    )
    return frames


def split_misaligned(data: bytes) -> list[bytes]:
    """Pieces cut at offsets unrelated to frame boundaries (first inside a prelude)."""
    sizes = [5, 9, 31, 7]
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)] if k < 8 else 64
        out.append(data[i:i + n])
        i += n
        k += 1
    return out


# ===========================================================================
# The server


class Verifier:
    def __init__(self, creds: list[Cred], bearer_token: str | None, max_skew_s: int):
        self.creds = {c.access_key: c for c in creds}
        self.default_cred = creds[0]
        self.bearer_token = bearer_token
        self.max_skew_s = max_skew_s
        self.results: list[dict[str, Any]] = []
        self.seq = 0
        self.lock = threading.Lock()

    def record(self, rec: dict[str, Any]) -> None:
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            self.results.append(rec)
            del self.results[:-MAX_RESULTS]

    def check_signature(self, rec: dict[str, Any], method: str, raw_path: str, hdrs, body: bytes) -> None:
        rec["signature_ok"] = False
        rec["signature_errors"] = errs = []
        auth = hdrs.get("Authorization") or ""
        rec["received_authorization"] = auth
        if auth.startswith("Bearer "):
            rec["auth_scheme"] = "bearer"
            ok = self.bearer_token is not None and auth[len("Bearer "):] == self.bearer_token
            rec["bearer_ok"] = ok
            if not ok:
                errs.append("bearer token unknown" if self.bearer_token else "bearer auth not enabled (--bearer-token)")
            rec["signature_ok"] = ok
            return
        parsed = parse_authorization(auth)
        if parsed is None:
            rec["auth_scheme"] = "none" if not auth else "unknown"
            errs.append(f"no AWS4-HMAC-SHA256 Authorization header (got {auth[:40]!r})")
            return
        rec["auth_scheme"] = "sigv4"
        rec["received_signature"] = parsed["signature"]
        rec["signed_headers"] = parsed["signed_headers"].split(";")
        cred = self.creds.get(parsed["access_key"])
        if cred is None:
            errs.append(f"unknown access key id {parsed['access_key']!r}")
            cred = self.default_cred
        rec["access_key_id"] = parsed["access_key"]
        amz_date = hdrs.get("X-Amz-Date")
        if not amz_date:
            errs.append("no x-amz-date header")
            return
        try:
            when = datetime.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            errs.append(f"x-amz-date {amz_date!r} is not {SIGV4_TIMESTAMP}")
            return
        skew = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
        rec["date_ok"] = skew <= self.max_skew_s
        if not rec["date_ok"]:
            errs.append(f"x-amz-date is {skew:.0f}s away from now (at most {self.max_skew_s}s allowed)")
        if cred.token is not None and hdrs.get("X-Amz-Security-Token") != cred.token:
            errs.append("x-amz-security-token is missing or is not the session token")
        if "x-amz-content-sha256" in {h.lower() for h in hdrs.keys()}:
            want = hashlib.sha256(body).hexdigest()
            if hdrs.get("X-Amz-Content-SHA256") != want:
                errs.append("x-amz-content-sha256 is not the SHA-256 of the body")
        signed = [h for h in parsed["signed_headers"].split(";") if h]
        headers: list[tuple[str, str]] = []
        for name in signed:
            values = hdrs.get_all(name) or []
            if not values:
                errs.append(f"signed header {name!r} is not in the request")
            headers += [(name, v) for v in values]
        host = hdrs.get("Host") or ""
        url = f"http://{host}{raw_path}"
        expected, canonical, sts = botocore_sign(cred, method, url, headers, body, amz_date)
        exp = parse_authorization(expected)
        assert exp is not None
        rec["expected_authorization"] = expected
        rec["expected_signature"] = exp["signature"]
        rec["canonical_request"] = canonical
        rec["string_to_sign"] = sts
        if parsed["credential"] != exp["credential"]:
            errs.append(f"credential scope {parsed['credential']!r}, expected {exp['credential']!r}")
        if parsed["signed_headers"] != exp["signed_headers"]:
            errs.append(f"SignedHeaders {parsed['signed_headers']!r}, expected {exp['signed_headers']!r}")
        if parsed["signature"] != exp["signature"]:
            errs.append("signature mismatch")
        rec["signature_ok"] = not errs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bedrock-verifier"
    verifier: Verifier  # set on the subclass

    def log_message(self, fmt, *args):  # quiet; the results say it all
        pass

    # -- plumbing

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                line = self.rfile.readline().strip()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, error_type: str, message: str) -> None:
        self._send_json(
            status,
            {"message": message},
            {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
        )

    # -- routes

    def do_GET(self):
        if self.path.split("?")[0] == "/verifier/results":
            with self.verifier.lock:
                data = list(self.verifier.results)
            self._send_json(200, data)
        else:
            self._read_body()
            self._send_json(404, {"message": f"no route GET {self.path}"})

    def do_DELETE(self):
        self._read_body()
        if self.path.split("?")[0] == "/verifier/results":
            with self.verifier.lock:
                self.verifier.results.clear()
            self._send_json(200, {"deleted": True})
        else:
            self._send_json(404, {"message": f"no route DELETE {self.path}"})

    def do_POST(self):
        body = self._read_body()
        raw_path = self.path
        rec: dict[str, Any] = {
            "time": time.time(),
            "method": "POST",
            "path": raw_path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "validation_errors": [],
        }
        m = _PATH_RE.match(raw_path)
        operation = _OPERATIONS[m.group(2)] if m else None
        rec["operation"] = operation
        try:
            self.verifier.check_signature(rec, "POST", raw_path, self.headers, body)
        except Exception as e:  # a verifier bug must show, not hang the client
            rec["signature_ok"] = False
            rec.setdefault("signature_errors", []).append(f"verifier error: {e!r}")
        if m is None:
            rec["validation_errors"].append(f"unknown operation path {raw_path!r}")
            self.verifier.record(rec)
            self._send_error(404, "UnknownOperationException", f"Unknown operation {raw_path}")
            return
        model_id = urllib.parse.unquote(m.group(1))
        rec["model_id"] = model_id
        rec["expected_path"] = expected_path(model_id, operation)
        rec["path_ok"] = rec["expected_path"] == raw_path
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            rec["validation_errors"].append(f"content-type is {ctype!r}, expected 'application/json'")
        if not body:
            rec["body"] = None
            rec["validation_errors"].append("the body is empty")
        else:
            try:
                parsed = json.loads(body)
            except ValueError as e:
                rec["body"] = body.decode(errors="replace")
                rec["validation_errors"].append(f"the body is not JSON: {e}")
            else:
                rec["body"] = parsed
                rec["validation_errors"] += validate_body(operation, model_id, parsed)
        rec["ok"] = rec["signature_ok"] and not rec["validation_errors"] and rec["path_ok"]
        if not rec["signature_ok"]:
            rec["status"] = 403
            self.verifier.record(rec)
            self._send_error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. (bedrock-verifier: "
                + "; ".join(rec["signature_errors"]) + ")",
            )
            return
        if rec["validation_errors"]:
            rec["status"] = 400
            self.verifier.record(rec)
            self._send_error(400, "ValidationException", "; ".join(rec["validation_errors"]))
            return
        rec["status"] = 200
        self.verifier.record(rec)
        if operation == "Converse":
            self._send_json(200, converse_response(len(body)))
        else:
            self._send_stream(len(body))

    def _send_stream(self, body_len: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.flush()
        data = b"".join(converse_stream_frames(body_len))
        for piece in split_misaligned(data):
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        super().server_bind()
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", nargs="?", type=int, default=None, help="port (0: any free port)")
    ap.add_argument("--port", dest="port_opt", type=int, default=None)
    ap.add_argument("--access-key-id", required=True)
    ap.add_argument("--secret-access-key", required=True)
    ap.add_argument("--session-token", default=None)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="AKID,SECRET,TOKEN,REGION",
        help="another known credential (TOKEN may be empty; REGION defaults to --region)",
    )
    ap.add_argument("--bearer-token", default=None, help="accept Authorization: Bearer <this>")
    ap.add_argument("--max-skew-seconds", type=int, default=DEFAULT_MAX_SKEW_S)
    args = ap.parse_args(argv)
    creds = [Cred(args.access_key_id, args.secret_access_key, args.session_token or None, args.region)]
    for spec in args.credential:
        parts = spec.split(",")
        if len(parts) < 2:
            ap.error(f"--credential {spec!r}: expected AKID,SECRET[,TOKEN[,REGION]]")
        parts += [""] * (4 - len(parts))
        creds.append(Cred(parts[0], parts[1], parts[2] or None, parts[3] or args.region))
    port = args.port_opt if args.port_opt is not None else (args.port or 0)

    handler = type("BoundHandler", (Handler,), {"verifier": Verifier(creds, args.bearer_token, args.max_skew_seconds)})
    server = Server(("127.0.0.1", port), handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
