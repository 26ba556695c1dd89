// The one wrapper around every call from the host into plugin code. Whatever the plugin throws is
// turned into a host-owned qplug error that names the plugin and the step, so no exception object
// (whose type or message may live in the plugin) escapes the call.
#pragma once

#include <string>
#include <utility>

namespace qplug {

// Rethrows the exception being handled as a host-owned copy: qplug errors keep their class,
// anything else becomes PluginError("plugin '<owner>' failed in <step>: <what>").
[[noreturn]] void rethrow_as_host_error(const std::string& owner, const char* step);

template <class Function>
decltype(auto) guarded(const std::string& owner, const char* step, Function&& function) {
  try {
    return std::forward<Function>(function)();
  } catch (...) {
    rethrow_as_host_error(owner, step);
  }
}

}  // namespace qplug
