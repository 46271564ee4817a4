#!/usr/bin/env python3
"""Golden fixtures for the k2j engine: tiny random Qwen2, Qwen3, Qwen3-MoE and Llama 3 models plus HF transformers'
float32 reference.

Usage:  python3 tools/golden/make_fixtures.py OUT_DIR [--device cpu|cuda] [--min-margin 1e-3]

Writes one directory per case, OUT_DIR/<case>/, holding the HF model files exactly as transformers 5 saved them
(config.json, generation_config.json, model.safetensors or shards + model.safetensors.index.json), except that
"classic" cases get config.json rewritten into the pre-v5 form (top-level rope_theta + rope_scaling), plus:

  expected.json  {"case", "prompt_ids", "greedy_ids", "max_new_tokens", "dtype", "notes", "min_top2_margin", ...}
                 greedy_ids are the generated tokens only (prompt excluded); eos is disabled, so there are always
                 max_new_tokens of them. top2_margins[i] is top1-top2 of the logits that chose greedy_ids[i].
  logits.npy     float32 [prompt_len, vocab_size]: logits at every prompt position (little-endian '<f4', C order).

The reference is computed by RELOADING THE SAVED FILES with dtype=torch.float32 (bf16/f16 weights upcast) and
attn_implementation="eager", on CPU by default (or CUDA with TF32 off), so it matches a float32 engine that upcasts
the stored weights. Qwen3-MoE checkpoints are written with one tensor per expert
(model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight, as the hub publishes them): when transformers saves its
fused expert tensors instead, the script splits them; either way the reloaded reference must reproduce the logits
of the model it saved. Each case is retried with another seed until the smallest top1-top2 logit margin along the
greedy path is >= --min-margin and the eos id never appears on it, so the golden test cannot flip on rounding.

Needs: torch, transformers >= 5, safetensors, numpy. Writes nothing outside OUT_DIR.
"""
import argparse
import json
import os
import shutil
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def die(msg):
    print(f"\nERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


try:
    import numpy as np
    import torch
    import transformers
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen2ForCausalLM
    from transformers import Qwen3Config, Qwen3MoeConfig
except ImportError as e:  # pragma: no cover - depends on the machine
    die(f"missing Python package ({e}); this script needs torch, transformers>=5, safetensors and numpy")

if int(transformers.__version__.split(".")[0]) < 5:
    die(f"transformers {transformers.__version__} found; this script relies on transformers 5 "
        "(config field rope_parameters, from_pretrained(dtype=...))")

CASE_BYTES_LIMIT = 1_500_000
TOTAL_BYTES_LIMIT = 8_000_000
MAX_ATTEMPTS = 12
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# One entry per fixture. form: "native" keeps the config.json transformers 5 wrote (rope_parameters);
# "classic" rewrites it to top-level rope_theta + rope_scaling (null, or a dict keyed by classic_key).
# yarn: (factor, original_max_position_embeddings); max_position_embeddings is then factor * original.
CASES = [
    dict(name="tied_mha_f32", vocab=512, hidden=64, layers=2, heads=4, kv_heads=4, inter=160, tied=True,
         dtype="float32", theta=10000.0, yarn=None, max_pos=512, form="native", shard_bytes=None,
         prompt_len=24, new_tokens=16, eps=1e-6, seed=1001),
    dict(name="untied_gqa_bf16_classic", vocab=1024, hidden=96, layers=3, heads=6, kv_heads=2, inter=192,
         tied=False, dtype="bfloat16", theta=1000000.0, yarn=None, max_pos=1024, form="classic", shard_bytes=None,
         prompt_len=48, new_tokens=20, eps=1e-6, seed=2002),
    dict(name="tied_mqa_f16", vocab=768, hidden=64, layers=2, heads=4, kv_heads=1, inter=176, tied=True,
         dtype="float16", theta=10000.0, yarn=None, max_pos=256, form="native", shard_bytes=None,
         prompt_len=33, new_tokens=24, eps=1e-5, seed=3003),
    dict(name="sharded_gqa_f32", vocab=512, hidden=64, layers=3, heads=4, kv_heads=2, inter=192, tied=False,
         dtype="float32", theta=50000.0, yarn=None, max_pos=512, form="native", shard_bytes=150_000,
         prompt_len=40, new_tokens=16, eps=1e-6, seed=4004),
    dict(name="yarn_classic_bf16", vocab=512, hidden=128, layers=2, heads=4, kv_heads=2, inter=192, tied=True,
         dtype="bfloat16", theta=10000.0, yarn=(4.0, 64), max_pos=256, form="classic", classic_key="type",
         shard_bytes=None, prompt_len=90, new_tokens=24, eps=1e-6, seed=5005),
    dict(name="yarn_native_f32", vocab=512, hidden=64, layers=2, heads=2, kv_heads=1, inter=128, tied=False,
         dtype="float32", theta=10000.0, yarn=(4.0, 64), max_pos=256, form="native", shard_bytes=None,
         prompt_len=80, new_tokens=20, eps=1e-6, seed=6006),
    dict(name="yarn_classic_rope_type_f16", vocab=512, hidden=64, layers=2, heads=2, kv_heads=1, inter=128,
         tied=True, dtype="float16", theta=100000.0, yarn=(4.0, 64), max_pos=256, form="classic",
         classic_key="rope_type", shard_bytes=None, prompt_len=72, new_tokens=16, eps=1e-6, seed=7007),
    # Qwen3 dense: per-head q/k RMSNorm, no biases, head_dim 32 given explicitly (heads x head_dim != hidden)
    dict(name="qwen3_tied_bf16", arch="qwen3", vocab=512, hidden=64, layers=2, heads=4, kv_heads=2, head_dim=32,
         inter=160, tied=True, dtype="bfloat16", theta=1000000.0, yarn=None, max_pos=512, form="native",
         shard_bytes=None, prompt_len=40, new_tokens=20, eps=1e-6, seed=8008),
    # Qwen3-MoE: 8 experts, top 2, normalized top-k; layer 1 is dense (mlp_only_layers) between MoE layers 0 and 2
    dict(name="qwen3_moe_f32", arch="qwen3_moe", vocab=512, hidden=64, layers=3, heads=4, kv_heads=2, head_dim=16,
         inter=128, experts=8, top_k=2, moe_inter=48, mlp_only=[1], tied=False, dtype="float32", theta=1000000.0,
         yarn=None, max_pos=512, form="native", shard_bytes=None, prompt_len=40, new_tokens=20, eps=1e-6,
         seed=9009),
    # Llama 3: llama3 rope (factor 8, low/high 1/4 over 32 positions: head_dim 32 puts frequencies in all three
    # bands) and a prompt of 80 tokens, past the original context; untied like 3.1 8B, tied like 3.2 1B
    dict(name="llama3_untied_f32", arch="llama", vocab=512, hidden=64, layers=2, heads=2, kv_heads=1, inter=192,
         tied=False, dtype="float32", theta=10000.0, yarn=None, llama3=(8.0, 1.0, 4.0, 32), max_pos=256,
         form="native", shard_bytes=None, prompt_len=80, new_tokens=20, eps=1e-5, seed=10010),
    dict(name="llama3_tied_bf16", arch="llama", vocab=512, hidden=64, layers=2, heads=2, kv_heads=1, inter=160,
         tied=True, dtype="bfloat16", theta=10000.0, yarn=None, llama3=(8.0, 1.0, 4.0, 32), max_pos=256,
         form="native", shard_bytes=None, prompt_len=48, new_tokens=16, eps=1e-5, seed=11011),
]

INIT_STD = 0.15  # large on purpose: well separated logits, so float32 rounding cannot change an argmax


def rope_parameters_for(case):
    if case.get("llama3"):
        factor, low, high, original = case["llama3"]
        return {"rope_type": "llama3", "rope_theta": case["theta"], "factor": float(factor),
                "low_freq_factor": float(low), "high_freq_factor": float(high),
                "original_max_position_embeddings": int(original)}
    if case["yarn"] is None:
        return {"rope_type": "default", "rope_theta": case["theta"]}
    factor, original = case["yarn"]
    return {"rope_type": "yarn", "rope_theta": case["theta"], "factor": float(factor),
            "original_max_position_embeddings": int(original)}


def head_dim(case):
    return case.get("head_dim") or case["hidden"] // case["heads"]


def build_config(case):
    arch = case.get("arch", "qwen2")
    if case["heads"] % case["kv_heads"] or ("head_dim" not in case and case["hidden"] % case["heads"]):
        die(f"{case['name']}: heads must be a multiple of kv_heads (and hidden of heads without head_dim)")
    if case["yarn"] is not None and case["max_pos"] != int(case["yarn"][0] * case["yarn"][1]):
        die(f"{case['name']}: max_position_embeddings must equal factor * original for YaRN")
    eos = case["vocab"] - 1
    common = dict(
        vocab_size=case["vocab"], hidden_size=case["hidden"], intermediate_size=case["inter"],
        num_hidden_layers=case["layers"], num_attention_heads=case["heads"], num_key_value_heads=case["kv_heads"],
        max_position_embeddings=case["max_pos"], initializer_range=INIT_STD, rms_norm_eps=case["eps"],
        tie_word_embeddings=case["tied"], rope_parameters=rope_parameters_for(case), bos_token_id=eos,
        eos_token_id=eos, hidden_act="silu")
    if arch == "llama":
        return LlamaConfig(attention_bias=False, mlp_bias=False, head_dim=head_dim(case), **common)
    if arch == "qwen3":
        return Qwen3Config(head_dim=head_dim(case), attention_bias=False, use_sliding_window=False,
                           max_window_layers=case["layers"], **common)
    if arch == "qwen3_moe":
        return Qwen3MoeConfig(head_dim=head_dim(case), attention_bias=False, use_sliding_window=False,
                              num_experts=case["experts"], num_experts_per_tok=case["top_k"],
                              moe_intermediate_size=case["moe_inter"], norm_topk_prob=True, decoder_sparse_step=1,
                              mlp_only_layers=case["mlp_only"], **common)
    return Qwen2Config(
        vocab_size=case["vocab"], hidden_size=case["hidden"], intermediate_size=case["inter"],
        num_hidden_layers=case["layers"], num_attention_heads=case["heads"], num_key_value_heads=case["kv_heads"],
        max_position_embeddings=case["max_pos"], initializer_range=INIT_STD, rms_norm_eps=case["eps"],
        tie_word_embeddings=case["tied"], rope_parameters=rope_parameters_for(case), use_sliding_window=False,
        max_window_layers=case["layers"], bos_token_id=eos, eos_token_id=eos, hidden_act="silu",
    )


def randomize_(model, gen):
    """Every parameter random (HF would zero the q/k/v biases and set norms to 1, hiding engine bugs)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.25 * noise)
            else:
                p.copy_(INIT_STD * noise)


def split_fused_experts(path, case):
    """Rewrites fused expert tensors (transformers' in-memory MoE layout) into the per-expert names the hub
    publishes. Returns how many fused tensors were split (0 when the file already has per-expert names)."""
    fn = os.path.join(path, "model.safetensors")
    if not os.path.exists(fn):
        die(f"{case['name']}: MoE case must not be sharded")
    with safe_open(fn, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    E, h, ff = case["experts"], case["hidden"], case["moe_inter"]
    out, split = {}, 0
    for k, t in tensors.items():
        if k.endswith("mlp.experts.gate_up_proj"):
            prefix = k[: -len("gate_up_proj")]
            if tuple(t.shape) == (E, 2 * ff, h):
                gates, ups = [t[e, :ff, :] for e in range(E)], [t[e, ff:, :] for e in range(E)]
            elif tuple(t.shape) == (E, h, 2 * ff):
                gates, ups = [t[e, :, :ff].T for e in range(E)], [t[e, :, ff:].T for e in range(E)]
            else:
                die(f"{case['name']}: fused {k} has unexpected shape {tuple(t.shape)}")
            for e in range(E):
                out[f"{prefix}{e}.gate_proj.weight"] = gates[e].contiguous()
                out[f"{prefix}{e}.up_proj.weight"] = ups[e].contiguous()
            split += 1
        elif k.endswith("mlp.experts.down_proj"):
            prefix = k[: -len("down_proj")]
            if tuple(t.shape) == (E, h, ff):
                downs = [t[e] for e in range(E)]
            elif tuple(t.shape) == (E, ff, h):
                downs = [t[e].T for e in range(E)]
            else:
                die(f"{case['name']}: fused {k} has unexpected shape {tuple(t.shape)}")
            for e in range(E):
                out[f"{prefix}{e}.down_proj.weight"] = downs[e].contiguous()
            split += 1
        elif ".mlp.experts." in k and not any(k.endswith(s) for s in (".gate_proj.weight", ".up_proj.weight",
                                                                        ".down_proj.weight")):
            die(f"{case['name']}: unknown expert tensor layout {k} {tuple(t.shape)}")
        else:
            out[k] = t
    if split:
        save_file(out, fn, metadata=meta or {"format": "pt"})
    return split


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def safetensors_summary(path):
    """(list of tensor names, {dtype string}, shard file names) of a saved model dir."""
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = ["model.safetensors"]
    names, dtypes = [], set()
    for fn in files:
        full = os.path.join(path, fn)
        if not os.path.exists(full):
            die(f"{path}: expected weights file {fn} is missing")
        with safe_open(full, framework="pt") as f:
            for k in f.keys():
                names.append(k)
                dtypes.add(str(f.get_tensor(k).dtype).replace("torch.", ""))
    return sorted(names), dtypes, files


def load_reference(path, device):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.to(device)
    model.eval()
    bad = [n for n, p in model.named_parameters() if p.dtype != torch.float32]
    if bad:
        die(f"{path}: reloaded with dtype=float32 but parameters {bad[:3]} are not float32")
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager"):
        die(f"{path}: asked for eager attention but the model uses {impl!r}")
    return model


@torch.no_grad()
def prompt_logits(model, prompt, device):
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    return model(input_ids=ids).logits[0].float().cpu()


@torch.no_grad()
def hf_greedy(model, prompt, n, device):
    """model.generate greedy with eos disabled (in memory only), then teacher-forced margins along that path.

    Returns (generated ids, per-step top1-top2 margins, argmax-agrees-with-generate flag)."""
    for cfg in (model.generation_config, model.config):
        cfg.eos_token_id = None
    model.generation_config.pad_token_id = 0
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                         max_new_tokens=n)
    seq = out.sequences if hasattr(out, "sequences") else out
    gen = seq[0, len(prompt):].tolist()
    if len(gen) != n:
        return gen, [], False
    full = torch.tensor([prompt + gen], dtype=torch.long, device=device)
    logits = model(input_ids=full).logits[0].float().cpu()
    margins, agree = [], True
    for i in range(n):
        row = logits[len(prompt) - 1 + i]
        top = torch.topk(row, 2).values
        margins.append(float(top[0] - top[1]))
        if int(row.argmax()) != gen[i]:
            agree = False
    return gen, margins, agree


def to_classic(cfg_json, key):
    """Rewrite transformers-5 config.json (rope_parameters) into the classic pre-v5 form, same values."""
    rp = cfg_json.pop("rope_parameters", None)
    if not isinstance(rp, dict) or "rope_theta" not in rp:
        die(f"config.json has no usable rope_parameters to convert: {rp!r}")
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    rest = {k: v for k, v in rp.items() if k not in ("rope_theta", "rope_type", "type")}
    cfg_json["rope_theta"] = rp["rope_theta"]
    if rope_type == "default":
        cfg_json.update(rest)  # e.g. partial_rotary_factor lived at top level before v5
        cfg_json["rope_scaling"] = None
    else:
        cfg_json["rope_scaling"] = {key: rope_type, **rest}
    if "dtype" in cfg_json:  # transformers 4 spelled it torch_dtype
        cfg_json["torch_dtype"] = cfg_json.pop("dtype")
    return cfg_json


def rope_view(rp):
    """Comparable view of a rope_parameters dict (drops the legacy 'type' alias, floats for numbers)."""
    return {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in sorted((rp or {}).items()) if k != "type"}


def make_case(case, out_dir, device, min_margin):
    work = os.path.join(out_dir, f".work-{case['name']}")
    final = os.path.join(out_dir, case["name"])
    for attempt in range(MAX_ATTEMPTS):
        seed = case["seed"] + 7919 * attempt
        shutil.rmtree(work, ignore_errors=True)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        config = build_config(case)
        arch = case.get("arch", "qwen2")
        model = Qwen2ForCausalLM(config) if arch == "qwen2" else AutoModelForCausalLM.from_config(config)
        randomize_(model, gen)
        tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        if tied != case["tied"]:
            die(f"{case['name']}: tie_word_embeddings={case['tied']} but lm_head tied={tied}")
        model.to(DTYPES[case["dtype"]])
        save_kwargs = {"max_shard_size": case["shard_bytes"]} if case["shard_bytes"] else {}
        model.save_pretrained(work, **save_kwargs)
        if not os.path.exists(os.path.join(work, "generation_config.json")):
            model.generation_config.save_pretrained(work)
        fused_split = split_fused_experts(work, case) if arch == "qwen3_moe" else 0
        # the saved model in float32, to prove the reloaded files (per-expert names included) are the same model
        model = model.float().eval()
        pgen = torch.Generator().manual_seed(seed + 1)
        prompt = torch.randint(0, case["vocab"], (case["prompt_len"],), generator=pgen).tolist()
        saved_logits = prompt_logits(model, prompt, "cpu")
        del model

        names, stored_dtypes, files = safetensors_summary(work)
        if stored_dtypes != {case["dtype"]}:
            die(f"{case['name']}: expected tensors stored as {case['dtype']}, found {sorted(stored_dtypes)}")
        sharded = os.path.exists(os.path.join(work, "model.safetensors.index.json"))
        if case["shard_bytes"] and (not sharded or len(files) < 2):
            die(f"{case['name']}: max_shard_size={case['shard_bytes']} gave {len(files)} file(s), need >= 2 shards")
        if not case["shard_bytes"] and sharded:
            die(f"{case['name']}: unexpectedly sharded ({files})")
        if case["tied"] and "lm_head.weight" in names:
            log(f"  note: tied model still stores lm_head.weight")
        with open(os.path.join(work, "config.json")) as f:
            written = json.load(f)
        if "rope_parameters" not in written:
            die(f"{case['name']}: transformers {transformers.__version__} wrote no rope_parameters in config.json "
                f"(keys: {sorted(written)}); the native/classic split of these fixtures assumes it does")

        ref = load_reference(work, device)
        want_rp = rope_view(rope_parameters_for(case))
        got_rp = rope_view(ref.config.rope_parameters)
        for k, v in want_rp.items():
            if got_rp.get(k) != v:
                die(f"{case['name']}: reloaded rope_parameters {got_rp} differ from intended {want_rp} at {k!r}")
        logits = prompt_logits(ref, prompt, device)
        reload_diff = float((logits - saved_logits).abs().max())
        # only float32 cases compare: casting a model to bf16/f16 also rounds its RoPE buffer, which a reload
        # recomputes in float32
        if case["dtype"] == "float32" and reload_diff > 1e-4 * max(1.0, float(saved_logits.abs().max())):
            die(f"{case['name']}: the reloaded files give other logits than the model that saved them "
                f"(max |diff| {reload_diff:.3e}); the checkpoint layout is wrong")
        if arch == "qwen3_moe":
            experts_seen = {n.split(".mlp.experts.")[1].split(".")[0] for n in names if ".mlp.experts." in n}
            if experts_seen != {str(e) for e in range(case["experts"])}:
                die(f"{case['name']}: per-expert tensors missing (experts named: {sorted(experts_seen)})")
            if any(f"layers.{l}.mlp.experts." in n for l in case["mlp_only"] for n in names):
                die(f"{case['name']}: a layer in mlp_only_layers has experts")
        greedy, margins, agree = hf_greedy(ref, prompt, case["new_tokens"], device)
        del ref
        eos = case["vocab"] - 1
        reason = None
        if len(greedy) != case["new_tokens"]:
            reason = f"generate returned {len(greedy)} tokens, not {case['new_tokens']} (stopped at eos?)"
        elif eos in greedy:
            reason = f"eos id {eos} is on the greedy path"
        elif not agree:
            reason = "teacher-forced argmax disagrees with generate()"
        elif min(margins) < min_margin:
            reason = f"min top1-top2 margin {min(margins):.2e} < {min_margin:.0e}"
        if reason:
            log(f"  {case['name']}: seed {seed} rejected: {reason}; retrying")
            continue

        kind = {"qwen2": "Qwen2", "qwen3": "Qwen3", "qwen3_moe": "Qwen3-MoE", "llama": "Llama"}[arch]
        notes = [f"random {kind} (init std {INIT_STD}, norm weights 1+0.25*N(0,1)"
                 + (", random q/k/v biases" if arch == "qwen2" else ", no biases") + f"), seed {seed}",
                 f"{case['heads']} heads / {case['kv_heads']} kv heads, head_dim {head_dim(case)}, "
                 f"tie_word_embeddings={case['tied']}, stored as {case['dtype']}",
                 "reference: reloaded saved files with dtype=float32 (weights upcast), eager attention, "
                 f"{device}, TF32 off; greedy via model.generate(do_sample=False) with eos disabled",
                 "greedy_ids exclude the prompt; logits.npy holds logits at every prompt position"]
        if case["yarn"]:
            notes.append(f"YaRN factor {case['yarn'][0]}, original_max_position_embeddings {case['yarn'][1]}, "
                         f"prompt of {case['prompt_len']} tokens runs past the original context; "
                         "attention_factor defaults to 0.1*ln(factor)+1")
        if arch == "qwen3_moe":
            notes.append(f"{case['experts']} experts, top {case['top_k']}, norm_topk_prob, moe_intermediate_size "
                         f"{case['moe_inter']}, mlp_only_layers {case['mlp_only']} (dense among MoE layers); "
                         + (f"fused expert tensors split into per-expert names ({fused_split})" if fused_split
                            else "transformers saved per-expert names"))
        if case.get("llama3"):
            notes.append(f"llama3 rope (factor, low, high, original) = {case['llama3']}; prompt of "
                         f"{case['prompt_len']} tokens runs past the original context")
        if case["dtype"] == "float32":
            notes.append(f"reloaded files reproduce the saving model's logits (max |diff| {reload_diff:.1e})")
        if case["form"] == "classic":
            # The classic form is verified by reloading it and demanding identical logits and greedy ids.
            cfg_path = os.path.join(work, "config.json")
            classic = to_classic(dict(written), case.get("classic_key", "type"))
            with open(cfg_path, "w") as f:
                json.dump(classic, f, indent=2, sort_keys=True)
                f.write("\n")
            for loader in (AutoConfig, Qwen2Config):
                seen = rope_view(loader.from_pretrained(work).rope_parameters)
                if any(seen.get(k) != v for k, v in want_rp.items()):
                    die(f"{case['name']}: {loader.__name__} read the classic config.json as rope_parameters "
                        f"{seen}, expected {want_rp}")
            ref2 = load_reference(work, device)
            logits2 = prompt_logits(ref2, prompt, device)
            greedy2, _, _ = hf_greedy(ref2, prompt, case["new_tokens"], device)
            del ref2
            diff = float((logits2 - logits).abs().max())
            if diff > 1e-6 or greedy2 != greedy:
                die(f"{case['name']}: classic config.json does not reproduce the native logits "
                    f"(max |diff| {diff:.3e}, greedy equal: {greedy2 == greedy})")
            notes.append(f"config.json rewritten to the classic form (rope_theta + rope_scaling "
                         f"{classic['rope_scaling']!r}); reloading it gave identical logits (max |diff| {diff:.1e})")
        else:
            notes.append("config.json as written by transformers " + transformers.__version__ + " (rope_parameters)")
        if sharded:
            notes.append(f"sharded with max_shard_size={case['shard_bytes']} bytes into {len(files)} files")

        prompt_margins = torch.topk(logits, 2, dim=-1).values
        expected = {
            "case": case["name"],
            "prompt_ids": prompt,
            "greedy_ids": greedy,
            "max_new_tokens": case["new_tokens"],
            "dtype": case["dtype"],
            "notes": "; ".join(notes),
            "min_top2_margin": min(margins),
            "top2_margins": margins,
            "prompt_min_top2_margin": float((prompt_margins[:, 0] - prompt_margins[:, 1]).min()),
            "seed": seed,
            "config_form": case["form"],
            "tie_word_embeddings": case["tied"],
            "num_attention_heads": case["heads"],
            "num_key_value_heads": case["kv_heads"],
            "head_dim": head_dim(case),
            "architecture": kind,
            "logit_tolerance": 1e-4,
            "rope_parameters": rope_parameters_for(case),
            "sharded": sharded,
            "weight_files": files,
            "tensor_names": names,
            "logits_shape": list(logits.shape),
            "reference": {"dtype": "float32", "attn_implementation": "eager", "device": device,
                          "torch": torch.__version__, "transformers": transformers.__version__},
        }
        np.save(os.path.join(work, "logits.npy"), np.ascontiguousarray(logits.numpy(), dtype="<f4"))
        with open(os.path.join(work, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        size = dir_bytes(work)
        if size > CASE_BYTES_LIMIT:
            die(f"{case['name']}: {size} bytes > per-case limit {CASE_BYTES_LIMIT}; shrink the case")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(work, final)
        return {"case": case["name"], "attempts": attempt + 1, "bytes": size, "margin": min(margins),
                "dtype": case["dtype"], "form": case["form"], "files": len(files), "T": case["prompt_len"],
                "N": case["new_tokens"]}
    die(f"{case['name']}: no seed out of {MAX_ATTEMPTS} gave a greedy path with margin >= {min_margin}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--min-margin", type=float, default=1e-3)
    ap.add_argument("--only", default=None, help="comma-separated case names (default: all)")
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if args.device == "cuda" and not torch.cuda.is_available():
        die("--device cuda asked for but torch.cuda.is_available() is False")
    try:
        transformers.logging.set_verbosity_error()
    except Exception:
        pass

    os.makedirs(args.out_dir, exist_ok=True)
    cases = CASES
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {c["name"] for c in CASES}
        if unknown:
            die(f"unknown case(s) {sorted(unknown)}; known: {[c['name'] for c in CASES]}")
        cases = [c for c in CASES if c["name"] in wanted]
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}, "
        f"device {args.device}; {len(cases)} cases -> {os.path.abspath(args.out_dir)}")
    rows = []
    for case in cases:
        log(f"case {case['name']} ...")
        rows.append(make_case(case, args.out_dir, args.device, args.min_margin))
        r = rows[-1]
        log(f"  ok: {r['bytes']} bytes, min margin {r['margin']:.4f}, {r['attempts']} attempt(s)")
    total = sum(dir_bytes(os.path.join(args.out_dir, r["case"])) for r in rows)
    if total > TOTAL_BYTES_LIMIT:
        die(f"fixtures total {total} bytes > {TOTAL_BYTES_LIMIT}")

    print("\n{:<28} {:>9} {:>8} {:>5} {:>4} {:>4} {:>10} {:>8} {:>4}".format(
        "case", "dtype", "form", "files", "T", "N", "min_margin", "bytes", "try"), flush=True)
    for r in rows:
        print("{:<28} {:>9} {:>8} {:>5} {:>4} {:>4} {:>10.4f} {:>8} {:>4}".format(
            r["case"], r["dtype"], r["form"], r["files"], r["T"], r["N"], r["margin"], r["bytes"], r["attempts"]))
    print(f"total {total} bytes in {len(rows)} cases; wall {time.time() - T0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
