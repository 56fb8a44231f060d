"""Checks of bedrock_verifier.py itself, with botocore on the client side.

The verifier is the independent judge of llmux's SigV4 signing and Converse
bodies (test_bedrock.py), so it is checked first against requests signed by
botocore directly: they must pass, and tampered ones must not. Its answers
are checked against botocore's own parsers and the Converse output shapes.
No llmux binary is needed here.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from unittest import mock as _mock

import botocore.auth
import botocore.session
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.parsers import EventStreamJSONParser, create_parser
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

HERE = Path(__file__).resolve().parent
VERIFIER = HERE / "bedrock_verifier.py"
STARTUP_TIMEOUT_S = 15.0

# Credentials the verifier knows (made up: they open nothing).
AKID = "AKIDLLMUXTEST0000001"
SECRET = "llmuxTestSecretKey/0000000000000000000001"
REGION = "us-east-1"
AKID_TOKEN = "ASIALLMUXTEST0000002"
SECRET_TOKEN = "llmuxTestSecretKey/0000000000000000000002"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEPr//////////llmux+session/token=="
REGION_TOKEN = "us-west-2"
BEARER = "ABSKbGxtdXgtdGVzdC1iZWFyZXItdG9rZW4="

NOVA = "amazon.nova-pro-v1:0"
PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
)
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

BEDROCK = botocore.session.get_session().get_service_model("bedrock-runtime")


# ===========================================================================
# Running the verifier (test_bedrock.py uses these too)


@dataclass
class VerifierProc:
    popen: subprocess.Popen
    base: str
    log_path: Path

    def results(self) -> list[dict[str, Any]]:
        with httpx.Client(timeout=10.0, trust_env=False) as h:
            r = h.get(self.base + "/verifier/results")
        r.raise_for_status()
        return r.json()

    def clear(self) -> None:
        with httpx.Client(timeout=10.0, trust_env=False) as h:
            h.delete(self.base + "/verifier/results").raise_for_status()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        if self.popen.stdout:
            self.popen.stdout.close()


def start_verifier(log_dir: Path, *args: str) -> VerifierProc:
    """Start bedrock_verifier.py on a free port; wait (bounded) for its line."""
    log_path = log_dir / "bedrock-verifier.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            [sys.executable, str(VERIFIER), "0", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([popen.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        ch = os.read(popen.stdout.fileno(), 1)
        if not ch:
            break
        line += ch
    text = line.decode(errors="replace").strip()
    if not text.startswith("listening on http://127.0.0.1:"):
        popen.kill()
        popen.wait(timeout=5)
        pytest.fail(
            f"bedrock_verifier.py did not start within {STARTUP_TIMEOUT_S:.0f}s (stdout: {text!r}).\n"
            f"--- {log_path} ---\n{log_path.read_text(errors='replace')[-3000:]}",
            pytrace=False,
        )
    return VerifierProc(popen=popen, base=text[len("listening on "):], log_path=log_path)


def verifier_args() -> list[str]:
    return [
        "--access-key-id", AKID,
        "--secret-access-key", SECRET,
        "--region", REGION,
        "--credential", f"{AKID_TOKEN},{SECRET_TOKEN},{SESSION_TOKEN},{REGION_TOKEN}",
        "--bearer-token", BEARER,
    ]  # fmt: skip


def describe(rec: dict[str, Any]) -> str:
    """A verifier record, readably, for assertion messages."""
    keys = (
        "seq", "path", "operation", "model_id", "expected_path", "status", "auth_scheme",
        "signature_ok", "signature_errors", "received_authorization", "expected_authorization",
        "validation_errors",
    )  # fmt: skip
    short = {k: rec.get(k) for k in keys if k in rec}
    out = json.dumps(short, indent=1)
    if not rec.get("signature_ok") and rec.get("canonical_request"):
        out += "\n--- canonical request botocore expected ---\n" + rec["canonical_request"]
    return out


# ===========================================================================
# Fixtures and helpers


@pytest.fixture(scope="module")
def verifier(tmp_path_factory) -> Iterator[VerifierProc]:
    v = start_verifier(tmp_path_factory.mktemp("verifier"), *verifier_args())
    try:
        yield v
    finally:
        v.stop()


def model_path(model_id: str, operation: str = "Converse") -> str:
    """The path botocore itself would call for this model id."""
    ser = create_serializer("rest-json")
    return ser.serialize_to_request(
        {"modelId": model_id, "messages": []}, BEDROCK.operation_model(operation)
    )["url_path"]


def signed_headers(
    url: str,
    body: bytes,
    akid: str = AKID,
    secret: str = SECRET,
    token: str | None = None,
    region: str = REGION,
    when: datetime.datetime | None = None,
) -> dict[str, str]:
    """The headers botocore sends for this request: content-type, x-amz-date,
    the session token, Authorization."""
    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    auth = SigV4Auth(Credentials(akid, secret, token), "bedrock", region)
    if when is None:
        auth.add_auth(req)
    else:
        with _mock.patch.object(botocore.auth, "get_current_datetime", lambda: when):
            auth.add_auth(req)
    return dict(req.headers.items())


def body_of(**extra: Any) -> bytes:
    body = {
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.5},
        **extra,
    }
    return json.dumps(body).encode()


def post(
    verifier: VerifierProc,
    model_id: str = NOVA,
    body: bytes | None = None,
    operation: str = "Converse",
    send_body: bytes | None = None,
    **sign_kw: Any,
) -> tuple[httpx.Response, dict[str, Any]]:
    """Sign with botocore, send (optionally another body), return the answer
    and the verifier's record of it."""
    body = body if body is not None else body_of()
    path = model_path(model_id, operation)
    url = verifier.base + path
    headers = signed_headers(url, body, **sign_kw)
    before = len(verifier.results())
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        resp = h.post(url, content=send_body if send_body is not None else body, headers=headers)
        resp.read()
    recs = verifier.results()
    assert len(recs) == before + 1, recs[before:]
    rec = recs[-1]
    assert rec["path"] == path, "the verifier must see the raw path as sent"
    return resp, rec


