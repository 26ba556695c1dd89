#include "awq_calibration.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include <ATen/ATen.h>

#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/linear.hpp>
#include <qplug/sdk/torch_interop.hpp>

#include "awq_algorithm.hpp"
#include "packing.hpp"
#include "quantized_layers.hpp"

namespace qplug::awq {

namespace {

// The inspected module runs on this many tokens at a time: attention scores stay small.
constexpr int64_t kBatchTokens = 2048;

at::Tensor dense_weight(nn::LinearImpl& layer, const std::string& name) {
  if (layer.is_quantized())
    throw KernelError("AWQ needs the full-precision weight of '" + name +
                      "', but it is already quantized (" + layer.kernel().name() + ")");
  return layer.kernel().dequantize(DType::F32);
}

// One scaling group of the block being quantized, with what the search needs.
struct GroupWork {
  const ScalingGroup* group = nullptr;
  std::vector<nn::LinearImpl*> linears;  // every linear of the group, declaration order
  std::vector<bool> planned;             // which of them AWQ quantizes
  at::Tensor input;                      // their common input [samples, tokens, in], float32
  at::Tensor scales;                     // the search's result [in]
};

class AwqCalibration final : public BlockCalibration {
 public:
  AwqCalibration(const AwqSettings& settings, const QuantConfig& config,
                 std::vector<ScalingGroup> groups)
      : settings_(settings), config_(config), scaling_groups_(std::move(groups)) {}

  // Every layer of the block is observed in one pass over the unchanged block, as AutoAWQ
  // caches all input features before it searches anything.
  std::vector<std::vector<std::string>> layer_groups(
      int64_t block, const std::vector<std::string>& layers) override {
    block_ = block;
    return {layers};
  }

  void observe(const std::string& layer, const at::Tensor& input) override {
    if (!at::isfinite(input).all().item<bool>())
      throw KernelError("NaN or infinite activations reach '" + layer +
                        "' during calibration; the model or the calibration data is broken");
    inputs_[layer].push_back(input);
  }

  void quantize_group(Model& model, const std::vector<std::string>& layers,
                      HostServices& services) override {
    const std::set<std::string> planned(layers.begin(), layers.end());
    std::map<std::string, at::Tensor> inputs = gather_inputs(layers);
    inputs_.clear();

    // 1. Search every group's scales against the unchanged block, then fold them all in.
    std::vector<GroupWork> work;
    const std::string block = model.block_name(block_);
    const std::string prefix = block + ".";
    for (const ScalingGroup& g : scaling_groups_) {
      if (g.prev_op.rfind(prefix, 0) != 0) continue;
      GroupWork w;
      w.group = &g;
      for (const auto& name : g.linears) {
        nn::LinearImpl* l = model.find_linear(name);
        if (l == nullptr) throw KernelError("the scaling group names '" + name + "', no linear");
        w.linears.push_back(l);
        w.planned.push_back(planned.count(name) > 0);
        if (planned.count(name) && !w.input.defined()) w.input = inputs.at(name);
      }
      if (!w.input.defined()) continue;  // nothing of this group is quantized
      w.scales = search_scales(model, w);
      work.push_back(std::move(w));
      services.progress(block + ": searching scales", static_cast<int64_t>(work.size()),
                        static_cast<int64_t>(scaling_groups_.size()));
    }
    for (GroupWork& w : work)
      apply_scales(model, w, inputs);

    // 2. Clip, quantize and install, layer by layer.
    int64_t done = 0;
    for (const auto& name : layers) {
      nn::LinearImpl* layer = model.find_linear(name);
      at::Tensor weight = dense_weight(*layer, name);
      if (settings_.apply_clip && !clip_skips(name)) {
        const at::Tensor bound =
            search_clip(weight, inputs.at(name), settings_.group_size, settings_.bits);
        weight = clamp_groups(weight, bound);
      }
      inputs.erase(name);
      install(model, *layer, name, quantize_codes(weight, settings_.group_size, settings_.bits),
              services);
      services.progress(block + ": quantizing layers", ++done, static_cast<int64_t>(layers.size()));
    }
  }

 private:
  // Concatenates each layer's batches; layers fed the very same tensor (q, k and v read one
  // norm output) share one copy, so the block's inputs are held once.
  std::map<std::string, at::Tensor> gather_inputs(const std::vector<std::string>& layers) {
    std::map<std::string, at::Tensor> out;
    std::map<const void*, at::Tensor> by_source;
    for (const auto& name : layers) {
      auto it = inputs_.find(name);
      if (it == inputs_.end() || it->second.empty())
        throw KernelError("no calibration input reached '" + name + "'");
      const void* source = it->second.front().data_ptr();
      auto shared = by_source.find(source);
      if (shared == by_source.end())
        shared = by_source.emplace(source, at::cat(it->second, 0)).first;
      out[name] = shared->second;
    }
    return out;
  }

  // Runs the group's inspected module over all samples, a batch at a time. With `reference`
  // (the unchanged module's outputs, batch by batch) it returns the summed squared difference
  // and keeps nothing; without, it fills `reference`. Whole-set outputs are never materialized:
  // at hundreds of MB, every fresh allocation of one costs more in page faults than the matmuls.
  double run_inspected(Model& model, const GroupWork& w, std::vector<at::Tensor>& reference) {
    const at::Tensor& x = w.input;
    const int64_t batch = std::max<int64_t>(1, kBatchTokens / std::max<int64_t>(1, x.size(1)));
    const auto dtype = to_scalar_type(model.dtype());
    const bool filling = reference.empty();
    double squared_error = 0;
    for (int64_t first = 0, b = 0; first < x.size(0); first += batch, ++b) {
      const at::Tensor part = x.slice(0, first, std::min(first + batch, x.size(0))).to(dtype);
      at::Tensor out = model.run_block_module(block_, w.group->inspect, part).to(at::kFloat);
      if (filling)
        reference.push_back(std::move(out));
      else
        squared_error += (out - reference[b]).pow(2).sum().item<double>();
    }
    return squared_error;
  }

