#!/usr/bin/env python3
"""Golden K-quant fixtures from ggml itself: blocks and ggml's dequantize_row_q{4,5,6}_K output.

Calls the reference functions exported by the prebuilt libggml-base.so that node-llama-cpp installs (see README.md):
quantize_row_qX_K_ref (float32 -> blocks) and dequantize_row_qX_K (blocks -> float32). Per type, the fixture holds
blocks quantized by ggml from normal and heavy-tailed floats, plus random bytes with finite f16 d/dmin (every
scale/min/high-bit pattern), and the floats ggml decodes them to. k2j's KQuantsTest compares its dequantizer to them
bit for bit.

usage: kquants_ref.py OUT_DIR   (LLAMAPEER_DIR, default /tmp/llamapeer, holds node_modules)
writes OUT_DIR/{q4_K,q5_K,q6_K}.blocks and .f32
"""
import ctypes, glob, os, sys
import numpy as np

SIZES = {"q4_K": 144, "q5_K": 176, "q6_K": 210}
# byte offsets of the f16 scales in a block (randomized bytes there could be inf/nan; keep them finite)
F16_AT = {"q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208]}


def libggml():
    peer = os.environ.get("LLAMAPEER_DIR", "/tmp/llamapeer")
    libs = glob.glob(os.path.join(peer, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so"))
    if not libs:
        sys.exit(f"libggml-base.so not found under {peer} (install node-llama-cpp as README.md says)")
    return ctypes.CDLL(libs[0])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lib = libggml()
    rng = np.random.default_rng(24)
    for name, size in SIZES.items():
        q = getattr(lib, f"quantize_row_{name}_ref")
        dq = getattr(lib, f"dequantize_row_{name}")
        q.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        dq.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        floats = np.concatenate([rng.normal(0, 0.02, 256 * 8), rng.standard_t(2, 256 * 4) * 0.1,
                                 np.zeros(256), rng.uniform(0, 1, 256 * 2)]).astype(np.float32)
        nq = len(floats) // 256
        qb = np.zeros(nq * size, dtype=np.uint8)
        q(floats.ctypes.data, qb.ctypes.data, len(floats))
        nr = 16
        rb = rng.integers(0, 256, nr * size, dtype=np.uint8).reshape(nr, size)
        for at in F16_AT[name]:
            rb[:, at:at + 2] = rng.normal(0, 0.01, nr).astype(np.float16).view(np.uint8).reshape(nr, 2)
        blocks = np.concatenate([qb, rb.reshape(-1)])
        n = len(blocks) // size * 256
        y = np.zeros(n, dtype=np.float32)
        dq(blocks.ctypes.data, y.ctypes.data, n)
        blocks.tofile(os.path.join(out, f"{name}.blocks"))
        y.astype("<f4").tofile(os.path.join(out, f"{name}.f32"))
        print(f"{name}: {len(blocks) // size} blocks, {n} values")


if __name__ == "__main__":
    main()
