//! A 16×16 f32 matrix-multiplication kernel for x86_64 with AVX-512F,
//! plugged into tract's kernel registry, for the short-K products of
//! MobileNet/EfficientNet expansion convolutions.
//!
//! tract lowers a 1×1 convolution to a matrix product C = A·B (M×K by K×N)
//! computed tile by tile by a micro-kernel. tract-linalg 0.23.9's AVX-512
//! kernels write each finished tile element by element (`vextractps`, one
//! store per float) whatever the layout of C. Over a long K (hundreds of
//! input channels) that store is noise; over the short K of the first
//! expansion layers (K = 16, 24, 27, 32, 40 input channels, on 112×112 and
//! 56×56 maps) it costs as much as the multiply-adds: `camtrapd bench
//! --profile` shows these layers at 40–90 GFLOP/s where the long-K layers
//! reach 130–160.
//!
//! This kernel keeps each tile row (16 values of N) in one 512-bit register.
//! It stores a row with one vector store when C's N axis is contiguous (the
//! channel-last outputs of those layers), and transposes the tile in
//! registers (the classic unpack/shuffle 16×16 transpose) and stores
//! columns when C's M axis is contiguous. It is registered with tract's
//! `inventory` collections like tract's own kernels (an
//! [`MmmRoutine`](tract_linalg::mmm_routines::MmmRoutine)) together with a
//! dispatch tier ([`MmmTier`](tract_linalg::mmm_tiers::MmmTier)) that
//! names it only for f32 products with K ≤ 48, M and N multiples of 16 and
//! M ≥ N (tract puts the larger side on M; the stem, whose B operand is an
//! im2col gathered on the fly, is M < N and stays with tract); `CAMTRAPD_NO_SHORT_K_MATMUL=1` turns it off;
//! every other product keeps tract's choice. It implements tract's whole
//! fused-operation contract for f32 (bias per row or column, clamps,
//! element-wise add of another tensor, ...), so tract fuses the
//! convolution's bias and ReLU6 into it as into its own kernels.
//!
//! The arithmetic is Σₖ A·B with fused multiply-adds in K order, as in
//! tract's kernels; results match them up to float rounding.

/// The kernel's name, as tract's profile shows it.
pub const KERNEL_NAME: &str = "camtrapd_avx512_mmm_f32_16x16";

/// Largest K (the product's inner dimension, e.g. a 1×1 convolution's input
/// channels) for which the dispatch tier names this kernel.
pub const MAX_K: usize = 48;

/// Environment variable that, when set (to anything), leaves the dispatch
/// to tract alone: this kernel is then never named.
pub const DISABLE_ENV: &str = "CAMTRAPD_NO_SHORT_K_MATMUL";

