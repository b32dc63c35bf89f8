//! Channel-last (NHWC) depthwise convolution kernels for x86_64, plugged
//! into tract's kernel registry.
//!
//! tract 0.23.9 runs a depthwise convolution (a `Conv` with
//! `group == channels`, the "dw" layer of MobileNet/EfficientNet blocks) in
//! one of two layouts. With the channel as the outer axis (NCHW, as exported
//! from PyTorch) it walks each channel's plane; its x86 kernel for that walk
//! is vectorised only for stride 1 and only on the interior of the plane, so
//! the strided layers and the small 7×7 and 14×14 planes of the late blocks
//! (where most output points touch the padding) run scalar. With the
//! channel as the inner axis (NHWC) every output point is a run of
//! contiguous channels and vectorises whatever the stride and padding; tract
//! switches a depthwise convolution to that layout on its own (its
//! `suggested_axis_changes`), but only where tract-linalg has a
//! channel-inner kernel, and 0.23.9 ships one for aarch64 and wasm only.
//!
//! This module supplies that kernel for x86_64 (AVX-512F, and AVX2 + FMA for
//! older CPUs), with the exact contract of tract-linalg's
//! [`DepthwiseCF32`](tract_linalg::routines::DepthwiseCF32) and of its
//! aarch64 kernel (`arm64simd_depthwise_c_f32`), registered through the same
//! `inventory` collection tract-linalg's own kernels use. tract then picks
//! it like one of its own: on EfficientNet-Lite0 on one x86 core the
//! depthwise layers get several times faster (figures in
//! docs/benchmarks.md). Nothing changes on ARM, where tract has its own kernel.
//!
//! The arithmetic is bias + Σ tap × input with fused multiply-adds, as on
//! aarch64; results differ from the scalar walk by float rounding only
//! (≈ 1e-6 relative), well within the model golden tests' tolerance.

