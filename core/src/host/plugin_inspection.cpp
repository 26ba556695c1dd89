#include <cstring>
#include <fstream>
#include <mutex>
#include <regex>
#include <vector>

#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "host/plugin_files.hpp"
#include "qplug/sdk/config.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

namespace {

[[noreturn]] void reject(PluginLoadReason reason, const std::string& path,
                         const std::string& message) {
  throw PluginLoadError(reason, path, message);
}

// The same identity, except the API minor: a plugin may be built for an older minor.
bool same_binary_identity(const AbiIdentity& a, const AbiIdentity& b) {
  return a.torch_major == b.torch_major && a.torch_minor == b.torch_minor &&
         a.torch_patch == b.torch_patch && a.cxx11_abi == b.cxx11_abi &&
         a.cuda_major == b.cuda_major;
}

void check_against_host(const std::string& path, const AbiIdentity& plugin,
                        const AbiIdentity& host) {
  if (plugin.api_major != host.api_major)
    reject(PluginLoadReason::ApiMajorMismatch, path,
           "built for qplug SDK API " + std::to_string(plugin.api_major) + "." +
               std::to_string(plugin.api_minor) + ", but this host implements API " +
               std::to_string(host.api_major) + "." + std::to_string(host.api_minor) +
               "; rebuild the plugin against this qplug SDK");
  if (plugin.api_minor > host.api_minor)
    reject(PluginLoadReason::ApiTooNew, path,
           "built for qplug SDK API " + std::to_string(plugin.api_major) + "." +
               std::to_string(plugin.api_minor) + ", newer than this host's API " +
               std::to_string(host.api_major) + "." + std::to_string(host.api_minor) +
               "; upgrade qplug or rebuild the plugin against this qplug SDK");
  if (!same_binary_identity(plugin, host))
    reject(PluginLoadReason::AbiMismatch, path,
           "built with " + plugin.describe() + ", but this host uses " + host.describe() +
               "; rebuild the plugin against LibTorch " + host.torch_version() +
               (host.cuda_major == 0 ? std::string(" (CPU-only)")
                                     : " with CUDA " + std::to_string(host.cuda_major)) +
               " and the same compiler settings as the host");
}

}  // namespace

std::optional<AbiIdentity> parse_abi_tag(const std::string& symbol) {
  static const std::regex pattern(
      "qplug_abi__sdk([0-9]+)_([0-9]+)__torch([0-9]+)_([0-9]+)_([0-9]+)__cxx11abi([01])__cuda("
      "[0-9]+)");
  std::smatch m;
  if (!std::regex_match(symbol, m, pattern)) return std::nullopt;
  AbiIdentity id;
  try {
    id.api_major = std::stoi(m[1]);
    id.api_minor = std::stoi(m[2]);
    id.torch_major = std::stoi(m[3]);
    id.torch_minor = std::stoi(m[4]);
    id.torch_patch = std::stoi(m[5]);
    id.cxx11_abi = std::stoi(m[6]);
    id.cuda_major = std::stoi(m[7]);
  } catch (const std::exception&) {
    return std::nullopt;  // a number too large for int
  }
  return id;
}

