// A loaded plugin library. Everything created from a plugin's code holds a shared_ptr to its
// PluginLibrary, so the code outlives every object it made. Libraries are in fact never unloaded
// (see keep_loaded_until_exit): unloading a LibTorch-linked library while the process still runs
// static destructors or holds registrations is a crash waiting to happen.
#pragma once

#include <memory>
#include <string>

#include <boost/dll/shared_library.hpp>

#include "qplug/sdk/abi.hpp"
#include "qplug/sdk/descriptor.h"

namespace qplug {

struct PluginLibrary {
  boost::dll::shared_library library;
  std::string path;
  std::string name;
  std::string version;
  std::string vendor;
  std::string description;
  AbiIdentity abi;
  qplug_register_fn register_fn = nullptr;
};

// Adds the library to a process-lifetime list that is never destroyed.
void keep_loaded_until_exit(const std::shared_ptr<PluginLibrary>& library);

}  // namespace qplug
