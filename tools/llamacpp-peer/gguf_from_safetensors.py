#!/usr/bin/env python3
"""Convert a k2j/HF Qwen2 or Qwen3 checkpoint directory to a GGUF v3 file (llama.cpp's `qwen2` / `qwen3`).

python3 + numpy only (no gguf package). Reads config.json, *.safetensors (sharded or not; BF16/F16/F32)
and tokenizer.json (+ tokenizer_config.json if present).

usage: gguf_from_safetensors.py MODEL_DIR OUT.gguf [--type bf16|f16|f32|q8_0|q4_0|q4_k|q5_k|q6_k|q4_k_m|q5_k_m]
                                [--embd-type T]

--type       type of the 2-D matrices (default bf16). Norms and biases are always F32.
--embd-type  type of token_embd.weight (and output.weight when untied). Default: same as --type,
             except q4_0 -> q8_0, which matches k2j's `--quant q4_0` (Q8_0 tied lm_head/embedding,
             see k2j docs/performance.md). Pass `--embd-type q4_0` for the all-Q4_0 variant.

Quantizers follow ggml's reference quantize_row_q8_0_ref / quantize_row_q4_0_ref (ggml-quants.c)
bit-exactly (float32 arithmetic, roundf = half away from zero, fp16 scale RNE).

K-quants (q4_k, q5_k, q6_k) are quantized by ggml itself: ggml_quantize_chunk of the prebuilt libggml-base.so that
node-llama-cpp installs (LLAMAPEER_DIR, default /tmp/llamapeer), the function llama-quantize calls (no imatrix).
q4_k_m / q5_k_m follow llama.cpp's mix for those file types: Q4_K (Q5_K) matrices, Q6_K for attn_v and ffn_down
in the layers llama.cpp's use_more_bits picks, and Q6_K for the output matrix (token_embd when tied). A matrix whose
rows are not a multiple of 256 falls back to Q8_0 (llama.cpp would pick Q5_0/Q5_1/Q8_0; k2j reads only Q8_0).
"""
import argparse
import glob
import json
import os
import struct
import sys
import time

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGN = 32

# gguf metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)

# ggml tensor types
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 8, 30
GGML_Q4_K, GGML_Q5_K, GGML_Q6_K = 12, 13, 14
TYPE_IDS = {"f32": GGML_F32, "f16": GGML_F16, "q4_0": GGML_Q4_0, "q8_0": GGML_Q8_0, "bf16": GGML_BF16,
            "q4_k": GGML_Q4_K, "q5_k": GGML_Q5_K, "q6_k": GGML_Q6_K}
# the K-quant mixes: base type of the matrices; attn_v/ffn_down/output follow llama.cpp's rules (mix_type)
MIXES = {"q4_k_m": "q4_k", "q5_k_m": "q5_k"}
# llama_ftype (general.file_type)
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32, "q4_k": 14, "q4_k_m": 15, "q5_k": 16,
              "q5_k_m": 17, "q6_k": 18}
K_BLOCK = {GGML_Q4_K: (256, 144), GGML_Q5_K: (256, 176), GGML_Q6_K: (256, 210)}


