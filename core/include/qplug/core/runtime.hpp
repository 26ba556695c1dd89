// Process-wide settings a host application should apply once at start-up.
#pragma once

namespace qplug {

// Uses every CPU this process may run on for LibTorch's intra-op threads (at::parallel_for, which
// qplug's kernels use), unless OMP_NUM_THREADS says otherwise. Debian's LibTorch otherwise
// defaults to the number of physical cores its cpuinfo library sees, which is 1 on some virtual
// machines. Returns the thread count in effect.
int configure_cpu_threads();

// Keeps large freed blocks in the process for reuse instead of returning them to the kernel.
// glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh mappings, so every
// attention score tensor or activation batch of that size page-faults all over again (~12 us per
// 4 KiB page on the machines qplug targets): calibration spent more time in the kernel than in
// its matmuls. Turns glibc's per-block mappings off (M_MMAP_MAX 0: every block comes from the
// heap) and stops trimming the heap (M_TRIM_THRESHOLD at its maximum). Freed memory stays in the
// process for the next allocation; the peak is what the work needs, as before. Returns false if
// glibc refused.
bool configure_allocator();

// Makes idle worker threads sleep instead of spinning for long: LibTorch's OpenMP threads
// (OMP_WAIT_POLICY passive, with GOMP_SPINCOUNT 30000: libgomp polls 30000 times before it
// sleeps, instead of 0 for passive or 300000 by default) and OpenBLAS's (OPENBLAS_THREAD_TIMEOUT 4:
// ~16 cycles before they sleep, instead of 2^28). Both libraries read these only when they load,
// so unless the environment already holds them, they are set and the program starts again with
// the same arguments (execv of /proc/self/exe; this returns only if they were already set or the
// restart failed). Call it first thing in main(). Why: where the cores are shared (2 vCPUs, SMT
// siblings), one library's spinning threads took the cores from the other's working ones; a 4-bit
// GEMV ran 3x slower, and each GEMM between two parallel loops paid for it as well. Why the short
// spin: waking a sleeping OpenMP thread took ~50 us on the 2-vCPU machine, as long as a whole
// 4096 x 4096 4-bit GEMV at the memory's speed; 300000 polls slowed the GPTQ solve by ~15%.
void restart_with_sleeping_idle_threads(char** argv);

}  // namespace qplug
