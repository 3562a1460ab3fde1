// Probes of what this machine can do, for roofline ratios: streaming read
// bandwidth and peak fp32 FMA rate, both on `threads` threads.
#pragma once

namespace flashneox::cpu {

double measure_read_bandwidth(int threads, double seconds = 0.5);  // bytes/s
double measure_fma_peak(int threads, double seconds = 0.3);        // FLOP/s (an FMA is 2)

}  // namespace flashneox::cpu
