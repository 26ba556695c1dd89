#include "qplug/sdk/guard.hpp"

#include <exception>
#include <new>

#include "qplug/sdk/errors.hpp"

namespace qplug {

// Each catch clause builds a new exception in host code from a copy of the caught one's data.
// The caught object (whose vtable, typeinfo or message buffer may belong to the plugin) is
// destroyed when its handler exits, before the host's copy propagates.
void rethrow_as_host_error(const std::string& owner, const char* step) {
  const std::string where = "plugin '" + owner + "' failed in " + step + ": ";
  try {
    throw;
  } catch (const ConfigError& e) {
    throw ConfigError(e.detail(), e.where(), e.key());
  } catch (const PluginLoadError& e) {
    throw PluginLoadError(e.reason(), e.path(), e.what());
  } catch (const CheckpointError& e) {
    throw CheckpointError(e.file(), e.tensor(), e.detail());
  } catch (const UnsupportedError& e) {
    throw UnsupportedError(e.what());
  } catch (const KernelError& e) {
    throw KernelError(where + e.what());
  } catch (const PluginError& e) {
    throw PluginError(e.plugin(), e.what());
  } catch (const Error& e) {
    throw PluginError(owner, where + e.what());
  } catch (const std::bad_alloc&) {
    throw PluginError(owner, where + "out of memory");
  } catch (const std::exception& e) {
    throw PluginError(owner, where + e.what());
  } catch (...) {
    throw PluginError(owner, where + "an exception that is not a std::exception");
  }
}

}  // namespace qplug
