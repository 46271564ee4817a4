#!/usr/bin/env python3
"""HF transformers baseline for tools/gpu/bench-gpu.sh: greedy generate on the same synthetic weights as k2j.

    python3 tools/gpu/hf_bench.py --model DIR [--prompt-tokens 512] [--gen-tokens 256] [--runs 3]
                                  [--modes eager,compiled] [--json FILE (appended)] [--label NAME]

bf16, static KV cache, greedy, eos ignored (min_new_tokens), on cuda:0. Prefill tok/s = prompt / time of one
forward over the prompt; decode tok/s = gen / (time of generate(gen + 1) - that), the same definitions as k2j's
DecodeBench. "eager" disables transformers' automatic compilation; "compiled" then lets generate
compile its decode step (transformers >= 4.48) or torch.compile's the forward (older); a failure there is caught
and reported and the eager numbers stand. Prints one JSON object per mode and appends it to --json.
A missing torch/transformers/GPU is reported as JSON with an "error" field (exit status 0, so the caller's table
shows it).
"""
import argparse
import json
import sys
import time
import traceback


def emit(obj, path):
    line = json.dumps(obj)
    print(line, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def timed_generate(model, torch, ids, new_tokens):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, cache_implementation="static",
                         pad_token_id=0, eos_token_id=None, temperature=None, top_p=None, top_k=None)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    assert out.shape[1] == ids.shape[1] + new_tokens, out.shape
    return dt


def timed_prefill(model, torch, ids):
    """One forward pass over the prompt (no cache): the prefill part of generate, without its cache shapes."""
    torch.cuda.synchronize()
    t = time.perf_counter()
    model(ids, use_cache=False)
    torch.cuda.synchronize()
    return time.perf_counter() - t


def measure(model, torch, ids, gen, runs):
    # Every generate call has the same length, so a static cache (and a compiled step) is built once.
    timed_generate(model, torch, ids, gen + 1)  # warm-up (compilation, when compiled)
    timed_prefill(model, torch, ids)
    prefill, decode = [], []
    for _ in range(runs):
        p = min(timed_prefill(model, torch, ids) for _ in range(2))
        total = timed_generate(model, torch, ids, gen + 1)
        prefill.append(ids.shape[1] / p)
        decode.append(gen / max(total - p, 1e-9))
    prefill.sort()
    decode.sort()
    return prefill[len(prefill) // 2], decode[len(decode) // 2], decode


def load(auto, path, torch):
    """bf16 straight onto the GPU; spelled for transformers 5 (dtype=) and 4 (torch_dtype=, maybe no accelerate)."""
    attempts = [dict(dtype=torch.bfloat16, device_map="cuda"), dict(torch_dtype=torch.bfloat16, device_map="cuda"),
                dict(torch_dtype=torch.bfloat16)]
    last = None
    for kw in attempts:
        try:
            m = auto.from_pretrained(path, **kw).to("cuda").eval()
            if next(m.parameters()).dtype == torch.bfloat16:  # transformers 4 takes dtype= as a config field
                return m
            del m
            torch.cuda.empty_cache()
            last = RuntimeError("loaded with %s, not bf16" % (kw,))
        except Exception as e:  # noqa: BLE001 - try the next spelling
            last = e
    raise last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="eager,compiled", help="comma list of eager, compiled")
    ap.add_argument("--json", default="")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    base = {"engine": "hf", "label": a.label or a.model, "model": a.model, "prompt_tokens": a.prompt_tokens,
            "gen_tokens": a.gen_tokens}
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except Exception as e:  # noqa: BLE001 - report whatever broke the import
        emit({**base, "mode": a.modes.split(",")[0], "error": "import failed: %r" % (e,)}, a.json)
        return 0
    base["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    if not torch.cuda.is_available():
        emit({**base, "mode": a.modes.split(",")[0], "error": "torch.cuda.is_available() is False"}, a.json)
        return 0
    try:
        t = time.perf_counter()
        model = load(AutoModelForCausalLM, a.model, torch)
        load_s = time.perf_counter() - t
        g = torch.Generator().manual_seed(1)
        vocab = min(model.config.vocab_size, 151643)
        ids = torch.randint(0, vocab, (1, a.prompt_tokens), generator=g).to("cuda")
        modes = [m.strip() for m in a.modes.split(",") if m.strip()]
        if "eager" in modes:
            # recent transformers compile the decode step of a static-cache generate on their own: not here
            model.generation_config.disable_compile = True
            with torch.inference_mode():
                p, d, runs = measure(model, torch, ids, a.gen_tokens, a.runs)
            emit({**base, "mode": "eager", "load_s": round(load_s, 2), "prefill_tok_s": round(p, 1),
                  "decode_tok_s": round(d, 1), "decode_tok_s_runs": [round(x, 1) for x in runs]}, a.json)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        emit({**base, "mode": "eager", "error": "%s: %s" % (type(e).__name__, e)}, a.json)
        return 0
    if "compiled" not in modes:
        return 0
    try:
        t = time.perf_counter()
        if hasattr(model.generation_config, "compile_config"):
            how = "generate's own static-cache compile"  # transformers >= 4.48 compiles the decode step itself
            model.generation_config.disable_compile = False
        else:
            how = "torch.compile(forward, mode=reduce-overhead, fullgraph=True)"
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
        with torch.inference_mode():
            p, d, runs = measure(model, torch, ids, a.gen_tokens, a.runs)
        emit({**base, "mode": "compiled", "how": how, "compile_and_measure_s": round(time.perf_counter() - t, 1),
              "prefill_tok_s": round(p, 1), "decode_tok_s": round(d, 1),
              "decode_tok_s_runs": [round(x, 1) for x in runs]}, a.json)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        emit({**base, "mode": "compiled", "error": "torch.compile failed: %s: %s" % (type(e).__name__,
                                                                                   str(e)[:300])}, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
