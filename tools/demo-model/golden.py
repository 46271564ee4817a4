#!/usr/bin/env python3
"""Golden data for the trained demo models (tools/demo-model/train.py output).

Usage:  python3 tools/demo-model/golden.py MODELS_DIR OUT_DIR [--device cuda|cpu] [--heldout FILE]

MODELS_DIR holds target/ and draft/ (HF dirs). Writes, and nothing outside OUT_DIR:
  demo-golden.json         {"model": "target", "cases": [{"prompt", "prompt_ids", "greedy_ids", "min_top2_margin",
                           "top2_margins", ...}]}: HF greedy continuations, float32 (BF16 weights upcast), eager
                           attention, TF32 off, model.generate(do_sample=False, max_new_tokens=48), eos DISABLED so
                           every case has 48 tokens (first_eos_index says where an eos-stopping engine would stop).
  demo-golden-draft.json   the same for the draft model.
  demo-tokenizer-ids.jsonl one {"text", "ids", "decoded"} per line: the demo tokenizer (HF tokenizers library,
                           tokenizer.json) on ~100 varied texts; ids with add_special_tokens=True (adds nothing for
                           this tokenizer), decoded = decode(ids, skip_special_tokens=False).
  demo-acceptance.json     informative: greedy speculative decoding, draft proposing 4 tokens for the target, on
                           held-out code (simulated exactly, plus HF's own assisted generation with a call count).

The held-out text defaults to MODELS_DIR/heldout_code.txt; without it the acceptance step is skipped.
Needs torch, transformers >= 5, tokenizers.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def die(msg):
    print(f"\nERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


try:
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
except ImportError as e:  # pragma: no cover - depends on the machine
    die(f"missing Python package ({e}); this script needs torch, transformers>=5 and tokenizers")

MAX_NEW_TOKENS = 48
PROMPTS = [
    "def quicksort(arr):",
    "import numpy as np\n",
    "class Node:\n    def __init__(self",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "import torch\nimport torch.nn as nn\n\n\nclass MLP(nn.Module):\n"
    "    def __init__(self, in_features, hidden, out_features):\n",
    "    for i in range(len(items)):\n        if items[i]",
    "@property\ndef name(self):\n",
]

TOKENIZER_TEXTS = [
    "", " ", "  ", "\n", "\n\n", "\t", "\r\n", "a", "A", "hello world", " hello world", "Hello, World!",
    "I'm", "I'M", "don't", "DON'T", "we'll", "They've", "she'd", "it's", "'s", "x's", "O'Reilly's 'quote'",
    "12345", "3.14159", "1e-10", "0x1F", "1,000,000", "\u0663\u0664\u0665", "x\u00b2 + y\u00b3",
    "def f(x):\n    return x + 1\n", 'if __name__ == "__main__":\n    main()\n', "x = [i**2 for i in range(10)]",
    "    \n        \n", "\t\tindent", "lambda: None", 'print(f"{x!r:>10}")', "a  b   c    d", "trailing spaces   ",
    "   leading", "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n", "import os, sys\nfrom typing import List, Dict\n",
    "x==y!=z<=w>=v", "/* c */ // cpp", "<html><body></body></html>", "SELECT * FROM t WHERE id = 1;",
    "https://example.com/path?q=1&r=2", "user@example.com", "caf\u00e9", "cafe\u0301 (NFD input)", "na\u00efve",
    "\u00c5ngstr\u00f6m", "\ufb01 ligature", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5", "\ud55c\uad6d\uc5b4", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5", "\u0645\u0631\u062d\u0628\u0627", "\u05e9\u05dc\u05d5\u05dd",
    "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e44\u0e17\u0e22", "\U0001F642", "\U0001F44D\U0001F3FD",
    "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466", "\U0001F1EF\U0001F1F5", "\u00a0nbsp",
    "zero\u200bwidth", "line\u2028sep", "tab\there", "mixed \u4e2d\u6587 and English 123", "\u03a9mega \u2248 3",
    "\u2211_{i=1}^n i", "\u2014em dash\u2013en dash", "\u201cquotes\u201d \u2018single\u2019", "\u2026",
    "\x00null", "\x7fdel", "\ufeffBOM", "\U0001F600\U0001F601",
    "<|endoftext|>", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "text<|endoftext|>more",
    "<|im_end|><|im_end|>", "<|im_start", "<|endoftext|", "< |endoftext| >", "a" * 300, " " * 100, "ab" * 200,
    "\n" * 50, "x = 1\n" * 30, "very_long_identifier_name_" * 10, "  \n  \n", " \r\n \r\n", "\n \n", "a \n",
    "a  \n b", "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE", "self.assertEqual(a, b)  # noqa: E501",
    "raise ValueError(f\"bad value: {value!r}\")", "return {'key': [1, 2, 3], \"other\": (4, 5)}",
    "while True:\n\tbreak\n", "try:\n    pass\nexcept Exception as e:\n    raise\n",
]


def load(path, device):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.to(device)
    model.eval()
    bad = [n for n, p in model.named_parameters() if p.dtype != torch.float32]
    if bad:
        die(f"{path}: parameters {bad[:3]} are not float32 after dtype=float32")
    for cfg in (model.generation_config, model.config):  # in memory only: greedy runs the full length
        cfg.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


@torch.no_grad()
def argmax_path(model, ids, device):
    """Teacher-forced logits over ids: (argmax list, top1-top2 margin list), one per position."""
    logits = model(input_ids=torch.tensor([ids], device=device)).logits[0].float()
    top = torch.topk(logits, 2, dim=-1).values
    return logits.argmax(-1).tolist(), (top[:, 0] - top[:, 1]).tolist()


@torch.no_grad()
def hf_greedy(model, prompt_ids, n, device):
    ids = torch.tensor([prompt_ids], device=device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                         max_new_tokens=n)
    seq = out.sequences if hasattr(out, "sequences") else out
    return seq[0, len(prompt_ids):].tolist()


def golden_for(model_name, model, tok, eos_ids, device):
    cases = []
    for prompt in PROMPTS:
        prompt_ids = tok.encode(prompt).ids
        greedy = hf_greedy(model, prompt_ids, MAX_NEW_TOKENS, device)
        note = None
        if len(greedy) != MAX_NEW_TOKENS:
            die(f"{model_name}: generate returned {len(greedy)} tokens for {prompt!r}, expected {MAX_NEW_TOKENS} "
                "(eos was disabled; something else stopped generation)")
        preds, margins = argmax_path(model, prompt_ids + greedy, device)
        step_preds = preds[len(prompt_ids) - 1:len(prompt_ids) - 1 + len(greedy)]
        step_margins = margins[len(prompt_ids) - 1:len(prompt_ids) - 1 + len(greedy)]
        disagree = next((i for i, (a, b) in enumerate(zip(step_preds, greedy)) if a != b), None)
        if disagree is not None:
            note = (f"teacher-forced argmax differs from generate() at step {disagree} (margin "
                    f"{step_margins[disagree]:.2e}): a near tie; compare only before it")
            log(f"  WARNING {model_name} {prompt!r}: {note}")
        first_eos = next((i for i, t in enumerate(greedy) if t in eos_ids), None)
        case = {
            "prompt": prompt, "prompt_ids": prompt_ids, "greedy_ids": greedy,
            "min_top2_margin": min(step_margins), "top2_margins": step_margins,
            "first_eos_index": first_eos, "continuation_text": tok.decode(greedy, skip_special_tokens=False),
        }
        if note:
            case["note"] = note
        cases.append(case)
        log(f"  {model_name} {prompt!r:.40}: min margin {case['min_top2_margin']:.4f} -> "
            f"{case['continuation_text'][:60]!r}")
    return cases


@torch.no_grad()
def simulated_speculative(target, draft, prompt_ids, n, gamma, device):
    """Greedy speculative decoding by full recomputation: draft proposes gamma tokens, target keeps the longest
    prefix equal to its own argmax and adds one token of its own. Returns (tokens, rounds, accepted, proposed)."""
    ctx, rounds, accepted, proposed = list(prompt_ids), 0, 0, 0
    while len(ctx) - len(prompt_ids) < n:
        d_ctx, props = list(ctx), []
        for _ in range(gamma):
            nxt = int(draft(input_ids=torch.tensor([d_ctx], device=device)).logits[0, -1].argmax())
            props.append(nxt)
            d_ctx.append(nxt)
        logits = target(input_ids=torch.tensor([ctx + props], device=device)).logits[0]
        preds = logits[len(ctx) - 1:].argmax(-1).tolist()  # gamma + 1 target choices
        k = 0
        while k < gamma and props[k] == preds[k]:
            k += 1
        ctx += props[:k] + [preds[k]]
        rounds += 1
        accepted += k
        proposed += gamma
    return ctx[len(prompt_ids):len(prompt_ids) + n], rounds, accepted, proposed


def acceptance(target, draft, tok, heldout_text, device, n=64, gamma=4, prompts=8, prompt_tokens=96):
    lines = heldout_text.split("\n")
    starts, offset = [], 0
    line_offsets = []
    for line in lines:
        line_offsets.append(offset)
        offset += len(line) + 1
    for j in range(prompts):
        starts.append(line_offsets[(j * len(line_offsets)) // prompts])
    per_prompt, tot = [], {"rounds": 0, "accepted": 0, "proposed": 0, "tokens": 0, "hf_calls": 0, "hf_tokens": 0}
    hf_error = None
    for s in starts:
        ids = tok.encode(heldout_text[s:s + 16 * prompt_tokens]).ids[:prompt_tokens]  # ~16 chars/token is plenty
        if len(ids) < prompt_tokens // 2:
            continue
        greedy = hf_greedy(target, ids, n, device)
        spec, rounds, acc, prop = simulated_speculative(target, draft, ids, n, gamma, device)
        row = {"prompt_start_char": s, "prompt_tokens": len(ids), "rounds": rounds, "accepted": acc,
               "proposed": prop, "acceptance_rate": acc / prop, "tokens_per_target_forward": n / rounds,
               "equals_target_greedy": spec == greedy}
        tot["rounds"] += rounds
        tot["accepted"] += acc
        tot["proposed"] += prop
        tot["tokens"] += n
        if hf_error is None:
            try:
                calls = [0]
                handle = target.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
                try:
                    x = torch.tensor([ids], device=device)
                    out = target.generate(input_ids=x, attention_mask=torch.ones_like(x), assistant_model=draft,
                                          do_sample=False, max_new_tokens=n)
                finally:
                    handle.remove()
                seq = out.sequences if hasattr(out, "sequences") else out
                hf_new = seq[0, len(ids):].tolist()
                row.update({"hf_assisted_target_calls": calls[0], "hf_assisted_new_tokens": len(hf_new),
                            "hf_assisted_equals_target_greedy": hf_new == greedy})
                tot["hf_calls"] += calls[0]
                tot["hf_tokens"] += len(hf_new)
            except Exception as e:  # informative only
                hf_error = f"{type(e).__name__}: {e}"
                log(f"  HF assisted generation failed: {hf_error}")
        per_prompt.append(row)
    if not per_prompt:
        return {"skipped": "no usable prompts in the held-out text"}
    summary = {
        "gamma": gamma, "new_tokens_per_prompt": n, "prompts": len(per_prompt),
        "acceptance_rate": tot["accepted"] / tot["proposed"],
        "mean_accepted_per_round": tot["accepted"] / tot["rounds"],
        "tokens_per_target_forward": tot["tokens"] / tot["rounds"],
        "hf_assisted_tokens_per_target_call": (tot["hf_tokens"] / tot["hf_calls"]) if tot["hf_calls"] else None,
        "hf_assisted_error": hf_error,
        "hf_assisted_settings": "target.generate(assistant_model=draft, do_sample=False); draft generation_config "
                                "num_assistant_tokens=4, schedule constant, confidence threshold 0 where supported; "
                                "target calls counted with a forward hook (prefill included)",
        "per_prompt": per_prompt,
    }
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    ap.add_argument("--heldout", default=None, help="held-out code text (default MODELS_DIR/heldout_code.txt)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        die("--device cuda but torch.cuda.is_available() is False")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        transformers.logging.set_verbosity_error()
    except Exception:
        pass

    target_dir = os.path.join(args.models_dir, "target")
    draft_dir = os.path.join(args.models_dir, "draft")
    for d in (target_dir,):
        for fn in ("config.json", "tokenizer.json"):
            if not os.path.exists(os.path.join(d, fn)):
                die(f"{d}: missing {fn} (run tools/demo-model/train.py first)")
        if not any(os.path.exists(os.path.join(d, fn))
                   for fn in ("model.safetensors", "model.safetensors.index.json")):
            die(f"{d}: no model.safetensors or model.safetensors.index.json (run tools/demo-model/train.py first)")
    has_draft = os.path.exists(os.path.join(draft_dir, "config.json"))
    os.makedirs(args.out_dir, exist_ok=True)
    tok = Tokenizer.from_file(os.path.join(target_dir, "tokenizer.json"))
    if has_draft:
        with open(os.path.join(target_dir, "tokenizer.json"), "rb") as a, \
                open(os.path.join(draft_dir, "tokenizer.json"), "rb") as b:
            if a.read() != b.read():
                die("target and draft tokenizer.json differ; the demo models must share one tokenizer")
    eos_ids = {i for i in (tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")) if i is not None}
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, device {args.device}; "
        f"vocab {tok.get_vocab_size()}, eos ids {sorted(eos_ids)}")

    # 1. tokenizer ids
    texts = list(TOKENIZER_TEXTS)
    heldout_path = args.heldout or os.path.join(args.models_dir, "heldout_code.txt")
    heldout = None
    if os.path.exists(heldout_path):
        with open(heldout_path, encoding="utf-8") as f:
            heldout = f.read()
        for j in range(30):
            start = (j * 7919 * 13) % max(1, len(heldout) - 1000)
            texts.append(heldout[start:start + 200 + (j * 37) % 600])
    else:
        log(f"no held-out text at {heldout_path}: tokenizer texts are the built-in ones only, acceptance skipped")
    with open(os.path.join(args.out_dir, "demo-tokenizer-ids.jsonl"), "w", encoding="utf-8") as f:
        for text in texts:
            ids = tok.encode(text).ids
            # ensure_ascii: U+2028, U+0085 etc. stay escaped, so every record is exactly one physical line
            f.write(json.dumps({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)},
                               ensure_ascii=True) + "\n")
    log(f"wrote demo-tokenizer-ids.jsonl ({len(texts)} texts)")

    # 2. greedy goldens
    meta = {"max_new_tokens": MAX_NEW_TOKENS, "eos_disabled": True, "eos_token_ids": sorted(eos_ids),
            "reference": {"dtype": "float32 (stored BF16 weights upcast)", "attn_implementation": "eager",
                          "device": args.device, "tf32": False, "torch": torch.__version__,
                          "transformers": transformers.__version__},
            "notes": "greedy_ids exclude the prompt; top2_margins[i] is top1-top2 of the teacher-forced logits "
                     "choosing greedy_ids[i]; compare an engine only up to the first step with a tiny margin"}
    models = {"target": load(target_dir, args.device)}
    if has_draft:
        models["draft"] = load(draft_dir, args.device)
    else:
        log(f"no draft model at {draft_dir}: skipping its golden and the acceptance measurement")
    for name, model in models.items():
        cases = golden_for(name, model, tok, eos_ids, args.device)
        fn = "demo-golden.json" if name == "target" else f"demo-golden-{name}.json"
        with open(os.path.join(args.out_dir, fn), "w", encoding="utf-8") as f:
            json.dump({"model": name, **meta, "cases": cases}, f, indent=1, ensure_ascii=False)
            f.write("\n")
        log(f"wrote {fn}")

    # 3. acceptance (informative)
    if has_draft and heldout:
        draft = models["draft"]
        gc = draft.generation_config
        gc.num_assistant_tokens = 4
        gc.num_assistant_tokens_schedule = "constant"
        if hasattr(gc, "assistant_confidence_threshold"):
            gc.assistant_confidence_threshold = 0.0
        result = acceptance(models["target"], draft, tok, heldout, args.device)
        with open(os.path.join(args.out_dir, "demo-acceptance.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        log(f"acceptance: rate {result.get('acceptance_rate')}, tokens/target forward "
            f"{result.get('tokens_per_target_forward')}, HF assisted tokens/call "
            f"{result.get('hf_assisted_tokens_per_target_call')}")
    log(f"done in {time.time() - T0:.1f}s -> {os.path.abspath(args.out_dir)}")


if __name__ == "__main__":
    main()
