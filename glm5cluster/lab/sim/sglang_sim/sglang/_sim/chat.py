"""Canned chat completions shaped like SGLang's OpenAI-compatible responses (GLM-5 parsers)."""

import json
import time
import uuid

from sglang._sim import bench

REASONING = ("The user asks a question. I will think it through briefly: consider what is asked, "
             "check the facts, and answer concisely.")
ANSWER = "Hello! I am GLM-5 served by SGLang. How can I help you today?"


def _sample_args(tool):
    params = (tool.get("function") or {}).get("parameters") or {}
    props = params.get("properties") or {}
    keys = params.get("required") or list(props)
    out = {}
    for k in keys:
        spec = props.get(k) or {}
        t = spec.get("type")
        if spec.get("enum"):
            out[k] = spec["enum"][0]
        elif t in ("integer", "number"):
            out[k] = 1
        elif t == "boolean":
            out[k] = True
        else:
            out[k] = {"city": "Boston", "state": "MA", "location": "Boston, MA"}.get(k, "example")
    return out


def _last_user_text(body):
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c if isinstance(c, str) else ""
    return ""


def thinking_enabled(body, args):
    kwargs = dict(args.default_chat_template_kwargs or {})
    kwargs.update(body.get("chat_template_kwargs") or {})
    return kwargs.get("enable_thinking", True) is not False


def plan(body, args):
    """(reasoning or None, content, tool_calls or None, finish_reason)."""
    think = thinking_enabled(body, args)
    tools = body.get("tools") or []
    use_tool = bool(tools) and body.get("tool_choice") != "none"
    reasoning = REASONING if think else None
    calls = None
    content = ANSWER
    known = bench.knobs().answer(_last_user_text(body))  # a benchmark question (bench.py)
    if known is not None:
        content = known.strip()
    if use_tool:
        tool = tools[0]
        name = (tool.get("function") or {}).get("name", "tool")
        arguments = json.dumps(_sample_args(tool))
        if args.tool_call_parser:
            calls = [{"id": "call_" + uuid.uuid4().hex[:24], "index": 0, "type": "function",
                      "function": {"name": name, "arguments": arguments}}]
            content = ""
        else:  # no parser: the raw GLM tool-call markup stays in the text
            pairs = "".join(f"<arg_key>{k}</arg_key><arg_value>{json.dumps(v) if not isinstance(v, str) else v}"
                            f"</arg_value>" for k, v in json.loads(arguments).items())
            content = f"<tool_call>{name}{pairs}</tool_call>"
    if reasoning is not None and not args.reasoning_parser:
        content = reasoning + "</think>" + content
        reasoning = None
    finish = "tool_calls" if calls else "stop"
    return reasoning, content, calls, finish


def _tokens(text):
    return max(1, len((text or "").split()))


def completion(body, args, model_id):
    reasoning, content, calls, finish = plan(body, args)
    prompt = sum(_tokens(m.get("content") if isinstance(m.get("content"), str) else "x")
                 for m in body.get("messages") or [])
    rtok = _tokens(reasoning) if reasoning else 0
    ctok = _tokens(content) + rtok + (10 if calls else 0)
    return {
        "id": uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model") or model_id,
        "choices": [{"index": 0,
                     "message": {"role": "assistant", "content": content,
                                 "reasoning_content": reasoning, "tool_calls": calls},
                     "logprobs": None, "finish_reason": finish,
                     "matched_stop": 154827 if finish == "stop" else None}],
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt + ctok, "completion_tokens": ctok,
                  "prompt_tokens_details": None, "reasoning_tokens": rtok},
        "metadata": {"weight_version": "default"},
    }


def stream_chunks(body, args, model_id):
    """The SSE `data:` payloads of a streamed completion (without the final [DONE])."""
    reasoning, content, calls, finish = plan(body, args)
    cid = uuid.uuid4().hex
    created = int(time.time())
    model = body.get("model") or model_id

    def chunk(delta, finish_reason=None):
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason, "matched_stop": None}]}

    yield chunk({"role": "assistant", "content": ""})
    for word in (reasoning or "").split(" ") if reasoning else []:
        yield chunk({"reasoning_content": word + " "})
    if calls:
        call = calls[0]
        yield chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": ""}}]})
        text = call["function"]["arguments"]
        for i in range(0, len(text), 8):
            yield chunk({"tool_calls": [{"index": 0, "id": None, "type": "function",
                                         "function": {"name": None, "arguments": text[i:i + 8]}}]})
    elif content:
        for word in content.split(" "):
            yield chunk({"content": word + " "})
    yield chunk({}, finish)
