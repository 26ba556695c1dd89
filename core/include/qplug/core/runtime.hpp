// Process-wide settings a host application should apply once at start-up.
#pragma once

namespace qplug {

// Uses every CPU this process may run on for LibTorch's intra-op threads (at::parallel_for, which
// qplug's kernels use), unless OMP_NUM_THREADS says otherwise. Debian's LibTorch otherwise
// defaults to the number of physical cores its cpuinfo library sees, which is 1 on some virtual
// machines. Returns the thread count in effect.
int configure_cpu_threads();

}  // namespace qplug
