#!/usr/bin/env python3
"""Renders testdata/chat-templates/cases.json with each template in testdata/chat-templates/*/ through Hugging Face
transformers (the renderer apply_chat_template uses), writing the goldens the Jinja chat-template tests compare to.

Run from the repository root (no network, no GPU needed; about 10 seconds):
    python3 tools/golden/make_chat_goldens.py [OUT]
OUT defaults to tokenizer/src/test/resources/golden/chat-templates.jsonl.

What is passed is what k2j passes (JinjaChatTemplate): messages in OpenAI's shape, tools or None, documents None,
add_generation_prompt, enable_thinking, and the bos/eos/unk/pad strings of the tokenizer_config.json. Tool-call
arguments go in as dicts (transformers' documented form) and null content as None; a template that fails on that is
rendered again with the JSON text, then with "" for null content (what vLLM passes), as k2j does. For qwen3 the real tokenizer (testdata/qwen-tokenizer) is
also loaded and tokenizer.apply_chat_template must give the same text; its token ids are recorded too.
"""
import copy
import json
import os
import sys

import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "testdata", "chat-templates")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tokenizer", "src", "test", "resources", "golden",
                                                         "chat-templates.jsonl")


def special_tokens(config):
    out = {}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        v = config.get(name)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            out[name] = v
    return out


def renderer():
    try:
        from transformers.utils.chat_template_utils import render_jinja_template

        def render(template, messages, tools, add_generation_prompt, kwargs):
            rendered, _ = render_jinja_template(conversations=[messages], tools=tools, documents=None,
                                                chat_template=template,
                                                add_generation_prompt=add_generation_prompt, **kwargs)
            return rendered[0]
        return render, "render_jinja_template"
    except ImportError:
        from transformers.utils.chat_template_utils import _compile_jinja_template

        def render(template, messages, tools, add_generation_prompt, kwargs):
            return _compile_jinja_template(template).render(messages=messages, tools=tools, documents=None,
                                                            add_generation_prompt=add_generation_prompt, **kwargs)
        return render, "_compile_jinja_template"


def with_arguments(messages, as_dict, null_content_as_empty=False):
    messages = copy.deepcopy(messages)
    for m in messages:
        if m.get("content") is None and null_content_as_empty:
            m["content"] = ""
        for call in m.get("tool_calls") or []:
            if as_dict:
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return messages


def main():
    render, how = renderer()
    cases = json.load(open(os.path.join(DATA, "cases.json"), encoding="utf-8"))["cases"]
    qwen_tok = None
    try:
        from transformers import AutoTokenizer
        qwen_tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "testdata", "qwen-tokenizer"))
    except Exception as e:  # recorded, not fatal: the template goldens do not need it
        print("qwen tokenizer not loaded:", repr(e), file=sys.stderr)
    lines = []
    mismatches = 0
    for name in sorted(os.listdir(DATA)):
        cfg_path = os.path.join(DATA, name, "tokenizer_config.json")
        if not os.path.isfile(cfg_path):
            continue
        config = json.load(open(cfg_path, encoding="utf-8"))
        template = config["chat_template"]
        for case in cases:
            kwargs = dict(special_tokens(config))
            kwargs["enable_thinking"] = case["enable_thinking"]
            rec = {"template": name, "case": case["name"], "rendered": None, "error": None, "arguments": "dict"}
            # the forms k2j tries, in its order (JinjaChatTemplate): arguments as dict, then as JSON text; content
            # null as sent, then "" (what vLLM passes)
            forms = [(True, False), (False, False), (True, True), (False, True)]
            if not any(m.get("tool_calls") for m in case["messages"]):
                forms = forms[:1]
            first = None
            for as_dict, empty in forms:
                try:
                    rec["rendered"] = render(template, with_arguments(case["messages"], as_dict, empty), case["tools"],
                                             case["add_generation_prompt"], kwargs)
                    rec["arguments"] = "dict" if as_dict else "string"
                    rec["null_content"] = "empty" if empty else "none"
                    break
                except Exception as e:
                    first = first or e
            if rec["rendered"] is None:
                rec["error"] = type(first).__name__ + ": " + str(first)
            if name == "qwen3" and qwen_tok is not None and rec["rendered"] is not None:
                text = qwen_tok.apply_chat_template(with_arguments(case["messages"], rec["arguments"] == "dict",
                                                                   rec["null_content"] == "empty"),
                                                    tools=case["tools"], tokenize=False,
                                                    add_generation_prompt=case["add_generation_prompt"],
                                                    enable_thinking=case["enable_thinking"])
                rec["apply_chat_template_equal"] = text == rec["rendered"]
                mismatches += 0 if rec["apply_chat_template_equal"] else 1
                rec["ids"] = qwen_tok(rec["rendered"], add_special_tokens=False)["input_ids"]
            lines.append(rec)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(json.dumps({"transformers": transformers.__version__, "renderer": how}) + "\n")
        for rec in lines:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    errors = sum(1 for r in lines if r["error"])
    print(f"{len(lines)} renderings ({errors} raised) with transformers {transformers.__version__} via {how};"
          f" qwen3 apply_chat_template mismatches: {mismatches}; wrote {OUT}")


if __name__ == "__main__":
    main()
