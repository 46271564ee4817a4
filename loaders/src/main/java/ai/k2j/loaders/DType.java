package ai.k2j.loaders;

/**
 * Element types k2j reads and writes. The first group are safetensors' own dtype names; Q8_0 and Q4_0 are
 * k2j's block-quantized types (blocks of 32 values, llama.cpp's layout) stored in k2j-written safetensors; Q4_K,
 * Q5_K and Q6_K are ggml's K-quants, which only GGUF files carry.
 */
public enum DType {
    F32("F32", 4, 1),
    F16("F16", 2, 1),
    BF16("BF16", 2, 1),
    F64("F64", 8, 1),
    I64("I64", 8, 1),
    I32("I32", 4, 1),
    I16("I16", 2, 1),
    I8("I8", 1, 1),
    U8("U8", 1, 1),
    BOOL("BOOL", 1, 1),
    /**
     * float8 e4m3fn (1 sign, 4 exponent bits of bias 7, 3 mantissa bits; no infinities, S.1111.111 is NaN): the
     * weights of DeepSeek-V3 / Kimi K2 checkpoints, each matrix with a float32 {@code weight_scale_inv} per block
     * ({@link Fp8Blocks}).
     */
    F8_E4M3("F8_E4M3", 1, 1),
    /** 32 values: f16 scale + 32 x int8 = 34 bytes. */
    Q8_0("Q8_0", 34, 32),
    /** 32 values: f16 scale + 16 bytes of packed 4-bit values = 18 bytes. */
    Q4_0("Q4_0", 18, 32),
    /** ggml's K-quant super-blocks of 256 values (read from GGUF files; layouts in {@link KQuants}). */
    Q4_K("Q4_K", 144, 256),
    Q5_K("Q5_K", 176, 256),
    Q6_K("Q6_K", 210, 256),
    /**
     * AWQ (GEMM) and GPTQ layers: int32-packed integers with zeros and scales per group ({@link PackedInt}); only
     * the virtual weight tensors of such layers carry these (their bytes are the qweight: bits/8 per value).
     */
    AWQ_INT4("AWQ_INT4", 1, 2),
    GPTQ_INT4("GPTQ_INT4", 1, 2),
    GPTQ_INT8("GPTQ_INT8", 1, 1);

    private final String safetensorsName;
    private final int blockBytes;
    private final int blockSize;

    DType(String safetensorsName, int blockBytes, int blockSize) {
        this.safetensorsName = safetensorsName;
        this.blockBytes = blockBytes;
        this.blockSize = blockSize;
    }

    public String safetensorsName() {
        return safetensorsName;
    }

    /** Values per block (1 for plain types, 32 for Q8_0/Q4_0, 256 for the K-quants). */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int blockBytes() {
        return blockBytes;
    }

    public boolean isQuantized() {
        return blockSize > 1 || this == GPTQ_INT8;
    }

    /** AWQ/GPTQ layers, whose weights are several tensors ({@link Tensor#packing}). */
    public boolean isPacked() {
        return this == AWQ_INT4 || this == GPTQ_INT4 || this == GPTQ_INT8;
    }

    /** Bytes needed for {@code elements} values; elements must be a multiple of the block size. */
    public long bytesFor(long elements) {
        if (elements % blockSize != 0) {
            throw new IllegalArgumentException(this + " needs a multiple of " + blockSize + " elements, got " + elements);
        }
        return Math.multiplyExact(elements / blockSize, (long) blockBytes);
    }

    /** Parses a safetensors dtype name; throws {@link ModelFormatException} naming the unknown dtype. */
    public static DType fromSafetensors(String name, String source) {
        for (DType d : values()) {
            if (d.safetensorsName.equals(name)) {
                return d;
            }
        }
        throw new ModelFormatException(source + ": unknown dtype '" + name + "'");
    }
}
