#!/usr/bin/env python3
"""Train the k2j demo models: a byte-level BPE tokenizer plus a target and a draft Qwen2ForCausalLM on Python code.

Usage:  python3 tools/demo-model/train.py OUT_DIR [--minutes 7.5] [--smoke]

Corpus: the Python source files of the standard library (PSF-2.0) and of a fixed list of installed packages whose
license metadata is permissive (MIT / BSD / Apache-2.0 / PSF and similar); a package whose metadata does not say so
is left out and listed as excluded. Vendored third-party folders are skipped. The file list is deterministic (sorted,
per-package cap by path hash); 2% of the files (by path hash) are held out for validation and heldout_code.txt.

Writes, and nothing outside OUT_DIR:
  OUT_DIR/target/  config.json generation_config.json model.safetensors (BF16) tokenizer.json tokenizer_config.json
  OUT_DIR/draft/   the same files; the tokenizer files are byte-identical to the target's
  OUT_DIR/train_report.json   parameter counts, steps, tokens, losses, corpus files/bytes per package, licenses, wall
  OUT_DIR/heldout_code.txt    ~40 KB of held-out Python (files never trained on) for acceptance measurements

Tokenizer: HF tokenizers BPE, Qwen2's pipeline exactly (NFC; Split(Qwen2 regex, Isolated) then ByteLevel without
regex; ByteLevel post-processor and decoder), vocabulary 8189 BPE tokens + <|endoftext|> <|im_start|> <|im_end|>
as added special tokens (ids 8189..8191), so 8192 = config vocab_size. It is a base (non-chat) model, so like
Qwen2.5 base models eos_token is <|endoftext|> (the separator between training files); generation_config also stops
on <|im_end|> so the ChatML chat_template ends a turn.

Needs a CUDA GPU (bf16 autocast), torch, transformers >= 5, tokenizers, numpy, safetensors.
"""
import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import sys
import sysconfig
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def die(msg):
    print(f"\nERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM
except ImportError as e:  # pragma: no cover - depends on the machine
    die(f"missing Python package ({e}); this script needs torch, transformers>=5, tokenizers and numpy")

if int(transformers.__version__.split(".")[0]) < 5:
    die(f"transformers {transformers.__version__} found; this script relies on transformers 5")

# ---------------------------------------------------------------------------------------------------------------
# Fixed choices (documented in docs/demo-model.md)

VOCAB_SIZE = 8192
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BPE_VOCAB = VOCAB_SIZE - len(SPECIAL_TOKENS)
# Qwen2's pre-tokenizer regex, character for character as in Qwen2/2.5 tokenizer.json.
QWEN2_SPLIT_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                     r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
ROPE_THETA = 1000000.0
MAX_POSITIONS = 1024  # trained at SEQ_LEN; positions past it were never seen in training (documented)

# name -> shape. BF16 safetensors must stay <= 16 MiB per file (device transfer limit) and both <= 25 MB.
MODEL_SHAPES = {
    # target ~9.4M params (~18.9 MB BF16, saved in two shards < 16 MiB), draft ~2.4M (~4.7 MB): ~24.5 MB in all
    "target": dict(hidden=288, layers=8, heads=6, kv_heads=2, inter=768),
    "draft": dict(hidden=192, layers=2, heads=3, kv_heads=1, inter=512),
}
FILE_LIMIT_BYTES = 16 * 1024 * 1024
TOTAL_LIMIT_BYTES = 25_000_000

# (import name, distribution name). The license is read from each distribution's metadata at run time.
PACKAGES = [
    ("numpy", "numpy"), ("torch", "torch"), ("transformers", "transformers"), ("scipy", "scipy"),
    ("pandas", "pandas"), ("sympy", "sympy"), ("sklearn", "scikit-learn"), ("networkx", "networkx"),
    ("jax", "jax"), ("huggingface_hub", "huggingface-hub"), ("accelerate", "accelerate"),
    ("safetensors", "safetensors"), ("tokenizers", "tokenizers"), ("requests", "requests"),
    ("jinja2", "jinja2"), ("click", "click"), ("rich", "rich"), ("pygments", "pygments"),
]
ALLOWED_SPDX = {s.lower() for s in (
    "MIT", "MIT-0", "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear", "0BSD", "Apache-2.0", "PSF-2.0",
    "Python-2.0", "ISC", "Zlib", "CC0-1.0", "Unlicense", "BSL-1.0", "HPND", "NCSA")}
PERMISSIVE_WORDS = ("MIT", "BSD", "APACHE", "PSF", "PYTHON SOFTWARE FOUNDATION", "ISC")
COPYLEFT_WORDS = ("GPL", "MPL", "MOZILLA", "EPL", "ECLIPSE", "CDDL", "EUPL", "AFFERO", "COPYLEFT", "CC-BY-SA")
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages", "_vendor", "vendor", "vendored", "externals",
             "third_party", "thirdparty", "_bundled"}
