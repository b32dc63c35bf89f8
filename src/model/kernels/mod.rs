//! x86_64 SIMD kernels and graph passes that camtrapd adds to tract, and
//! what each replaces.
//!
//! tract 0.23.9 picks its compute kernels at run time from the CPU's
//! features. On aarch64 (Raspberry Pi 4/5, Jetson) and armv7 its own NEON
//! kernels run and nothing here is used: these modules only matter on x86_64
//! (development machines, x86 edge boxes). Each produces the scores of
//! tract's own kernels up to float rounding (`tests/model_bundle.rs`,
//! `own_kernels_give_the_scores_of_tracts_kernels`).
//!
//! | module | replaces in tract | needs | switch it off |
//! | --- | --- | --- | --- |
//! | [`depthwise_x86`] | the NCHW (channel-first) depthwise convolution walk, mostly scalar on x86: with a channel-inner kernel registered, tract lays depthwise convolutions out channel-last as it does on aarch64 | AVX-512F, or AVX2 + FMA | no run-time switch (the kernel is registered statically in tract's kernel registry); remove the module's `inventory::submit!` blocks and rebuild |
//! | [`matmul_x86`] | tract-linalg's AVX-512 matrix kernels for f32 products with a short inner dimension (K ≤ 48, the first expansion 1×1 convolutions), whose tile stores go one float at a time | AVX-512F | `CAMTRAPD_NO_SHORT_K_MATMUL=1` |
//! | [`zero_point`] (graph pass, every architecture) | the zero-point compensation tract computes on every frame for a quantised (`QLinearConv`) product whose weights' zero point is 0: three generic passes over the output that also keep the requantisation out of the integer kernel | nothing (int8 QOperator models only) | `CAMTRAPD_NO_ZERO_POINT_FOLD=1` |
//! | [`quantize_u8`] (graph pass, every architecture) | tract's scalar f32 → u8 `QuantizeLinear`, and the ReLU6 clamp before it when the quantiser saturates at the same bounds | nothing (int8 models only) | `CAMTRAPD_NO_FAST_QUANTIZE=1` |
//! | [`depthwise_fused`] | the pair of nodes tract runs for a depthwise convolution and the ReLU6 after it (`DepthWise` then `Max`+`Min`): one operator, clamped in registers, keeping its output tensor between frames | AVX-512F | `CAMTRAPD_NO_FUSED_DEPTHWISE=1` |
//!
//! The environment variables are read when a model is loaded (start-up and
//! SIGHUP), so they are meant for comparisons (`camtrapd bench`) and for
//! ruling a kernel out while chasing a bug. `camtrapd bench --profile` shows
//! which kernel each node runs. The figures these kernels bought are in
//! `docs/benchmarks.md`.

pub mod depthwise_fused;
pub mod depthwise_x86;
pub mod matmul_x86;
pub mod quantize_u8;
pub mod zero_point;
