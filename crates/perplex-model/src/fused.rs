//! The element-wise steps of the packed-kernel path on `perplex-kernels`'
//! [`elementwise`](perplex_kernels::elementwise) kernels instead of candle's
//! ops: RMSNorm into one new tensor, `SiLU(gate) · up` and the residual add
//! in place in a tensor the caller just made (so no allocation at all).
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