def assert_accepted(resp: httpx.Response, rec: dict[str, Any]) -> None:
    assert rec["signature_ok"], describe(rec)
    assert rec["validation_errors"] == [], describe(rec)
    assert rec["path_ok"], describe(rec)
    assert rec["ok"], describe(rec)
    assert resp.status_code == 200, resp.text


# ===========================================================================
# Signatures


def test_static_keys_accepted(verifier):
    resp, rec = post(verifier)
    assert_accepted(resp, rec)
    assert rec["auth_scheme"] == "sigv4"
    assert rec["expected_signature"] == rec["received_signature"]
    assert rec["model_id"] == NOVA
    assert rec["path"] == "/model/amazon.nova-pro-v1%3A0/converse"
    assert rec["date_ok"] is True
    assert "x-amz-date" in rec["signed_headers"] and "host" in rec["signed_headers"]


def test_session_token_accepted(verifier):
    resp, rec = post(verifier, akid=AKID_TOKEN, secret=SECRET_TOKEN, token=SESSION_TOKEN, region=REGION_TOKEN)
    assert_accepted(resp, rec)
    assert "x-amz-security-token" in rec["signed_headers"]
    assert f"/{REGION_TOKEN}/bedrock/aws4_request" in rec["received_authorization"]


def test_inference_profile_arn_in_path_accepted(verifier):
    resp, rec = post(verifier, model_id=PROFILE_ARN)
    assert_accepted(resp, rec)
    assert rec["model_id"] == PROFILE_ARN
    # every ':' and the '/' of the ARN travel percent-encoded in one segment...
    assert rec["path"].startswith("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F")
    # ...and the canonical request encodes the path once more, as AWS does for
    # every service but S3
    assert "/model/arn%253Aaws%253Abedrock" in rec["canonical_request"]


def test_converse_stream_path_accepted(verifier):
    resp, rec = post(verifier, operation="ConverseStream")
    assert_accepted(resp, rec)
    assert rec["operation"] == "ConverseStream"


def test_tampered_body_rejected(verifier):
    body = body_of()
    resp, rec = post(verifier, body=body, send_body=body.replace(b"Hello", b"Hellx"))
    assert not rec["signature_ok"], describe(rec)
    assert "signature mismatch" in rec["signature_errors"]
    assert rec["validation_errors"] == []  # the body itself is fine
    assert resp.status_code == 403
    assert resp.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    assert "signature we calculated does not match" in resp.json()["message"]


