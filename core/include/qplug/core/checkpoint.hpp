// Hugging Face checkpoint folders: config.json + safetensors (single file or sharded).
#pragma once

#include <string>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/model_description.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

// Reads <folder>/config.json. Throws CheckpointError when the folder or file is missing and
// ConfigError (with line and column) when it is not valid JSON or not an object.
Value read_model_config(const std::string& folder);

// Checks, from headers alone, that a checkpoint holds exactly what the model expects: every tensor
// of every module (tied duplicates may be absent), with the expected shape; integer (packed)
// tensors with the expected dtype. Throws CheckpointError naming the file and the tensor: missing
// tensor, unexpected tensor, wrong shape, wrong dtype.
void check_checkpoint_matches(const ModelDescription& model, const CheckpointFiles& files);

}  // namespace qplug
