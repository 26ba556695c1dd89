// Finding plugin files and examining them: the search path, the candidate files in a directory,
// reading a library's export names without loading it, and loading it once it passed.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/plugin_library.hpp"
#include "qplug/core/plugin_host.hpp"

namespace qplug {

std::vector<SearchDir> build_search_path(const PluginHostOptions& options);
// The *.so files directly in `dir`, sorted by name (so loading order is reproducible).
std::vector<std::string> candidate_files(const std::string& dir);

// Decodes "qplug_abi__sdk1_0__torch1_13_0__cxx11abi1__cuda0"; nullopt if malformed.
std::optional<AbiIdentity> parse_abi_tag(const std::string& symbol);

// Reads the library's exported names (boost::dll::library_info, no dlopen) and checks its ABI tag
// against the host's. Throws PluginLoadError: NotAPlugin (not a shared library, no descriptor),
// BadDescriptor (no or a malformed tag), ApiMajorMismatch, ApiTooNew, AbiMismatch.
AbiIdentity check_exports_without_loading(const std::string& path, const AbiIdentity& host);

// dlopen (RTLD_NOW | RTLD_LOCAL) and validate the descriptor against the tag and the host.
// Throws PluginLoadError: LoadFailed, BadDescriptor, ApiMajorMismatch, ApiTooNew, AbiMismatch.
std::shared_ptr<PluginLibrary> load_plugin_library(const std::string& path, const AbiIdentity& tag,
                                                   const AbiIdentity& host);

}  // namespace qplug