  // D.2: the grid search over ratio k / n_grid; the strictly smallest output error wins.
  at::Tensor search_scales(Model& model, GroupWork& w) {
    std::vector<at::Tensor> originals;
    for (size_t i = 0; i < w.linears.size(); ++i)
      originals.push_back(dense_weight(*w.linears[i], w.group->linears[i]));
    const at::Tensor x_mean = activation_mean(w.input);
    const at::Tensor w_mean = weight_mean(originals, settings_.group_size);
    std::vector<at::Tensor> reference;
    run_inspected(model, w, reference);
    int64_t outputs = 0;
    for (const at::Tensor& r : reference)
      outputs += r.numel();

    double best_loss = std::numeric_limits<double>::infinity();
    at::Tensor best;
    std::vector<at::Tensor> tries(w.linears.size());  // reused by every grid point
    try {
      for (int k = 0; k < settings_.n_grid; ++k) {
        const double ratio = static_cast<double>(k) / settings_.n_grid;
        const at::Tensor s = candidate_scales(x_mean, w_mean, ratio, settings_.duo_scaling);
        for (size_t i = 0; i < w.linears.size(); ++i) {
          if (!w.planned[i]) continue;  // a linear kept dense computes exactly at any scale
          scaled_pseudo_quantize_into(originals[i], s, settings_.group_size, settings_.bits,
                                      settings_.zero_point, tries[i]);
          w.linears[i]->kernel().load_tensor("weight", tries[i]);
        }
        const double loss = run_inspected(model, w, reference) / static_cast<double>(outputs);
        if (loss < best_loss) {
          best_loss = loss;
          best = s;
        }
      }
    } catch (...) {
      restore(w, originals);
      throw;
    }
    restore(w, originals);
    if (!best.defined())
      throw KernelError("AWQ's scale search for the group after '" + w.group->prev_op +
                        "' found no finite output error; the activations or weights are broken");
    return best;
  }

  static void restore(GroupWork& w, const std::vector<at::Tensor>& originals) {
    for (size_t i = 0; i < w.linears.size(); ++i)
      w.linears[i]->kernel().load_tensor("weight", originals[i]);
  }

  // D.2 folding: prev_op's outputs / s, the linears' input columns * s, their cached inputs / s.
  void apply_scales(Model& model, GroupWork& w, std::map<std::string, at::Tensor>& inputs) {
    model.divide_output_channels(w.group->prev_op, w.scales);
    const at::Tensor row = w.scales.view({1, -1});
    for (size_t i = 0; i < w.linears.size(); ++i)
      w.linears[i]->kernel().load_tensor("weight",
                                         dense_weight(*w.linears[i], w.group->linears[i]) * row);
    // The members share one input tensor (gather_inputs): divide it once, in place.
    std::set<const void*> divided;
    for (const auto& name : w.group->linears) {
      auto it = inputs.find(name);
      if (it != inputs.end() && divided.insert(it->second.data_ptr()).second)
        it->second.div_(w.scales);
    }
  }

  at::Tensor clamp_groups(const at::Tensor& weight, const at::Tensor& bound) const {
    const at::Tensor m = bound.unsqueeze(-1);  // [out, G, 1]
    return at::clamp(weight.reshape({weight.size(0), bound.size(1), -1}), -m, m)
        .reshape(weight.sizes());
  }

  void install(Model& model, nn::LinearImpl& layer, const std::string& name, const AwqCodes& q,
               HostServices& services) {
    OwnedKernel kernel = services.make_linear_kernel(
        "awq", shared::quantized_kernel_args(model, layer, name, config_, true));
    const at::Tensor scales = q.scales.to(at::kHalf);
    if (settings_.version == AwqVersion::Gemm) {
      kernel.kernel->load_tensor("qweight", packing::pack_awq_gemm(q.codes));
      kernel.kernel->load_tensor("qzeros", packing::pack_awq_gemm_zeros(q.zeros));
      kernel.kernel->load_tensor("scales", scales.t().contiguous());
    } else {
      kernel.kernel->load_tensor("qweight", packing::pack_awq_gemv(q.codes));
      kernel.kernel->load_tensor("qzeros",
                                 packing::pack_awq_gemv_zeros(q.zeros, settings_.group_size));
      kernel.kernel->load_tensor("scales", packing::awq_gemv_scales(scales, settings_.group_size));
    }
    if (layer.shape().has_bias) kernel.kernel->load_tensor("bias", layer.kernel().bias());
    kernel.kernel->process_weights_after_loading();
    layer.set_kernel(std::move(kernel));
  }

  AwqSettings settings_;
  const QuantConfig& config_;
  std::vector<ScalingGroup> scaling_groups_;
  int64_t block_ = 0;
  std::map<std::string, std::vector<at::Tensor>> inputs_;
};

}  // namespace

void quantize_with_calibration(Model& model, const TargetPlan& plan, const CalibrationData& data,
                               const AwqSettings& settings, const QuantConfig& config,
                               HostServices& services) {
  std::vector<ScalingGroup> groups = model.describe().scaling_groups;
  if (groups.empty())
    throw UnsupportedError(
        "AWQ needs the model's scaling groups (which op feeds which linears), "
        "and the " +
        model.model_type() + " architecture declares none; quantize it with gptq or bitsandbytes");
  AwqCalibration method(settings, config, std::move(groups));
  // AutoAWQ feeds every block the original model's activations.
  services.run_block_calibration_on_original_activations(model, plan, data, method);
}

}  // namespace qplug::awq
