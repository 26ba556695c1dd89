// qplug plugins: what the host found on its plugin search path, and what it refused and why.
#include <iostream>

#include "cli.hpp"
#include "qplug/core/plugin_host.hpp"

namespace qplug::cli {

namespace {

Value plugin_json(const PluginInfo& p) {
  Value kernels = Value::list();
  for (const auto& k : p.kernels) {
    Value kv = Value::map();
    kv.set("name", k.name);
    kv.set("quant_method", k.quant_method);
    kv.set("device", k.device);
    kv.set("priority", k.priority);
    kernels.as_list().push_back(std::move(kv));
  }
  Value v = Value::map();
  v.set("name", p.name);
  v.set("version", p.version);
  v.set("vendor", p.vendor);
  v.set("description", p.description);
  v.set("quant_methods", Value::string_list(p.quant_methods));
  v.set("kernels", std::move(kernels));
  v.set("module_patches", Value::string_list(p.patches));
  v.set("sdk_api", std::to_string(p.abi.api_major) + "." + std::to_string(p.abi.api_minor));
  v.set("abi_tag", p.abi.tag());
  v.set("path", p.path);
  return v;
}

}  // namespace

int run_plugins(const std::vector<std::string>& argv) {
  Args args(argv, {"plugin-dir"}, {"json"});
  PluginHostOptions options;
  options.plugin_dirs = args.all("plugin-dir");
  PluginHost host(options);

  if (args.flag("json")) {
    Value out = Value::map();
    out.set("host_abi", PluginHost::host_abi().tag());
    Value search = Value::list();
    for (const auto& d : host.search_path()) {
      Value dv = Value::map();
      dv.set("path", d.path);
      dv.set("origin", d.origin);
      dv.set("exists", d.exists);
      search.as_list().push_back(std::move(dv));
    }
    out.set("search_path", std::move(search));
    Value plugins = Value::list();
    for (const auto& p : host.plugins())
      plugins.as_list().push_back(plugin_json(p));
    out.set("plugins", std::move(plugins));
    Value rejected = Value::list();
    for (const auto& r : host.rejected()) {
      Value rv = Value::map();
      rv.set("path", r.path);
      rv.set("reason", to_string(r.reason));
      rv.set("message", r.message);
      rejected.as_list().push_back(std::move(rv));
    }
    out.set("rejected", std::move(rejected));
    print_json(std::cout, out);
    return kExitOk;
  }

  std::cout << "host: " << PluginHost::host_abi().describe() << "\n\nsearch path:\n";
  for (const auto& d : host.search_path())
    std::cout << "  " << d.path << "  (" << d.origin << (d.exists ? "" : ", does not exist")
              << ")\n";
  std::cout << "\nplugins (" << host.plugins().size() << "):\n";
  for (const auto& p : host.plugins()) {
    std::cout << "  " << p.name << " " << p.version << "  " << p.description << "  [" << p.vendor
              << "]\n";
    std::string methods;
    for (const auto& m : p.quant_methods)
      methods += (methods.empty() ? "" : ", ") + m;
    std::cout << "    quant_methods: " << (methods.empty() ? "none" : methods) << "\n";
    for (const auto& k : p.kernels)
      std::cout << "    kernel: " << k.name << " (" << k.quant_method << ", " << k.device
                << ", priority " << k.priority << ")\n";
    for (const auto& patch : p.patches)
      std::cout << "    module patch: " << patch << "\n";
    std::cout << "    built for: " << p.abi.describe() << "\n    path: " << p.path << "\n";
  }
  std::cout << "\nrejected (" << host.rejected().size() << "):\n";
  for (const auto& r : host.rejected())
    std::cout << "  " << r.path << "\n    " << to_string(r.reason) << ": " << r.message << "\n";
  return kExitOk;
}

}  // namespace qplug::cli
