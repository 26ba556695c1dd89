#include "awq_algorithm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <qplug/sdk/errors.hpp>

namespace qplug::awq {

namespace {

void check_weight(const at::Tensor& weight, int64_t group_size, const char* what) {
  if (weight.dim() != 2 || weight.scalar_type() != at::kFloat)
    throw KernelError(std::string(what) + ": expected a float32 [out, in] weight");
  if (group_size > 0 && weight.size(1) % group_size != 0)
    throw KernelError(std::string(what) + ": in_features " + std::to_string(weight.size(1)) +
                      " is not a multiple of group_size " + std::to_string(group_size));
  if (at::isnan(weight).any().item<bool>())
    throw KernelError(std::string(what) + ": the weight holds NaN");
}

// [out, in] -> [out * G, group] rows, one per quantization group.
at::Tensor by_group(const at::Tensor& weight, int64_t group_size) {
  const int64_t g = group_size > 0 ? group_size : weight.size(1);
  return weight.contiguous().view({-1, g});
}

}  // namespace

int64_t group_count(int64_t in_features, int64_t group_size) {
  return group_size > 0 ? in_features / group_size : 1;
}

at::Tensor pseudo_quantize(const at::Tensor& weight, int64_t group_size, int bits,
                           bool zero_point) {
  check_weight(weight, group_size, "AWQ pseudo-quantization");
  const at::Tensor w = by_group(weight, group_size);
  at::Tensor out;
  if (zero_point) {
    const double max_int = std::pow(2.0, bits) - 1;
    const at::Tensor max_val = w.amax(1, true);
    const at::Tensor min_val = w.amin(1, true);
    const at::Tensor scales = (max_val - min_val).clamp_min(1e-5) / max_int;
    const at::Tensor zeros = (-at::round(min_val / scales)).clamp_(0, max_int);
    out = (at::clamp(at::round(w / scales) + zeros, 0, max_int) - zeros) * scales;
  } else {
    const double max_int = std::pow(2.0, bits - 1) - 1;
    const double min_int = -std::pow(2.0, bits - 1);
    const at::Tensor scales = w.abs().amax(1, true).clamp_min(1e-5) / max_int;
    out = at::clamp(at::round(w / scales), min_int, max_int) * scales;
  }
  return out.view(weight.sizes());
}

void scaled_pseudo_quantize_into(const at::Tensor& weight, const at::Tensor& scales,
                                 int64_t group_size, int bits, bool zero_point, at::Tensor& out) {
  check_weight(weight, group_size, "AWQ scale search");
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const int64_t gs = group_size > 0 ? group_size : cols;
  if (scales.numel() != cols)
    throw KernelError("AWQ scale search: " + std::to_string(scales.numel()) + " scales for " +
                      std::to_string(cols) + " input channels");
  if (!out.defined() || out.sizes() != weight.sizes() || out.scalar_type() != at::kFloat)
    out = at::empty_like(weight, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor w = weight.contiguous();
  const at::Tensor s = scales.to(at::kFloat).contiguous();
  const float* wp = w.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float max_int = zero_point ? static_cast<float>(std::pow(2.0, bits) - 1)
                                   : static_cast<float>(std::pow(2.0, bits - 1) - 1);
  const float min_int = zero_point ? 0.0f : -static_cast<float>(std::pow(2.0, bits - 1));
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> scaled(static_cast<size_t>(gs));
    for (int64_t r = begin; r < end; ++r)
      for (int64_t g0 = 0; g0 < cols; g0 += gs) {
        const float* src = wp + r * cols + g0;
        float* dst = op + r * cols + g0;
        float lo = std::numeric_limits<float>::infinity(), hi = -lo, amax = 0;
        for (int64_t j = 0; j < gs; ++j) {
          const float v = src[j] * sp[g0 + j];
          scaled[static_cast<size_t>(j)] = v;
          lo = std::min(lo, v);
          hi = std::max(hi, v);
          amax = std::max(amax, std::fabs(v));
        }
        // The same float32 operations, in the same order, as pseudo_quantize's tensor code.
        if (zero_point) {
          const float step = std::max(hi - lo, 1e-5f) / max_int;
          const float zero = std::min(std::max(-std::nearbyint(lo / step), 0.0f), max_int);
          for (int64_t j = 0; j < gs; ++j) {
            const float q = std::min(
                std::max(std::nearbyint(scaled[static_cast<size_t>(j)] / step) + zero, 0.0f),
                max_int);
            dst[j] = (q - zero) * step / sp[g0 + j];
          }
        } else {
          const float step = std::max(amax, 1e-5f) / max_int;
          for (int64_t j = 0; j < gs; ++j) {
            const float q = std::min(
                std::max(std::nearbyint(scaled[static_cast<size_t>(j)] / step), min_int), max_int);
            dst[j] = q * step / sp[g0 + j];
          }
        }
      }
  });
}