def test_wrong_secret_rejected(verifier):
    resp, rec = post(verifier, secret=SECRET + "x")
    assert not rec["signature_ok"]
    assert rec["signature_errors"] == ["signature mismatch"], describe(rec)
    assert resp.status_code == 403


def test_wrong_region_rejected(verifier):
    resp, rec = post(verifier, region="eu-west-1")
    assert not rec["signature_ok"]
    assert any("credential scope" in e for e in rec["signature_errors"]), describe(rec)


def test_unknown_access_key_rejected(verifier):
    resp, rec = post(verifier, akid="AKIDUNKNOWN000000000")
    assert not rec["signature_ok"]
    assert any("unknown access key id" in e for e in rec["signature_errors"])


def test_session_token_not_sent_rejected(verifier):
    # the credential has a token: signing without it is refused
    resp, rec = post(verifier, akid=AKID_TOKEN, secret=SECRET_TOKEN, token=None, region=REGION_TOKEN)
    assert not rec["signature_ok"]
    assert any("x-amz-security-token" in e for e in rec["signature_errors"]), describe(rec)


def test_token_sent_but_not_signed_rejected(verifier):
    body = body_of()
    url = verifier.base + model_path(NOVA)
    headers = signed_headers(url, body, akid=AKID_TOKEN, secret=SECRET_TOKEN, region=REGION_TOKEN)
    headers["X-Amz-Security-Token"] = SESSION_TOKEN  # added after signing
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        resp = h.post(url, content=body, headers=headers)
    rec = verifier.results()[-1]
    assert resp.status_code == 403
    assert any("SignedHeaders" in e for e in rec["signature_errors"]), describe(rec)


@pytest.mark.parametrize("model_id", [NOVA, PROFILE_ARN], ids=["nova", "arn"])
def test_path_signed_unencoded_but_sent_encoded_rejected(verifier, model_id):
    # The classic bug: signing `/model/amazon.nova-pro-v1:0/…` and sending
    # `/model/amazon.nova-pro-v1%3A0/…`. AWS canonicalizes the path it
    # receives (encoding it once more), so the two canonical paths differ.
    body = body_of()
    headers = signed_headers(verifier.base + "/model/" + model_id + "/converse", body)
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        resp = h.post(verifier.base + model_path(model_id), content=body, headers=headers)
    rec = verifier.results()[-1]
    assert resp.status_code == 403 and rec["signature_errors"] == ["signature mismatch"], describe(rec)


def test_stale_date_rejected(verifier):
    when = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(hours=1)
    resp, rec = post(verifier, when=when)
    assert rec["date_ok"] is False
    assert not rec["signature_ok"]
    assert resp.status_code == 403


def test_unsigned_request_rejected(verifier):
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        resp = h.post(verifier.base + model_path(NOVA), content=body_of(), headers={"content-type": "application/json"})
    rec = verifier.results()[-1]
    assert resp.status_code == 403
    assert rec["auth_scheme"] == "none" and not rec["signature_ok"]


@pytest.mark.parametrize("token,ok", [(BEARER, True), ("ABSKwrong", False)], ids=["right", "wrong"])
def test_bearer_token(verifier, token, ok):
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        resp = h.post(
            verifier.base + model_path(NOVA),
            content=body_of(),
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        )
    rec = verifier.results()[-1]
    assert rec["auth_scheme"] == "bearer"
    assert rec["signature_ok"] is ok and rec.get("bearer_ok") is ok
    assert resp.status_code == (200 if ok else 403)


# ===========================================================================
# Bodies


def test_invalid_member_reported(verifier):
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi", "bogus": 1}]}]}).encode()
    # a union with two members set: botocore reports both problems
    resp, rec = post(verifier, body=body)
    assert rec["signature_ok"], describe(rec)
    errs = "\n".join(rec["validation_errors"])
    assert 'messages[0].content[0]: "bogus"' in errs, errs
    assert resp.status_code == 400
    assert resp.headers["x-amzn-ErrorType"].startswith("ValidationException")
    assert "bogus" in resp.json()["message"]