def use_more_bits(i_layer, n_layers):
    """llama.cpp's choice of the layers whose attn_v / ffn_down get more bits in the _M mixes."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


_ggml = None


def ggml_quantize(ttype, x):
    """ggml_quantize_chunk(type, x[rows, cols]) through the prebuilt libggml-base.so: the blocks' bytes."""
    global _ggml
    import ctypes
    if _ggml is None:
        peer = os.environ.get("LLAMAPEER_DIR", "/tmp/llamapeer")
        lib = glob.glob(os.path.join(peer, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so"))
        if not lib:
            sys.exit(f"K-quants need ggml: libggml-base.so not found under {peer} (install node-llama-cpp, README.md)")
        _ggml = ctypes.CDLL(lib[0])
        _ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
        _ggml.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                              ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, cols = x.shape
    per, size = K_BLOCK[ttype]
    out = np.zeros(rows * cols // per * size, dtype=np.uint8)
    n = _ggml.ggml_quantize_chunk(ttype, x.ctypes.data, out.ctypes.data, 0, rows, cols, None)
    assert n == len(out), (n, len(out))
    return out

# token types (llama_token_type)
TOK_NORMAL, TOK_UNKNOWN, TOK_CONTROL, TOK_USER_DEFINED, TOK_UNUSED, TOK_BYTE = 1, 2, 3, 4, 5, 6


# ---------------------------------------------------------------- safetensors
class SafeTensors:
    def __init__(self, model_dir):
        files = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
        if not files:
            sys.exit(f"no *.safetensors in {model_dir}")
        self.index = {}
        for f in files:
            with open(f, "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                hdr = json.loads(fh.read(n))
            mm = np.memmap(f, dtype=np.uint8, mode="r")
            base = 8 + n
            for name, info in hdr.items():
                if name == "__metadata__":
                    continue
                s, e = info["data_offsets"]
                self.index[name] = (mm, base + s, base + e, info["dtype"], tuple(info["shape"]))

    def names(self):
        return list(self.index)

    def shape(self, name):
        return self.index[name][4]

    def dtype(self, name):
        return self.index[name][3]

    def raw(self, name):
        mm, s, e, _, _ = self.index[name]
        return mm[s:e]

    def f32(self, name, rows=None):
        """float32 array of the tensor (optionally a row range of a 2-D tensor)."""
        mm, s, e, dt, shape = self.index[name]
        if dt == "BF16":
            a = mm[s:e].view(np.uint16).reshape(shape)
            if rows is not None:
                a = a[rows[0]:rows[1]]
            return (a.astype(np.uint32) << 16).view(np.float32)
        if dt == "F16":
            a = mm[s:e].view(np.float16).reshape(shape)
            if rows is not None:
                a = a[rows[0]:rows[1]]
            return a.astype(np.float32)
        if dt == "F32":
            a = mm[s:e].view(np.float32).reshape(shape)
            if rows is not None:
                a = a[rows[0]:rows[1]]
            return np.array(a, dtype=np.float32)
        sys.exit(f"unsupported safetensors dtype {dt} for {name}")


# ---------------------------------------------------------------- quantizers (ggml reference)
def roundf(x):
    """C roundf (half away from zero) of a float32 array, exactly (float64 add is exact here)."""
    x64 = x.astype(np.float64)
    return np.trunc(x64 + np.copysign(0.5, x64))


def quantize_q8_0(x):
    """x: float32 [rows, cols], cols % 32 == 0 -> bytes of block_q8_0 {fp16 d; int8 qs[32]}."""
    r, c = x.shape
    b = x.reshape(-1, 32)
    amax = np.max(np.abs(b), axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = roundf(b * idv[:, None]).astype(np.int8)
    out = np.empty((b.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(-1)


def quantize_q4_0(x):
    """x: float32 [rows, cols] -> bytes of block_q4_0 {fp16 d; uint8 qs[16]} (low nibble j, high j+16)."""
    b = x.reshape(-1, 32)
    idx = np.argmax(np.abs(b), axis=1)  # first occurrence of the largest |x|, as ggml's strict '<'
    mx = b[np.arange(b.shape[0]), idx]
    d = (mx / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    y = (b * idv[:, None]).astype(np.float32) + np.float32(8.5)  # float32 add, like C
    q = np.minimum(15, np.trunc(y).astype(np.int8)).astype(np.uint8)  # (int8_t) cast truncates
    out = np.empty((b.shape[0], 18), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.reshape(-1)


def tensor_nbytes(ttype, n):
    if ttype == GGML_F32:
        return 4 * n
    if ttype in (GGML_F16, GGML_BF16):
        return 2 * n
    if ttype == GGML_Q8_0:
        return n // 32 * 34
    if ttype == GGML_Q4_0:
        return n // 32 * 18
    if ttype in K_BLOCK:
        return n // K_BLOCK[ttype][0] * K_BLOCK[ttype][1]
    raise ValueError(ttype)


# ---------------------------------------------------------------- gguf writer helpers
def p_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = p_str(key) + struct.pack("<I", vtype)
    if vtype == T_STRING:
        return out + p_str(value)
    if vtype == T_UINT32:
        return out + struct.pack("<I", value)
    if vtype == T_INT32:
        return out + struct.pack("<i", value)
    if vtype == T_FLOAT32:
        return out + struct.pack("<f", value)
    if vtype == T_BOOL:
        return out + struct.pack("<?", value)
    if vtype == T_UINT64:
        return out + struct.pack("<Q", value)
    raise ValueError(vtype)


def kv_array(key, etype, values):
    out = [p_str(key), struct.pack("<IIQ", T_ARRAY, etype, len(values))]
    if etype == T_STRING:
        out.extend(p_str(v) for v in values)
    elif etype == T_INT32:
        out.append(np.asarray(values, dtype="<i4").tobytes())
    else:
        raise ValueError(etype)
    return b"".join(out)


# ---------------------------------------------------------------- tokenizer
def load_vocab(model_dir, vocab_size):
    tok = json.load(open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8"))
    if tok["model"]["type"] != "BPE":
        sys.exit("only byte-level BPE tokenizers are supported")
    id2tok = {i: t for t, i in tok["model"]["vocab"].items()}
    added = {}
    for a in tok.get("added_tokens", []):
        id2tok[a["id"]] = a["content"]
        added[a["id"]] = a
    n = max(vocab_size, max(id2tok) + 1)
    tokens, types = [], []
    for i in range(n):
        if i not in id2tok:
            tokens.append(f"[PAD{i}]")
            types.append(TOK_UNUSED)
        elif i in added:
            a = added[i]
            c = a["content"]
            # like convert_hf_to_gguf: special added tokens (and <|...|>-looking ones) are CONTROL
            if a.get("special") or (c.startswith("<|") and c.endswith("|>")):
                types.append(TOK_CONTROL)
            else:
                types.append(TOK_USER_DEFINED)
            tokens.append(c)
        else:
            tokens.append(id2tok[i])
            types.append(TOK_NORMAL)
    merges = []
    for m in tok["model"].get("merges", []):
        merges.append(m if isinstance(m, str) else " ".join(m))
    return tokens, types, merges


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", default="bf16", choices=list(TYPE_IDS) + list(MIXES))
    ap.add_argument("--embd-type", default=None, choices=list(TYPE_IDS))
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    t0 = time.time()

    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    arch = cfg.get("model_type")
    if arch not in ("qwen2", "qwen3"):
        print(f"warning: model_type {arch} is neither qwen2 nor qwen3: written as qwen2", file=sys.stderr)
        arch = "qwen2"
    n_layer = cfg["num_hidden_layers"]
    n_embd = cfg["hidden_size"]
    n_ff = cfg["intermediate_size"]
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    vocab_size = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", False)
    ftype = args.type
    mtype = MIXES.get(ftype, ftype)
    mixed = ftype in MIXES
    etype = args.embd_type or ("q8_0" if mtype == "q4_0" else "q6_k" if mixed else mtype)

    st = SafeTensors(args.model_dir)
    if "lm_head.weight" not in st.index:
        tied = True

    # tensor plan: (gguf name, hf name, ggml type)
    plan = [("token_embd.weight", "model.embed_tokens.weight", TYPE_IDS[etype])]
    for i in range(n_layer):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        plan += [
            (b + "attn_norm.weight", p + "input_layernorm.weight", GGML_F32),
            (b + "attn_q.weight", p + "self_attn.q_proj.weight", TYPE_IDS[mtype]),
            (b + "attn_q.bias", p + "self_attn.q_proj.bias", GGML_F32),
            (b + "attn_k.weight", p + "self_attn.k_proj.weight", TYPE_IDS[mtype]),
            (b + "attn_k.bias", p + "self_attn.k_proj.bias", GGML_F32),
            (b + "attn_v.weight", p + "self_attn.v_proj.weight", TYPE_IDS[mtype]),
            (b + "attn_v.bias", p + "self_attn.v_proj.bias", GGML_F32),
            (b + "attn_output.weight", p + "self_attn.o_proj.weight", TYPE_IDS[mtype]),
            (b + "ffn_norm.weight", p + "post_attention_layernorm.weight", GGML_F32),
            (b + "ffn_gate.weight", p + "mlp.gate_proj.weight", TYPE_IDS[mtype]),
            (b + "ffn_up.weight", p + "mlp.up_proj.weight", TYPE_IDS[mtype]),
            (b + "ffn_down.weight", p + "mlp.down_proj.weight", TYPE_IDS[mtype]),
        ]
        if arch == "qwen3":
            plan += [(b + "attn_q_norm.weight", p + "self_attn.q_norm.weight", GGML_F32),
                     (b + "attn_k_norm.weight", p + "self_attn.k_norm.weight", GGML_F32)]
        if mixed and use_more_bits(i, n_layer):
            plan = [(g, h, GGML_Q6_K if g in (b + "attn_v.weight", b + "ffn_down.weight") else t) for g, h, t in plan]
    plan.append(("output_norm.weight", "model.norm.weight", GGML_F32))
    if not tied:
        plan.append(("output.weight", "lm_head.weight", TYPE_IDS[etype]))
    plan = [(g, h, t) for g, h, t in plan if h in st.index or not h.endswith(".bias")]
    missing = [h for _, h, _ in plan if h not in st.index]
    if missing:
        sys.exit(f"missing tensors: {missing[:5]}")
    # quantized types need 32-column rows
    plan2 = []
    for g, h, t in plan:
        shape = st.shape(h)
        if t in (GGML_Q8_0, GGML_Q4_0) and shape[-1] % 32 != 0:
            print(f"warning: {h} has {shape[-1]} columns, not a multiple of 32: kept as F16", file=sys.stderr)
            t = GGML_F16
        if t in K_BLOCK and shape[-1] % 256 != 0:
            print(f"warning: {h} has {shape[-1]} columns, not a multiple of 256: Q8_0 instead", file=sys.stderr)
            t = GGML_Q8_0
        plan2.append((g, h, t))
    plan = plan2

    tokens, ttypes, merges = load_vocab(args.model_dir, vocab_size)
    tcfg = {}
    tcp = os.path.join(args.model_dir, "tokenizer_config.json")
    if os.path.exists(tcp):
        tcfg = json.load(open(tcp, encoding="utf-8"))
    tok2id = {t: i for i, t in enumerate(tokens)}

    def tid(v):
        if isinstance(v, dict):
            v = v.get("content")
        return tok2id.get(v) if isinstance(v, str) else None

    eos = cfg.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if tid(tcfg.get("eos_token")) is not None:
        eos = tid(tcfg.get("eos_token"))
    pad = tid(tcfg.get("pad_token"))
    bos = cfg.get("bos_token_id")
    if bos is None:
        bos = tid(tcfg.get("bos_token"))

    name = args.name or os.path.basename(os.path.normpath(args.model_dir))
    meta = [
        kv("general.architecture", T_STRING, arch),
        kv("general.name", T_STRING, name),
        kv("general.file_type", T_UINT32, FILE_TYPES[ftype]),
        kv("general.alignment", T_UINT32, ALIGN),
        kv(f"{arch}.context_length", T_UINT32, cfg.get("max_position_embeddings", 32768)),
        kv(f"{arch}.embedding_length", T_UINT32, n_embd),
        kv(f"{arch}.block_count", T_UINT32, n_layer),
        kv(f"{arch}.feed_forward_length", T_UINT32, n_ff),
        kv(f"{arch}.attention.head_count", T_UINT32, n_head),
        kv(f"{arch}.attention.head_count_kv", T_UINT32, n_head_kv),
        kv(f"{arch}.rope.freq_base", T_FLOAT32, float(cfg.get("rope_theta", 1000000.0))),
        kv(f"{arch}.attention.layer_norm_rms_epsilon", T_FLOAT32, float(cfg.get("rms_norm_eps", 1e-6))),
        kv("tokenizer.ggml.model", T_STRING, "gpt2"),
        kv("tokenizer.ggml.pre", T_STRING, "qwen2"),
        kv_array("tokenizer.ggml.tokens", T_STRING, tokens),
        kv_array("tokenizer.ggml.token_type", T_INT32, ttypes),
        kv_array("tokenizer.ggml.merges", T_STRING, merges),
        kv("tokenizer.ggml.add_bos_token", T_BOOL, bool(tcfg.get("add_bos_token", False))),
    ]
    if arch == "qwen3":
        hd = cfg.get("head_dim", n_embd // n_head)
        meta += [kv("qwen3.attention.key_length", T_UINT32, hd), kv("qwen3.attention.value_length", T_UINT32, hd)]
    if mtype not in ("bf16", "f16", "f32") or etype not in ("bf16", "f16", "f32"):
        meta.append(kv("general.quantization_version", T_UINT32, 2))
    if eos is not None:
        meta.append(kv("tokenizer.ggml.eos_token_id", T_UINT32, int(eos)))
    if pad is not None:
        meta.append(kv("tokenizer.ggml.padding_token_id", T_UINT32, int(pad)))
    if bos is not None:
        meta.append(kv("tokenizer.ggml.bos_token_id", T_UINT32, int(bos)))

    # tensor infos
    infos = []
    offset = 0
    layout = []
    for g, h, t in plan:
        shape = st.shape(h)
        n = int(np.prod(shape))
        nbytes = tensor_nbytes(t, n)
        dims = list(reversed(shape))  # ne[0] = innermost
        infos.append(p_str(g) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                     + struct.pack("<IQ", t, offset))
        layout.append((g, h, t, offset, nbytes))
        offset += (nbytes + ALIGN - 1) // ALIGN * ALIGN

    header = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(plan), len(meta))
    head = header + b"".join(meta) + b"".join(infos)
    pad_len = (-len(head)) % ALIGN

    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        f.write(b"\0" * pad_len)
        data_start = f.tell()
        for g, h, t, off, nbytes in layout:
            assert f.tell() == data_start + off, (g, f.tell(), data_start + off)
            shape = st.shape(h)
            src_dt = st.dtype(h)
            if t == GGML_BF16 and src_dt == "BF16":
                f.write(st.raw(h).tobytes())
            elif t == GGML_F16 and src_dt == "F16":
                f.write(st.raw(h).tobytes())
            elif t in (GGML_F32, GGML_F16, GGML_BF16):
                a = st.f32(h)
                if t == GGML_F32:
                    f.write(a.astype("<f4").tobytes())
                elif t == GGML_F16:
                    f.write(a.astype("<f2").tobytes())
                else:  # f32 -> bf16, round to nearest even
                    u = a.view(np.uint32).astype(np.uint64)
                    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
                    f.write(u.tobytes())
            elif t in K_BLOCK:
                rows = shape[0] if len(shape) == 2 else 1
                step = max(1, (1 << 22) // max(1, shape[-1]))
                written = 0
                for r0 in range(0, rows, step):
                    r1 = min(rows, r0 + step)
                    a = st.f32(h, rows=(r0, r1)) if len(shape) == 2 else st.f32(h).reshape(1, -1)
                    bts = ggml_quantize(t, a).tobytes()
                    f.write(bts)
                    written += len(bts)
                assert written == nbytes, (g, written, nbytes)
            else:
                q = quantize_q8_0 if t == GGML_Q8_0 else quantize_q4_0
                rows = shape[0] if len(shape) == 2 else 1
                step = max(1, (1 << 22) // max(1, shape[-1]))  # ~4M elements per chunk
                written = 0
                for r0 in range(0, rows, step):
                    r1 = min(rows, r0 + step)
                    a = st.f32(h, rows=(r0, r1)) if len(shape) == 2 else st.f32(h).reshape(1, -1)
                    bts = q(a).tobytes()
                    f.write(bts)
                    written += len(bts)
                assert written == nbytes, (g, written, nbytes)
            padn = (-nbytes) % ALIGN
            if padn:
                f.write(b"\0" * padn)
    os.replace(tmp, args.out)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {len(plan)} tensors, matrices {ftype}, token_embd {etype}, "
          f"{'tied' if tied else 'untied'}, {size / 1e6:.1f} MB in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
