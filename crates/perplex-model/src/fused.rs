//! The element-wise steps of the packed-kernel path on `perplex-kernels`'
//! [`elementwise`](perplex_kernels::elementwise) kernels instead of candle's
//! ops: RMSNorm into one new tensor, the split into heads with RoPE into
//! one new tensor, `SiLU(gate) · up` and the residual add in place in a
//! tensor the caller just made (so no allocation at all).
//!
//! Only the packed path (`Kernels::Packed`) calls these; candle's path
//! (`Kernels::Candle`, the reference) keeps candle's ops. The in-place
//! steps write into the first tensor's storage, so it must be one no other
//! tensor shares: the caller passes only tensors it has just computed
//! (a matmul's output), never a view or a clone.

use candle_core::{CpuStorage, Layout, Tensor};

use crate::matmul::with_slice;

/// `x / √(mean(x²) + eps) · weight` over the last dimension of `x`.
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    let mut out = vec![0f32; x.elem_count()];
    with_slice(x, |x| {
        with_slice(weight, |w| {
            if w.is_empty() || !x.len().is_multiple_of(w.len()) {
                candle_core::bail!("rms_norm of {} values in rows of {}", x.len(), w.len())
            }
            perplex_kernels::elementwise::rms_norm(x, w, eps, &mut out);
            Ok(())
        })
    })???;
    Tensor::from_vec(out, x.shape(), x.device())
}

/// `x` (`[b·l, n·d]`, a projection's rows) split into heads `[b, n, l, d]`
/// with RoPE applied: `cos`, `sin` are `[l, d/2]` or `[b, l, d/2]` (see
/// `Rope::tables`). The same f32 operations as candle's `rope`, so the same
/// bits.
pub(crate) fn rope_heads(
    x: &Tensor,
    (batch, len, heads, head_dim): (usize, usize, usize, usize),
    cos: &Tensor,
    sin: &Tensor,
) -> candle_core::Result<Tensor> {
    use perplex_kernels::elementwise::HeadsShape;
    let shape = HeadsShape {
        batch,
        len,
        heads,
        head_dim,
    };
    let n = batch * len * heads * head_dim;
    let half = head_dim / 2;
    let tables = cos.elem_count();
    if x.elem_count() != n
        || head_dim % 2 != 0
        || cos.dims() != sin.dims()
        || (tables != len * half && tables != batch * len * half)
    {
        candle_core::bail!(
            "rope of {:?} as {batch} × {len} × {heads} × {head_dim} with tables {:?}",
            x.dims(),
            cos.dims()
        )
    }
    let mut out = vec![0f32; n];
    with_slice(x, |x| {
        with_slice(cos, |c| {
            with_slice(sin, |s| {
                perplex_kernels::elementwise::rope_heads(x, shape, c, s, &mut out)
            })
        })
    })???;
    Tensor::from_vec(out, (batch, heads, len, head_dim), x.device())
}

/// `gate ← SiLU(gate) · up`; `gate` must be a tensor no other shares.
pub(crate) fn silu_mul_in_place(gate: &Tensor, up: &Tensor) -> candle_core::Result<()> {
    gate.inplace_op2(up, &InPlace::SiluMul)
}

/// `x ← x + y`; `x` must be a tensor no other shares.
pub(crate) fn add_in_place(x: &Tensor, y: &Tensor) -> candle_core::Result<()> {
    x.inplace_op2(y, &InPlace::Add)
}

/// The in-place binary steps, as candle custom ops (the route candle offers
/// to write into a tensor's own storage).
enum InPlace {
    SiluMul,
    Add,
}

