//! `C = A · Wᵀ` against a weight packed once.
//!
//! Layout: `W` (`[n, k]`) is cut into panels of [`NR`] = 32 rows (output
//! columns of `C`; the last panel zero-padded). A panel is stored step by
//! step along `k`, each step two 64-byte lines holding columns 0..16 and
//! 16..32: in f32 a step is one `k`; in bf16 it is a pair `(k, k + 1)`, the
//! operand layout of `VDPBF16PS`. In int16 a step is a block of
//! [`QK`] = 32 of `k` ([`Q_STEP_LINES`] lines): sixteen pairs of lines
//! holding the quantized weights of a pair `(k, k + 1)` as two i16 per 32-bit
//! lane (the operand layout of `VPMADDWD` and `VPDPWSSD`), then the
//! block's 32 column scales (f32). A micro-kernel keeps a tile of up to
//! [`MR`] rows × 32 columns of `C` in registers while it walks a block of
//! steps.
//!
//! # Int16: 12-bit weights × 16-bit activations
//!
//! Weights are quantized when packed, activations at each call, per output
//! column (or row of `A`) and block of 32 `k`, symmetric, `scale = max|x| /
//! L`, `q = x / scale` rounded to nearest (ties to even), so `|q| ≤ L`: `L
//! = 2047` for the weights, `L = 32767` for the activations. Both are i16
//! operands of the same instructions; the weights' `L` is the largest that
//! keeps a block's integer dot product `Σ qa·qw` exact in i32 (`|Σ| ≤ 32 ·
//! 32767 · 2047 = 2,146,369,568 < 2³¹ - 1 = 2,147,483,647`). (Int8 weights
//! cost 0.2 % in perplexity on a Q4_1 model, whose 16-level blocks with an
//! offset a symmetric 255-level grid does not fit; int8 activations 0.5 %
//! more, from their outliers.) The exact dots are added in block order as
//! `acc = fma(sa·sw, dot, acc)` in f32, so all paths give the same bits. A
//! non-finite value makes its block's scale NaN, so it shows in the result
//! as NaN.
//!
//! Work is split into tasks of up to `MB` rows × `NB` panels, each
//! writing its own part of `C`; within a task the steps are taken in
//! blocks of at most `KC`, the first block storing and the next ones
//! adding. Every element of `C` is therefore summed in the same order
//! whatever `m`, the thread count or the element's tile: a row's result
//! does not depend on the other rows it is batched with.

#![allow(unsafe_code)] // the micro-kernels' output pointer, shared by tasks writing disjoint tiles

use rayon::prelude::*;

use crate::{bf16_pair, bf16_to_f32, Isa};

/// Columns of `C` (rows of `W`) per panel.
pub(crate) const NR: usize = 32;
/// Rows of `C` per micro-kernel call.
pub(crate) const MR: usize = 12;
/// Most `k` per block: a 12-row strip of `A` (18 KiB in f32) stays in L1.
const KC: usize = 384;
/// `k` per quantization block of the int16 products.
pub(crate) const QK: usize = 32;
/// Lines per int16 step (one block of [`QK`] `k`): 32 of weights (16
/// pairs of `k`, two lines each), then 2 of column scales.
pub(crate) const Q_STEP_LINES: usize = 34;
/// Line of an int16 step where its column scales start.
pub(crate) const Q_SCALES: usize = 32;
/// Quantization levels of the weights (12-bit) and the activations
/// (16-bit); see the module docs for why not more.
const W_LEVELS: f32 = 2047.0;
const A_LEVELS: f32 = 32767.0;
/// Rows of `C` per task (a multiple of `MR`).
const MB: usize = 96;
/// Panels per task: their blocks (8 × 48 KiB in f32) stay in L2.
const NB: usize = 8;

/// One 64-byte line of a panel: 16 f32, or 16 bf16 pairs.
#[repr(C, align(64))]
#[derive(Clone, Copy, Default)]
pub(crate) struct Line(pub(crate) [u32; 16]);

/// The arithmetic of a packed matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 products and sums: the exact mode.
    F32,
    /// Weights and activations rounded to bf16 (nearest even), products
    /// summed in f32: the fast mode where the CPU has AVX-512 BF16.
    Bf16,
    /// Weights quantized to 12 bits and activations to 16, in blocks of 32
    /// `k` with one f32 scale per block (see the module docs), exact
    /// integer dot products per block summed in f32: the fast mode
    /// elsewhere (AVX-512 VNNI or AVX2).
    Int16,
}

impl Precision {
    /// `k` per step of a panel.
    fn step_k(self) -> usize {
        match self {
            Precision::F32 => 1,
            Precision::Bf16 => 2,
            Precision::Int16 => QK,
        }
    }

    /// Lines per step of a panel.
    pub(crate) fn step_lines(self) -> usize {
        match self {
            Precision::F32 | Precision::Bf16 => 2,
            Precision::Int16 => Q_STEP_LINES,
        }
    }
}

/// A weight matrix `[rows, cols]` packed for [`matmul`].
#[derive(Clone)]
pub struct PackedMatrix {
    rows: usize,
    cols: usize,
    precision: Precision,
    /// Steps per panel: `cols` (f32), `⌈cols / 2⌉` (bf16) or `⌈cols / 32⌉`
    /// (int16).
    steps: usize,
    lines: Vec<Line>,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedMatrix({}x{}, {:?})",
            self.rows, self.cols, self.precision
        )
    }
}

impl PackedMatrix {
    /// Packs a row-major `[rows, cols]` matrix.
    ///
    /// # Panics
    /// If `w.len() != rows * cols`.
    pub fn pack(w: &[f32], rows: usize, cols: usize, precision: Precision) -> PackedMatrix {
        assert_eq!(w.len(), rows * cols, "matrix of {rows}x{cols}");
        Self::pack_with(rows, cols, precision, |first, n, out| {
            out.copy_from_slice(&w[first * cols..(first + n) * cols]);
        })
    }

