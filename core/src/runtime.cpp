#include "qplug/core/runtime.hpp"

#include <malloc.h>
#include <sched.h>

#include <cstdlib>
#include <limits>

#include <ATen/Parallel.h>

namespace qplug {

int configure_cpu_threads() {
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      const int cpus = CPU_COUNT(&set);
      if (cpus > 0 && cpus != at::get_num_threads()) at::set_num_threads(cpus);
    }
  }
  return at::get_num_threads();
}

bool configure_allocator() {
  const bool no_mmap = mallopt(M_MMAP_MAX, 0) == 1;
  const bool no_trim = mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1;
  return no_mmap && no_trim;
}

}  // namespace qplug
