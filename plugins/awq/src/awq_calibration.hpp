// AWQ through the host's block-by-block calibration pipeline: per block, the scale search over
// the model's declared scaling groups, folding the scales into the preceding ops, the clip search,
// then packing and installing the awq kernels.
#pragma once

#include <qplug/sdk/calibration.hpp>
#include <qplug/sdk/config.hpp>
#include <qplug/sdk/host_services.hpp>
#include <qplug/sdk/model.hpp>
#include <qplug/sdk/targeting.hpp>

#include "awq_config.hpp"

namespace qplug::awq {

void quantize_with_calibration(Model& model, const TargetPlan& plan, const CalibrationData& data,
                               const AwqSettings& settings, const QuantConfig& config,
                               HostServices& services);

}  // namespace qplug::awq