AwqCodes quantize_codes(const at::Tensor& weight, int64_t group_size, int bits) {
  check_weight(weight, group_size, "AWQ quantization");
  const int64_t rows = weight.size(0);
  const at::Tensor w = by_group(weight, group_size);
  const double max_int = std::pow(2.0, bits) - 1;
  const at::Tensor max_val = w.amax(1, true);
  const at::Tensor min_val = w.amin(1, true);
  const at::Tensor scales = (max_val - min_val).clamp_min(1e-5) / max_int;
  const at::Tensor zeros = (-at::round(min_val / scales)).clamp_(0, max_int);
  const at::Tensor codes = at::clamp(at::round(w / scales) + zeros, 0, max_int);
  return {codes.view(weight.sizes()).to(at::kByte), zeros.view({rows, -1}).to(at::kByte),
          scales.view({rows, -1}).contiguous()};
}

at::Tensor weight_mean(const std::vector<at::Tensor>& weights, int64_t group_size) {
  if (weights.empty()) throw KernelError("AWQ weight_mean: no weights");
  const at::Tensor w = at::cat(weights, 0).to(at::kFloat);
  check_weight(w, group_size, "AWQ weight_mean");
  const at::Tensor groups = by_group(w, group_size).abs();
  const at::Tensor normalised = groups / (groups.amax(1, true) + 1e-6);
  return normalised.view(w.sizes()).mean(0);
}

at::Tensor activation_mean(const at::Tensor& x) {
  const at::Tensor flat = x.reshape({-1, x.size(-1)});
  return flat.abs().to(at::kFloat).sum(0) / static_cast<double>(flat.size(0));
}

at::Tensor candidate_scales(const at::Tensor& x_mean, const at::Tensor& w_mean, double ratio,
                            bool duo_scaling) {
  at::Tensor s = duo_scaling ? (x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4)).clamp_min(1e-4)
                             : x_mean.pow(ratio).clamp_min(1e-4);
  s = s / (s.max() * s.min()).sqrt();
  // A channel that never fires (x_mean 0) with ratio 0 and duo scaling stays finite; the guard
  // is for overflow, as in the reference.
  s.masked_fill_(at::isinf(s) | at::isnan(s), 1.0);
  return s;
}

at::Tensor search_clip(const at::Tensor& weight, const at::Tensor& input, int64_t group_size,
                       int bits, int n_grid, double max_shrink, int64_t n_sample_tokens) {
  check_weight(weight, group_size, "AWQ clip search");
  const int64_t out = weight.size(0), in = weight.size(1);
  const int64_t gs = group_size > 0 ? group_size : in;
  const int64_t groups = in / gs;
  // Subsampled tokens, grouped: [G, tokens, gs]. The reference broadcasts x * w over
  // [rows, tokens, G, gs] on a GPU; per-group batched matmuls compute the same sums without
  // materializing that product (gigabytes for a 4096-wide layer).
  at::Tensor x = input.reshape({-1, in}).to(at::kFloat);
  const int64_t step = std::max<int64_t>(1, x.size(0) / n_sample_tokens);
  x = x.slice(0, 0, x.size(0), step).reshape({-1, groups, gs}).permute({1, 0, 2}).contiguous();
  const int64_t batch = out % 256 == 0 ? 256 : 64;
  const int max_steps = static_cast<int>(max_shrink * n_grid);
  // [rows, G, gs] -> per-group outputs [G, tokens, rows].
  auto group_outputs = [&](const at::Tensor& w) { return at::bmm(x, w.permute({1, 2, 0})); };
  std::vector<at::Tensor> best_bounds;
  for (int64_t first = 0; first < out; first += batch) {
    const int64_t n = std::min(batch, out - first);
    const at::Tensor w = weight.slice(0, first, first + n).reshape({n, groups, gs});
    const at::Tensor org_max = w.abs().amax(-1, true);  // [n, G, 1]
    at::Tensor best_max = org_max.clone();
    at::Tensor min_err = at::full({n, groups, 1}, 1e9, org_max.options());
    const at::Tensor org_out = group_outputs(w);
    for (int i = 0; i < max_steps; ++i) {
      const at::Tensor max_val = org_max * (1 - static_cast<double>(i) / n_grid);
      const at::Tensor clipped = at::clamp(w, -max_val, max_val);
      const at::Tensor q =
          pseudo_quantize(clipped.reshape({n, in}), group_size, bits, true).reshape(w.sizes());
      // Mean over tokens of the squared output error, per (row, group).
      const at::Tensor err = (group_outputs(q) - org_out).pow(2).mean(1).t().unsqueeze(-1);
      const at::Tensor better = err < min_err;
      min_err = at::where(better, err, min_err);
      best_max = at::where(better, max_val, best_max);
    }
    best_bounds.push_back(best_max.view({n, groups}));
  }
  return at::cat(best_bounds, 0);
}

bool clip_skips(const std::string& layer_name) {
  for (const char* key : {"q_", "k_", "query", "key", "Wqkv"})
    if (layer_name.find(key) != std::string::npos) return true;
  return false;
}

}  // namespace qplug::awq