    /// Packs a `[rows, cols]` matrix whose rows `first..first + n` `fill`
    /// writes row-major into the buffer it is given (`n * cols` values, at
    /// most 32 rows at a time): how a quantized weight is dequantized
    /// straight into the packed form, one panel of scratch per thread.
    pub fn pack_with<F>(rows: usize, cols: usize, precision: Precision, fill: F) -> PackedMatrix
    where
        F: Fn(usize, usize, &mut [f32]) + Sync,
    {
        let steps = cols.div_ceil(precision.step_k());
        let panels = rows.div_ceil(NR);
        let mut lines = vec![Line::default(); panels * steps * precision.step_lines()];
        if steps > 0 {
            lines
                .par_chunks_mut(steps * precision.step_lines())
                .enumerate()
                .for_each_init(Vec::new, |scratch, (p, panel)| {
                    let first = p * NR;
                    let n = NR.min(rows - first);
                    scratch.clear();
                    scratch.resize(n * cols, 0.0);
                    fill(first, n, scratch);
                    pack_panel(scratch, n, cols, precision, panel);
                });
        }
        PackedMatrix {
            rows,
            cols,
            precision,
            steps,
            lines,
        }
    }

    /// Rows (`n`: columns of the product).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (`k`: the inner dimension).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The arithmetic it was packed for.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
    }

    fn panel(&self, p: usize) -> &[Line] {
        let len = self.steps * self.precision.step_lines();
        &self.lines[p * len..(p + 1) * len]
    }
}

fn pack_panel(rows: &[f32], n: usize, cols: usize, precision: Precision, panel: &mut [Line]) {
    let rows = rows.chunks_exact(cols.max(1)).take(n).enumerate();
    match precision {
        Precision::F32 => pack_f32_panel(rows, cols, panel),
        Precision::Bf16 => {
            for (j, row) in rows {
                let (half, lane) = (j / 16, j % 16);
                for (kk, pair) in row.chunks(2).enumerate() {
                    panel[kk * 2 + half].0[lane] = bf16_pair(pair);
                }
            }
        }
        Precision::Int16 => {
            for (j, row) in rows {
                let (half, lane) = (j / 16, j % 16);
                let mut q = [0u32; QK / 2];
                for (b, block) in row.chunks(QK).enumerate() {
                    let scale = quantize_block(block, &mut q, W_LEVELS);
                    let step = &mut panel[b * Q_STEP_LINES..(b + 1) * Q_STEP_LINES];
                    for (s, &pair) in q.iter().enumerate() {
                        step[s * 2 + half].0[lane] = pair;
                    }
                    step[Q_SCALES + half].0[lane] = scale.to_bits();
                }
            }
        }
    }
}

/// [`pack_panel`] in f32: a transpose, in blocks of 16 `k`, so that each
/// row's block is one cache line read and the 32 lines written stay in L1
/// (row by row over the whole `k`, every write would land on another line).
fn pack_f32_panel<'r>(
    rows: impl Iterator<Item = (usize, &'r [f32])> + Clone,
    cols: usize,
    panel: &mut [Line],
) {
    for k0 in (0..cols).step_by(16) {
        let k1 = (k0 + 16).min(cols);
        for (j, row) in rows.clone() {
            let (half, lane) = (j / 16, j % 16);
            for (k, &v) in (k0..k1).zip(&row[k0..k1]) {
                panel[k * 2 + half].0[lane] = v.to_bits();
            }
        }
    }
}

/// Quantizes up to [`QK`] values to `levels` (2047 or 32767) into `q` as
/// i16 pairs (the even `k` in the low half; missing values are 0); returns
/// the scale (0 for an all-zero block, NaN when a value is not finite, and
/// then every `q` is 0).
///
/// `q = round(x · (levels / max|x|))`, ties to even: `|x · levels /
/// max|x||` is at most `levels · (1 + 2⁻²³)²`, which rounds to `levels`, so
/// `|q| ≤ levels` (the kernels' overflow bounds rely on it).
#[inline(always)]
pub(crate) fn quantize_block(x: &[f32], q: &mut [u32; QK / 2], levels: f32) -> f32 {
    debug_assert!(x.len() <= QK);
    // integer max of the magnitudes' bits: the float order for finite
    // values, and it vectorizes; NaN and infinities sort above them all
    let top = x
        .iter()
        .map(|v| v.to_bits() & 0x7fff_ffff)
        .fold(0, u32::max);
    let amax = f32::from_bits(top);
    if !amax.is_finite() || amax == 0.0 {
        q.fill(0);
        return if amax == 0.0 { 0.0 } else { f32::NAN };
    }
    let inv = levels / amax;
    let mut halves = [0u16; QK];
    for (h, &v) in halves.iter_mut().zip(x) {
        // adding 1.5·2²³ rounds to an integer, ties to even (|v·inv| ≤
        // 32768 < 2²²), which is then the low bits of the sum: its low 16
        // bits are the integer's two's complement i16 (no float-to-int
        // conversion, so the loop vectorizes)
        const ROUND: f32 = 12_582_912.0;
        *h = (v * inv + ROUND).to_bits() as u16;
    }
    for (pair, h) in q.iter_mut().zip(halves.chunks_exact(2)) {
        *pair = u32::from(h[0]) | (u32::from(h[1]) << 16);
    }
    amax / levels
}

/// One row of `a` quantized to int16 into its blocks and scales (see
/// [`quantize_block`]): the body of the portable quantizer and of its copy
/// compiled for AVX2 (`x86::quantize_row`), the same operations.
#[inline(always)]
pub(crate) fn quantize_row(row: &[f32], q: &mut [u32], scales: &mut [f32]) {
    for ((q, s), x) in q
        .chunks_exact_mut(QK / 2)
        .zip(scales.iter_mut())
        .zip(row.chunks(QK))
    {
        let q: &mut [u32; QK / 2] = q.try_into().expect("a block of 16");
        *s = quantize_block(x, q, A_LEVELS);
    }
}

/// The activations of an int16 product: per row, `⌈k / 32⌉` blocks
/// of 16 `u32` (two int16 each) and one scale per block.
pub(crate) struct QuantizedRows {
    pub q: Vec<u32>,
    pub scales: Vec<f32>,
}

