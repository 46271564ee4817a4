#!/usr/bin/env python3
"""HF transformers' own BF16 computation for every golden fixture: the reference of k2j's tensor-core mode.

Usage (on a machine with a CUDA GPU, from the repo root):
    python3 tools/golden/make_bf16_goldens.py [--golden engine/src/test/resources/golden] [--device cuda]
                                              [--attn sdpa] [--tar OUT.tgz]

For each fixture directory holding expected.json + logits.npy (HF-FP32 on CPU, tools/golden/make_fixtures.py), it
loads the saved model files with dtype=torch.bfloat16 on the GPU (weights rounded to BF16 as HF does for any
checkpoint loaded in BF16; attention as --attn, default sdpa, what a user of transformers gets) and writes next to
the fixture:

  logits_bf16.npy  float32 [prompt_len, vocab]: HF-BF16 logits at every prompt position (upcast from bf16)
  hf_bf16.json     {"greedy_ids_bf16": HF-BF16's own greedy continuation (eos disabled, same length as the
                    golden's), "top2_margins_bf16_on_golden_path": HF-BF16's top1-top2 margin at every step of the
                    FP32 golden path (teacher-forced), "argmax_bf16_on_golden_path", the distances of HF-BF16 to
                    HF-FP32 over the prompt logits ("max_rel": max over rows of max|bf16 - fp32| / max(1, max|fp32|),
                    "rms": sqrt(mean (bf16 - fp32)^2), "max_abs"), "near_tie_margin" = 2 * max_abs, the same
                    model reloaded in FP32 on this GPU (TF32 off) against the stored CPU logits ("gpu_fp32_max_rel":
                    a sanity check of the reference), versions and device}

CudaTensorCoreContractTest (@Tag("gpu")) holds k2j's tensor-core mode to these files (docs/cuda.md, Precision).
--tar packs every written file (paths relative to the repo root) into one archive to carry back.

Needs: torch (with CUDA for --device cuda), transformers (5; 4 works too), numpy. Writes only the two files per fixture.
"""
import argparse
import json
import os
import sys
import tarfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def die(msg):
    print(f"ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


try:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
except ImportError as e:  # pragma: no cover - depends on the machine
    die(f"missing Python package ({e}); needs torch, transformers>=5 and numpy")


def load(path, dtype, device, attn):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    if next(model.parameters()).dtype != dtype:  # transformers 4 spells it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype, attn_implementation=attn)
    model.to(device).eval()
    bad = [n for n, p in model.named_parameters() if p.dtype != dtype]
    if bad:
        die(f"{path}: loaded with dtype={dtype} but {bad[:3]} are not")
    for cfg in (model.generation_config, model.config):
        cfg.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


@torch.no_grad()
def logits_of(model, ids, device):
    t = torch.tensor([ids], dtype=torch.long, device=device)
    return model(input_ids=t).logits[0].float().cpu().numpy()


@torch.no_grad()
def greedy(model, prompt, n, device):
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                         max_new_tokens=n)
    seq = out.sequences if hasattr(out, "sequences") else out
    return seq[0, len(prompt):].tolist()


def distances(x, ref):
    diff = np.abs(x.astype(np.float64) - ref.astype(np.float64))
    scale = np.maximum(1.0, np.abs(ref).max(axis=1))
    return {"max_rel": float((diff.max(axis=1) / scale).max()), "rms": float(np.sqrt((diff ** 2).mean())),
            "max_abs": float(diff.max())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", default="engine/src/test/resources/golden")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--attn", default="sdpa", help="attn_implementation of the BF16 model (sdpa, eager)")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    ap.add_argument("--tar", default=None, help="pack the written files into this .tgz")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        die("--device cuda but torch.cuda.is_available() is False")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        transformers.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001
        pass
    device_name = torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu"
    cases = sorted(d for d in os.listdir(a.golden) if os.path.isfile(os.path.join(a.golden, d, "expected.json")))
    if a.only:
        cases = [c for c in cases if c in set(a.only.split(","))]
    if not cases:
        die(f"no fixture (expected.json) under {a.golden}")
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, {device_name}; {len(cases)} fixtures")
    written, rows = [], []
    for case in cases:
        d = os.path.join(a.golden, case)
        with open(os.path.join(d, "expected.json")) as f:
            exp = json.load(f)
        prompt, golden = exp["prompt_ids"], exp["greedy_ids"]
        fp32_cpu = np.load(os.path.join(d, "logits.npy"))

        m32 = load(d, torch.float32, a.device, "eager")
        fp32_gpu = logits_of(m32, prompt, a.device)
        del m32
        gpu_check = distances(fp32_gpu, fp32_cpu)

        m16 = load(d, torch.bfloat16, a.device, a.attn)
        bf = logits_of(m16, prompt, a.device)
        if bf.shape != fp32_cpu.shape:
            die(f"{case}: bf16 logits {bf.shape} vs logits.npy {fp32_cpu.shape}")
        ids_bf = greedy(m16, prompt, len(golden), a.device)
        # HF-BF16 teacher-forced along the FP32 golden path: its margin and argmax at each golden step
        path = logits_of(m16, prompt + golden, a.device)[len(prompt) - 1: len(prompt) - 1 + len(golden)]
        top2 = np.sort(path, axis=1)[:, -2:]
        margins = (top2[:, 1] - top2[:, 0]).tolist()
        argmax = path.argmax(axis=1).tolist()
        del m16
        if a.device == "cuda":
            torch.cuda.empty_cache()

        dist = distances(bf, fp32_cpu)
        out = {
            "case": case,
            "reference": "HF transformers, model loaded with dtype=bfloat16 (weights rounded to BF16), attn "
                         f"{a.attn}, {device_name}",
            "greedy_ids_bf16": ids_bf,
            "greedy_bf16_equals_golden": ids_bf == golden,
            "top2_margins_bf16_on_golden_path": margins,
            "argmax_bf16_on_golden_path": argmax,
            "bf16_vs_fp32": dist,
            "near_tie_margin": 2 * dist["max_abs"],
            "gpu_fp32_vs_cpu_fp32": gpu_check,
            "device": device_name,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
        npy = os.path.join(d, "logits_bf16.npy")
        js = os.path.join(d, "hf_bf16.json")
        np.save(npy, np.ascontiguousarray(bf, dtype="<f4"))
        with open(js, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        written += [npy, js]
        rows.append((case, exp.get("dtype", "?"), dist["max_rel"], dist["rms"], gpu_check["max_rel"],
                     ids_bf == golden, min(margins) if margins else float("nan")))
        log(f"{case}: bf16 vs fp32 max_rel {dist['max_rel']:.3e} rms {dist['rms']:.3e}; gpu fp32 vs cpu "
            f"{gpu_check['max_rel']:.1e}; bf16 greedy {'=' if ids_bf == golden else '!='} golden")
    print("\n%-28s %-9s %10s %10s %10s %6s %10s" % ("case", "dtype", "bf16 maxrel", "bf16 rms", "gpu32 chk",
                                                   "greedy", "min margin"))
    for r in rows:
        print("%-28s %-9s %10.3e %10.3e %10.1e %6s %10.4f" % r)
    if a.tar:
        with tarfile.open(a.tar, "w:gz") as t:
            for p in written:
                t.add(p, arcname=os.path.relpath(p))
        log(f"packed {len(written)} files into {a.tar}")


if __name__ == "__main__":
    main()