impl candle_core::InplaceOp2 for InPlace {
    fn name(&self) -> &'static str {
        match self {
            InPlace::SiluMul => "perplex-silu-mul",
            InPlace::Add => "perplex-add",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "{}: shapes {:?} and {:?}",
                self.name(),
                l1.shape(),
                l2.shape()
            )
        }
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("{}: operands must be contiguous", self.name())
        };
        let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
            candle_core::bail!("{}: operands must be f32", self.name())
        };
        let (a, b) = (&mut a[a0..a1], &b[b0..b1]);
        match self {
            InPlace::SiluMul => perplex_kernels::elementwise::silu_mul(a, b),
            InPlace::Add => perplex_kernels::elementwise::add_in_place(a, b),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn rms_norm_agrees_with_candles() {
        let x = t(&perplex_kernels::testing::random(6 * 40, 1), (6, 40));
        let w =
            Tensor::from_vec(perplex_kernels::testing::random(40, 2), 40, &Device::Cpu).unwrap();
        let ours = rms_norm(&x, &w, 1e-5).unwrap().to_vec2::<f32>().unwrap();
        let theirs = candle_nn::ops::rms_norm(&x, &w, 1e-5)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (a, b) in ours.iter().flatten().zip(theirs.iter().flatten()) {
            assert!((a - b).abs() <= 4.0 * f32::EPSILON * b.abs(), "{a} vs {b}");
        }
        let bad = Tensor::zeros(7, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(
            rms_norm(&x, &bad, 1e-5).is_err(),
            "240 values are not rows of 7"
        );
    }

    #[test]
    fn rope_heads_is_candles_heads_and_rope_bit_for_bit() {
        let (b, l, n, d) = (2, 7, 3, 8);
        let x = t(
            &perplex_kernels::testing::random(b * l * n * d, 3),
            (b * l, n * d),
        );
        let rope = crate::rope::Rope::new(d, 10_000.0, &crate::config::RopeScaling::None, 64);
        for lens in [vec![7, 7], vec![7, 3]] {
            let (cos, sin) = rope.tables(&lens, l, &Device::Cpu).unwrap();
            let ours = rope_heads(&x, (b, l, n, d), &cos, &sin).unwrap();
            let heads = x
                .reshape((b, l, n, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap();
            let theirs = candle_nn::rotary_emb::rope(&heads, &cos, &sin).unwrap();
            let bits = |t: &Tensor| -> Vec<u32> {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                v.iter().map(|f| f.to_bits()).collect()
            };
            assert_eq!(bits(&ours), bits(&theirs));
        }
        // a per-window table (LongRoPE, dynamic NTK past the context)
        let per_window =
            Tensor::ones((b, l, d / 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(rope_heads(&x, (b, l, n, d), &per_window, &per_window).is_ok());
        assert!(rope_heads(&x, (b, l, n, d + 2), &per_window, &per_window).is_err());
    }

    #[test]
    fn in_place_steps_write_into_the_first_tensor() {
        let (g, u) = (
            [-2.0f32, -0.5, 0.0, 1.0, 3.0, 9.0],
            [1.5f32, 2.0, 3.0, -1.0, 0.5, 1.0],
        );
        let gate = t(&g, (2, 3));
        silu_mul_in_place(&gate, &t(&u, (2, 3))).unwrap();
        let want = candle_nn::ops::silu(&t(&g, (2, 3))).unwrap() * t(&u, (2, 3));
        let (got, want) = (
            gate.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 4.0 * f32::EPSILON * b.abs(), "{a} vs {b}");
        }
        let x = t(&[1.0, 2.0, 3.0, 4.0], (2, 2));
        add_in_place(&x, &t(&[0.5, 0.25, -3.0, 1.0], (2, 2))).unwrap();
        assert_eq!(x.to_vec2::<f32>().unwrap(), [[1.5, 2.25], [0.0, 5.0]]);
        // a transposed operand is refused, not read in the wrong order
        let y = t(&[1.0; 4], (2, 2)).t().unwrap();
        assert!(add_in_place(&x, &y).is_err());
        assert!(add_in_place(&x, &t(&[1.0; 6], (2, 3))).is_err());
    }
}
