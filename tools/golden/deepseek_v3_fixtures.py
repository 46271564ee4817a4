"""DeepSeek-V3 / Kimi K2 golden fixtures (HF DeepseekV3ForCausalLM), used by make_fixtures.py.

Each case is a tiny random DeepseekV3ForCausalLM: MLA attention (q LoRA on or off, kv_a_proj_with_mqa,
kv_a_layernorm, kv_b_proj, RoPE on the rope parts, interleaved or not), first_k_dense_replace dense layers, then
sigmoid-routed MoE layers (noaux_tc: e_score_correction_bias picks, does not weigh; group-limited top-k;
norm_topk_prob; routed_scaling_factor) with 1 or 2 shared experts; YaRN with mscale/mscale_all_dim.

Written in the layout published checkpoints use: one tensor per expert (model.layers.N.mlp.experts.E.gate_proj.weight
...), whatever this transformers version writes (fused expert tensors are split). The FP8 case stores every linear
weight of the decoder layers as F8_E4M3 plus a float32 `<name>_scale_inv` of one scale per
quantization_config.weight_block_size block (DeepSeek's layout; rows and columns need not be multiples of the
block), its other tensors as bfloat16; its reference logits are HF's float32 model on the dequantized weights
(w = fp8 * scale_inv), which is what an engine that dequantizes exactly must reproduce.

Outputs per case are as for the other fixtures (expected.json, logits.npy, the model files); expected.json
carries the MLA/MoE fields it was made with.
"""
import json
import os
import shutil

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import make_fixtures as mf

# Shared by every case unless it says otherwise: 4 heads of nope 16 + rope 8 (qk_head_dim 24), v_head_dim 16,
# kv_lora_rank 32, 8 routed experts of width 24, first layer dense.
BASE = dict(vocab=512, hidden=64, layers=3, heads=4, inter=96, q_lora=24, kv_lora=32, nope=16, rope=8, v_head=16,
            experts=8, top_k=2, moe_inter=24, n_group=4, topk_group=2, shared=1, first_dense=1, norm_topk=True,
            scaling=2.5, interleave=True, theta=10000.0, yarn=None, max_pos=512, eps=1e-6, tied=False,
            prompt_len=40, new_tokens=20, model_type=None, fp8_block=None, kimi_or_deepseek=True)

DEEPSEEK_CASES = [
    # DeepSeek-V3-like: q LoRA, group-limited routing (4 groups of 2 experts, 2 groups kept), 1 shared expert
    dict(BASE, name="dsv3_qlora_groups_f32", dtype="float32", seed=12012),
    # Kimi-K2-like: no q LoRA (q_proj), n_group = 1, 2 shared experts, top 3, YaRN with mscale = mscale_all_dim
    # (attention factor 1, softmax scale times mscale^2), prompt past the original context; config.json says
    # model_type kimi_k2 as Kimi's checkpoints do (HF read it as deepseek_v3 to make the reference)
    dict(BASE, name="dsv3_kimi_like_bf16", dtype="bfloat16", q_lora=None, n_group=1, topk_group=1, shared=2,
         top_k=3, scaling=2.827, yarn=(4.0, 64, 1.0, 1.0), max_pos=256, prompt_len=90, model_type="kimi_k2",
         seed=13013),
    # YaRN with mscale != mscale_all_dim (attention factor != 1), rope_interleave off, norm_topk_prob off,
    # 2 groups of 4 experts with 1 kept
    dict(BASE, name="dsv3_yarn_mscale_f32", dtype="float32", n_group=2, topk_group=1, norm_topk=False,
         interleave=False, yarn=(4.0, 64, 1.0, 0.707), max_pos=256, prompt_len=90, seed=14014),
    # FP8 block-quantized twin: blocks of 16 rows x 32 columns, so matrices hold several blocks and partial ones
    dict(BASE, name="dsv3_fp8_blocks", dtype="fp8", shared=2, fp8_block=(16, 32), seed=15015),
]

FP8_MAX = 448.0  # largest finite float8_e4m3fn


def rope_parameters_for(case):
    if case["yarn"] is None:
        return {"rope_type": "default", "rope_theta": case["theta"]}
    factor, original, mscale, mscale_all_dim = case["yarn"]
    return {"rope_type": "yarn", "rope_theta": case["theta"], "factor": float(factor),
            "original_max_position_embeddings": int(original), "mscale": float(mscale),
            "mscale_all_dim": float(mscale_all_dim), "beta_fast": 32.0, "beta_slow": 1.0}


