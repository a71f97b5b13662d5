//! One-pass, single-threaded element-wise kernels for the CPU: a broadcast add (bias, position
//! embeddings, residuals) with an optional activation.
//!
//! Why not candle's ops: candle 0.11 runs every element-wise op of 64k elements or more on its own
//! global thread pool, whose workers spin for ~25,000 iterations after each op. mmdb already gives
//! every core a piece of the model ([`super::cores`]), so those ops ran on a contended pool and the
//! spinning stole the cores: a ViT-B/32 image on 2 cores was slower than on one. Here the add and
//! the activation are also one pass instead of up to four (bias add, scale, sigmoid, multiply).
//! On other devices and dtypes, candle's ops run.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use super::config::Activation;

type CResult<T> = candle_core::Result<T>;

/// `act(x + b)`, `b` repeated along `x` (its length divides `x`'s): a bias over rows, position
/// embeddings over a batch, or a residual of `x`'s shape.
pub(crate) fn add_act(x: &Tensor, b: &Tensor, act: Option<Activation>) -> CResult<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && b.dtype() == DType::F32 {
        let (x, b) = (x.contiguous()?, b.contiguous()?);
        return x.apply_op2_no_bwd(&b, &AddAct(act));
    }
    let y = x.broadcast_add(b)?;
    match act {
        None => Ok(y),
        Some(Activation::QuickGelu) => &y * candle_nn::ops::sigmoid(&(&y * 1.702)?)?,
        Some(Activation::Gelu) => y.gelu_erf(),
    }
}

/// The op behind [`add_act`], f32 on the CPU.
struct AddAct(Option<Activation>);

impl CustomOp2 for AddAct {
    fn name(&self) -> &'static str {
        "mmdb-add-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(b)) = (s1, s2) else {
            candle_core::bail!("{}: f32 only", self.name());
        };
        let (Some((x0, x1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("{}: contiguous inputs only", self.name());
        };
        let (x, b) = (&x[x0..x1], &b[b0..b1]);
        if b.is_empty() || !x.len().is_multiple_of(b.len()) {
            candle_core::bail!(
                "{}: {} elements do not repeat over {}",
                self.name(),
                b.len(),
                x.len()
            );
        }
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks_exact(b.len()) {
            let sums = row.iter().zip(b).map(|(&v, &c)| v + c);
            match self.0 {
                None => y.extend(sums),
                // As candle-nn: v * sigmoid(v * 1.702), sigmoid(t) = 1 / (1 + exp(-t)).
                Some(Activation::QuickGelu) => {
                    y.extend(sums.map(|v| v * (1.0 / (1.0 + (-(v * 1.702)).exp()))))
                }
                // As candle's gelu_erf.
                Some(Activation::Gelu) => y.extend(sums.map(|v| {
                    (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.)
                        * 0.5
                        * v
                })),
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The fused op against candle's ops, over a bias and over a same-shape residual.
    #[test]
    fn fused_matches_candle_ops() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (5, 7), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 7, &dev).unwrap();
        let residual = Tensor::randn(0f32, 1.0, (5, 7), &dev).unwrap();
        for act in [None, Some(Activation::QuickGelu), Some(Activation::Gelu)] {
            for b in [&bias, &residual] {
                let got = add_act(&x, b, act).unwrap();
                let y = x.broadcast_add(b).unwrap();
                let want = match act {
                    None => y,
                    Some(Activation::QuickGelu) => {
                        (&y * candle_nn::ops::sigmoid(&(&y * 1.702).unwrap()).unwrap()).unwrap()
                    }
                    Some(Activation::Gelu) => y.gelu_erf().unwrap(),
                };
                let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
                assert!(diff.to_scalar::<f32>().unwrap() < 1e-6, "{act:?}");
            }
        }
        // A transposed (non-contiguous) input is made contiguous first.
        let xt = x.t().unwrap();
        let got = add_act(&xt, &Tensor::zeros(5, DType::F32, &dev).unwrap(), None).unwrap();
        assert_eq!(got.to_vec2::<f32>().unwrap(), xt.to_vec2::<f32>().unwrap());
        assert!(add_act(&x, &Tensor::zeros(3, DType::F32, &dev).unwrap(), None).is_err());
    }
}
