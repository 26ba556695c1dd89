// Resident memory of this process, for tests that bound what an operation keeps or peaks at.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace qplug::testing {

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1.
inline int64_t status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so the peak is the operation's and not an
// earlier moment's. Returns false where the kernel refuses.
inline bool reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.close();
  return static_cast<bool>(out);
}

}  // namespace qplug::testing
