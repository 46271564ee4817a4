package ai.k2j.kernels.cuda;

import ai.k2j.kernels.KvPrecision;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Quantizer;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Getting things onto the device once, at load: weight matrices (F32/F16/BF16 as is or converted; Q8_0/Q4_0
 * quantized on the host with llama.cpp's reference rounding and split into values and f16 scales), float32
 * vectors, zeroed buffers, RoPE tables and the KV cache. Everything goes through the pinned staging buffer and
 * synchronizes; the backend refuses these calls during a graph capture.
 */
final class DeviceWeights {
    private final CudaBackend owner;
    private final CudaContext cx;

    DeviceWeights(CudaBackend owner, CudaContext cx) {
        this.owner = owner;
        this.cx = cx;
    }

    /** {@link CudaBackend#matrix}: checks the parts, converts on the host when asked, uploads once. */
    DevWeight matrix(List<Tensor> rowsStacked, WeightFormat format) {
        if (rowsStacked == null || rowsStacked.isEmpty()) {
            throw new IllegalArgumentException("matrix needs at least one tensor");
        }
        Tensor first = rowsStacked.getFirst();
        DType src = first.dtype();
        if (first.rank() != 2) {
            throw new ModelFormatException("tensor '" + first.name() + "' has rank " + first.rank()
                    + ", a weight matrix needs rank 2");
        }
        long cols = first.dim(1);
        long rows = 0;
        for (Tensor t : rowsStacked) {
            if (t.rank() != 2 || t.dim(1) != cols) {
                throw new ModelFormatException("tensor '" + t.name() + "' has shape " + java.util.Arrays.toString(t.shape())
                        + "; all stacked parts need rank 2 and " + cols + " columns like '" + first.name() + "'");
            }
            if (t.dtype() != src) {
                throw new ModelFormatException("tensor '" + t.name() + "' is " + t.dtype() + " but '" + first.name()
                        + "' is " + src + "; stacked parts must share a dtype");
            }
            checkData(t);
            rows += t.dim(0);
        }
        if (rows < 1 || cols < 1 || rows > Integer.MAX_VALUE || cols > Integer.MAX_VALUE) {
            throw new ModelFormatException("matrix '" + first.name() + "': unsupported size " + rows + " x " + cols);
        }
        if (src != DType.F32 && src != DType.F16 && src != DType.BF16 && src != DType.Q8_0 && src != DType.Q4_0) {
            throw new ModelFormatException("tensor '" + first.name() + "': dtype " + src
                    + " is not supported for matrices (F32, F16, BF16, Q8_0, Q4_0)");
        }
        if (src.isQuantized() && cols % 32 != 0) {
            throw new ModelFormatException("tensor '" + first.name() + "': " + src + " rows of " + cols
                    + " columns are not whole blocks of 32");
        }
        DType target = (format == null ? WeightFormat.NATIVE : format).target(src);
        if (target.isQuantized() && cols % 32 != 0) {
            throw new IllegalArgumentException("matrix '" + first.name() + "': " + target + " needs columns divisible"
                    + " by 32, got " + cols);
        }
        DevWeight w = allocWeight((int) rows, (int) cols, target, first.name());
        long row0 = 0;
        for (Tensor t : rowsStacked) {
            uploadRows(t, w, row0);
            row0 += t.dim(0);
        }
        return w;
    }

    private static void checkData(Tensor t) {
        long need;
        try {
            need = t.dtype().bytesFor(t.elements());
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException("tensor '" + t.name() + "': " + e.getMessage());
        }
        if (t.data().byteSize() != need) {
            throw new ModelFormatException("tensor '" + t.name() + "' " + t.dtype() + java.util.Arrays.toString(t.shape())
                    + " has " + t.data().byteSize() + " bytes of data, expected " + need);
        }
    }

    private DevWeight allocWeight(int rows, int cols, DType dtype, String name) {
        long elements = (long) rows * cols;
        long dataBytes = switch (dtype) {
            case F32 -> elements * 4;
            case F16, BF16 -> elements * 2;
            case Q8_0 -> elements;
            case Q4_0 -> elements / 2;
            default -> throw new IllegalArgumentException("dtype " + dtype);
        };
        long scaleBytes = dtype.isQuantized() ? elements / 32 * 2 : 0;
        long dataAligned = (dataBytes + 255) & ~255L;
        long ptr = cx.alloc(dataAligned + Math.max(scaleBytes, 0));
        return new DevWeight(owner, ptr, dtype.isQuantized() ? ptr + dataAligned : 0, rows, cols, dtype, name);
    }

    /** Converts tensor t (any supported dtype) into w's dtype and device layout, rows [row0, row0 + t.rows). */
    private void uploadRows(Tensor t, DevWeight w, long row0) {
        int cols = w.cols;
        int tRows = Math.toIntExact(t.dim(0));
        MemorySegment staging = cx.staging();
        DType dst = w.dtype;
        DType src = t.dtype();
        if (src == dst && !dst.isQuantized()) {  // plain copy
            long rowBytes = (long) cols * (dst == DType.F32 ? 4 : 2);
            long base = w.data + row0 * rowBytes;
            long total = (long) tRows * rowBytes;
            for (long off = 0; off < total; off += CudaContext.STAGING_BYTES) {
                long n = Math.min(CudaContext.STAGING_BYTES, total - off);
                MemorySegment.copy(t.data(), off, staging, 0, n);
                cx.driver.copyToDeviceAsync(base + off, staging.address(), n);
                cx.driver.synchronize();
            }
            return;
        }
        // convert row chunks: qs (or dense values) in the front of staging, scales behind them
        long qsRowBytes = switch (dst) {
            case F32 -> cols * 4L;
            case F16, BF16 -> cols * 2L;
            case Q8_0 -> cols;
            case Q4_0 -> cols / 2;
            default -> throw new IllegalStateException();
        };
        long scaleRowBytes = dst.isQuantized() ? cols / 32 * 2L : 0;
        long srcRowBytes = src.bytesFor(cols);
        int chunkRows = (int) Math.max(1, Math.min(tRows, CudaContext.STAGING_BYTES / (qsRowBytes + scaleRowBytes)));
        if ((qsRowBytes + scaleRowBytes) > CudaContext.STAGING_BYTES) {
            throw new IllegalArgumentException("matrix row of " + cols + " columns exceeds the upload staging buffer");
        }
        boolean same = src == dst;  // quantized, same type: split blocks into qs and scales only
        for (int r0 = 0; r0 < tRows; r0 += chunkRows) {
            int nr = Math.min(chunkRows, tRows - r0);
            long scalesOff = nr * qsRowBytes;
            final int chunkStart = r0;
            IntStream rowsStream = IntStream.range(0, nr);
            if ((long) nr * cols >= (1 << 20)) {
                rowsStream = rowsStream.parallel();
            }
            rowsStream.forEach(r -> {
                long srcRow = (long) (chunkStart + r);
                if (same) {
                    splitBlocks(dst, t.data(), srcRow * srcRowBytes, cols, staging, r * qsRowBytes,
                            scalesOff + (long) r * (cols / 32) * 2);
                    return;
                }
                float[] row = new float[cols];
                HostCodec.decode(src, t.data(), srcRow * cols, cols, row, 0, t.name());
                long o = r * qsRowBytes;
                switch (dst) {
                    case F32 -> MemorySegment.copy(row, 0, staging, ValueLayout.JAVA_FLOAT_UNALIGNED, o, cols);
                    case F16 -> {
                        for (int i = 0; i < cols; i++) {
                            staging.set(ValueLayout.JAVA_SHORT_UNALIGNED, o + 2L * i, Float.floatToFloat16(row[i]));
                        }
                    }
                    case BF16 -> {
                        for (int i = 0; i < cols; i++) {
                            staging.set(ValueLayout.JAVA_SHORT_UNALIGNED, o + 2L * i, HostCodec.f32ToBf16(row[i]));
                        }
                    }
                    case Q8_0, Q4_0 -> {  // llama.cpp's blocks (the CPU backend's quantizer), then split
                        MemorySegment blocks = MemorySegment.ofArray(new byte[(int) dst.bytesFor(cols)]);
                        Quantizer.quantizeRow(dst, row, 0, cols, blocks, 0);
                        splitBlocks(dst, blocks, 0, cols, staging, o, scalesOff + (long) r * (cols / 32) * 2);
                    }
                    default -> throw new IllegalStateException();
                }
            });
            long absRow = row0 + r0;
            cx.driver.copyToDeviceAsync(w.data + absRow * qsRowBytes, staging.address(), nr * qsRowBytes);
            if (scaleRowBytes > 0) {
                cx.driver.copyToDeviceAsync(w.scales + absRow * scaleRowBytes, staging.address() + scalesOff,
                        nr * scaleRowBytes);
            }
            cx.driver.synchronize();
        }
    }

    /**
     * One row of llama.cpp blocks (f16 scale, then the quantized values) at src[srcOff..] to the device layout:
     * the values to dst[qsOff..], the scales to dst[scalesOff..] (2 bytes per block).
     */
    private static void splitBlocks(DType dt, MemorySegment src, long srcOff, int cols, MemorySegment dst, long qsOff,
                                    long scalesOff) {
        int blockBytes = dt.blockBytes();
        int payload = blockBytes - 2;
        for (int b = 0; b < cols / 32; b++) {
            long sOff = srcOff + (long) b * blockBytes;
            dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, scalesOff + 2L * b, src.get(ValueLayout.JAVA_SHORT_UNALIGNED, sOff));
            MemorySegment.copy(src, sOff + 2, dst, qsOff + (long) b * payload, payload);
        }
    }

    /** {@link CudaBackend#vector}: the parts converted to float32 and concatenated. */
    DevBuffer vector(List<Tensor> parts) {
        if (parts == null || parts.isEmpty()) {
            throw new IllegalArgumentException("vector needs at least one tensor");
        }
        long total = 0;
        for (Tensor t : parts) {
            checkData(t);
            DType d = t.dtype();
            if (d != DType.F32 && d != DType.F16 && d != DType.BF16 && d != DType.F64) {
                throw new ModelFormatException("tensor '" + t.name() + "': dtype " + d
                        + " cannot be a float32 vector (F32, F16, BF16, F64)");
            }
            total += t.elements();
        }
        DevBuffer buf = allocBuffer(total, "vector");
        MemorySegment staging = cx.staging();
        long off = 0;
        int chunk = (int) (CudaContext.STAGING_BYTES / 4);
        float[] tmp = new float[(int) Math.min(chunk, total)];
        for (Tensor t : parts) {
            long n = t.elements();
            for (long i = 0; i < n; i += chunk) {
                int c = (int) Math.min(chunk, n - i);
                HostCodec.decode(t.dtype(), t.data(), i, c, tmp, 0, t.name());
                MemorySegment.copy(tmp, 0, staging, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, c);
                cx.driver.copyToDeviceAsync(buf.ptr + 4 * (off + i), staging.address(), 4L * c);
                cx.driver.synchronize();
            }
            off += n;
        }
        return buf;
    }

    /** A zeroed float32 buffer. */
    DevBuffer allocBuffer(long floats, String what) {
        if (floats < 1) {
            throw new IllegalArgumentException(what + ": buffer of " + floats + " floats");
        }
        long ptr = cx.alloc(floats * 4);
        cx.driver.memsetAsync(ptr, floats * 4);
        return new DevBuffer(owner, ptr, floats);
    }

    /** Copies floats from the host into a buffer (checked by the caller); synchronizes. */
    void upload(float[] src, int srcOffset, DevBuffer d, long dstOffset, int count) {
        MemorySegment staging = cx.staging();
        int chunk = (int) (CudaContext.STAGING_BYTES / 4);
        for (int i = 0; i < count; i += chunk) {
            int c = Math.min(chunk, count - i);
            MemorySegment.copy(src, srcOffset + i, staging, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, c);
            cx.driver.copyToDeviceAsync(d.ptr + 4 * (dstOffset + i), staging.address(), 4L * c);
            cx.driver.synchronize();
        }
    }

    /** {@link CudaBackend#ropeTable}: computed on the host as the CPU backend does, then uploaded. */
    DevRope ropeTable(float[] invFreq, float attentionScaling, int maxPositions) {
        int half = invFreq.length;
        if (half < 1 || maxPositions < 1) {
            throw new IllegalArgumentException("ropeTable: " + half + " frequencies, " + maxPositions + " positions");
        }
        long n = (long) maxPositions * half;
        float[] cos = new float[Math.toIntExact(n)];
        float[] sin = new float[cos.length];
        for (int p = 0; p < maxPositions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = p * invFreq[i];  // float32 product, as HF computes it
                cos[p * half + i] = (float) Math.cos(angle) * attentionScaling;
                sin[p * half + i] = (float) Math.sin(angle) * attentionScaling;
            }
        }
        DevBuffer c = allocBuffer(n, "ropeTable");
        DevBuffer s = allocBuffer(n, "ropeTable");
        upload(cos, 0, c, 0, cos.length);
        upload(sin, 0, s, 0, sin.length);
        return new DevRope(owner, c.ptr, s.ptr, maxPositions, half);
    }

    /**
     * {@link CudaBackend#kvCache}: one zeroed allocation holding every layer's key and value regions (and FP8's
     * scales). A cache larger than the device's free memory is refused with the sizes, before cuMemAlloc fails.
     */
    DevKvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        if (layers < 1 || kvDim < 1 || numBlocks < 1 || blockSize < 1 || headDim < 1 || kvDim % headDim != 0) {
            throw new IllegalArgumentException("kvCache(layers=" + layers + ", kvDim=" + kvDim + ", numBlocks="
                    + numBlocks + ", blockSize=" + blockSize + ", headDim=" + headDim + ")");
        }
        long bytes = DevKvCache.totalBytes(layers, kvDim, numBlocks, blockSize, precision, headDim);
        long free = cx.driver.freeMemory();
        if (free > 0 && bytes > free) {
            throw new IllegalArgumentException(String.format(java.util.Locale.ROOT,
                    "the %s KV cache needs %.2f GiB (%d layers x %d blocks of %d tokens x %d values x 2) but the device"
                            + " has %.2f GiB free; use a smaller --max-context or --kv-cache fp8", precision, bytes / 0x1p30,
                    layers, numBlocks, blockSize, kvDim, free / 0x1p30));
        }
        long ptr = cx.alloc(bytes);
        cx.driver.memsetAsync(ptr, bytes);
        return new DevKvCache(owner, ptr, layers, kvDim, numBlocks, blockSize, precision, headDim);
    }
}