/// The registered kernels' names, for logs: what tract picks on this CPU
/// for a channel-inner depthwise convolution, if anything.
pub fn selected() -> Option<&'static str> {
    // Referencing this module from `Model::load` also keeps its object file,
    // and so its `inventory` registrations, in the final binary.
    tract_linalg::routines::best_for(
        tract_linalg::routines::Func::DepthwiseC,
        tract_onnx::prelude::DatumType::F32,
        &tract_linalg::isa::native(),
    )
    .map(|r| r.name())
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;
    use tract_linalg::isa::{Arch, Isa, IsaReq};
    use tract_linalg::routines::{Func, Routine, RoutineFactory};

    /// One channel-inner depthwise run (tract-linalg's `DepthwiseCF32`
    /// contract): `len` output positions of `channels` contiguous channels.
    /// Point `i`, channel `c` = `bias[c]` + Σₜ
    /// `kernel[tap_indices[t] * k_stride + c] * input[i * in_stride + offsets[t] + c]`.
    ///
    /// # Safety
    /// As tract-linalg's `DepthwiseCF32`: every address named above must be
    /// readable (writable for the output) for every tap, every `i < len` and
    /// every `c < channels`; the CPU must support AVX-512F.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn depthwise_c_avx512(
        input: *const f32,
        output: *mut f32,
        kernel: *const f32,
        tap_indices: &[usize],
        offsets: &[isize],
        bias: *const f32,
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
    ) {
        // SAFETY: the caller's contract; registered only for CPUs with AVX-512F.
        unsafe {
            avx512(
                input,
                output,
                kernel,
                tap_indices,
                offsets,
                bias,
                channels,
                k_stride,
                len,
                in_stride,
                out_stride,
            )
        }
    }

    /// [`depthwise_c_avx512`] for CPUs with AVX2 and FMA only.
    ///
    /// # Safety
    /// As [`depthwise_c_avx512`]; the CPU must support AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn depthwise_c_avx2(
        input: *const f32,
        output: *mut f32,
        kernel: *const f32,
        tap_indices: &[usize],
        offsets: &[isize],
        bias: *const f32,
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
    ) {
        // SAFETY: the caller's contract; registered only for CPUs with AVX2 + FMA.
        unsafe {
            avx2(
                input,
                output,
                kernel,
                tap_indices,
                offsets,
                bias,
                channels,
                k_stride,
                len,
                in_stride,
                out_stride,
            )
        }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx512(
        input: *const f32,
        output: *mut f32,
        kernel: *const f32,
        tap_indices: &[usize],
        offsets: &[isize],
        bias: *const f32,
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
    ) {
        unsafe {
            for i in 0..len {
                let iptr = input.offset(i as isize * in_stride);
                let optr = output.offset(i as isize * out_stride);
                let mut c = 0usize;
                while c + 64 <= channels {
                    let mut a0 = _mm512_loadu_ps(bias.add(c));
                    let mut a1 = _mm512_loadu_ps(bias.add(c + 16));
                    let mut a2 = _mm512_loadu_ps(bias.add(c + 32));
                    let mut a3 = _mm512_loadu_ps(bias.add(c + 48));
                    for (&kix, &off) in tap_indices.iter().zip(offsets) {
                        let k = kernel.add(kix * k_stride + c);
                        let x = iptr.offset(off).add(c);
                        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(k), a0);
                        a1 = _mm512_fmadd_ps(
                            _mm512_loadu_ps(x.add(16)),
                            _mm512_loadu_ps(k.add(16)),
                            a1,
                        );
                        a2 = _mm512_fmadd_ps(
                            _mm512_loadu_ps(x.add(32)),
                            _mm512_loadu_ps(k.add(32)),
                            a2,
                        );
                        a3 = _mm512_fmadd_ps(
                            _mm512_loadu_ps(x.add(48)),
                            _mm512_loadu_ps(k.add(48)),
                            a3,
                        );
                    }
                    _mm512_storeu_ps(optr.add(c), a0);
                    _mm512_storeu_ps(optr.add(c + 16), a1);
                    _mm512_storeu_ps(optr.add(c + 32), a2);
                    _mm512_storeu_ps(optr.add(c + 48), a3);
                    c += 64;
                }
                while c < channels {
                    // 16 channels at a time; the last block masked.
                    let rest = channels - c;
                    let m: __mmask16 = if rest >= 16 {
                        0xffff
                    } else {
                        (1u16 << rest) - 1
                    };
                    let mut a = _mm512_maskz_loadu_ps(m, bias.add(c));
                    for (&kix, &off) in tap_indices.iter().zip(offsets) {
                        a = _mm512_fmadd_ps(
                            _mm512_maskz_loadu_ps(m, iptr.offset(off).add(c)),
                            _mm512_maskz_loadu_ps(m, kernel.add(kix * k_stride + c)),
                            a,
                        );
                    }
                    _mm512_mask_storeu_ps(optr.add(c), m, a);
                    c += 16;
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx2(
        input: *const f32,
        output: *mut f32,
        kernel: *const f32,
        tap_indices: &[usize],
        offsets: &[isize],
        bias: *const f32,
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
    ) {
        unsafe {
            for i in 0..len {
                let iptr = input.offset(i as isize * in_stride);
                let optr = output.offset(i as isize * out_stride);
                let mut c = 0usize;
                while c + 32 <= channels {
                    let mut a0 = _mm256_loadu_ps(bias.add(c));
                    let mut a1 = _mm256_loadu_ps(bias.add(c + 8));
                    let mut a2 = _mm256_loadu_ps(bias.add(c + 16));
                    let mut a3 = _mm256_loadu_ps(bias.add(c + 24));
                    for (&kix, &off) in tap_indices.iter().zip(offsets) {
                        let k = kernel.add(kix * k_stride + c);
                        let x = iptr.offset(off).add(c);
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(k), a0);
                        a1 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(x.add(8)),
                            _mm256_loadu_ps(k.add(8)),
                            a1,
                        );
                        a2 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(x.add(16)),
                            _mm256_loadu_ps(k.add(16)),
                            a2,
                        );
                        a3 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(x.add(24)),
                            _mm256_loadu_ps(k.add(24)),
                            a3,
                        );
                    }
                    _mm256_storeu_ps(optr.add(c), a0);
                    _mm256_storeu_ps(optr.add(c + 8), a1);
                    _mm256_storeu_ps(optr.add(c + 16), a2);
                    _mm256_storeu_ps(optr.add(c + 24), a3);
                    c += 32;
                }
                while c + 8 <= channels {
                    let mut a = _mm256_loadu_ps(bias.add(c));
                    for (&kix, &off) in tap_indices.iter().zip(offsets) {
                        a = _mm256_fmadd_ps(
                            _mm256_loadu_ps(iptr.offset(off).add(c)),
                            _mm256_loadu_ps(kernel.add(kix * k_stride + c)),
                            a,
                        );
                    }
                    _mm256_storeu_ps(optr.add(c), a);
                    c += 8;
                }
                while c < channels {
                    let mut sum = *bias.add(c);
                    for (&kix, &off) in tap_indices.iter().zip(offsets) {
                        sum = (*kernel.add(kix * k_stride + c))
                            .mul_add(*iptr.offset(off).add(c), sum);
                    }
                    *optr.add(c) = sum;
                    c += 1;
                }
            }
        }
    }

    inventory::submit! {
        Routine {
            func: Func::DepthwiseC,
            arch: Some(Arch::X86_64),
            isa: IsaReq::ANY.needing(&[Isa::X86_64Avx512f]),
            boost: 0,
            round_trip: false,
            factory: RoutineFactory::DepthwiseCF32 {
                name: "camtrapd_avx512_depthwise_c_f32",
                run: depthwise_c_avx512,
            },
        }
    }

    inventory::submit! {
        Routine {
            func: Func::DepthwiseC,
            arch: Some(Arch::X86_64),
            isa: IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]),
            boost: 0,
            round_trip: false,
            factory: RoutineFactory::DepthwiseCF32 {
                name: "camtrapd_avx2_depthwise_c_f32",
                run: depthwise_c_avx2,
            },
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::imp::{depthwise_c_avx2, depthwise_c_avx512};

    type Kernel = unsafe fn(
        *const f32,
        *mut f32,
        *const f32,
        &[usize],
        &[isize],
        *const f32,
        usize,
        usize,
        usize,
        isize,
        isize,
    );

    /// Runs `ker` on a channel-last 1-D problem (positions × channels,
    /// `taps` taps, input stride `stride` positions) and compares it with
    /// the definition, computed in f64.
    fn check(ker: Kernel, channels: usize, taps: usize, len: usize, stride: usize) {
        let k_stride = channels + 3; // a per-tap stride wider than the block
        let positions = len * stride + taps;
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        let input: Vec<f32> = (0..positions * channels).map(val).collect();
        let kernel: Vec<f32> = (0..taps * k_stride).map(|i| val(i + 17)).collect();
        let bias: Vec<f32> = (0..channels).map(|i| val(i + 5)).collect();
        // Taps in a shuffled order, as tract's zones list them.
        let tap_indices: Vec<usize> = (0..taps).rev().collect();
        let offsets: Vec<isize> = tap_indices
            .iter()
            .map(|&t| (t * channels) as isize)
            .collect();
        let out_stride = channels + 1;
        let mut out = vec![f32::NAN; len * out_stride];
        unsafe {
            ker(
                input.as_ptr(),
                out.as_mut_ptr(),
                kernel.as_ptr(),
                &tap_indices,
                &offsets,
                bias.as_ptr(),
                channels,
                k_stride,
                len,
                (stride * channels) as isize,
                out_stride as isize,
            )
        };
        for i in 0..len {
            for c in 0..channels {
                let mut want = f64::from(bias[c]);
                for t in 0..taps {
                    want += f64::from(kernel[t * k_stride + c])
                        * f64::from(input[(i * stride + t) * channels + c]);
                }
                let got = f64::from(out[i * out_stride + c]);
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "channels {channels} taps {taps} stride {stride}: point {i} channel {c}: {got} != {want}"
                );
            }
            // The gap between output positions is left alone.
            assert!(out[i * out_stride + channels].is_nan());
        }
    }

    #[test]
    fn avx2_kernel_matches_the_definition() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("no AVX2/FMA on this CPU: skipped");
            return;
        }
        for channels in [1, 7, 8, 16, 31, 32, 40, 96, 1152] {
            for (taps, stride) in [(1, 1), (9, 1), (25, 2), (3, 2)] {
                check(depthwise_c_avx2, channels, taps, 5, stride);
            }
        }
    }

    #[test]
    fn avx512_kernel_matches_the_definition() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512F on this CPU: skipped");
            return;
        }
        for channels in [1, 7, 15, 16, 17, 63, 64, 80, 96, 1152] {
            for (taps, stride) in [(1, 1), (9, 1), (25, 2), (3, 2)] {
                check(depthwise_c_avx512, channels, taps, 5, stride);
            }
        }
    }

    #[test]
    fn tract_picks_a_channel_inner_kernel_on_this_cpu() {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = is_x86_feature_detected!("avx512f");
        let want = if avx512 {
            Some("camtrapd_avx512_depthwise_c_f32")
        } else if avx2 {
            Some("camtrapd_avx2_depthwise_c_f32")
        } else {
            None
        };
        assert_eq!(super::selected(), want);
    }
}