/// Whether this kernel can run on this CPU (x86_64 with AVX-512F), for logs
/// and tests. Referencing this module from `Model::load` also keeps its
/// object file, and so its `inventory` registrations, in the final binary.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use tract_linalg::isa::{Arch, Isa, IsaReq, IsaSet};
    use tract_linalg::mmm::{DynKernel, FusedKerSpec, OutputStoreKer, Query, Suitable};
    use tract_linalg::mmm_routines::MmmRoutine;
    use tract_linalg::mmm_tiers::MmmTier;
    use tract_linalg::pack::PackedFormat;
    use tract_linalg::WeightType;
    use tract_onnx::prelude::DatumType;

    use super::{KERNEL_NAME, MAX_K};

    const MR: usize = 16;
    const NR: usize = 16;

    type Tile = [__m512; MR];

    /// In-register transpose of a 16×16 f32 tile (row `i` lane `j` ↔ row
    /// `j` lane `i`): unpack pairs, shuffle quads, then two rounds of
    /// 128-bit lane shuffles.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn transpose(r: &mut Tile) {
        let mut t = [_mm512_setzero_ps(); 16];
        for p in 0..8 {
            t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
        }
        for q in 0..4 {
            let (a, b, c, d) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
            r[4 * q] = _mm512_shuffle_ps::<0x44>(a, c);
            r[4 * q + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
            r[4 * q + 2] = _mm512_shuffle_ps::<0x44>(b, d);
            r[4 * q + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
        }
        for h in 0..2 {
            for i in 0..4 {
                let (a, b) = (r[8 * h + i], r[8 * h + 4 + i]);
                t[8 * h + i] = _mm512_shuffle_f32x4::<0x88>(a, b);
                t[8 * h + 4 + i] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
        for i in 0..8 {
            r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[8 + i]);
            r[8 + i] = _mm512_shuffle_f32x4::<0xDD>(t[i], t[8 + i]);
        }
    }

    /// Reads the 16×16 f32 tile at `s` (element (i, j) at
    /// `ptr + i·row_byte_stride + j·col_byte_stride`) into rows.
    ///
    /// # Safety
    /// Every element address must be readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_tile(s: &OutputStoreKer, out: &mut Tile) {
        unsafe {
            let (rs, cs) = (s.row_byte_stride, s.col_byte_stride);
            if cs == 4 {
                for (i, r) in out.iter_mut().enumerate() {
                    *r = _mm512_loadu_ps(s.ptr.offset(rs * i as isize) as *const f32);
                }
            } else if rs == 4 {
                for (j, r) in out.iter_mut().enumerate() {
                    *r = _mm512_loadu_ps(s.ptr.offset(cs * j as isize) as *const f32);
                }
                transpose(out);
            } else {
                let mut buf = [0f32; NR];
                for (i, r) in out.iter_mut().enumerate() {
                    for (j, v) in buf.iter_mut().enumerate() {
                        *v = *(s.ptr.offset(rs * i as isize + cs * j as isize) as *const f32);
                    }
                    *r = _mm512_loadu_ps(buf.as_ptr());
                }
            }
        }
    }

    /// Writes the tile to `s` (layout as in [`load_tile`]).
    ///
    /// # Safety
    /// Every element address must be writable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_tile(s: &OutputStoreKer, ab: Tile) {
        unsafe {
            let (rs, cs) = (s.row_byte_stride, s.col_byte_stride);
            if cs == 4 {
                for (i, r) in ab.iter().enumerate() {
                    _mm512_storeu_ps(s.ptr.offset(rs * i as isize) as *mut f32, *r);
                }
            } else if rs == 4 {
                let mut t = ab;
                transpose(&mut t);
                for (j, c) in t.iter().enumerate() {
                    _mm512_storeu_ps(s.ptr.offset(cs * j as isize) as *mut f32, *c);
                }
            } else {
                let mut buf = [0f32; NR];
                for (i, r) in ab.iter().enumerate() {
                    _mm512_storeu_ps(buf.as_mut_ptr(), *r);
                    for (j, v) in buf.iter().enumerate() {
                        *(s.ptr.offset(rs * i as isize + cs * j as isize) as *mut f32) = *v;
                    }
                }
            }
        }
    }

    /// tract's micro-kernel contract (`FusedKerSpec` program, ended by
    /// `Done`): 0 on success, 1 for an operation this f32 kernel does not
    /// implement (integer requantisation, a non-f32 store), which tract
    /// reports as an error instead of computing garbage.
    ///
    /// # Safety
    /// As tract-linalg's kernels: every pointer in `ops` valid for a full
    /// 16×16 tile; the CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn run(ops: &[FusedKerSpec<f32>]) -> isize {
        unsafe {
            let mut ab: Tile = [_mm512_setzero_ps(); MR];
            for op in ops {
                match *op {
                    FusedKerSpec::Done => break,
                    FusedKerSpec::Clear => ab = [_mm512_setzero_ps(); MR],
                    FusedKerSpec::LoadTile(col_major, _) => {
                        // Element (row, col) at col_major[col · MR + row].
                        for (j, r) in ab.iter_mut().enumerate() {
                            *r = _mm512_loadu_ps(col_major.add(j * MR));
                        }
                        transpose(&mut ab);
                    }
                    // As tract's generic kernel: `Sub` is operand − acc, `SubF` acc − operand;
                    // min/max take the operand first, as tract's kernels (a NaN
                    // accumulator stays NaN).
                    FusedKerSpec::ScalarMin(m) => ab = each(ab, |x| _mm512_min_ps(splat(m), x)),
                    FusedKerSpec::ScalarMax(m) => ab = each(ab, |x| _mm512_max_ps(splat(m), x)),
                    FusedKerSpec::ScalarAdd(m) => ab = each(ab, |x| _mm512_add_ps(x, splat(m))),
                    FusedKerSpec::ScalarMul(m) => ab = each(ab, |x| _mm512_mul_ps(x, splat(m))),
                    FusedKerSpec::ScalarSub(m) => ab = each(ab, |x| _mm512_sub_ps(splat(m), x)),
                    FusedKerSpec::ScalarSubF(m) => ab = each(ab, |x| _mm512_sub_ps(x, splat(m))),
                    FusedKerSpec::LeakyRelu(alpha) => {
                        ab = each(ab, |x| {
                            let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_setzero_ps());
                            _mm512_mask_blend_ps(pos, _mm512_mul_ps(x, splat(alpha)), x)
                        })
                    }
                    FusedKerSpec::PerRowMin(p) => ab = rows(ab, p, |x, v| _mm512_min_ps(v, x)),
                    FusedKerSpec::PerRowMax(p) => ab = rows(ab, p, |x, v| _mm512_max_ps(v, x)),
                    FusedKerSpec::PerRowAdd(p) => ab = rows(ab, p, |x, v| _mm512_add_ps(x, v)),
                    FusedKerSpec::PerRowMul(p) => ab = rows(ab, p, |x, v| _mm512_mul_ps(x, v)),
                    FusedKerSpec::PerRowSub(p) => ab = rows(ab, p, |x, v| _mm512_sub_ps(v, x)),
                    FusedKerSpec::PerRowSubF(p) => ab = rows(ab, p, |x, v| _mm512_sub_ps(x, v)),
                    FusedKerSpec::PerColMin(p) => ab = cols(ab, p, |x, v| _mm512_min_ps(v, x)),
                    FusedKerSpec::PerColMax(p) => ab = cols(ab, p, |x, v| _mm512_max_ps(v, x)),
                    FusedKerSpec::PerColAdd(p) => ab = cols(ab, p, |x, v| _mm512_add_ps(x, v)),
                    FusedKerSpec::PerColMul(p) => ab = cols(ab, p, |x, v| _mm512_mul_ps(x, v)),
                    FusedKerSpec::PerColSub(p) => ab = cols(ab, p, |x, v| _mm512_sub_ps(v, x)),
                    FusedKerSpec::PerColSubF(p) => ab = cols(ab, p, |x, v| _mm512_sub_ps(x, v)),
                    FusedKerSpec::AddRowColProducts(r, c) => {
                        let cv = _mm512_loadu_ps(c);
                        for (i, x) in ab.iter_mut().enumerate() {
                            *x = _mm512_fmadd_ps(splat(*r.add(i)), cv, *x);
                        }
                    }
                    FusedKerSpec::AddUnicast(other) => {
                        if other.item_size != 4 {
                            return 1;
                        }
                        let mut t = [_mm512_setzero_ps(); MR];
                        load_tile(&other, &mut t);
                        for (x, y) in ab.iter_mut().zip(t) {
                            *x = _mm512_add_ps(*x, y);
                        }
                    }
                    FusedKerSpec::AddMatMul { k, pa, pb, packing } => {
                        if packing != 0 {
                            return 1;
                        }
                        ab = add_mat_mul(ab, pa as *const f32, pb as *const f32, k);
                    }
                    FusedKerSpec::Store(tile) => {
                        if tile.item_size != 4 {
                            return 1;
                        }
                        store_tile(&tile, ab);
                    }
                    FusedKerSpec::QScale(..)
                    | FusedKerSpec::RoundingShiftRight(..)
                    | FusedKerSpec::ShiftLeft(..) => return 1,
                }
            }
            0
        }
    }

    /// The product loop: `acc[i] += a[k][i] · b[k][0..16]` for every k.
    /// The tile is passed and returned by value so that it lives in 16
    /// registers for the whole loop (kept in the caller's array, LLVM
    /// would store it back after every multiply-add).
    ///
    /// # Safety
    /// `a` and `b` readable for `16·k` f32 each.
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    unsafe fn add_mat_mul(acc: Tile, a: *const f32, b: *const f32, k: usize) -> Tile {
        let [mut c0, mut c1, mut c2, mut c3, mut c4, mut c5, mut c6, mut c7, mut c8, mut c9, mut c10, mut c11, mut c12, mut c13, mut c14, mut c15] =
            acc;
        for ik in 0..k {
            // SAFETY: the caller's contract.
            unsafe {
                let bv = _mm512_loadu_ps(b.add(NR * ik));
                let ar = a.add(MR * ik);
                c0 = _mm512_fmadd_ps(splat(*ar), bv, c0);
                c1 = _mm512_fmadd_ps(splat(*ar.add(1)), bv, c1);
                c2 = _mm512_fmadd_ps(splat(*ar.add(2)), bv, c2);
                c3 = _mm512_fmadd_ps(splat(*ar.add(3)), bv, c3);
                c4 = _mm512_fmadd_ps(splat(*ar.add(4)), bv, c4);
                c5 = _mm512_fmadd_ps(splat(*ar.add(5)), bv, c5);
                c6 = _mm512_fmadd_ps(splat(*ar.add(6)), bv, c6);
                c7 = _mm512_fmadd_ps(splat(*ar.add(7)), bv, c7);
                c8 = _mm512_fmadd_ps(splat(*ar.add(8)), bv, c8);
                c9 = _mm512_fmadd_ps(splat(*ar.add(9)), bv, c9);
                c10 = _mm512_fmadd_ps(splat(*ar.add(10)), bv, c10);
                c11 = _mm512_fmadd_ps(splat(*ar.add(11)), bv, c11);
                c12 = _mm512_fmadd_ps(splat(*ar.add(12)), bv, c12);
                c13 = _mm512_fmadd_ps(splat(*ar.add(13)), bv, c13);
                c14 = _mm512_fmadd_ps(splat(*ar.add(14)), bv, c14);
                c15 = _mm512_fmadd_ps(splat(*ar.add(15)), bv, c15);
            }
        }
        [
            c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15,
        ]
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn each(mut ab: Tile, f: impl Fn(__m512) -> __m512) -> Tile {
        for x in ab.iter_mut() {
            *x = f(*x);
        }
        ab
    }

    /// `f(row, operand[i])` for row `i` (one value of M per row).
    ///
    /// # Safety
    /// `p` readable for 16 f32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows(mut ab: Tile, p: *const f32, f: impl Fn(__m512, __m512) -> __m512) -> Tile {
        for (i, x) in ab.iter_mut().enumerate() {
            // SAFETY: the caller's contract.
            *x = f(*x, splat(unsafe { *p.add(i) }));
        }
        ab
    }

    /// `f(row, operand[0..16])` for every row (one value of N per lane).
    ///
    /// # Safety
    /// `p` readable for 16 f32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn cols(mut ab: Tile, p: *const f32, f: impl Fn(__m512, __m512) -> __m512) -> Tile {
        // SAFETY: the caller's contract.
        let v = unsafe { _mm512_loadu_ps(p) };
        for x in ab.iter_mut() {
            *x = f(*x, v);
        }
        ab
    }

    /// The entry point tract calls.
    ///
    /// # Safety
    /// As [`run`]; the kernel is runnable only where the CPU has AVX-512F
    /// (its `IsaReq`), so tract never calls it elsewhere.
    pub(super) unsafe fn kernel(ops: &[FusedKerSpec<f32>]) -> isize {
        // SAFETY: registered with IsaReq avx512f: tract runs it only on such CPUs.
        unsafe { run(ops) }
    }

    pub(super) fn make() -> DynKernel<MR, NR, f32> {
        let mut k = DynKernel::<MR, NR, f32>::new(
            KERNEL_NAME,
            kernel,
            PackedFormat::new(DatumType::F32, MR, 64),
            PackedFormat::new(DatumType::F32, NR, 64),
        )
        .with_isa(IsaReq::ANY.needing(&[Isa::X86_64Avx512f]))
        // Loses every tie with tract's own AVX-512 kernels, so that only our
        // dispatch tier ever names it (not tract's fallback for symbolic shapes).
        .with_boost(|| -1);
        k.arch = Some(Arch::X86_64);
        k
    }

    fn preferred(
        _isa: &IsaSet,
        dt: DatumType,
        q: &Query,
        suitable: &[Suitable],
    ) -> Option<&'static str> {
        let f32_operands =
            matches!(q.weight, WeightType::Plain(DatumType::F32)) && q.activation == DatumType::F32;
        let claims = |m: usize, k: usize, n: usize| {
            k <= MAX_K && m.is_multiple_of(MR) && n.is_multiple_of(NR) && n > 0 && m >= n
        };
        match (q.m, q.k, q.n) {
            (Some(m), Some(k), Some(n))
                if dt == DatumType::F32
                    && f32_operands
                    && claims(m, k, n)
                    // Only where the weights need no panel extractor.
                    && suitable
                        .iter()
                        .any(|(mmm, _, pe)| mmm.name() == KERNEL_NAME && pe.is_none()) =>
            {
                Some(KERNEL_NAME)
            }
            _ => None,
        }
    }

    /// False when `CAMTRAPD_NO_SHORT_K_MATMUL` is set (to compare with
    /// tract's own kernels, or to rule this kernel out when chasing a bug).
    fn enabled() -> bool {
        std::env::var_os(super::DISABLE_ENV).is_none()
    }

    inventory::submit! {
        MmmRoutine { make: || make().mmm() }
    }

    inventory::submit! {
        MmmTier {
            arch: Some(Arch::X86_64),
            // Above every tier tract-linalg 0.23.9 declares for x86_64 (1–8).
            precedence: 20,
            name: "camtrapd-avx512-short-k",
            applies: |isa| isa.has(Isa::X86_64Avx512f) && enabled(),
            preferred,
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::arch::x86_64::*;
    use tract_linalg::mmm::{FusedKerSpec, OutputStoreKer};

    fn have() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        if !have() {
            return;
        }
        // SAFETY: AVX-512F checked above.
        unsafe {
            let mut t = [_mm512_setzero_ps(); 16];
            for (i, r) in t.iter_mut().enumerate() {
                let row: Vec<f32> = (0..16).map(|j| (i * 16 + j) as f32).collect();
                *r = _mm512_loadu_ps(row.as_ptr());
            }
            imp::transpose(&mut t);
            let mut out = [0f32; 16];
            for (i, r) in t.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr(), *r);
                let want: Vec<f32> = (0..16).map(|j| (j * 16 + i) as f32).collect();
                assert_eq!(out.to_vec(), want, "row {i}");
            }
        }
    }

    /// One tile through the kernel's program interpreter: packed A (16 × k,
    /// m inner) and B (k × 16, n inner), bias per column, ReLU6, then a
    /// store into C laid out N-contiguous, M-contiguous and fully strided;
    /// compared with the definition.
    #[test]
    fn tile_program_matches_the_definition_in_every_layout() {
        if !have() {
            return;
        }
        let k = 27;
        let a: Vec<f32> = (0..16 * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0)
            .collect();
        let b: Vec<f32> = (0..16 * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let bias: Vec<f32> = (0..16).map(|j| j as f32 / 8.0 - 1.0).collect();
        let rowv: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
        let want = |i: usize, j: usize| {
            let mut s = 0f32;
            for kk in 0..k {
                s += a[kk * 16 + i] * b[kk * 16 + j];
            }
            ((s + bias[j]).clamp(0.0, 6.0) - rowv[i]) * 2.0
        };
        // (row stride, col stride) in floats, and the buffer length.
        for (rs, cs, len) in [(16isize, 1isize, 256usize), (1, 16, 256), (40, 2, 16 * 40)] {
            let mut c = vec![f32::NAN; len];
            let store = OutputStoreKer {
                ptr: c.as_mut_ptr() as *mut u8,
                row_byte_stride: rs * 4,
                col_byte_stride: cs * 4,
                item_size: 4,
            };
            let ops = [
                FusedKerSpec::Clear,
                FusedKerSpec::AddMatMul {
                    k,
                    pa: a.as_ptr() as *const u8,
                    pb: b.as_ptr() as *const u8,
                    packing: 0,
                },
                FusedKerSpec::PerColAdd(bias.as_ptr()),
                FusedKerSpec::ScalarMax(0.0),
                FusedKerSpec::ScalarMin(6.0),
                FusedKerSpec::PerRowSubF(rowv.as_ptr()),
                FusedKerSpec::ScalarMul(2.0),
                FusedKerSpec::Store(store),
                FusedKerSpec::Done,
            ];
            // SAFETY: AVX-512F checked; every pointer covers a full tile.
            let err = unsafe { imp::kernel(&ops) };
            assert_eq!(err, 0);
            for i in 0..16 {
                for j in 0..16 {
                    let got = c[i * rs as usize + j * cs as usize];
                    let w = want(i, j);
                    assert!(
                        (got - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "layout ({rs},{cs}) C[{i}][{j}] = {got}, want {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn add_unicast_and_load_tile_read_every_layout() {
        if !have() {
            return;
        }
        let other: Vec<f32> = (0..256).map(|v| v as f32).collect();
        let col_major: Vec<f32> = (0..256).map(|v| -(v as f32)).collect();
        for (rs, cs) in [(16isize, 1isize), (1, 16)] {
            let mut c = vec![0f32; 256];
            let ops = [
                // Element (i, j) of col_major is −(j·16 + i).
                FusedKerSpec::LoadTile(col_major.as_ptr(), std::ptr::null()),
                FusedKerSpec::AddUnicast(OutputStoreKer {
                    ptr: other.as_ptr() as *mut u8,
                    row_byte_stride: rs * 4,
                    col_byte_stride: cs * 4,
                    item_size: 4,
                }),
                FusedKerSpec::Store(OutputStoreKer {
                    ptr: c.as_mut_ptr() as *mut u8,
                    row_byte_stride: 64,
                    col_byte_stride: 4,
                    item_size: 4,
                }),
                FusedKerSpec::Done,
            ];
            // SAFETY: AVX-512F checked; every pointer covers a full tile.
            assert_eq!(unsafe { imp::kernel(&ops) }, 0);
            for i in 0..16 {
                for j in 0..16 {
                    let o = other[i * rs as usize + j * cs as usize];
                    let l = -((j * 16 + i) as f32);
                    assert_eq!(c[i * 16 + j], o + l, "layout ({rs},{cs}) [{i}][{j}]");
                }
            }
        }
    }

    #[test]
    fn integer_requantisation_is_refused_not_miscomputed() {
        if !have() {
            return;
        }
        let ops = [FusedKerSpec::ShiftLeft(1), FusedKerSpec::Done];
        // SAFETY: AVX-512F checked; the program touches no memory.
        assert_eq!(unsafe { imp::kernel(&ops) }, 1);
    }

    #[test]
    fn tract_picks_it_for_short_k_products_only() {
        if !have() {
            return;
        }
        use tract_linalg::mmm::Query;
        use tract_onnx::prelude::DatumType;
        let d = tract_linalg::MmmDispatch::native();
        let pick = |m, k, n| {
            let q = Query::plain(DatumType::F32, Some(m), Some(k), Some(n));
            let s = d.suitable(&q);
            d.preferred(&q, &s)
                .map(|(mmm, _, _)| mmm.name().to_string())
        };
        assert_eq!(pick(12544, 16, 96).as_deref(), Some(KERNEL_NAME));
        assert_eq!(pick(3136, 24, 144).as_deref(), Some(KERNEL_NAME));
        assert_ne!(pick(196, 672, 112).as_deref(), Some(KERNEL_NAME), "long K");
        assert_ne!(
            pick(3136, 24, 24).as_deref(),
            Some(KERNEL_NAME),
            "N not a multiple of 16"
        );
    }
}
