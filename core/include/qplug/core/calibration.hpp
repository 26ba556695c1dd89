// The host side of calibration: calibration windows from a token stream, and the block-by-block
// pipeline that feeds a method's BlockCalibration (sdk/calibration.hpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "qplug/sdk/calibration.hpp"
#include "qplug/sdk/host_services.hpp"
#include "qplug/sdk/model.hpp"
#include "qplug/sdk/targeting.hpp"

namespace qplug {

// `samples` windows of `seq_len` tokens: BOS followed by seq_len - 1 tokens of the stream, the
// windows spread evenly over it and not overlapping. Throws ConfigError (key "nsamples") when
// the stream holds fewer than samples x (seq_len - 1) tokens.
CalibrationData make_calibration_data(const std::vector<int64_t>& tokens, int64_t samples,
                                      int64_t seq_len, int64_t bos_id);

// The windows a method asks for, from `file` (the command line's --calibration) or else the
// config's dataset: a text file, tokenized with the model folder's tokenizer.model, or a .ids file
// of token ids. Throws ConfigError naming the key (dataset / nsamples) when there is no file, the
// dataset names something that is not a file (qplug downloads nothing), or the text is too short.
CalibrationData load_calibration_data(const CalibrationRequest& request,
                                      const std::string& model_folder,
                                      const std::optional<std::string>& file, int64_t vocab_size,
                                      int64_t bos_id);

// The pipeline: embed every window, then for each block: the planned layers under it, in groups
// as the method says, each group observed over every sample and then quantized; the block's
// outputs through its quantized layers become the next block's inputs (or, when
// next_block_sees_quantized_outputs is false, its full-precision outputs computed before any of its
// layers changed: AutoAWQ's pipeline). Progress per block and group goes to services.progress.
void run_block_calibration(Model& model, const TargetPlan& plan, const CalibrationData& data,
                           BlockCalibration& method, HostServices& services,
                           bool next_block_sees_quantized_outputs = true);

}  // namespace qplug
