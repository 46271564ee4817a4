#!/usr/bin/env python3
"""HF transformers' BF16 prefill on the same weights as k2j (tools/gpu/bench-prefill.sh).

    python3 tools/gpu/hf_prefill_bench.py --model DIR --prompts 512,4096,16384 [--runs 2] [--json FILE] [--label L]
                                          [--attn sdpa]

The model is loaded in bfloat16 on cuda:0 (attention --attn, default sdpa: what transformers picks by default);
prefill tok/s = prompt / time of one forward pass over a random prompt without a cache, logits of the last
position only (logits_to_keep=1, as k2j's prefill), best of --runs after a warm-up. One JSON line per prompt
length (appended to --json). Failures (import, out of memory) are reported as JSON with an "error" field.
--batch N: instead, greedy generate of N random prompts (the first --prompts length) and --gen new tokens each in one
batched call (eos ignored, transformers' default cache, no compilation), aggregate generated tok/s including the
prefill, after a warm-up call of the same shape.
"""
import argparse
import json
import time
import traceback


def emit(obj, path):
    line = json.dumps(obj)
    print(line, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", default="512,4096,16384")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", default="")
    ap.add_argument("--label", default="")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--batch", type=int, default=0, help="batched greedy generate of this many sequences instead")
    ap.add_argument("--gen", type=int, default=128)
    a = ap.parse_args()
    base = {"engine": "hf", "what": "prefill", "label": a.label or a.model, "mode": "bf16/" + a.attn}
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except Exception as e:  # noqa: BLE001
        emit({**base, "error": "import failed: %r" % (e,)}, a.json)
        return 0
    base["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        base["device"] = torch.cuda.get_device_name(0)
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation=a.attn)
        if next(model.parameters()).dtype != torch.bfloat16:  # transformers 4 spells it torch_dtype
            model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16,
                                                         attn_implementation=a.attn)
        model = model.to("cuda").eval()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        emit({**base, "error": "load failed: %s: %s" % (type(e).__name__, e)}, a.json)
        return 0
    vocab = min(model.config.vocab_size, 151643)

    def forward(ids):
        try:
            return model(ids, use_cache=False, logits_to_keep=1)
        except TypeError:  # transformers 4: num_logits_to_keep
            return model(ids, use_cache=False, num_logits_to_keep=1)

    if a.batch > 0:
        n = int(a.prompts.split(",")[0])
        try:
            with torch.inference_mode():
                for rnd in range(2):  # warm-up, then timed
                    ids = torch.randint(0, vocab, (a.batch, n), generator=torch.Generator().manual_seed(rnd)).to("cuda")
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.gen,
                                         min_new_tokens=a.gen, do_sample=False, pad_token_id=0, eos_token_id=None,
                                         temperature=None, top_p=None, top_k=None)
                    torch.cuda.synchronize()
                    dt = time.perf_counter() - t
                generated = int(out.shape[0] * (out.shape[1] - n))
                emit({**base, "what": "batched_decode", "batch": a.batch, "prompt_tokens": n, "gen_tokens": a.gen,
                      "generated": generated, "seconds": round(dt, 3), "aggregate_tok_s": round(generated / dt, 1)},
                     a.json)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            emit({**base, "what": "batched_decode", "batch": a.batch, "error": "%s: %s" % (type(e).__name__,
                                                                                       str(e)[:300])}, a.json)
        return 0

    with torch.inference_mode():
        forward(torch.randint(0, vocab, (1, 300), generator=torch.Generator().manual_seed(0)).to("cuda"))
        for n in [int(x) for x in a.prompts.split(",") if x]:
            try:
                ids = torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(n)).to("cuda")
                forward(ids)  # warm-up at this length
                times = []
                for _ in range(a.runs):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    forward(ids)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t)
                emit({**base, "prompt_tokens": n, "prefill_tok_s": round(n / min(times), 1),
                      "runs": [round(n / x, 1) for x in times]}, a.json)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                emit({**base, "prompt_tokens": n, "error": "%s: %s" % (type(e).__name__, str(e)[:300])}, a.json)
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    main()