/// `a` (`[m, k]`) quantized to int16 per row and block of [`QK`] (see
/// [`quantize_block`]).
fn quantize_rows(isa: Isa, a: &[f32], m: usize, k: usize, blocks: usize) -> QuantizedRows {
    let mut q = vec![0u32; m * blocks * (QK / 2)];
    let mut scales = vec![0f32; m * blocks];
    q.par_chunks_mut(blocks * (QK / 2))
        .zip(scales.par_chunks_mut(blocks))
        .zip(a.par_chunks(k))
        .for_each(|((q, scales), row)| {
            #[cfg(target_arch = "x86_64")]
            if crate::x86::quantize_row(isa, row, q, scales) {
                return;
            }
            let _ = isa;
            quantize_row(row, q, scales);
        });
    QuantizedRows { q, scales }
}

/// The left operand as the kernels read it: f32 rows, or bf16 pairs.
#[derive(Clone, Copy)]
pub(crate) enum Lhs<'a> {
    F32(&'a [f32]),
    /// Rows of `steps` pairs (low half = even `k`).
    Bf16(&'a [u32]),
    /// Rows of `steps` blocks of 16 `u32` (int16 pairs, see
    /// [`quantize_block`]) and their scales (`steps` per row). `lda` counts
    /// blocks.
    Int16 {
        q: &'a [u32],
        scales: &'a [f32],
    },
}

/// One micro-kernel call: `C[0..mr, 0..ncols] (+)= A[0..mr, s0..s0+steps] ·
/// panel[s0..s0+steps]`.
pub(crate) struct Tile<'a> {
    pub lhs: Lhs<'a>,
    /// Row stride of `lhs`, in its elements.
    pub lda: usize,
    /// First row, first step of the panel, and the column of `lhs` that
    /// step meets.
    pub row: usize,
    pub step: usize,
    pub a_col: usize,
    pub steps: usize,
    pub mr: usize,
    pub panel: &'a [Line],
    pub ncols: usize,
    pub accumulate: bool,
}

/// `c` (`[m, w.rows()]`, row-major) = `a` (`[m, w.cols()]`, row-major) · `wᵀ`.
///
/// Runs on the current rayon pool, with the fastest kernels this CPU has.
/// In [`Precision::Bf16`] `a` is rounded to bf16 first.
///
/// # Panics
/// If the slices do not have those lengths.
pub fn matmul(a: &[f32], m: usize, w: &PackedMatrix, c: &mut [f32]) {
    matmul_with(Isa::detect(), a, m, w, c)
}