AbiIdentity check_exports_without_loading(const std::string& path, const AbiIdentity& host) {
  // library_info's own complaint about a non-ELF file is an iostream error; say it plainly.
  {
    std::ifstream file(path, std::ios::binary);
    char magic[4] = {};
    if (!file.read(magic, 4) || std::memcmp(magic,
                                            "\x7f"
                                            "ELF",
                                            4) != 0)
      reject(PluginLoadReason::NotAPlugin, path, "not an ELF shared library");
  }
  std::vector<std::string> exports;
  try {
    boost::dll::library_info info(boost::dll::fs::path(path), /*throw_if_not_native=*/true);
    exports = info.symbols(BOOST_STRINGIZE(QPLUG_EXPORT_SECTION));
  } catch (const std::exception& e) {
    reject(PluginLoadReason::NotAPlugin, path,
           std::string("not a shared library this host can read (") + e.what() + ")");
  }
  bool has_descriptor = false;
  std::vector<std::string> tags;
  for (const auto& name : exports) {
    if (name == QPLUG_DESCRIPTOR_SYMBOL) has_descriptor = true;
    if (name.rfind(QPLUG_ABI_TAG_PREFIX, 0) == 0) tags.push_back(name);
  }
  if (!has_descriptor)
    reject(PluginLoadReason::NotAPlugin, path,
           "no qplug_descriptor export: not a qplug plugin (plugins export one with "
           "QPLUG_PLUGIN from <qplug/sdk/plugin.hpp>)");
  if (tags.size() != 1)
    reject(PluginLoadReason::BadDescriptor, path,
           tags.empty() ? "exports a descriptor but no ABI tag; rebuild it with QPLUG_PLUGIN"
                        : "exports " + std::to_string(tags.size()) +
                              " ABI tags; a plugin exports exactly one (one QPLUG_PLUGIN)");
  const std::optional<AbiIdentity> tag = parse_abi_tag(tags.front());
  if (!tag)
    reject(PluginLoadReason::BadDescriptor, path,
           "malformed ABI tag '" + tags.front() + "'; rebuild it with QPLUG_PLUGIN");
  check_against_host(path, *tag, host);
  return *tag;
}

std::shared_ptr<PluginLibrary> load_plugin_library(const std::string& path, const AbiIdentity& tag,
                                                   const AbiIdentity& host) {
  auto plugin = std::make_shared<PluginLibrary>();
  plugin->path = path;
  try {
    plugin->library.load(boost::dll::fs::path(path),
                         boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    reject(PluginLoadReason::LoadFailed, path,
           std::string("cannot be loaded: ") + e.what() +
               " (a missing dependency or a plugin built against another libqplug_core)");
  }
  const qplug_plugin_descriptor* d = nullptr;
  try {
    d = &plugin->library.get_alias<const qplug_plugin_descriptor>(QPLUG_DESCRIPTOR_SYMBOL);
  } catch (const std::exception& e) {
    reject(PluginLoadReason::BadDescriptor, path,
           std::string("its qplug_descriptor cannot be resolved: ") + e.what());
  }
  if (d == nullptr || d->magic != QPLUG_DESCRIPTOR_MAGIC)
    reject(PluginLoadReason::BadDescriptor, path,
           "qplug_descriptor does not point at a qplug descriptor (wrong magic number)");
  if (d->struct_size < sizeof(qplug_plugin_descriptor))
    reject(PluginLoadReason::BadDescriptor, path,
           "its descriptor is " + std::to_string(d->struct_size) + " bytes, smaller than the " +
               std::to_string(sizeof(qplug_plugin_descriptor)) + " this host needs");
  AbiIdentity declared;
  declared.api_major = d->api_major;
  declared.api_minor = d->api_minor;
  declared.torch_major = d->torch_major;
  declared.torch_minor = d->torch_minor;
  declared.torch_patch = d->torch_patch;
  declared.cxx11_abi = d->cxx11_abi;
  declared.cuda_major = static_cast<int>(d->cuda_version / 1000);
  if (declared.tag() != tag.tag())
    reject(PluginLoadReason::BadDescriptor, path,
           "its descriptor (" + declared.describe() + ") disagrees with its ABI tag (" +
               tag.describe() + "); rebuild it with QPLUG_PLUGIN");
  check_against_host(path, declared, host);
  if (d->name == nullptr || !is_valid_quant_method(d->name))
    reject(PluginLoadReason::BadDescriptor, path,
           "its descriptor has no valid plugin name ([a-z0-9_-]+)");
  if (d->register_fn == nullptr)
    reject(PluginLoadReason::BadDescriptor, path, "its descriptor has no register function");
  plugin->name = d->name;
  plugin->version = d->version ? d->version : "";
  plugin->vendor = d->vendor ? d->vendor : "";
  plugin->description = d->description ? d->description : "";
  plugin->abi = declared;
  plugin->register_fn = d->register_fn;
  return plugin;
}

void keep_loaded_until_exit(const std::shared_ptr<PluginLibrary>& library) {
  // Deliberately leaked: never destroyed, so no plugin is unloaded during static destruction.
  static auto* libraries = new std::vector<std::shared_ptr<PluginLibrary>>();
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  libraries->push_back(library);
}

}  // namespace qplug
