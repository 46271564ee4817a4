/**
 * The backend contract ({@code ai.k2j.kernels.Backend}) and its implementations: the reference oracle, the CPU backend
 * (Vector API) and the CUDA backend (LWJGL + NVRTC, cuBLAS via FFM). The engine picks the CPU and CUDA backends by
 * class name, so their packages are exported too.
 */
module k2j.kernels {
    requires transitive k2j.loaders;
    requires jdk.incubator.vector;
    requires org.lwjgl;
    requires org.lwjgl.cuda;

    exports ai.k2j.kernels;
    exports ai.k2j.kernels.cpu;
    exports ai.k2j.kernels.cuda;
}