MAX_FILE_BYTES = 400_000
MAX_LINE_CHARS = 1000
HELDOUT_PER_MILLE = 20

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def path_hash(key):
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16)


# ---------------------------------------------------------------------------------------------------------------
# Corpus

def spdx_permissive(expr):
    tokens = re.findall(r"[A-Za-z0-9.+\-]+", expr)
    ids, skip_next = [], False
    for t in tokens:
        if skip_next:  # the exception after WITH (e.g. LLVM-exception) narrows, never widens, a license
            skip_next = False
            continue
        if t.upper() == "WITH":
            skip_next = True
        elif t.upper() not in ("AND", "OR"):
            ids.append(t.lower())
    return bool(ids) and all(i in ALLOWED_SPDX for i in ids)


def words_permissive(text):
    up = text.upper()
    return any(w in up for w in PERMISSIVE_WORDS) and not any(w in up for w in COPYLEFT_WORDS)


def license_of(dist_name):
    """(version, license text, where it was read, permissive?) or None when the distribution is not installed."""
    try:
        md = importlib.metadata.metadata(dist_name)
        version = importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    expr = (md.get("License-Expression") or "").strip()
    classifiers = [c for c in (md.get_all("Classifier") or []) if c.startswith("License ::")]
    specific = [c for c in classifiers if c.strip() != "License :: OSI Approved"]
    free = (md.get("License") or "").strip()
    if expr:
        return version, expr, "License-Expression", spdx_permissive(expr)
    if specific:
        return version, "; ".join(specific), "Classifier", all(words_permissive(c.split("::")[-1]) for c in specific)
    if free:
        return version, free.splitlines()[0][:200], "License", words_permissive(free[:300])
    return version, "(no license metadata)", "none", False


