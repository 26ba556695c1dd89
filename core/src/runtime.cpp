#include "qplug/core/runtime.hpp"

#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <limits>
#include <utility>

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

void restart_with_sleeping_idle_threads(char** argv) {
  bool changed = false;
  for (const auto& [name, value] :
       {std::pair<const char*, const char*>{"OMP_WAIT_POLICY", "passive"},
        std::pair<const char*, const char*>{"GOMP_SPINCOUNT", "30000"},
        std::pair<const char*, const char*>{"OPENBLAS_THREAD_TIMEOUT", "4"}}) {
    if (std::getenv(name) == nullptr) {
      setenv(name, value, 1);
      changed = true;
    }
  }
  if (changed) execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
}

}  // namespace qplug
