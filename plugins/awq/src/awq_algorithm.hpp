// AWQ's arithmetic (FORMATS.md D.1-D.3), free of any model: the group-wise asymmetric
// quantization, the per-channel weight and activation means the scale search starts from, the
// candidate scales of one grid point, and the clip search. The calibration pipeline
// (awq_calibration.cpp) runs these against a real block.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qplug::awq {

// Integer codes of a weight quantized the AutoAWQ way (zero point, group-wise along the inputs).
struct AwqCodes {
  at::Tensor codes;   // uint8 [out, in], in [0, 2^bits - 1]
  at::Tensor zeros;   // uint8 [out, G], in [0, 2^bits - 1]
  at::Tensor scales;  // float32 [out, G]
};

// group_size -1 (or <= 0) means one group over the whole row, as in AutoAWQ.
int64_t group_count(int64_t in_features, int64_t group_size);

// AutoAWQ's pseudo_quantize_tensor: float32 [out, in] -> the dequantized float32 [out, in].
// With zero_point, scale = max(max - min, 1e-5) / (2^bits - 1) per group (0 not forced into the
// range) and zero = clamp(-round(min / scale), 0, 2^bits - 1); without, symmetric to 2^(bits-1)-1.
// Throws KernelError when in_features is not a multiple of group_size or the weight has NaNs.
at::Tensor pseudo_quantize(const at::Tensor& weight, int64_t group_size, int bits, bool zero_point);
// What the scale search tries at every grid point, pseudo_quantize(weight * s) / s with s
// broadcast over the rows, in one pass and without temporaries: into `out` (float32, the shape
// of weight), so one buffer serves every grid point. A 4096 x 11008 weight would otherwise
// allocate ~2 GB of fresh temporaries per try, and page faults cost more than the arithmetic.
// Bit-identical to the unfused expression.
void scaled_pseudo_quantize_into(const at::Tensor& weight, const at::Tensor& scales,
                                 int64_t group_size, int bits, bool zero_point, at::Tensor& out);
// The same quantization (zero point only: the packed layouts store zeros), as codes.
AwqCodes quantize_codes(const at::Tensor& weight, int64_t group_size, int bits);

// D.2 w_mean: the linears' weights [out_i, in] stacked along the outputs, each group of
// group_size inputs divided by its max |w| + 1e-6, averaged over all rows -> float32 [in].
at::Tensor weight_mean(const std::vector<at::Tensor>& weights, int64_t group_size);
// D.2 x_mean: mean |x| per input channel over every token, accumulated in float32 -> [in].
at::Tensor activation_mean(const at::Tensor& x);
// D.2 the scales of grid point `ratio` (k / n_grid): duo scaling or llm-awq's x_mean^ratio,
// normalised by sqrt(max * min), inf/NaN entries set to 1.
at::Tensor candidate_scales(const at::Tensor& x_mean, const at::Tensor& w_mean, double ratio,
                            bool duo_scaling);

// D.3: the per-(row, group) clip bound of one linear. weight float32 [out, in] (already scaled),
// input float32 [tokens, in] (already divided by the scales). Returns float32 [out, G].
at::Tensor search_clip(const at::Tensor& weight, const at::Tensor& input, int64_t group_size,
                       int bits, int n_grid = 20, double max_shrink = 0.5,
                       int64_t n_sample_tokens = 512);
// True for the layers D.3 skips (q/k projections: clipping them hurts attention scores).
bool clip_skips(const std::string& layer_name);

}  // namespace qplug::awq
