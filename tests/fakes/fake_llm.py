#!/usr/bin/python3
"""fake_llm — a scripted stand-in for Anthropic's Messages API and OpenAI-compatible chat
completions, faithful to their wire formats (headers, validation errors, SSE events).

    python3 tests/fakes/fake_llm.py --port-file PATH --script SCRIPT.json --log LOG.jsonl \
        [--key KEY]

Listens on 127.0.0.1, port chosen by the system, and writes the port to PATH (atomically)
once listening. Routes: POST /v1/messages (Anthropic), POST /chat/completions and
/v1/chat/completions (OpenAI). Every request is appended to LOG as one JSON line
{"path", "headers", "body"} before it is answered (headers as sent, secrets included, so
that tests can check them; body parsed as JSON, or the raw text when it is not JSON).

SCRIPT is a JSON list; each request that passes validation consumes one entry (the last one
repeats once the list is exhausted). Entry fields, all optional:
  text        the answer ("{{last_user}}" is replaced by the last user message)
  chunk       characters per delta (default 5)
  delay_ms    pause between deltas (default 10)
  status      HTTP status (default 200); non-200 answers send `body` (or a default error
              body in the provider's shape) as JSON
  headers     extra response headers, e.g. {"retry-after": "1"}
  body        JSON body of a non-200 answer
  cut_after   close the connection abruptly after N deltas (no message_stop / [DONE])
  error_event {"type", "message"}: sent mid-stream after the deltas, then the stream ends
              (Anthropic: an `error` event; OpenAI: a `data: {"error": {...}}` chunk)
  stall_ms    go silent for N ms after the first delta (before the second)
  ping        send `ping` events (Anthropic) or `: keep-alive` comments (OpenAI) between
              deltas
  json        answer with one JSON body even when streaming was asked for (as a server
              that ignores "stream" would)
  stop_reason Anthropic stop_reason (default end_turn); OpenAI finish_reason is "stop",
              or "length" when stop_reason is max_tokens

Validation mirrors the real APIs: Anthropic needs x-api-key == KEY (when --key is given,
else 401 authentication_error), an anthropic-version header (else 400), and a JSON body with
model, integer max_tokens and non-empty messages alternating user/assistant from user with
non-empty content (else 400 invalid_request_error). OpenAI needs `Authorization: Bearer
KEY` when --key is given (else 401 invalid_api_key), and a body with model and non-empty
messages. Exits cleanly on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import time

try:
    from aiohttp import web
except ImportError:
    # Another python3 (pyenv, a venv) may come first in PATH; Debian's has python3-aiohttp.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise


def anthropic_error(status, etype, message):
    body = {"type": "error", "error": {"type": etype, "message": message},
            "request_id": "req_fake"}
    return web.json_response(body, status=status, headers={"request-id": "req_fake"})


def openai_error(status, message, etype="invalid_request_error", code=None):
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return web.json_response(body, status=status)


ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   402: "billing_error", 403: "permission_error", 404: "not_found_error",
                   409: "conflict_error", 413: "request_too_large", 429: "rate_limit_error",
                   500: "api_error", 504: "timeout_error", 529: "overloaded_error"}


def default_error_body(provider, status, model):
    if provider == "anthropic":
        etype = ANTHROPIC_TYPES.get(status, "api_error")
        msg = {404: f"model: {model}", 429: "Number of requests has exceeded your rate limit",
               529: "Overloaded"}.get(status, f"error {status}")
        return {"type": "error", "error": {"type": etype, "message": msg},
                "request_id": "req_fake"}
    msg = {404: f"The model `{model}` does not exist or you do not have access to it.",
           429: "Rate limit reached", 500: "The server had an error"}.get(status,
                                                                          f"error {status}")
    code = {404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": msg, "type": "invalid_request_error", "param": None,
                      "code": code}}


def content_text(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def validate_anthropic(body):
    """The real API's checks, in its words where they are known. None when valid."""
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    mt = body.get("max_tokens")
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        return "max_tokens: Field required"
    if "system" in body and not isinstance(body["system"], (str, list)):
        return "system: Input should be a valid string"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages: at least one message is required"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            return ("messages: roles must alternate between \"user\" and \"assistant\", "
                    "starting with \"user\"")
        if not content_text(m.get("content")):
            return f"messages.{i}: all messages must have non-empty content"
    return None


def validate_openai(body):
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "[] is too short - 'messages'"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant",
                                                             "developer", "tool"):
            return f"Invalid value for 'messages[{i}].role'"
    return None