def test_bogus_block_reported(verifier):
    body = json.dumps({"messages": [{"role": "user", "content": [{"bogus": "x"}]}]}).encode()
    resp, rec = post(verifier, body=body)
    assert any("bogus" in e for e in rec["validation_errors"]), describe(rec)
    assert resp.status_code == 400


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"messages": [{"role": "user", "content": [{"text": 5}]}]}, "Invalid type for parameter messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 0}}, "maxTokens"),
        ({"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"temperature": 1.5}}, "temperature"),
        ({"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": PNG_B64}}}]}]}, "format"),
        ({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "not base64!"}}}]}]}, "base64"),
        ({"messages": [{"role": "user", "content": [{"cachePoint": {"type": "ephemeral"}}]}]}, "cachePoint.type"),
        ({"messages": [{"role": "user", "content": [{"text": "  "}]}]}, "is blank"),
        ({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}, "start with a user message"),
        ({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]}, "alternate"),
        ({"messages": []}, "must not be empty"),
        ({"modelId": NOVA, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}, "modelId travels in the path"),
        ({"messages": [{"role": "user", "content": [{"text": "hi"}]}], "toolConfig": {"tools": []}}, "toolConfig.tools"),
        ({"messages": [{"role": "user", "content": [{"text": "hi"}]}], "system": [{"prompt": "x"}]}, "system[0]"),
    ],
    ids=[
        "text-type", "max-tokens-min", "temperature-max", "image-format-enum", "blob-base64",
        "cachepoint-enum", "blank-text", "first-assistant", "no-alternation", "no-messages",
        "modelid-in-body", "empty-tools", "system-block",
    ],
)  # fmt: skip
def test_invalid_bodies_reported(verifier, body, needle):
    resp, rec = post(verifier, body=json.dumps(body).encode())
    assert rec["signature_ok"], describe(rec)
    assert any(needle in e for e in rec["validation_errors"]), describe(rec)
    assert resp.status_code == 400


def _tool_history(use_id: str, result_id: str, tool_config: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": use_id, "name": "get_weather", "input": {"location": "Paris"}}}],
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": result_id, "content": [{"text": "sunny"}], "status": "success"}}],
            },
        ]
    }
    if tool_config:
        body["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Weather",
                        "inputSchema": {"json": {"type": "object", "properties": {"location": {"type": "string"}}}},
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        }
    return body