/// [`matmul`] with the kernels `isa` allows: [`Isa::PORTABLE`] (or any
/// downgrade) runs the portable reference, for tests and benchmarks that
/// compare the paths. Same blocking and summation order on every path.
///
/// # Panics
/// As [`matmul`].
pub fn matmul_with(isa: Isa, a: &[f32], m: usize, w: &PackedMatrix, c: &mut [f32]) {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(a.len(), m * k, "left operand of {m}x{k}");
    assert_eq!(c.len(), m * n, "product of {m}x{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let operand = Operand::new(isa, a, m, k, w.precision, w.steps);
    let out = SharedOut(c.as_mut_ptr(), c.len());
    let product = Product::new(isa, &operand, m, n, w.precision, w.steps, &out);
    let panels = n.div_ceil(NR);
    let row_tasks = m.div_ceil(MB);
    let panel_tasks = panels.div_ceil(NB);
    (0..row_tasks * panel_tasks).into_par_iter().for_each(|t| {
        let (rt, pt) = (t / panel_tasks, t % panel_tasks);
        let rows = rt * MB..((rt + 1) * MB).min(m);
        let panels = pt * NB..((pt + 1) * NB).min(panels);
        // SAFETY: tasks own disjoint rows × panels of `c`.
        unsafe { product.run(rows, panels, |p| w.panel(p)) };
    });
}

/// [`matmul`] against a weight `[rows, cols]` that is packed as the
/// product goes instead of beforehand: `fill` writes rows `first..first +
/// n` (at most 32) row-major into the buffer it is given, as for
/// [`PackedMatrix::pack_with`]. The result is [`matmul`]'s against that
/// packed matrix, bit for bit, but the packed weight is never whole in
/// memory: each task packs a group of at most eight panels into a buffer
/// its thread keeps for the next product, then multiplies every row of `a`
/// by them. For a weight that is used in one product, stored in another
/// type (bf16, GGUF blocks) and too large to pack once and keep.
///
/// # Panics
/// If the slices do not have those lengths.
pub fn matmul_packing<F>(
    a: &[f32],
    m: usize,
    (rows, cols): (usize, usize),
    precision: Precision,
    fill: F,
    c: &mut [f32],
) where
    F: Fn(usize, usize, &mut [f32]) + Sync,
{
    matmul_packing_with(Isa::detect(), a, m, (rows, cols), precision, fill, c)
}

/// [`matmul_packing`] with the kernels `isa` allows (see [`matmul_with`]).
///
/// # Panics
/// As [`matmul_packing`].
pub fn matmul_packing_with<F>(
    isa: Isa,
    a: &[f32],
    m: usize,
    (n, k): (usize, usize),
    precision: Precision,
    fill: F,
    c: &mut [f32],
) where
    F: Fn(usize, usize, &mut [f32]) + Sync,
{
    assert_eq!(a.len(), m * k, "left operand of {m}x{k}");
    assert_eq!(c.len(), m * n, "product of {m}x{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let steps = k.div_ceil(precision.step_k());
    let panel_len = steps * precision.step_lines();
    let operand = Operand::new(isa, a, m, k, precision, steps);
    let out = SharedOut(c.as_mut_ptr(), c.len());
    let product = Product::new(isa, &operand, m, n, precision, steps, &out);
    let panels = n.div_ceil(NR);
    // groups of up to NB panels, smaller where that would leave threads idle
    let group = NB.min(panels.div_ceil(rayon::current_num_threads())).max(1);
    (0..panels.div_ceil(group)).into_par_iter().for_each(|g| {
        let (p0, p1) = (g * group, ((g + 1) * group).min(panels));
        // taken, not borrowed: a `fill` that runs rayon work may start
        // another task on this thread, which then packs into a buffer of its own
        let mut scratch = SCRATCH.take();
        let lines = grown(&mut scratch.panels, (p1 - p0) * panel_len);
        for (p, panel) in (p0..p1).zip(lines.chunks_exact_mut(panel_len)) {
            let first = p * NR;
            let n_rows = NR.min(n - first);
            if n_rows < NR {
                // padding columns zeroed, as `pack_with` leaves them (the
                // kernels compute those lanes but never store them); full
                // panels are overwritten whole
                panel.fill(Line::default());
            }
            let rows = grown(&mut scratch.rows, n_rows * k);
            fill(first, n_rows, rows);
            pack_panel(rows, n_rows, k, precision, panel);
        }
        let lines = &scratch.panels[..(p1 - p0) * panel_len];
        for rt in 0..m.div_ceil(MB) {
            let rows = rt * MB..((rt + 1) * MB).min(m);
            // SAFETY: tasks own disjoint panels of `c` (every row).
            unsafe {
                product.run(rows, p0..p1, |p| {
                    &lines[(p - p0) * panel_len..(p - p0 + 1) * panel_len]
                })
            };
        }
        SCRATCH.set(scratch);
    });
}

/// Buffers a thread keeps between [`matmul_packing`] calls, so that the
/// panels of each product reuse memory the last one touched (fresh
/// allocations of this size would be fresh pages, zeroed by the kernel at
/// first touch).
#[derive(Default)]
struct Scratch {
    panels: Vec<Line>,
    rows: Vec<f32>,
}

/// The first `len` elements of `v`, grown to hold them (contents
/// unspecified).
fn grown<T: Clone + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() < len {
        v.resize(len, T::default());
    }
    &mut v[..len]
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

/// The left operand as the kernels read it, converted once per product.
enum Operand<'a> {
    F32(&'a [f32], usize),
    Bf16(Vec<u32>, usize),
    Int16(QuantizedRows, usize),
}

impl<'a> Operand<'a> {
    fn new(isa: Isa, a: &'a [f32], m: usize, k: usize, precision: Precision, steps: usize) -> Self {
        match precision {
            Precision::F32 => Operand::F32(a, k),
            Precision::Bf16 => Operand::Bf16(to_bf16_pairs(isa, a, m, k, steps), steps),
            Precision::Int16 => Operand::Int16(quantize_rows(isa, a, m, k, steps), steps),
        }
    }

    /// The kernels' view, and its row stride.
    fn lhs(&self) -> (Lhs<'_>, usize) {
        match self {
            Operand::F32(a, lda) => (Lhs::F32(a), *lda),
            Operand::Bf16(pairs, lda) => (Lhs::Bf16(pairs), *lda),
            Operand::Int16(rows, lda) => {
                let lhs = Lhs::Int16 {
                    q: &rows.q,
                    scales: &rows.scales,
                };
                (lhs, *lda)
            }
        }
    }
}

/// One product's shared state: its kernel, left operand and output.
struct Product<'a> {
    kernel: TileKernel,
    lhs: Lhs<'a>,
    lda: usize,
    n: usize,
    steps: usize,
    block: usize,
    out: &'a SharedOut,
}

impl<'a> Product<'a> {
    fn new(
        isa: Isa,
        operand: &'a Operand<'_>,
        m: usize,
        n: usize,
        precision: Precision,
        steps: usize,
        out: &'a SharedOut,
    ) -> Self {
        let (lhs, lda) = operand.lhs();
        debug_assert!(out.1 >= m * n);
        Product {
            kernel: TileKernel::for_isa(isa, precision),
            lhs,
            lda,
            n,
            steps,
            block: block_steps(precision),
            out,
        }
    }

    /// `C[rows, panels] = A[rows] · panel(p)ᵀ` for `p` in `panels`, every
    /// step: the blocks of steps outermost, so each element is summed in
    /// the same order whatever the task's shape.
    ///
    /// # Safety
    /// Nothing else reads or writes those elements of the output meanwhile.
    unsafe fn run<'p>(
        &self,
        rows: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        panel: impl Fn(usize) -> &'p [Line],
    ) {
        let n = self.n;
        for s0 in (0..self.steps).step_by(self.block) {
            let steps = self.block.min(self.steps - s0);
            for row in rows.clone().step_by(MR) {
                for p in panels.clone() {
                    let tile = Tile {
                        lhs: self.lhs,
                        lda: self.lda,
                        row,
                        step: s0,
                        a_col: s0,
                        steps,
                        mr: MR.min(rows.end - row),
                        panel: panel(p),
                        ncols: NR.min(n - p * NR),
                        accumulate: s0 > 0,
                    };
                    let first = row * n + p * NR;
                    assert!(first + (tile.mr - 1) * n + tile.ncols <= self.out.1);
                    // SAFETY: the tile's elements are in bounds (checked) and
                    // the caller's task is their only reader and writer.
                    unsafe { self.kernel.run(&tile, self.out.0.add(first), n) };
                }
            }
        }
    }
}

/// A single-threaded block of a product, for callers that split the work
/// themselves (attention): `c[i][j - cols.start] = Σ_{s ∈ steps}
/// a[i][s - steps.start] · W[j][s]` for `i < m`, `j ∈ cols`. `a` and `c`
/// have row strides `lda` and `ldc`. f32 only.
///
/// # Panics
/// If `W` is not f32, `cols.start` is not a multiple of 32, the ranges
/// leave `W`, or a slice is too short for them.
#[allow(clippy::too_many_arguments)]
pub fn matmul_block(
    a: &[f32],
    lda: usize,
    m: usize,
    w: &PackedMatrix,
    cols: std::ops::Range<usize>,
    steps: std::ops::Range<usize>,
    c: &mut [f32],
    ldc: usize,
) {
    assert_eq!(w.precision, Precision::F32, "matmul_block is f32 only");
    assert!(cols.start.is_multiple_of(NR) && cols.end <= w.rows && steps.end <= w.steps);
    if m == 0 || cols.is_empty() {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + steps.len() && c.len() >= (m - 1) * ldc + cols.len());
    let kernel = TileKernel::for_isa(Isa::detect(), Precision::F32);
    if steps.is_empty() {
        for row in c.chunks_mut(ldc).take(m) {
            row[..cols.len()].fill(0.0);
        }
        return;
    }
    // blocks at fixed offsets from `steps.start`: a longer range only adds
    // steps at the end, so a zero-padded tail leaves the sums bit for bit
    let block = block_steps(Precision::F32);
    for s0 in steps.clone().step_by(block) {
        let n_steps = block.min(steps.end - s0);
        for row in (0..m).step_by(MR) {
            for j0 in cols.clone().step_by(NR) {
                let tile = Tile {
                    lhs: Lhs::F32(a),
                    lda,
                    row,
                    step: s0,
                    a_col: s0 - steps.start,
                    steps: n_steps,
                    mr: MR.min(m - row),
                    panel: w.panel(j0 / NR),
                    ncols: NR.min(cols.end - j0),
                    accumulate: s0 > steps.start,
                };
                let first = row * ldc + (j0 - cols.start);
                // SAFETY: `c` is borrowed mutably for the whole call; the
                // tile's elements are inside it (length asserted above).
                unsafe { kernel.run(&tile, c[first..].as_mut_ptr(), ldc) };
            }
        }
    }
}