class Fake:
    def __init__(self, script, log_path, key):
        self.script = script
        self.next = 0
        self.log_path = log_path
        self.key = key

    def take(self):
        if not self.script:
            return {}
        entry = self.script[min(self.next, len(self.script) - 1)]
        self.next += 1
        return entry

    def log(self, request, raw, body):
        rec = {"path": request.path, "headers": dict(request.headers),
               "body": body if body is not None else raw}
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()

    async def read(self, request):
        raw = (await request.read()).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.log(request, raw, body)
        return body

    # ---- Anthropic ----

    async def messages(self, request):
        body = await self.read(request)
        if self.key is not None and request.headers.get("x-api-key") != self.key:
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return anthropic_error(400, "invalid_request_error",
                                   "anthropic-version: header is required")
        err = validate_anthropic(body)
        if err:
            return anthropic_error(400, "invalid_request_error", err)
        entry = self.take()
        status = entry.get("status", 200)
        if status != 200:
            return self.error_answer("anthropic", entry, body)
        text = answer_text(entry, body)
        if not body.get("stream") or entry.get("json"):
            return web.json_response(anthropic_message(body, text, entry),
                                     headers=entry.get("headers", {}))
        return await self.stream(request, entry, text, AnthropicWire(body, entry))

    # ---- OpenAI ----

    async def chat(self, request):
        body = await self.read(request)
        if self.key is not None and \
                request.headers.get("Authorization") != f"Bearer {self.key}":
            return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        err = validate_openai(body)
        if err:
            return openai_error(400, err)
        entry = self.take()
        status = entry.get("status", 200)
        if status != 200:
            return self.error_answer("openai", entry, body)
        text = answer_text(entry, body)
        if not body.get("stream") or entry.get("json"):
            return web.json_response(openai_completion(body, text, entry),
                                     headers=entry.get("headers", {}))
        return await self.stream(request, entry, text, OpenAIWire(body, entry))

    def error_answer(self, provider, entry, body):
        status = entry["status"]
        payload = entry.get("body") or default_error_body(provider, status, body.get("model"))
        return web.json_response(payload, status=status, headers=entry.get("headers", {}))

    # ---- streaming ----

    async def stream(self, request, entry, text, wire):
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        headers.update(entry.get("headers", {}))
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        size = max(1, int(entry.get("chunk", 5)))
        delay = entry.get("delay_ms", 10) / 1000.0
        pieces = [text[i:i + size] for i in range(0, len(text), size)]
        cut = entry.get("cut_after")
        await resp.write(wire.start())
        for n, piece in enumerate(pieces):
            if cut is not None and n >= cut:
                return abort(request, resp)
            if n > 0:
                await asyncio.sleep(delay)
                if entry.get("ping"):
                    await resp.write(wire.ping())
            if n == 1 and entry.get("stall_ms"):
                await asyncio.sleep(entry["stall_ms"] / 1000.0)
            await resp.write(wire.delta(piece))
        if cut is not None:
            return abort(request, resp)
        if entry.get("stall_ms") and len(pieces) < 2:
            await asyncio.sleep(entry["stall_ms"] / 1000.0)
        if entry.get("error_event"):
            await resp.write(wire.error(entry["error_event"]))
            await resp.write_eof()
            return resp
        await resp.write(wire.end())
        await resp.write_eof()
        return resp


def abort(request, resp):
    """Drops the connection in the middle of the chunked body, as a crash would."""
    request.transport.abort()
    raise asyncio.CancelledError()


def answer_text(entry, body):
    text = entry.get("text", "")
    if "{{last_user}}" in text:
        last = ""
        for m in body.get("messages", []):
            if isinstance(m, dict) and m.get("role") == "user":
                last = content_text(m.get("content"))
        text = text.replace("{{last_user}}", last)
    return text


def sse(event, data):
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


class AnthropicWire:
    def __init__(self, body, entry):
        self.model = body["model"]
        self.entry = entry
        self.out = 0

    def start(self):
        msg = {"id": "msg_fake", "type": "message", "role": "assistant", "model": self.model,
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 10, "output_tokens": 1}}
        return (sse("message_start", {"type": "message_start", "message": msg}) +
                sse("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}}))

    def ping(self):
        return sse("ping", {"type": "ping"})

    def delta(self, piece):
        self.out += 1
        return sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": piece}})

    def error(self, err):
        return sse("error", {"type": "error", "error": err})

    def end(self):
        stop = self.entry.get("stop_reason", "end_turn")
        return (sse("content_block_stop", {"type": "content_block_stop", "index": 0}) +
                sse("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": self.out}}) +
                sse("message_stop", {"type": "message_stop"}))


class OpenAIWire:
    def __init__(self, body, entry):
        self.model = body["model"]
        self.entry = entry
        self.created = int(time.time())

    def chunk(self, delta, finish=None):
        return ("data: " + json.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) +
            "\n\n").encode()

    def start(self):
        return self.chunk({"role": "assistant", "content": ""})

    def ping(self):
        return b": keep-alive\n\n"

    def delta(self, piece):
        return self.chunk({"content": piece})

    def error(self, err):
        return ("data: " + json.dumps({"error": err}) + "\n\n").encode()

    def end(self):
        finish = "length" if self.entry.get("stop_reason") == "max_tokens" else "stop"
        return self.chunk({}, finish) + b"data: [DONE]\n\n"


def anthropic_message(body, text, entry):
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": entry.get("stop_reason", "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10}}


def openai_completion(body, text, entry):
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}]}


async def main():
    ap = argparse.ArgumentParser(description="scripted fake LLM API server")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--script", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--key")
    args = ap.parse_args()
    with open(args.script, encoding="utf-8") as f:
        script = json.load(f)
    if not isinstance(script, list):
        sys.exit("fake_llm: the script must be a JSON list")
    fake = Fake(script, args.log, args.key)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/messages", fake.messages)
    app.router.add_post("/chat/completions", fake.chat)
    app.router.add_post("/v1/chat/completions", fake.chat)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