def build_config(case):
    from transformers import DeepseekV3Config
    if case["yarn"] is not None and case["max_pos"] != int(case["yarn"][0] * case["yarn"][1]):
        mf.die(f"{case['name']}: max_position_embeddings must equal factor * original for YaRN")
    eos = case["vocab"] - 1
    return DeepseekV3Config(
        vocab_size=case["vocab"], hidden_size=case["hidden"], intermediate_size=case["inter"],
        moe_intermediate_size=case["moe_inter"], num_hidden_layers=case["layers"],
        num_attention_heads=case["heads"], num_key_value_heads=case["heads"], n_shared_experts=case["shared"],
        n_routed_experts=case["experts"], routed_scaling_factor=case["scaling"], kv_lora_rank=case["kv_lora"],
        q_lora_rank=case["q_lora"], qk_rope_head_dim=case["rope"], v_head_dim=case["v_head"],
        qk_nope_head_dim=case["nope"], n_group=case["n_group"], topk_group=case["topk_group"],
        num_experts_per_tok=case["top_k"], first_k_dense_replace=case["first_dense"],
        norm_topk_prob=case["norm_topk"], hidden_act="silu", max_position_embeddings=case["max_pos"],
        initializer_range=mf.INIT_STD, rms_norm_eps=case["eps"], bos_token_id=eos, eos_token_id=eos,
        tie_word_embeddings=case["tied"], rope_parameters=rope_parameters_for(case),
        rope_interleave=case["interleave"], attention_bias=False,
        # as the published config.json files say (HF's class implies them; k2j checks them)
        scoring_func="sigmoid", topk_method="noaux_tc")


def randomize_(model, gen):
    """Every parameter random (mf.randomize_), and the e_score_correction_bias buffers too: large enough to change
    which experts are picked, so an engine that weighs by the biased score or ignores the bias fails."""
    mf.randomize_(model, gen)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen, dtype=torch.float32))


def split_fused_experts(path, case):
    """Fused expert tensors -> per-expert names (mf.split_fused_experts with this case's shapes)."""
    return mf.split_fused_experts(path, {"name": case["name"], "experts": case["experts"], "hidden": case["hidden"],
                                         "moe_inter": case["moe_inter"]})