def test_full_body_accepted(verifier):
    body = _tool_history("tooluse_abc", "tooluse_abc")
    body["messages"].append({"role": "assistant", "content": [{"text": "It is sunny."}]})
    body["messages"].append(
        {
            "role": "user",
            "content": [
                {"text": "And this picture?"},
                {"image": {"format": "png", "source": {"bytes": PNG_B64}}},
                {"cachePoint": {"type": "default"}},
            ],
        }
    )
    body["system"] = [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}]
    body["inferenceConfig"] = {"maxTokens": 4096, "temperature": 1, "topP": 0.9, "stopSequences": ["END"]}
    body["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    resp, rec = post(verifier, model_id=PROFILE_ARN, body=json.dumps(body).encode(), operation="ConverseStream")
    assert_accepted(resp, rec)


def test_tool_blocks_without_tool_config_reported(verifier):
    resp, rec = post(verifier, body=json.dumps(_tool_history("t1", "t1", tool_config=False)).encode())
    assert any("toolConfig field must be defined" in e for e in rec["validation_errors"]), describe(rec)


def test_tool_result_id_mismatch_reported(verifier):
    resp, rec = post(verifier, body=json.dumps(_tool_history("t1", "t2")).encode())
    errs = "\n".join(rec["validation_errors"])
    assert "no toolUse of that id" in errs and "no toolResult in the next message" in errs, errs


@pytest.mark.parametrize("bad_id", ["x" * 65, "call abc"], ids=["too-long", "space"])
def test_tool_use_id_constraints_reported(verifier, bad_id):
    resp, rec = post(verifier, body=json.dumps(_tool_history(bad_id, bad_id)).encode())
    assert any("toolUseId" in e and e.startswith("constraint:") for e in rec["validation_errors"]), describe(rec)


def test_thinking_budget_reported(verifier):
    body = json.loads(body_of())
    body["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    resp, rec = post(verifier, model_id=PROFILE_ARN, body=json.dumps(body).encode())  # maxTokens 64
    assert any("budget_tokens" in e for e in rec["validation_errors"]), describe(rec)


def test_documents_take_any_json(verifier):
    # documents (JSON schemas, tool inputs, additionalModelRequestFields) are
    # free-form: null, nesting and numbers pass
    body = _tool_history("t1", "t1")
    body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"]["n"] = {
        "type": ["integer", "null"], "default": None, "maximum": 1.5
    }
    resp, rec = post(verifier, body=json.dumps(body).encode())
    assert_accepted(resp, rec)


# ===========================================================================
# Answers: what the verifier sends must be what Bedrock sends


def _validate_output(value: dict[str, Any], shape) -> None:
    report = ParamValidator().validate(value, shape)
    assert not report.has_errors(), report.generate_report()


def test_converse_answer_parses_with_botocore(verifier):
    resp, rec = post(verifier)
    op = BEDROCK.operation_model("Converse")
    parsed = create_parser("rest-json").parse(
        {"status_code": 200, "headers": dict(resp.headers), "body": resp.content}, op.output_shape
    )
    parsed.pop("ResponseMetadata", None)
    _validate_output(parsed, op.output_shape)
    assert parsed["output"]["message"]["content"][0]["text"]
    assert parsed["stopReason"] == "end_turn"


class _Raw:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    def stream(self):
        yield from self.chunks

    def close(self):
        pass


def test_converse_stream_answer_parses_with_botocore(verifier):
    body = body_of()
    url = verifier.base + model_path(NOVA, "ConverseStream")
    headers = signed_headers(url, body)
    chunks: list[bytes] = []
    with httpx.Client(timeout=10.0, trust_env=False) as h:
        with h.stream("POST", url, content=body, headers=headers) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "application/vnd.amazon.eventstream"
            assert resp.headers.get("transfer-encoding") == "chunked"
            chunks = list(resp.iter_raw())
    data = b"".join(chunks)

    # frames and CRCs, by botocore's decoder (it raises on a bad CRC)
    buf = EventStreamBuffer()
    buf.add_data(data)
    frames = list(buf)
    kinds = [f.headers[":event-type"] for f in frames]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"], kinds
    assert set(kinds[1:-3]) == {"contentBlockDelta"}
    for f in frames:
        assert f.headers[":message-type"] == "event" and f.headers[":content-type"] == "application/json"

    # the events, by botocore's event-stream parser and the output shapes
    op = BEDROCK.operation_model("ConverseStream")
    stream_shape = op.output_shape.members["stream"]
    events = list(EventStream(_Raw([data]), stream_shape, EventStreamJSONParser(), "ConverseStream"))
    text = ""
    for ev in events:
        ((name, payload),) = ev.items()
        _validate_output(payload, stream_shape.members[name])
        if name == "contentBlockDelta":
            text += payload["delta"]["text"]
    assert text == "Hello from the Bedrock verifier."
    assert events[-1]["metadata"]["usage"]["totalTokens"] > 0


def test_exception_frame_decodes():
    import bedrock_verifier as bv

    frame = bv.exception_frame("throttlingException", "Too many requests, please wait before trying again.")
    buf = EventStreamBuffer()
    buf.add_data(frame[:7])
    assert list(buf) == []  # a frame split across reads waits for the rest
    buf.add_data(frame[7:])
    (msg,) = list(buf)
    assert msg.headers[":message-type"] == "exception"
    assert msg.headers[":exception-type"] == "throttlingException"
    assert json.loads(msg.payload)["message"].startswith("Too many requests")


def test_results_can_be_cleared(verifier):
    post(verifier)
    assert verifier.results()
    verifier.clear()
    assert verifier.results() == []


def test_non_json_body_reported(verifier):
    resp, rec = post(verifier, body=b"{not json")
    assert rec["signature_ok"], describe(rec)
    assert len(rec["validation_errors"]) == 1 and "not JSON" in rec["validation_errors"][0]
    assert resp.status_code == 400
