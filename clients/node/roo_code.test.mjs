// Conformance: makes exactly the requests Roo Code's "LiteLLM" provider makes
// (src/api/providers/fetchers/litellm.ts and src/api/providers/lite-llm.ts),
// with the `openai` npm package, against `llmux serve` in front of `llmux mock`,
// and checks every field Roo Code reads.
//
// The binary is $LLMUX_BIN, or <repo>/target/debug/llmux when unset.
// Run: npm install && npm test

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import OpenAI from "openai";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..");
const LLMUX_BIN = process.env.LLMUX_BIN || path.join(REPO_ROOT, "target", "debug", "llmux");

const MASTER_KEY = "sk-master-test";
const UPSTREAM_KEY = "sk-upstream-secret";
const ANTHROPIC_KEY = "sk-ant-secret-x";
const STARTUP_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 60_000;

// Roo Code's DEFAULT_HEADERS (src/api/providers/constants.ts).
const DEFAULT_HEADERS = {
	"HTTP-Referer": "https://github.com/RooVetGit/Roo-Cline",
	"X-Title": "Roo Code",
	"User-Agent": "RooCode/3.0.0",
};

// Environment that could change what `llmux serve` serves or whether it wants a key.
const SCRUBBED_ENV = [
	"LLMUX_MASTER_KEY",
	"OPENAI_API_KEY",
	"OPENAI_BASE_URL",
	"AZURE_API_KEY",
	"AZURE_API_BASE",
	"AZURE_API_VERSION",
	"GROQ_API_KEY",
	"DEEPSEEK_API_KEY",
	"OPENROUTER_API_KEY",
	"ANTHROPIC_API_KEY",
	"GEMINI_API_KEY",
	"AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN",
	"AWS_PROFILE",
];

// ---------------------------------------------------------------------------
// Processes

function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

function childEnv() {
	const env = { ...process.env };
	for (const k of SCRUBBED_ENV) delete env[k];
	return env;
}

const children = [];
const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "llmux-roo-"));

function logTail(logPath, n = 40) {
	try {
		return fs.readFileSync(logPath, "utf8").split("\n").slice(-n).join("\n");
	} catch {
		return "(no log)";
	}
}