def read_all(path):
    with safe_open(os.path.join(path, "model.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def is_fp8_weight(name, t):
    """The tensors DeepSeek-V3 / Kimi K2 publish as F8_E4M3: every linear weight inside the decoder layers except
    the router (mlp.gate.weight); embeddings, lm_head and norms stay bf16."""
    return (name.startswith("model.layers.") and name.endswith("_proj.weight") and t.dim() == 2)


def quantize_fp8(w, block):
    """Block-wise FP8: per (block_rows x block_cols) block, scale = amax / 448 (1 for an all-zero block),
    q = fp8(w / scale). Returns (q as float8_e4m3fn, scale_inv float32 [ceil(R/br), ceil(C/bc)])."""
    br, bc = block
    rows, cols = w.shape
    nr, nc = -(-rows // br), -(-cols // bc)
    w = w.float()
    scale = torch.ones(nr, nc, dtype=torch.float32)
    q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    for i in range(nr):
        for j in range(nc):
            blk = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            amax = float(blk.abs().max())
            s = amax / FP8_MAX if amax > 0 else 1.0
            scale[i, j] = s
            q[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = (blk / scale[i, j]).to(torch.float8_e4m3fn)
    return q, scale


def dequantize_fp8(q, scale_inv, block):
    """w = float(q) * scale_inv of its block, computed in float32 (the reference's definition)."""
    br, bc = block
    rows, cols = q.shape
    s = scale_inv.repeat_interleave(br, dim=0)[:rows].repeat_interleave(bc, dim=1)[:, :cols]
    return q.to(torch.float32) * s


def numpy_dequantize(q_bytes, scale_inv, block):
    """An independent dequantizer (numpy, from the raw e4m3 bits) to check the torch one on the saved file."""
    bits = q_bytes.astype(np.int32)
    sign = np.where(bits & 0x80, -1.0, 1.0)
    exp = (bits >> 3) & 0xF
    man = bits & 0x7
    val = np.where(exp == 0, man / 8.0 * 2.0 ** -6, (1 + man / 8.0) * 2.0 ** (exp - 7.0))
    val = np.where((exp == 0xF) & (man == 0x7), np.nan, val)
    br, bc = block
    rows, cols = q_bytes.shape
    s = np.repeat(np.repeat(scale_inv, br, axis=0)[:rows], bc, axis=1)[:, :cols]
    return (sign * val).astype(np.float32) * s


def raw_safetensors(path):
    """(header dict, data bytes) of a safetensors file, parsed by hand."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        return header, f.read()


def make_fp8_twin(work, case):
    """Rewrites the saved model.safetensors as FP8 (+ scale_inv, others bf16); returns (how many weights were
    quantized, the dequantized float32 tensors by name): the values the FP8 file encodes."""
    block = case["fp8_block"]
    tensors, meta = read_all(work)
    out, deq, quantized = {}, {}, 0
    for k, t in tensors.items():
        if is_fp8_weight(k, t):
            q, s = quantize_fp8(t, block)
            out[k] = q.contiguous()
            out[k + "_scale_inv"] = s.contiguous()
            deq[k] = dequantize_fp8(q, s, block)
            quantized += 1
        elif k.endswith("e_score_correction_bias"):
            out[k] = t.float().contiguous()
            deq[k] = out[k]
        else:
            out[k] = t.to(torch.bfloat16).contiguous()
            deq[k] = out[k].float()
    save_file(out, os.path.join(work, "model.safetensors"), metadata=meta or {"format": "pt"})
    # the saved bytes, read from the safetensors header and dequantized independently (numpy, from the e4m3 bits),
    # are the weights the reference uses
    header, blob = raw_safetensors(os.path.join(work, "model.safetensors"))
    for k in deq:
        if k + "_scale_inv" not in out:
            continue
        entry, sentry = header[k], header[k + "_scale_inv"]
        if entry["dtype"] != "F8_E4M3" or sentry["dtype"] != "F32":
            mf.die(f"{case['name']}: {k} saved as {entry['dtype']} with scales {sentry['dtype']}, "
                   "not F8_E4M3 + F32")
        q_bytes = np.frombuffer(blob[entry["data_offsets"][0]:entry["data_offsets"][1]], dtype=np.uint8)
        scales = np.frombuffer(blob[sentry["data_offsets"][0]:sentry["data_offsets"][1]], dtype="<f4")
        ref = numpy_dequantize(q_bytes.reshape(entry["shape"]), scales.reshape(sentry["shape"]), block)
        if not np.array_equal(ref, deq[k].numpy()):
            mf.die(f"{case['name']}: numpy and torch dequantization of {k} differ")
    return quantized, deq


def write_fp8_config(work, case):
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                  "weight_block_size": list(case["fp8_block"])}
    cfg["dtype"] = "bfloat16"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def dequantized_reference(work, case, deq, device):
    """An HF float32 model on the dequantized weights: a plain bf16->f32 copy of the FP8 dir with the dequantized
    tensors written as float32 under the original names, loaded by from_pretrained (so per-expert names go
    through HF's own conversion)."""
    plain = work + "-dequantized"
    shutil.rmtree(plain, ignore_errors=True)
    os.makedirs(plain)
    for fn in ("config.json", "generation_config.json"):
        if os.path.exists(os.path.join(work, fn)):
            shutil.copy(os.path.join(work, fn), os.path.join(plain, fn))
    with open(os.path.join(plain, "config.json")) as f:
        cfg = json.load(f)
    cfg.pop("quantization_config", None)
    cfg["dtype"] = "float32"
    with open(os.path.join(plain, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_file({k: v.float().contiguous() for k, v in deq.items()}, os.path.join(plain, "model.safetensors"),
              metadata={"format": "pt"})
    ref = mf.load_reference(plain, device)
    return ref, plain


def check_layout(names, case):
    """Per-expert names in every MoE layer, none in the dense ones, shared experts present, MLA tensors named."""
    for l in range(case["layers"]):
        p = f"model.layers.{l}."
        experts = {n.split(".mlp.experts.")[1].split(".")[0] for n in names if n.startswith(p + "mlp.experts.")}
        if l < case["first_dense"]:
            if experts or p + "mlp.gate_proj.weight" not in names:
                mf.die(f"{case['name']}: layer {l} should be dense")
            continue
        if experts != {str(e) for e in range(case["experts"])}:
            mf.die(f"{case['name']}: layer {l} per-expert tensors missing (experts named: {sorted(experts)})")
        for need in ("mlp.gate.weight", "mlp.gate.e_score_correction_bias", "mlp.shared_experts.gate_proj.weight"):
            if p + need not in names:
                mf.die(f"{case['name']}: missing {p + need} (names: {[n for n in names if n.startswith(p)][:8]})")
    attn = ["kv_a_proj_with_mqa.weight", "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight"]
    attn += ["q_a_proj.weight", "q_a_layernorm.weight", "q_b_proj.weight"] if case["q_lora"] else ["q_proj.weight"]
    for a in attn:
        if "model.layers.0.self_attn." + a not in names:
            mf.die(f"{case['name']}: missing model.layers.0.self_attn.{a}")


def make_case(case, out_dir, device, min_margin):
    from transformers import AutoModelForCausalLM
    import transformers
    work = os.path.join(out_dir, f".work-{case['name']}")
    final = os.path.join(out_dir, case["name"])
    fp8 = case["fp8_block"] is not None
    for attempt in range(mf.MAX_ATTEMPTS):
        seed = case["seed"] + 7919 * attempt
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(work + "-dequantized", ignore_errors=True)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = AutoModelForCausalLM.from_config(build_config(case))
        randomize_(model, gen)
        # the router bias stays float32, as HF loads it (_keep_in_fp32_modules_strict) and checkpoints store it
        gates = [m for n, m in model.named_modules() if hasattr(m, "e_score_correction_bias")]
        biases = [g.e_score_correction_bias.detach().clone() for g in gates]
        model.to(torch.float32 if fp8 else mf.DTYPES[case["dtype"]])
        for g, b in zip(gates, biases):
            g.e_score_correction_bias = b
        if not gates:
            mf.die(f"{case['name']}: no router with e_score_correction_bias found")
        model.save_pretrained(work)
        if not os.path.exists(os.path.join(work, "generation_config.json")):
            model.generation_config.save_pretrained(work)
        if os.path.exists(os.path.join(work, "model.safetensors.index.json")):
            mf.die(f"{case['name']}: unexpectedly sharded")
        fused_split = split_fused_experts(work, case)
        model = model.float().eval()
        pgen = torch.Generator().manual_seed(seed + 1)
        prompt = torch.randint(0, case["vocab"], (case["prompt_len"],), generator=pgen).tolist()
        saved_logits = mf.prompt_logits(model, prompt, "cpu")
        del model

        tensors, _ = read_all(work)
        names = sorted(tensors)
        check_layout(names, case)
        fp8_count = 0
        if fp8:
            fp8_count, deq = make_fp8_twin(work, case)
            write_fp8_config(work, case)
            ref, plain = dequantized_reference(work, case, deq, device)
            # the dequantized model is the FP8 file's model: its bf16/fp8 rounding moves logits a little from the
            # float32 model that was quantized, but nowhere near the scale of the logits
            logits = mf.prompt_logits(ref, prompt, device)
            reload_diff = float((logits - saved_logits).abs().max())
        else:
            ref = mf.load_reference(work, device)
            logits = mf.prompt_logits(ref, prompt, device)
            reload_diff = float((logits - saved_logits).abs().max())
            if case["dtype"] == "float32" and reload_diff > 1e-4 * max(1.0, float(saved_logits.abs().max())):
                mf.die(f"{case['name']}: the reloaded files give other logits than the model that saved them "
                       f"(max |diff| {reload_diff:.3e}); the checkpoint layout is wrong")
        greedy, margins, agree = mf.hf_greedy(ref, prompt, case["new_tokens"], device)
        del ref
        eos = case["vocab"] - 1
        reason = None
        if len(greedy) != case["new_tokens"]:
            reason = f"generate returned {len(greedy)} tokens, not {case['new_tokens']}"
        elif eos in greedy:
            reason = f"eos id {eos} is on the greedy path"
        elif not agree:
            reason = "teacher-forced argmax disagrees with generate()"
        elif min(margins) < min_margin:
            reason = f"min top1-top2 margin {min(margins):.2e} < {min_margin:.0e}"
        if reason:
            mf.log(f"  {case['name']}: seed {seed} rejected: {reason}; retrying")
            continue
        shutil.rmtree(work + "-dequantized", ignore_errors=True)

        with open(os.path.join(work, "config.json")) as f:
            written = json.load(f)
        if case["model_type"]:
            written["model_type"] = case["model_type"]
            with open(os.path.join(work, "config.json"), "w") as f:
                json.dump(written, f, indent=2, sort_keys=True)
                f.write("\n")
        notes = [f"random DeepseekV3ForCausalLM (init std {mf.INIT_STD}, norm weights 1+0.25*N(0,1), "
                 f"e_score_correction_bias 0.1*N(0,1)), seed {seed}",
                 f"{case['heads']} heads, q_lora_rank {case['q_lora']}, kv_lora_rank {case['kv_lora']}, "
                 f"qk_nope/rope/v {case['nope']}/{case['rope']}/{case['v_head']}, rope_interleave "
                 f"{case['interleave']}",
                 f"{case['experts']} routed experts top {case['top_k']}, n_group {case['n_group']} topk_group "
                 f"{case['topk_group']}, {case['shared']} shared, first_k_dense_replace {case['first_dense']}, "
                 f"norm_topk_prob {case['norm_topk']}, routed_scaling_factor {case['scaling']}",
                 ("fused expert tensors split into per-expert names" if fused_split
                  else "transformers saved per-expert names"),
                 "reference: float32, eager attention, " + device + ", TF32 off; greedy via model.generate with eos "
                 "disabled; greedy_ids exclude the prompt; logits.npy holds logits at every prompt position"]
        if case["yarn"]:
            notes.append(f"YaRN (factor, original, mscale, mscale_all_dim) = {case['yarn']}")
        if case["model_type"]:
            notes.append(f"config.json model_type rewritten to {case['model_type']} after the reference was made")
        if fp8:
            notes.append(f"FP8: {fp8_count} linear weights stored F8_E4M3 with float32 *_scale_inv per "
                         f"{case['fp8_block']} block, other tensors bf16 (router bias f32); reference = HF float32 "
                         f"on the dequantized weights (checked against an independent numpy dequantizer); "
                         f"the pre-quantization float32 model differs by {reload_diff:.2e}")
        elif case["dtype"] == "float32":
            notes.append(f"reloaded files reproduce the saving model's logits (max |diff| {reload_diff:.1e})")
        expected = {
            "case": case["name"], "prompt_ids": prompt, "greedy_ids": greedy, "max_new_tokens": case["new_tokens"],
            "dtype": case["dtype"], "notes": "; ".join(notes), "min_top2_margin": min(margins),
            "top2_margins": margins, "seed": seed, "architecture": "DeepseekV3", "logit_tolerance": 1e-4,
            "rope_parameters": rope_parameters_for(case), "tensor_names": sorted(read_all(work)[0]),
            "logits_shape": list(logits.shape),
            "mla": {k: case[k] for k in ("q_lora", "kv_lora", "nope", "rope", "v_head", "interleave")},
            "moe": {k: case[k] for k in ("experts", "top_k", "n_group", "topk_group", "shared", "first_dense",
                                         "norm_topk", "scaling")},
            "fp8_block": list(case["fp8_block"]) if fp8 else None,
            "reference": {"dtype": "float32", "attn_implementation": "eager", "device": device,
                          "torch": torch.__version__, "transformers": transformers.__version__},
        }
        np.save(os.path.join(work, "logits.npy"), np.ascontiguousarray(logits.numpy(), dtype="<f4"))
        with open(os.path.join(work, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        size = mf.dir_bytes(work)
        if size > mf.CASE_BYTES_LIMIT:
            mf.die(f"{case['name']}: {size} bytes > per-case limit {mf.CASE_BYTES_LIMIT}; shrink the case")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(work, final)
        return {"case": case["name"], "attempts": attempt + 1, "bytes": size, "margin": min(margins),
                "dtype": case["dtype"], "form": "native", "files": 1, "T": case["prompt_len"],
                "N": case["new_tokens"]}
    mf.die(f"{case['name']}: no seed out of {mf.MAX_ATTEMPTS} gave a greedy path with margin >= {min_margin}")