/// A micro-kernel this CPU can run: the portable one, or one an
/// instruction-set module built after its [`Isa`] proved the instructions
/// present. Only calling it on a tile is unsafe (the output pointer).
#[derive(Clone, Copy)]
pub(crate) struct TileKernel(unsafe fn(&Tile<'_>, *mut f32, usize));

impl TileKernel {
    /// The fastest kernel for `precision` that `isa` allows.
    fn for_isa(isa: Isa, precision: Precision) -> TileKernel {
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = crate::x86::tile_kernel(isa, precision) {
            return kernel;
        }
        let _ = (isa, precision);
        // SAFETY: portable code, and `portable_tile`'s contract is `run`'s.
        unsafe { TileKernel::new(portable_tile) }
    }

    /// Wraps a kernel.
    ///
    /// # Safety
    /// On this CPU, calling `f` is sound whenever `run`'s contract holds
    /// (whatever instructions it needs are present).
    pub(crate) unsafe fn new(f: unsafe fn(&Tile<'_>, *mut f32, usize)) -> TileKernel {
        TileKernel(f)
    }

    /// `C[tile] (+)= A[tile] · panel` (see [`Tile`]) for the tile whose
    /// first element `c` points at, rows `ldc` apart.
    ///
    /// # Safety
    /// `c + i·ldc + j` is valid for reads and writes for `i < t.mr`,
    /// `j < t.ncols`, and nothing else accesses those elements meanwhile.
    pub(crate) unsafe fn run(self, t: &Tile<'_>, c: *mut f32, ldc: usize) {
        // SAFETY: `new`'s contract makes `run`'s the only precondition of `f`.
        unsafe { (self.0)(t, c, ldc) }
    }
}

/// Steps per block: at most `KC` of `k` (a bf16 step holds two, an int16
/// step 32).
fn block_steps(precision: Precision) -> usize {
    KC / precision.step_k()
}

/// The output pointer (and length) shared by the tasks of one product.
struct SharedOut(*mut f32, usize);

// SAFETY: tasks write disjoint elements (see `Product::run`).
unsafe impl Sync for SharedOut {}

/// `a` as rows of `steps` bf16 pairs (zero-padded).
fn to_bf16_pairs(isa: Isa, a: &[f32], m: usize, k: usize, steps: usize) -> Vec<u32> {
    let mut out = vec![0u32; m * steps];
    out.par_chunks_mut(steps)
        .zip(a.par_chunks(k))
        .for_each(|(dst, src)| {
            #[cfg(target_arch = "x86_64")]
            if crate::x86::to_bf16_pairs(isa, src, dst) {
                return;
            }
            let _ = isa;
            for (d, pair) in dst.iter_mut().zip(src.chunks(2)) {
                *d = bf16_pair(pair);
            }
        });
    out
}

/// The portable micro-kernel: the reference the SIMD ones are tested against.
///
/// # Safety
/// `c` meets [`TileKernel::run`]'s contract.
unsafe fn portable_tile(t: &Tile<'_>, c: *mut f32, ldc: usize) {
    if let Lhs::Int16 { q, scales } = t.lhs {
        // SAFETY: the same contract.
        return unsafe { portable_quantized_tile(t, q, scales, c, ldc) };
    }
    for i in 0..t.mr {
        for j in 0..t.ncols {
            let (half, lane) = (j / 16, j % 16);
            let mut acc = 0.0f32;
            for s in 0..t.steps {
                let w = t.panel[(t.step + s) * 2 + half].0[lane];
                let at = (t.row + i) * t.lda + t.a_col + s;
                match t.lhs {
                    Lhs::F32(a) => {
                        acc = a[at].mul_add(f32::from_bits(w), acc);
                    }
                    Lhs::Bf16(a) => {
                        let x = a[at];
                        acc += bf16_to_f32(x as u16) * bf16_to_f32(w as u16);
                        acc += bf16_to_f32((x >> 16) as u16) * bf16_to_f32((w >> 16) as u16);
                    }
                    Lhs::Int16 { .. } => unreachable!("int16 tiles are handled above"),
                }
            }
            // SAFETY: `i < mr`, `j < ncols`: inside the tile (the contract).
            let out = unsafe { &mut *c.add(i * ldc + j) };
            *out = if t.accumulate { *out + acc } else { acc };
        }
    }
}

/// The portable int16 micro-kernel: per block the exact integer
/// dot, then `acc = fma(sa · sw, dot, acc)`; the SIMD kernels compute the
/// same.
///
/// # Safety
/// `c` meets [`TileKernel::run`]'s contract.
unsafe fn portable_quantized_tile(
    t: &Tile<'_>,
    q: &[u32],
    scales: &[f32],
    c: *mut f32,
    ldc: usize,
) {
    let lo = |v: u32| i32::from(v as u16 as i16);
    let hi = |v: u32| i32::from((v >> 16) as u16 as i16);
    for i in 0..t.mr {
        let row = t.row + i;
        for j in 0..t.ncols {
            let (half, lane) = (j / 16, j % 16);
            let mut acc = 0.0f32;
            for b in 0..t.steps {
                let step = &t.panel[(t.step + b) * Q_STEP_LINES..];
                let blk = (row * t.lda + t.a_col + b) * (QK / 2);
                // exact: |Σ| ≤ 32 · 32767 · 2047 < 2³¹ (module docs)
                let mut dot = 0i32;
                for s in 0..QK / 2 {
                    let (x, w) = (q[blk + s], step[s * 2 + half].0[lane]);
                    dot += lo(x) * lo(w) + hi(x) * hi(w);
                }
                let sw = f32::from_bits(step[Q_SCALES + half].0[lane]);
                let sa = scales[row * t.lda + t.a_col + b];
                acc = (sa * sw).mul_add(dot as f32, acc);
            }
            // SAFETY: `i < mr`, `j < ncols`: inside the tile (the contract).
            let out = unsafe { &mut *c.add(i * ldc + j) };
            *out = if t.accumulate { *out + acc } else { acc };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random;

    /// `a · wᵀ` in f64.
    fn reference(a: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|t| f64::from(a[i * k + t]) * f64::from(w[j * k + t]))
                    .sum();
            }
        }
        c
    }

    fn max_err(c: &[f32], r: &[f64]) -> f64 {
        c.iter()
            .zip(r)
            .map(|(&x, &y)| (f64::from(x) - y).abs())
            .fold(0.0, f64::max)
    }

    // odd sizes: partial tiles, partial panels, several k blocks, one task and many
    const SHAPES: [(usize, usize, usize); 6] = [
        (1, 1, 1),
        (5, 33, 7),
        (13, 64, 385),
        (97, 70, 800),
        (200, 300, 129),
        (12, 32, 1536),
    ];

    /// `a · wᵀ` on `isa`'s kernels, for every shape, against the f64
    /// reference (the f32 sums of k products of magnitude < 1).
    fn f32_products(isa: Isa) -> Vec<Vec<f32>> {
        SHAPES
            .iter()
            .map(|&(m, n, k)| {
                let (a, w) = (random(m * k, 1), random(n * k, 2));
                let p = PackedMatrix::pack(&w, n, k, Precision::F32);
                let mut c = vec![f32::NAN; m * n];
                matmul_with(isa, &a, m, &p, &mut c);
                let err = max_err(&c, &reference(&a, &w, m, n, k));
                assert!(err < 1e-6 * k as f64, "{m}x{n}x{k} {isa:?}: {err}");
                c
            })
            .collect()
    }

    /// The same in bf16: within the error of rounding both operands.
    fn bf16_products(isa: Isa) -> Vec<Vec<f32>> {
        SHAPES
            .iter()
            .map(|&(m, n, k)| {
                let (a, w) = (random(m * k, 3), random(n * k, 4));
                let p = PackedMatrix::pack(&w, n, k, Precision::Bf16);
                let mut c = vec![f32::NAN; m * n];
                matmul_with(isa, &a, m, &p, &mut c);
                // two roundings of 2^-9 each per product, random signs: ~sqrt(k)
                let tol = 2.0 * 2f64.powi(-8) * (k as f64).sqrt() + 1e-6 * k as f64;
                let err = max_err(&c, &reference(&a, &w, m, n, k));
                assert!(err < tol, "{m}x{n}x{k} {isa:?}: {err}");
                c
            })
            .collect()
    }

    /// Int16 shapes: k not a multiple of 32, n not a multiple of
    /// 32, every row count of a tile and of the kernels' row groups (m =
    /// 1..=40 on one shape), several k blocks and tasks.
    fn quantized_shapes() -> Vec<(usize, usize, usize)> {
        let mut shapes = vec![
            (1, 1, 1),
            (5, 33, 7),
            (13, 64, 385),
            (97, 70, 800),
            (200, 300, 129),
            (12, 32, 1536),
        ];
        shapes.extend((1..=40).map(|m| (m, 45, 100)));
        shapes
    }

    /// `w` (`[n, k]`) as its packed weights dequantized (`q · scale`).
    fn dequantized(w: &[f32], k: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(w.len());
        let mut q = [0u32; QK / 2];
        for row in w.chunks(k) {
            for block in row.chunks(QK) {
                let scale = quantize_block(block, &mut q, W_LEVELS);
                let values = q.iter().flat_map(|&p| [p as u16, (p >> 16) as u16]);
                out.extend(
                    values
                        .take(block.len())
                        .map(|v| f32::from(v as i16) * scale),
                );
            }
        }
        out
    }

    /// The same in int16 against two f64 references. Against the
    /// dequantized weights only the 16-bit activations and the f32 sums
    /// err: an activation moves by at most `max|block| / 65534` (≤ 1.6e-5
    /// here), so the sum of k by about 5e-6·√k (1σ); bound: 1e-4·√k (20σ)
    /// plus 1e-6·k (the f32 sums), 200 times tighter than int8 activations
    /// allowed. Against the exact weights, each 12-bit weight moves by at
    /// most `max|block| / 4094`, uniformly: about 8e-5 per product (1σ),
    /// 8e-5·√k per sum, 0.025 % of the sum's RMS (√k / 3); bounds: every
    /// element within 1e-3·√k + 1e-6·k, the RMS error within 0.05 % of the
    /// RMS result (int8 weights: 0.4 %).
    fn quantized_products(isa: Isa) -> Vec<Vec<f32>> {
        quantized_shapes()
            .into_iter()
            .map(|(m, n, k)| {
                let (a, w) = (random(m * k, 11), random(n * k, 12));
                let p = PackedMatrix::pack(&w, n, k, Precision::Int16);
                let mut c = vec![f32::NAN; m * n];
                matmul_with(isa, &a, m, &p, &mut c);
                let near = max_err(&c, &reference(&a, &dequantized(&w, k), m, n, k));
                let tol = 1e-4 * (k as f64).sqrt() + 1e-6 * k as f64;
                assert!(
                    near < tol,
                    "{m}x{n}x{k} {isa:?}: {near} from the quantized weights"
                );
                let r = reference(&a, &w, m, n, k);
                let err = max_err(&c, &r);
                let tol = 1e-3 * (k as f64).sqrt() + 1e-6 * k as f64;
                assert!(err < tol, "{m}x{n}x{k} {isa:?}: {err}");
                let rms = |v: &mut dyn Iterator<Item = f64>| {
                    let (s, n) = v.fold((0.0, 0), |(s, n), x| (s + x * x, n + 1));
                    (s / f64::from(n)).sqrt()
                };
                let e = rms(&mut c.iter().zip(&r).map(|(&x, &y)| f64::from(x) - y));
                let size = rms(&mut r.iter().copied());
                if k >= 32 {
                    assert!(e < 5e-4 * size, "{m}x{n}x{k} {isa:?}: rms {e} of {size}");
                }
                c
            })
            .collect()
    }

    #[test]
    fn portable_products_match_the_f64_reference() {
        f32_products(Isa::PORTABLE);
        bf16_products(Isa::PORTABLE);
        quantized_products(Isa::PORTABLE);
    }

    /// The i16 halves of a quantized block.
    fn halves(q: &[u32]) -> Vec<i16> {
        q.iter()
            .flat_map(|&p| [p as u16 as i16, (p >> 16) as u16 as i16])
            .collect()
    }

    #[test]
    fn blocks_quantize_symmetrically_to_nearest() {
        let mut q = [0u32; QK / 2];
        let x = [1.0, -0.5, 0.25, 2.54, -2.54, 0.01, 0.0];
        // 127 levels: 1 / 0.02 = 50, -25, 12.5 (tie: to even), 127, -127,
        // 0.5 (to even), 0; sign-extended to i16
        let scale = quantize_block(&x, &mut q, 127.0);
        assert_eq!(scale, 2.54 / 127.0);
        let v = halves(&q);
        assert_eq!(&v[..8], &[50, -25, 12, 127, -127, 0, 0, 0]);
        assert!(v[8..].iter().all(|&b| b == 0));
        assert_eq!(q[0], 0xffe7_0032, "-25 in the high half, 50 in the low");
        // the weights' 2047 levels: 1 · 2047 / 2.54 = 805.91, 402.95,
        // 201.48, 2047, -2047, 8.06
        let scale = quantize_block(&x, &mut q, W_LEVELS);
        assert_eq!(scale, 2.54 / 2047.0);
        assert_eq!(&halves(&q)[..7], &[806, -403, 201, 2047, -2047, 8, 0]);
        // the activations' 32767 levels: 1 · 32767 / 2.54 = 12900.39, 6450.20, 3225.10,
        // 32767, -32767, 129.00
        let scale = quantize_block(&x, &mut q, A_LEVELS);
        assert_eq!(scale, 2.54 / 32767.0);
        assert_eq!(
            &halves(&q)[..7],
            &[12900, -6450, 3225, 32767, -32767, 129, 0]
        );
        // ties to even where the scale is 1
        quantize_block(&[32767.0, 1.5, 2.5, -0.5, 100.25], &mut q, A_LEVELS);
        assert_eq!(&halves(&q)[..5], &[32767, 2, 2, 0, 100]);
        // zeros, and a value that is not finite
        assert_eq!(quantize_block(&[0.0; 5], &mut q, A_LEVELS), 0.0);
        assert!(q.iter().all(|&v| v == 0));
        assert!(quantize_block(&[1.0, f32::INFINITY], &mut q, W_LEVELS).is_nan());
        assert!(quantize_block(&[f32::NAN, 1.0], &mut q, A_LEVELS).is_nan());
        assert!(q.iter().all(|&v| v == 0));
    }

    #[test]
    fn quantized_values_stay_within_their_levels() {
        // values near -max in every rounding position: never below -2047
        // (weights) or -32767 (activations), which the kernels' overflow
        // bound excludes
        let mut q = [0u32; QK / 2];
        for t in 0..2000 {
            let amax = 1.0 + t as f32 * 1e-3;
            let x: Vec<f32> = (0..QK).map(|i| -amax * (1.0 - i as f32 * 1e-7)).collect();
            quantize_block(&x, &mut q, W_LEVELS);
            assert!(halves(&q).iter().all(|&v| (-2047..=-2046).contains(&v)));
            quantize_block(&x, &mut q, A_LEVELS);
            assert!(halves(&q).iter().all(|&v| (-32767..=-32700).contains(&v)));
        }
    }

    #[test]
    fn the_largest_block_dots_do_not_overflow() {
        // every weight and activation at its largest magnitude: each block's
        // dot is ±32 · 32767 · 2047 = ±2,146,369,568, just inside i32; the
        // result is ±(k / 32) blocks of 1 · 1 · 32
        let (n, k) = (2, 96);
        let w: Vec<f32> = (0..n * k).map(|i| if i < k { 1.0 } else { -1.0 }).collect();
        let p = PackedMatrix::pack(&w, n, k, Precision::Int16);
        let a = vec![1.0f32; k];
        for isa in [Isa::detect(), Isa::detect().without_avx512(), Isa::PORTABLE] {
            let mut c = vec![0.0; n];
            matmul_with(isa, &a, 1, &p, &mut c);
            assert!(
                (c[0] - 96.0).abs() < 1e-4 && (c[1] + 96.0).abs() < 1e-4,
                "{isa:?}: {c:?}"
            );
        }
    }

    #[test]
    fn a_non_finite_activation_makes_its_rows_nan() {
        let (n, k) = (3, 40);
        let w = random(n * k, 13);
        let p = PackedMatrix::pack(&w, n, k, Precision::Int16);
        let mut a = random(2 * k, 14);
        a[k + 35] = f32::INFINITY;
        let mut c = vec![0.0; 2 * n];
        matmul_with(Isa::detect(), &a, 2, &p, &mut c);
        assert!(c[..n].iter().all(|v| v.is_finite()), "{c:?}");
        assert!(c[n..].iter().all(|v| v.is_nan()), "{c:?}");
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx2),
        ignore = "this CPU lacks AVX2 and FMA (kernels' AVX2 path not tested)"
    )]
    fn avx2_quantized_products_are_the_portable_ones_bit_for_bit() {
        let isa = Isa::detect().without_avx512();
        assert!(
            isa.avx2_fma(),
            "built on a CPU with AVX2 and FMA, run on one without"
        );
        // the same exact integer dots and the same f32 steps
        assert_eq!(quantized_products(isa), quantized_products(Isa::PORTABLE));
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512vnni),
        ignore = "this CPU lacks AVX-512 VNNI (kernels' int16 VNNI path not tested)"
    )]
    fn vnni_quantized_products_are_the_portable_ones_bit_for_bit() {
        let isa = Isa::detect();
        assert!(
            isa.avx512_vnni(),
            "built on a CPU with AVX-512 VNNI, run on one without"
        );
        assert_eq!(quantized_products(isa), quantized_products(Isa::PORTABLE));
    }

    #[test]
    fn without_avx512_the_bf16_products_are_the_portable_ones() {
        let isa = Isa::detect().without_avx512();
        assert!(!isa.avx512f() && !isa.avx512_bf16());
        assert_eq!(bf16_products(isa), bf16_products(Isa::PORTABLE));
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx2),
        ignore = "this CPU lacks AVX2 and FMA (kernels' AVX2 path not tested)"
    )]
    fn avx2_f32_products_are_the_portable_ones_bit_for_bit() {
        let isa = Isa::detect().without_avx512();
        assert!(
            isa.avx2_fma(),
            "built on a CPU with AVX2 and FMA, run on one without"
        );
        // same fused multiply-adds in the same order, 8 lanes at a time
        assert_eq!(f32_products(isa), f32_products(Isa::PORTABLE));
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512f),
        ignore = "this CPU lacks AVX-512F (kernels' AVX-512 path not tested)"
    )]
    fn avx512_f32_products_are_the_portable_ones_bit_for_bit() {
        let isa = Isa::detect();
        assert!(
            isa.avx512f(),
            "built on a CPU with AVX-512F, run on one without"
        );
        // same fused multiply-adds in the same order
        assert_eq!(f32_products(isa), f32_products(Isa::PORTABLE));
    }

    #[test]
    #[cfg_attr(
        not(perplex_avx512bf16),
        ignore = "this CPU lacks AVX-512 BF16 (kernels' bf16 path not tested)"
    )]
    fn avx512_bf16_products_agree_with_the_portable_ones() {
        let isa = Isa::detect();
        assert!(
            isa.avx512_bf16(),
            "built on a CPU with AVX-512 BF16, run on one without"
        );
        let fast = bf16_products(isa);
        let portable = bf16_products(Isa::PORTABLE);
        for ((&(m, n, k), fast), portable) in SHAPES.iter().zip(&fast).zip(&portable) {
            // exact bf16 products, summed in another order within a pair
            let agree = fast
                .iter()
                .zip(portable)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(f64::from(agree) < 1e-6 * k as f64, "{m}x{n}x{k}: {agree}");
        }
    }

    #[test]
    fn a_row_does_not_depend_on_its_batch_or_the_threads() {
        let (n, k) = (70, 800);
        let a = random(50 * k, 5);
        let w = random(n * k, 6);
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for precision in [Precision::F32, Precision::Bf16, Precision::Int16] {
            let p = PackedMatrix::pack(&w, n, k, precision);
            let isas = [Isa::detect(), Isa::detect().without_avx512(), Isa::PORTABLE];
            for isa in isas {
                let mut all = vec![0.0; 50 * n];
                matmul_with(isa, &a, 50, &p, &mut all);
                for (row, expected) in all.chunks(n).enumerate().step_by(7) {
                    let mut one = vec![0.0; n];
                    let a_row = &a[row * k..(row + 1) * k];
                    one_thread.install(|| matmul_with(isa, a_row, 1, &p, &mut one));
                    assert_eq!(one, expected, "{precision:?} {isa:?} row {row}");
                }
            }
        }
    }

    #[test]
    fn pack_with_fills_panel_by_panel() {
        let (n, k) = (70, 9);
        let w = random(n * k, 7);
        let direct = PackedMatrix::pack(&w, n, k, Precision::Bf16);
        let filled = PackedMatrix::pack_with(n, k, Precision::Bf16, |first, rows, out| {
            assert!(rows <= NR);
            out.copy_from_slice(&w[first * k..(first + rows) * k]);
        });
        assert_eq!(direct.lines.len(), filled.lines.len());
        assert!(direct
            .lines
            .iter()
            .zip(&filled.lines)
            .all(|(x, y)| x.0 == y.0));
        assert_eq!(direct.bytes(), 3 * 5 * 2 * 64);
        // int16: dequantized rows (here: copied) quantized panel by panel
        let direct = PackedMatrix::pack(&w, n, k, Precision::Int16);
        let filled = PackedMatrix::pack_with(n, k, Precision::Int16, |first, rows, out| {
            out.copy_from_slice(&w[first * k..(first + rows) * k]);
        });
        assert!(direct
            .lines
            .iter()
            .zip(&filled.lines)
            .all(|(x, y)| x.0 == y.0));
        // 3 panels of one block of 34 lines
        assert_eq!(direct.bytes(), 3 * Q_STEP_LINES * 64);
    }

    #[test]
    fn quantized_threads_do_not_change_the_bits() {
        let (m, n, k) = (150, 100, 300);
        let (a, w) = (random(m * k, 15), random(n * k, 16));
        let p = PackedMatrix::pack(&w, n, k, Precision::Int16);
        let run = |threads: usize, isa: Isa| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = vec![0.0; m * n];
            pool.install(|| matmul_with(isa, &a, m, &p, &mut c));
            c
        };
        for isa in [Isa::detect(), Isa::detect().without_avx512(), Isa::PORTABLE] {
            assert_eq!(run(1, isa), run(3, isa), "{isa:?}");
        }
    }

    #[test]
    fn packing_during_the_product_gives_the_packed_products_bits() {
        // m > MB, a partial last panel, k past one block of steps and not a
        // multiple of QK; 1 to 3 threads (groups of 8 panels, and smaller)
        let (m, n, k) = (100, 300, 421);
        let (a, w) = (random(m * k, 17), random(n * k, 18));
        for precision in [Precision::F32, Precision::Bf16, Precision::Int16] {
            let p = PackedMatrix::pack(&w, n, k, precision);
            for isa in [Isa::detect(), Isa::detect().without_avx512(), Isa::PORTABLE] {
                let mut expected = vec![0.0; m * n];
                matmul_with(isa, &a, m, &p, &mut expected);
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    // twice: the second product reuses the first's buffers,
                    // which hold stale panels
                    for _ in 0..2 {
                        let mut c = vec![f32::NAN; m * n];
                        pool.install(|| {
                            matmul_packing_with(
                                isa,
                                &a,
                                m,
                                (n, k),
                                precision,
                                |first, rows, out| {
                                    assert!(rows <= NR && out.len() == rows * k);
                                    out.copy_from_slice(&w[first * k..(first + rows) * k]);
                                },
                                &mut c,
                            )
                        });
                        assert_eq!(c, expected, "{precision:?} {isa:?} {threads} threads");
                    }
                }
            }
        }
    }
}