async function startLlmux(name, args, port, readyPath) {
	if (!fs.existsSync(LLMUX_BIN)) {
		throw new Error(
			`llmux binary not found at ${LLMUX_BIN}. Build it first (\`cargo build -p llmux\` ` +
				`from the repo root) or set LLMUX_BIN to the binary's path.`,
		);
	}
	const logPath = path.join(tmpDir, `${name}.log`);
	const logFd = fs.openSync(logPath, "w");
	const child = spawn(LLMUX_BIN, args, { stdio: ["ignore", logFd, logFd], env: childEnv() });
	fs.closeSync(logFd);
	const proc = { name, child, logPath, base: `http://127.0.0.1:${port}`, exited: null };
	child.on("exit", (code, signal) => (proc.exited = { code, signal }));
	child.on("error", (err) => (proc.exited = { code: null, signal: null, err }));
	children.push(proc);

	const deadline = Date.now() + STARTUP_TIMEOUT_MS;
	let last = "no answer yet";
	while (Date.now() < deadline) {
		if (proc.exited) {
			throw new Error(
				`\`llmux ${args.join(" ")}\` exited (${JSON.stringify(proc.exited)}) before it was ready.\n` +
					`--- ${logPath} ---\n${logTail(logPath)}`,
			);
		}
		try {
			const r = await fetch(proc.base + readyPath, { signal: AbortSignal.timeout(2000) });
			if (r.status === 200) return proc;
			last = `GET ${readyPath} -> ${r.status}`;
		} catch (e) {
			last = String(e);
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(
		`\`llmux ${args.join(" ")}\` was not ready within ${STARTUP_TIMEOUT_MS / 1000}s (${last}).\n` +
			`--- ${logPath} ---\n${logTail(logPath)}`,
	);
}

async function stopAll() {
	await Promise.all(
		children.map(
			(p) =>
				new Promise((resolve) => {
					if (p.exited) return resolve();
					const timer = setTimeout(() => {
						p.child.kill("SIGKILL");
						resolve();
					}, 5000);
					p.child.once("exit", () => {
						clearTimeout(timer);
						resolve();
					});
					p.child.kill("SIGTERM");
				}),
		),
	);
}

function gatewayConfig(mockBase, masterKey) {
	let y = `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: "${mockBase}/v1"
      api_key: ${UPSTREAM_KEY}
  - model_name: claude-sonnet-4
    litellm_params:
      model: anthropic/claude-sonnet-4-20250514
      api_key: ${ANTHROPIC_KEY}
litellm_settings:
  num_retries: 2
`;
	if (masterKey) y += `general_settings:\n  master_key: ${masterKey}\n`;
	return y;
}

async function startGateway(name, mockBase, masterKey) {
	const configPath = path.join(tmpDir, `${name}.yaml`);
	fs.writeFileSync(configPath, gatewayConfig(mockBase, masterKey));
	const port = await freePort();
	return startLlmux(
		name,
		["serve", "--config", configPath, "--host", "127.0.0.1", "--port", String(port)],
		port,
		"/health/liveliness",
	);
}

// ---------------------------------------------------------------------------
// The mock's record of what reached the upstream

async function mockRequests(mockBase) {
	const r = await fetch(mockBase + "/mock/requests", { signal: AbortSignal.timeout(10_000) });
	assert.equal(r.status, 200);
	let data = await r.json();
	if (!Array.isArray(data)) data = data.requests ?? data.data ?? data.items;
	assert.ok(Array.isArray(data), "unexpected /mock/requests shape");
	return data.map((x) => {
		let headers = x.headers ?? {};
		const pairs = Array.isArray(headers)
			? headers.map((h) => (Array.isArray(h) ? h : [h.name, h.value]))
			: Object.entries(headers);
		let body = x.body ?? x.json;
		if (typeof body === "string") {
			try {
				body = JSON.parse(body);
			} catch {}
		}
		return {
			method: x.method,
			path: x.path,
			headers: Object.fromEntries(pairs.map(([k, v]) => [String(k).toLowerCase(), v])),
			body,
		};
	});
}

async function oneUpstreamRequestWith(mockBase, marker) {
	const found = (await mockRequests(mockBase)).filter((r) => JSON.stringify(r.body).includes(marker));
	assert.equal(found.length, 1, `expected 1 upstream request carrying ${marker}, got ${found.length}`);
	return found[0];
}

function assertNoSecret(text) {
	for (const s of [UPSTREAM_KEY, ANTHROPIC_KEY, MASTER_KEY]) {
		assert.ok(!text.includes(s), `secret ${s} leaked into a response body`);
	}
}

// ---------------------------------------------------------------------------
// Roo Code's requests, as Roo Code makes them

// getLiteLLMModels(apiKey, baseUrl): GET {base}/v1/model/info.
async function rooFetchModelInfo(apiKey, baseUrl) {
	const headers = { "Content-Type": "application/json", ...DEFAULT_HEADERS };
	if (apiKey) headers["Authorization"] = `Bearer ${apiKey}`;
	const urlObj = new URL(baseUrl);
	urlObj.pathname = urlObj.pathname.replace(/\/+$/, "").replace(/\/+/g, "/") + "/v1/model/info";
	const r = await fetch(urlObj.href, { headers, signal: AbortSignal.timeout(5000) });
	const text = await r.text();
	return { status: r.status, text, json: r.status === 200 ? JSON.parse(text) : null };
}

const firstPositiveNumber = (...values) =>
	values.find((v) => typeof v === "number" && Number.isFinite(v) && v > 0);
const pricePerMillion = (v) => (typeof v === "number" && Number.isFinite(v) ? v * 1_000_000 : undefined);

// normalizeLiteLLMModelInfo, plus type checks on every field it reads.
function rooNormalize(modelName, raw) {
	const where = `${modelName}.model_info`;
	assert.equal(typeof raw, "object", `${where} missing`);
	for (const k of ["max_tokens", "max_output_tokens", "max_input_tokens"]) {
		assert.ok(raw[k] === null || Number.isInteger(raw[k]), `${where}.${k} = ${raw[k]}: not an integer or null`);
	}
	for (const k of ["supports_vision", "supports_prompt_caching", "supports_computer_use"]) {
		assert.equal(typeof raw[k], "boolean", `${where}.${k} = ${raw[k]}: not a boolean`);
	}
	for (const k of [
		"input_cost_per_token",
		"output_cost_per_token",
		"cache_creation_input_token_cost",
		"cache_read_input_token_cost",
	]) {
		assert.ok(
			raw[k] === null || (typeof raw[k] === "number" && Number.isFinite(raw[k]) && raw[k] >= 0),
			`${where}.${k} = ${raw[k]}: not a non-negative number or null`,
		);
	}
	return {
		maxTokens: firstPositiveNumber(raw.max_output_tokens, raw.max_tokens),
		contextWindow: firstPositiveNumber(raw.max_input_tokens),
		supportsImages: raw.supports_vision === true,
		supportsPromptCache: raw.supports_prompt_caching === true,
		supportsComputerUse: raw.supports_computer_use === true,
		inputPrice: pricePerMillion(raw.input_cost_per_token),
		outputPrice: pricePerMillion(raw.output_cost_per_token),
		cacheWritesPrice: pricePerMillion(raw.cache_creation_input_token_cost),
		cacheReadsPrice: pricePerMillion(raw.cache_read_input_token_cost),
	};
}

function rooParseModels(json) {
	assert.ok(json && Array.isArray(json.data), "Roo Code: Unexpected response format");
	const models = {};
	for (const model of json.data) {
		const modelName = model.model_name;
		if (!modelName) continue;
		models[modelName] = rooNormalize(modelName, model.model_info ?? {});
	}
	return models;
}

// LiteLLMHandler: the client Roo Code builds (RouterProvider).
function rooClient(baseUrl, apiKey) {
	return new OpenAI({
		baseURL: baseUrl,
		apiKey: apiKey || "dummy-key",
		defaultHeaders: DEFAULT_HEADERS,
		timeout: REQUEST_TIMEOUT_MS,
		maxRetries: 0,
	});
}

const READ_FILE_TOOL = {
	type: "function",
	function: {
		name: "read_file",
		description: "Read the contents of a file at the given path.",
		parameters: {
			type: "object",
			properties: {
				path: { type: "string", description: "Path of the file, relative to the workspace" },
				line_count: { type: "integer", description: "Lines to read" },
			},
			required: ["path", "line_count"],
			additionalProperties: false,
		},
		strict: true,
	},
};

// LiteLLMHandler.createMessage: one streaming request, iterated as Roo Code does.
async function rooCreateMessage(client, { modelId, info, systemPrompt, messages, taskId }) {
	const requestOptions = {
		model: modelId,
		max_tokens: info.maxTokens,
		temperature: 0,
		messages: [
			{
				role: "system",
				content: [{ type: "text", text: systemPrompt, cache_control: { type: "ephemeral" } }],
			},
			...messages,
		],
		stream: true,
		stream_options: { include_usage: true },
		prompt_cache_key: taskId,
		tools: [READ_FILE_TOOL],
	};

	const { data: completion } = await client.chat.completions.create(requestOptions).withResponse();

	let text = "";
	const toolCalls = new Map(); // index -> {id, name, arguments}
	const usages = [];
	const rawChunks = [];
	let lastUsage;
	for await (const chunk of completion) {
		rawChunks.push(chunk);
		const delta = chunk.choices[0]?.delta; // throws if `choices` is missing
		if (delta?.content) text += delta.content;
		if (delta?.tool_calls) {
			for (const toolCall of delta.tool_calls) {
				const acc = toolCalls.get(toolCall.index) ?? { id: undefined, name: "", arguments: "" };
				if (toolCall.id) acc.id = toolCall.id;
				if (toolCall.function?.name) acc.name += toolCall.function.name;
				if (toolCall.function?.arguments) acc.arguments += toolCall.function.arguments;
				toolCalls.set(toolCall.index, acc);
			}
		}
		if (chunk.usage) {
			lastUsage = chunk.usage;
			usages.push(chunk);
		}
	}

	let usage;
	if (lastUsage) {
		usage = {
			inputTokens: lastUsage.prompt_tokens || 0,
			outputTokens: lastUsage.completion_tokens || 0,
			cacheWriteTokens:
				lastUsage.cache_creation_input_tokens ?? lastUsage.prompt_tokens_details?.cache_write_tokens,
			cacheReadTokens: lastUsage.prompt_tokens_details?.cached_tokens,
		};
	}
	return { text, toolCalls, usages, rawChunks, lastUsage, usage };
}

function assertUsageChunk(result) {
	assert.equal(result.usages.length, 1, "exactly one chunk carries usage");
	const usageChunk = result.usages[0];
	assert.equal(usageChunk, result.rawChunks.at(-1), "the usage chunk is the last chunk");
	assert.ok(Array.isArray(usageChunk.choices), "the usage chunk has a choices array");
	assert.equal(usageChunk.choices.length, 0, "the usage chunk has choices: []");
	const u = result.lastUsage;
	assert.ok(Number.isInteger(u.prompt_tokens) && u.prompt_tokens > 0, `prompt_tokens=${u.prompt_tokens}`);
	assert.ok(Number.isInteger(u.completion_tokens) && u.completion_tokens > 0, `completion_tokens=${u.completion_tokens}`);
	if (u.total_tokens !== undefined) assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
	if (u.prompt_tokens_details?.cached_tokens !== undefined) {
		assert.ok(Number.isInteger(u.prompt_tokens_details.cached_tokens));
	}
	if (result.usage.cacheWriteTokens !== undefined && result.usage.cacheWriteTokens !== null) {
		assert.ok(Number.isInteger(result.usage.cacheWriteTokens));
	}
	assert.ok(Number.isInteger(result.usage.inputTokens));
	assert.ok(Number.isInteger(result.usage.outputTokens));
}

// ---------------------------------------------------------------------------

describe("Roo Code's LiteLLM provider against llmux", { timeout: 4 * TEST_TIMEOUT_MS }, () => {
	let mock;
	let gw; // master key set
	let openGw; // no master key

	before(async () => {
		const mockPort = await freePort();
		mock = await startLlmux("mock", ["mock", "--host", "127.0.0.1", "--port", String(mockPort)], mockPort, "/v1/models");
		gw = await startGateway("gateway", mock.base, MASTER_KEY);
		openGw = await startGateway("gateway-open", mock.base, null);
	});

	after(async () => {
		await stopAll();
		fs.rmSync(tmpDir, { recursive: true, force: true });
	});

	it("GET {base}/v1/model/info with the key: every field Roo Code reads", { timeout: TEST_TIMEOUT_MS }, async () => {
		// The user may type the base URL with or without a trailing slash.
		for (const base of [gw.base, gw.base + "/"]) {
			const r = await rooFetchModelInfo(MASTER_KEY, base);
			assert.equal(r.status, 200, r.text);
			assertNoSecret(r.text);
			const models = rooParseModels(r.json);
			assert.ok("gpt-4o" in models, "gpt-4o listed");
			assert.ok("claude-sonnet-4" in models, "claude-sonnet-4 listed");
			const gpt = models["gpt-4o"];
			assert.ok(Number.isInteger(gpt.maxTokens) && gpt.maxTokens > 0, "gpt-4o maxTokens");
			assert.ok(Number.isInteger(gpt.contextWindow) && gpt.contextWindow > 0, "gpt-4o contextWindow");
			assert.equal(gpt.supportsImages, true);
			assert.ok(gpt.inputPrice > 0 && gpt.outputPrice > 0, "gpt-4o prices");
			const claude = models["claude-sonnet-4"];
			assert.equal(claude.supportsPromptCache, true);
			assert.ok(claude.cacheWritesPrice > 0 && claude.cacheReadsPrice > 0, "claude cache prices");
			for (const entry of r.json.data) {
				assert.ok(!("api_key" in (entry.litellm_params ?? {})), `${entry.model_name}: api_key exposed`);
			}
		}
	});

	it("GET {base}/v1/model/info without a key is 401 when a master key is set", { timeout: TEST_TIMEOUT_MS }, async () => {
		const r = await rooFetchModelInfo("", gw.base);
		assert.equal(r.status, 401, r.text);
		const body = JSON.parse(r.text);
		assert.equal(typeof body.error?.message, "string");
		assertNoSecret(r.text);
	});

	it("no master key: model info without a key and chat with `Bearer dummy-key` work", { timeout: TEST_TIMEOUT_MS }, async () => {
		const r = await rooFetchModelInfo("", openGw.base);
		assert.equal(r.status, 200, r.text);
		assertNoSecret(r.text);
		const models = rooParseModels(r.json);
		const marker = `roo-open-${Date.now()}`;
		const result = await rooCreateMessage(rooClient(openGw.base, ""), {
			modelId: "gpt-4o",
			info: models["gpt-4o"],
			systemPrompt: `You are Roo. ${marker}`,
			messages: [{ role: "user", content: "hi" }],
			taskId: marker,
		});
		assert.equal(result.toolCalls.size, 1);
		assertUsageChunk(result);
		const up = await oneUpstreamRequestWith(mock.base, marker);
		assert.equal(up.headers["authorization"], `Bearer ${UPSTREAM_KEY}`);
	});

	it("streaming chat with cache_control system part, strict tools and include_usage; then the tool result turn", { timeout: TEST_TIMEOUT_MS }, async () => {
		const models = rooParseModels((await rooFetchModelInfo(MASTER_KEY, gw.base)).json);
		const modelId = "gpt-4o";
		const info = models[modelId];
		const client = rooClient(gw.base, MASTER_KEY);
		const marker = `roo-${Date.now()}-${Math.random().toString(16).slice(2)}`;
		const systemPrompt = `You are Roo, a highly skilled software engineer. ${marker}`;
		const userMessages = [{ role: "user", content: "hi" }];

		// Turn 1: the model calls read_file.
		const t1 = await rooCreateMessage(client, { modelId, info, systemPrompt, messages: userMessages, taskId: marker });
		assertUsageChunk(t1);
		assert.equal(t1.toolCalls.size, 1, "one tool call");
		const call = t1.toolCalls.get(0);
		assert.ok(call, "the tool call has index 0");
		assert.equal(call.id, "call_mock_0");
		assert.equal(call.name, "read_file");
		const args = JSON.parse(call.arguments);
		assert.equal(args.path, "mock");
		assert.equal(args.line_count, 1);
		const finish = t1.rawChunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
		assert.deepEqual(finish, ["tool_calls"]);

		const up1 = await oneUpstreamRequestWith(mock.base, marker);
		assert.ok(up1.path.endsWith("/chat/completions"), up1.path);
		assert.equal(up1.headers["authorization"], `Bearer ${UPSTREAM_KEY}`);
		const b1 = up1.body;
		assert.equal(b1.model, "gpt-4o");
		assert.deepEqual(b1.messages[0], {
			role: "system",
			content: [{ type: "text", text: systemPrompt, cache_control: { type: "ephemeral" } }],
		}, "the system part reached the upstream with cache_control intact");
		assert.deepEqual(b1.messages.slice(1), userMessages);
		assert.deepEqual(b1.tools, [READ_FILE_TOOL], "the tool reached the upstream as sent");
		assert.equal(b1.tools[0].function.strict, true, "strict: true intact");
		assert.equal(b1.stream, true);
		assert.deepEqual(b1.stream_options, { include_usage: true });
		assert.equal(b1.max_tokens, info.maxTokens);
		assert.equal(b1.temperature, 0);
		assert.equal(b1.prompt_cache_key, marker);

		// Turn 2: Roo Code sends the tool result; the model answers with text.
		const marker2 = marker + "-turn2";
		const turn2 = [
			...userMessages,
			{
				role: "assistant",
				content: "",
				tool_calls: [{ id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } }],
			},
			{ role: "tool", tool_call_id: call.id, content: `1 | hello world ${marker2}` },
		];
		const t2 = await rooCreateMessage(client, { modelId, info, systemPrompt, messages: turn2, taskId: marker2 });
		assert.ok(t2.text.length > 0, "content arrived");
		assert.equal(t2.text, "Hello from llmux mock.");
		assert.equal(t2.toolCalls.size, 0);
		assertUsageChunk(t2);
		const up2 = await oneUpstreamRequestWith(mock.base, marker2);
		assert.deepEqual(up2.body.messages.slice(1), turn2);
		assert.equal(up2.body.messages[0].content[0].cache_control.type, "ephemeral");
	});

	it("a streaming chat with the wrong key fails with 401", { timeout: TEST_TIMEOUT_MS }, async () => {
		const client = rooClient(gw.base, "sk-wrong");
		await assert.rejects(
			client.chat.completions.create({
				model: "gpt-4o",
				messages: [{ role: "user", content: "hi" }],
				stream: true,
				stream_options: { include_usage: true },
			}),
			(err) => err instanceof OpenAI.AuthenticationError && err.status === 401,
		);
	});
});