def python_files(root, prefix):
    """[(relative path with prefix, absolute path)] of .py files under root, skipping vendored/cache folders."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                full = os.path.join(dirpath, fn)
                out.append((prefix + "/" + os.path.relpath(full, root).replace(os.sep, "/"), full))
    return out


def read_source(path, skipped):
    try:
        size = os.path.getsize(path)
    except OSError:
        skipped["unreadable"] = skipped.get("unreadable", 0) + 1
        return None
    if size == 0:
        skipped["empty"] = skipped.get("empty", 0) + 1
        return None
    if size > MAX_FILE_BYTES:
        skipped["too_large"] = skipped.get("too_large", 0) + 1
        return None
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        skipped["not_utf8"] = skipped.get("not_utf8", 0) + 1
        return None
    if not text.strip():
        skipped["empty"] = skipped.get("empty", 0) + 1
        return None
    if max(len(line) for line in text.split("\n")) > MAX_LINE_CHARS:
        skipped["long_lines"] = skipped.get("long_lines", 0) + 1
        return None
    return text


def collect_corpus(package_cap_bytes, total_cap_bytes):
    """Returns (docs, package_reports, excluded). docs: [(key, text, package, heldout)] in deterministic order."""
    sources, excluded = [], []
    stdlib = sysconfig.get_paths()["stdlib"]
    sources.append(dict(package="python-stdlib", dist=None, version=sys.version.split()[0],
                        license="PSF-2.0 (CPython standard library)", license_source="python license",
                        root=stdlib, prefix="stdlib"))
    for import_name, dist in PACKAGES:
        lic = license_of(dist)
        spec = importlib.util.find_spec(import_name)
        if lic is None or spec is None or not spec.submodule_search_locations:
            excluded.append({"package": dist, "reason": "not installed"})
            continue
        version, text, where, ok = lic
        if not ok:
            excluded.append({"package": dist, "version": version, "reason": f"license metadata not recognized as "
                             f"permissive: {text!r} ({where})"})
            continue
        sources.append(dict(package=dist, dist=dist, version=version, license=text, license_source=where,
                            root=list(spec.submodule_search_locations)[0], prefix=import_name))

    docs, reports, total = [], [], 0
    for src in sources:
        files = python_files(src["root"], src["prefix"])
        files.sort(key=lambda kv: path_hash(kv[0]))  # cap by hash order: an unbiased, stable subset
        skipped, chosen, used = {}, [], 0
        for key, full in files:
            if used >= package_cap_bytes or total + used >= total_cap_bytes:
                skipped["over_cap"] = skipped.get("over_cap", 0) + 1
                continue
            text = read_source(full, skipped)
            if text is None:
                continue
            chosen.append((key, text))
            used += len(text.encode("utf-8"))
        chosen.sort(key=lambda kv: kv[0])
        held = [(k, t) for k, t in chosen if path_hash("heldout:" + k) % 1000 < HELDOUT_PER_MILLE]
        for key, text in chosen:
            docs.append((key, text, src["package"], path_hash("heldout:" + key) % 1000 < HELDOUT_PER_MILLE))
        total += used
        reports.append({
            "package": src["package"], "version": src["version"], "license": src["license"],
            "license_source": src["license_source"], "root": src["root"], "files_found": len(files),
            "files": len(chosen), "bytes": used, "heldout_files": len(held),
            "heldout_bytes": sum(len(t.encode("utf-8")) for _, t in held), "skipped": skipped,
        })
        log(f"  {src['package']:<16} {len(chosen):6d} files {used / 1e6:7.2f} MB  ({src['license']})")
    return docs, reports, excluded


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer

QWEN_LIKE_SECTIONS = {
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT_REGEX}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
}


def train_tokenizer(texts):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, min_frequency=2, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    # Rewrite the pipeline sections to exactly the JSON Qwen2's tokenizer.json has, and the BPE flags likewise.
    spec = json.loads(tok.to_str())
    spec.update(json.loads(json.dumps(QWEN_LIKE_SECTIONS)))
    spec["model"].update({"dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                          "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                          "ignore_merges": False})
    plain = Tokenizer.from_str(json.dumps(spec))
    probe = "def f(x):\n    return x  # café 数字 123\r\n\tdon't WE'LL\n\n"
    if plain.encode(probe).ids != tok.encode(probe).ids:
        die("tokenizer changed behaviour when its JSON was rewritten to the Qwen2 layout")
    bpe_size = plain.get_vocab_size(with_added_tokens=True)
    if bpe_size > BPE_VOCAB:
        die(f"BPE trainer produced {bpe_size} tokens > {BPE_VOCAB}")
    final = Tokenizer.from_str(plain.to_str())
    final.add_special_tokens([AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False,
                                         special=True) for t in SPECIAL_TOKENS])
    ids = {t: final.token_to_id(t) for t in SPECIAL_TOKENS}
    if [ids[t] for t in SPECIAL_TOKENS] != list(range(bpe_size, bpe_size + len(SPECIAL_TOKENS))):
        die(f"special tokens got ids {ids}, expected {bpe_size}..{bpe_size + len(SPECIAL_TOKENS) - 1}")
    return plain, final, ids


def tokenizer_config_json(ids):
    added = {str(ids[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                           "single_word": False, "special": True} for t in SPECIAL_TOKENS}
    return {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": None,
        "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>",
        "errors": "replace", "model_max_length": MAX_POSITIONS, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }


def check_with_transformers(model_dir, final, texts):
    """AutoTokenizer on the written files must agree with the tokenizers library; report, do not abort."""
    result = {"auto_tokenizer_loads": False, "agrees_on_samples": None, "chat_template_ok": None, "error": None}
    try:
        at = AutoTokenizer.from_pretrained(model_dir)
        result["auto_tokenizer_loads"] = True
        result["auto_tokenizer_class"] = type(at).__name__
        bad = [t[:40] for t in texts if at(t, add_special_tokens=True)["input_ids"] != final.encode(t).ids]
        result["agrees_on_samples"] = not bad
        if bad:
            result["disagreeing_samples"] = bad[:5]
        chat = at.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                      add_generation_prompt=True)
        result["chat_template_ok"] = chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        result["chat_render"] = chat
    except Exception as e:  # informative only: the engine reads tokenizer.json itself
        result["error"] = f"{type(e).__name__}: {e}"
    return result


def encode_docs(plain, docs, eot_id):
    train, held = [], []
    encode = getattr(plain, "encode_batch_fast", None) or plain.encode_batch
    chunk = 1000
    for s in range(0, len(docs), chunk):
        part = docs[s:s + chunk]
        encs = encode([d[1] for d in part], add_special_tokens=False)
        for (key, _text, _pkg, is_held), enc in zip(part, encs):
            arr = np.asarray(enc.ids + [eot_id], dtype=np.int32)
            (held if is_held else train).append(arr)
        if (s // chunk) % 10 == 0:
            log(f"  encoded {min(s + chunk, len(docs))}/{len(docs)} files")
    return np.concatenate(train), np.concatenate(held) if held else np.zeros(0, np.int32)


# ---------------------------------------------------------------------------------------------------------------
# Models

def model_config(shape, ids):
    return Qwen2Config(
        vocab_size=VOCAB_SIZE, hidden_size=shape["hidden"], intermediate_size=shape["inter"],
        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"], max_position_embeddings=MAX_POSITIONS, initializer_range=0.02,
        rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, max_window_layers=shape["layers"],
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA}, hidden_act="silu",
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
    )


def count_params(shape):
    h, i, L = shape["hidden"], shape["inter"], shape["layers"]
    kv = shape["kv_heads"] * (h // shape["heads"])
    per_layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    return VOCAB_SIZE * h + L * per_layer + h


def windows(data, starts, seq):
    return data[starts[:, None] + torch.arange(seq + 1, device=data.device)[None, :]]


@torch.no_grad()
def eval_loss(model, data, seq, n_windows, batch=64):
    """Mean next-token loss (nats) over n_windows windows spread evenly over data (bf16 autocast, fp32 loss)."""
    if data.numel() < seq + 2:
        return None
    n = max(1, min(n_windows, (data.numel() - 1) // seq))
    # Integer arithmetic: a float32 linspace over ~1e8 tokens rounds past the end of the data.
    last = data.numel() - seq - 2
    starts = torch.arange(n, device=data.device, dtype=torch.long) * last // max(1, n - 1)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for s in range(0, n, batch):
        x = windows(data, starts[s:s + batch], seq)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                       reduction="sum"))
        count += x[:, 1:].numel()
    model.train(was_training)
    return total / count


def train_one(name, shape, ids, train_data, val_data, budget_s, args):
    log(f"[{name}] {count_params(shape) / 1e6:.2f}M params, shape {shape}, budget {budget_s:.0f}s, "
        f"batch {args.batch}x{args.seq}, lr {args.lr[name]}")
    torch.manual_seed(args.seed)
    model = Qwen2ForCausalLM(model_config(shape, ids))
    try:
        model.set_attn_implementation("sdpa")
    except Exception as e:
        log(f"[{name}] set_attn_implementation('sdpa') failed ({e}); "
            f"using {getattr(model.config, '_attn_implementation', '?')}")
    model.to("cuda")
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != count_params(shape):
        log(f"[{name}] note: parameter count {n_params} differs from the formula {count_params(shape)}")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr[name], betas=(0.9, 0.95), eps=1e-8, fused=True)
    gen = torch.Generator(device="cuda").manual_seed(args.seed + 17)
    high = train_data.numel() - args.seq - 2
    if high <= 0:
        die(f"training data has only {train_data.numel()} tokens, fewer than one window of {args.seq}")
    peak, warmup, min_ratio = args.lr[name], args.warmup, 0.1
    step, curve, recent = 0, [], []
    loss_acc = torch.zeros((), device="cuda")
    acc_n = 0
    t_start = time.time()
    last_log = t_start
    while True:
        elapsed = time.time() - t_start
        if elapsed >= budget_s:
            break
        frac = min(1.0, elapsed / budget_s)
        lr = peak * min(1.0, (step + 1) / warmup) * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, high, (args.batch,), device="cuda", generator=gen)
        x = windows(train_data, starts, args.seq)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_acc += loss.detach()
        acc_n += 1
        step += 1
        if step % 20 == 0:  # syncs the GPU, so the time budget is measured on finished work
            mean = float(loss_acc) / acc_n
            loss_acc.zero_()
            acc_n = 0
            if not math.isfinite(mean):
                die(f"[{name}] training loss became {mean} at step {step}")
            now = time.time()
            curve.append({"step": step, "t": round(now - t_start, 1), "loss": round(mean, 4), "lr": lr})
            recent = (recent + [mean])[-5:]
            if now - last_log >= 15:
                tok_s = step * args.batch * args.seq / (now - t_start)
                log(f"[{name}] step {step:5d}  loss {mean:.4f}  lr {lr:.2e}  {tok_s / 1e6:.2f}M tok/s")
                last_log = now
    torch.cuda.synchronize()
    train_time = time.time() - t_start
    tokens = step * args.batch * args.seq
    val = eval_loss(model, val_data, args.seq, args.eval_windows)
    train_eval = eval_loss(model, train_data, args.seq, args.eval_windows)
    log(f"[{name}] done: {step} steps, {tokens / 1e6:.1f}M tokens in {train_time:.0f}s; "
        f"train loss {np.mean(recent) if recent else float('nan'):.4f}, train-eval {train_eval}, held-out {val}")
    return model, {
        "parameters": n_params, "shape": shape, "steps": step, "tokens_seen": tokens,
        "epochs": tokens / max(1, train_data.numel()), "batch": args.batch, "seq_len": args.seq,
        "peak_lr": peak, "warmup_steps": warmup, "schedule": "linear warmup, cosine over the time budget to 10%",
        "optimizer": "AdamW(0.9, 0.95), weight decay 0.1 on matrices, grad clip 1.0, bf16 autocast, fp32 master",
        "train_loss_final": float(np.mean(recent)) if recent else None, "train_eval_loss": train_eval,
        "val_loss": val, "train_time_s": round(train_time, 1), "budget_s": round(budget_s, 1),
        "tokens_per_s": round(tokens / max(train_time, 1e-9)), "loss_curve": curve,
    }


def save_model(name, model, ids, out_dir, val_data, args, report):
    path = os.path.join(out_dir, name)
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|endoftext|>"], ids["<|im_end|>"]],
        pad_token_id=ids["<|endoftext|>"], do_sample=False)
    # Shards keep every file under the 16 MiB device transfer limit (the target is ~19 MB in BF16).
    model.save_pretrained(path, max_shard_size="12MB")
    files = [f for f in os.listdir(path) if f.endswith(".safetensors")]
    if not files:
        die(f"{path}: save_pretrained wrote no safetensors ({sorted(os.listdir(path))})")
    size = sum(os.path.getsize(os.path.join(path, f)) for f in files)
    report["safetensors_bytes"] = size
    report["safetensors_files"] = sorted(files)
    report["stored_dtype"] = "bfloat16"
    for f in files:
        if os.path.getsize(os.path.join(path, f)) > FILE_LIMIT_BYTES:
            log(f"WARNING: {f} is larger than {FILE_LIMIT_BYTES} (16 MiB device transfer limit)")
    del model
    reloaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to("cuda")
    report["val_loss_reloaded_bf16_weights"] = eval_loss(reloaded, val_data, args.seq, args.eval_windows)
    log(f"[{name}] saved {path} ({size / 1e6:.2f} MB); held-out loss after BF16 reload "
        f"{report['val_loss_reloaded_bf16_weights']}")
    return reloaded


@torch.no_grad()
def sample(model, tok, prompt, n=40):
    ids = torch.tensor([tok.encode(prompt).ids], device="cuda")
    for _ in range(n):
        nxt = model(input_ids=ids).logits[0, -1].argmax()
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return tok.decode(ids[0].tolist(), skip_special_tokens=False)


def write_heldout_text(docs, path, target_bytes=40_000, max_bytes=50_000):
    parts, used = [], 0
    held = sorted((d for d in docs if d[3]), key=lambda d: path_hash("sample:" + d[0]))
    for key, text, _pkg, _ in held:
        size = len(text.encode("utf-8"))
        if size < 800 or size > 12_000 or used + size > max_bytes:
            continue
        block = f"# ==== {key} ====\n{text.rstrip()}\n\n"
        parts.append(block)
        used += len(block.encode("utf-8"))
        if used >= target_bytes:
            break
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(parts))
    return used, len(parts)


# ---------------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--minutes", type=float, default=7.5, help="whole-run wall budget (default 7.5)")
    ap.add_argument("--target-share", type=float, default=0.68, help="share of training time for the target")
    ap.add_argument("--package-cap-mb", type=float, default=16.0)
    ap.add_argument("--corpus-cap-mb", type=float, default=200.0)
    ap.add_argument("--tokenizer-mb", type=float, default=24.0, help="corpus bytes used to train the BPE")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--eval-windows", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--smoke", action="store_true", help="tiny corpus, ~2.5 minutes in all, to test the plumbing")
    args = ap.parse_args()
    args.lr = {"target": 2e-3, "draft": 3e-3}
    if args.smoke:
        args.minutes, args.package_cap_mb, args.corpus_cap_mb, args.tokenizer_mb = 2.5, 0.5, 4.0, 1.0
        args.batch, args.seq, args.warmup, args.eval_windows = 16, 256, 10, 32
    if args.seq + 1 > MAX_POSITIONS:
        die(f"--seq {args.seq} exceeds max_position_embeddings {MAX_POSITIONS}")
    if not torch.cuda.is_available():
        die("no CUDA device: training needs a GPU (bf16 autocast)")
    if 2 * sum(count_params(s) for s in MODEL_SHAPES.values()) > TOTAL_LIMIT_BYTES:
        die("target + draft would exceed 25 MB in BF16")
    torch.backends.cuda.matmul.allow_tf32 = True  # training only; references elsewhere run with TF32 off
    torch.backends.cudnn.allow_tf32 = True
    budget = args.minutes * 60.0
    os.makedirs(args.out_dir, exist_ok=True)
    log(f"torch {torch.__version__} ({torch.cuda.get_device_name(0)}), transformers {transformers.__version__}, "
        f"tokenizers {__import__('tokenizers').__version__}; budget {budget:.0f}s -> {os.path.abspath(args.out_dir)}")

    log("collecting corpus ...")
    docs, pkg_reports, excluded = collect_corpus(int(args.package_cap_mb * 1e6), int(args.corpus_cap_mb * 1e6))
    for e in excluded:
        log(f"  excluded {e['package']}: {e['reason']}")
    if not docs:
        die("no source files found")
    train_docs = [d for d in docs if not d[3]]
    log(f"corpus: {len(docs)} files, {sum(r['bytes'] for r in pkg_reports) / 1e6:.1f} MB; "
        f"held out {len(docs) - len(train_docs)} files")

    tok_docs, used = [], 0
    for d in sorted(train_docs, key=lambda d: path_hash("tok:" + d[0])):
        if used >= args.tokenizer_mb * 1e6:
            break
        tok_docs.append(d[1])
        used += len(d[1].encode("utf-8"))
    log(f"training BPE tokenizer on {len(tok_docs)} files ({used / 1e6:.1f} MB) ...")
    t = time.time()
    plain, final, ids = train_tokenizer(tok_docs)
    tok_time = time.time() - t
    log(f"  tokenizer: {final.get_vocab_size(with_added_tokens=True)} tokens, specials {ids}, {tok_time:.1f}s")
    del tok_docs
    tcfg = tokenizer_config_json(ids)
    for name in MODEL_SHAPES:
        d = os.path.join(args.out_dir, name)
        os.makedirs(d, exist_ok=True)
        final.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(tcfg, f, indent=2, ensure_ascii=False)
            f.write("\n")
    samples = [d[1][:2000] for d in train_docs[:: max(1, len(train_docs) // 50)]][:50]
    samples += ["<|im_start|>user\nhello<|im_end|>\n", "naïve café — 数字 ½ \U0001F600", "a\r\n\tb  \n\n  c"]
    tk_check = check_with_transformers(os.path.join(args.out_dir, "target"), final, samples)
    log(f"  transformers AutoTokenizer check: {tk_check}")

    log("encoding corpus ...")
    t = time.time()
    train_np, held_np = encode_docs(plain, docs, ids["<|endoftext|>"])
    enc_time = time.time() - t
    corpus_bytes = sum(r["bytes"] for r in pkg_reports)
    log(f"  {train_np.size / 1e6:.1f}M train tokens, {held_np.size / 1e6:.2f}M held-out tokens, "
        f"{corpus_bytes / max(1, train_np.size + held_np.size):.2f} bytes/token, {enc_time:.1f}s")
    if held_np.size < args.seq + 2:
        die(f"held-out split has only {held_np.size} tokens; need at least one window of {args.seq}")
    train_data = torch.from_numpy(train_np.astype(np.int64)).to("cuda")
    val_data = torch.from_numpy(held_np.astype(np.int64)).to("cuda")
    heldout_bytes, heldout_files = write_heldout_text(docs, os.path.join(args.out_dir, "heldout_code.txt"))
    log(f"wrote heldout_code.txt: {heldout_bytes} bytes from {heldout_files} held-out files")
    del docs, train_docs

    reserve = 40.0 if not args.smoke else 15.0  # final evals, BF16 saves, reloads, report
    remaining = budget - (time.time() - T0) - reserve
    if remaining < (20 if args.smoke else 60):
        die(f"only {remaining:.0f}s left for training after data preparation; lower --corpus-cap-mb/--tokenizer-mb "
            "or raise --minutes")
    target_budget = remaining * args.target_share
    results = {}
    model, results["target"] = train_one("target", MODEL_SHAPES["target"], ids, train_data, val_data,
                                         target_budget, args)
    reloaded = save_model("target", model, ids, args.out_dir, val_data, args, results["target"])
    results["target"]["greedy_sample"] = sample(reloaded, final, "def quicksort(arr):\n")
    log(f"[target] sample: {results['target']['greedy_sample']!r}")
    del model, reloaded
    torch.cuda.empty_cache()

    draft_budget = budget - (time.time() - T0) - reserve / 2
    if draft_budget < 20:
        die(f"only {draft_budget:.0f}s left for the draft model")
    model, results["draft"] = train_one("draft", MODEL_SHAPES["draft"], ids, train_data, val_data, draft_budget,
                                        args)
    reloaded = save_model("draft", model, ids, args.out_dir, val_data, args, results["draft"])
    results["draft"]["greedy_sample"] = sample(reloaded, final, "def quicksort(arr):\n")
    log(f"[draft] sample: {results['draft']['greedy_sample']!r}")
    del model, reloaded

    total_bytes = sum(r.get("safetensors_bytes", 0) for r in results.values())
    report = {
        "wall_time_s": round(time.time() - T0, 1),
        "budget_s": budget,
        "smoke": args.smoke,
        "device": torch.cuda.get_device_name(0),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "tokenizers": __import__("tokenizers").__version__,
                     "numpy": np.__version__},
        "tokenizer": {
            "vocab_size": final.get_vocab_size(with_added_tokens=True), "bpe_tokens": plain.get_vocab_size(),
            "special_token_ids": ids, "eos_token": "<|endoftext|>",
            "generation_eos_token_ids": [ids["<|endoftext|>"], ids["<|im_end|>"]],
            "trained_on_bytes": used, "train_time_s": round(tok_time, 1), "transformers_check": tk_check,
            "pipeline": "NFC; Split(Qwen2 regex, Isolated); ByteLevel(add_prefix_space=false, use_regex=false); "
                        "BPE; ByteLevel post-processor and decoder",
        },
        "corpus": {
            "packages": pkg_reports, "excluded": excluded, "files": sum(r["files"] for r in pkg_reports),
            "bytes": corpus_bytes, "heldout_files": sum(r["heldout_files"] for r in pkg_reports),
            "heldout_bytes": sum(r["heldout_bytes"] for r in pkg_reports), "train_tokens": int(train_np.size),
            "heldout_tokens": int(held_np.size), "encode_time_s": round(enc_time, 1),
            "heldout_split": f"sha1('heldout:'+path) % 1000 < {HELDOUT_PER_MILLE}",
            "filters": f"utf-8 only, <= {MAX_FILE_BYTES} bytes, lines <= {MAX_LINE_CHARS} chars, non-empty, "
                       f"skipping folders {sorted(SKIP_DIRS)}",
            "heldout_code_txt": {"bytes": heldout_bytes, "files": heldout_files},
        },
        "licenses_used": sorted({f"{r['package']}: {r['license']}" for r in pkg_reports if r["files"]}),
        "models": results,
        "safetensors_total_bytes": total_bytes,
    }
    with open(os.path.join(args.out_dir, "train_report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False, default=str)
        f.write("\n")
    if total_bytes > TOTAL_LIMIT_BYTES:
        log(f"WARNING: safetensors total {total_bytes} bytes > {TOTAL_LIMIT_BYTES}")
    def fmt(x):
        return "n/a" if x is None else f"{x:.4f}"

    print("\nsummary", flush=True)
    for name, r in results.items():
        print(f"  {name:<6} params {r['parameters'] / 1e6:5.2f}M  steps {r['steps']:5d}  "
              f"tokens {r['tokens_seen'] / 1e6:7.1f}M  train {fmt(r['train_loss_final'])}  val {fmt(r['val_loss'])}  "
              f"val(bf16 reload) {fmt(r.get('val_loss_reloaded_bf16_weights'))}  "
              f"file {r['safetensors_bytes'] / 1e6:.2f} MB")
    print(f"  wall {report['wall_time_s']}s (budget {budget:.0f}s); report {os.path.join(args.out_dir, 'train_report.json')}",
          flush=True)


if __name__ == "__main__":
    main()
