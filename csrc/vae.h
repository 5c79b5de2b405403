// The VAE core, by role (docs/layout.md names where each equation lives).
//
// model/: the equations, shared by both engines where marked PYVAE_HD
//   hd.h               functions compiled for both engines (PYVAE_HD), scalar math;
//                      every equation's per-entry arithmetic below is written with it
//   rng.h              the counter-based generator, noise keys, the epoch's shuffle
//   config.h           hyperparameters, the flat parameter layout, small records
//   standardized.h     the posterior families' standardized draw, density, score
//   dense.h            dense_forward / dense_backward, and inference's row-wise forward
//   likelihood_math.h  each likelihood's scalar log p and gradient (both engines)
//   likelihood.h       <likelihood>_forward / _backward, one pair per likelihood
//   observation.h      each likelihood's mean and draws of p(x | z)
//   posterior.h        noise, log-variance clamp, reparameterization, KL, score function
//   elbo.h             the ELBO of a row (training and scoring), the importance bound
//   adam.h             adam_update over the flat buffer
//   model.h            Model<T>: one training step, the epoch loop, data parallelism
//   model_inference.h  Model<T>: encode, decode, sampling, scores
//   impute.h           importance-weighted imputation (MIWAE) over Model's pieces
// cpu/: what makes the CPU engine fast and deterministic
//   dispatch.h         per_isa: the elementwise kernels per instruction set (PYVAE_ISA)
//   fastmath.h         vectorizable float exp, log1p and tanh; simd_*, which picks them
//   matmul.h           blocked GEMM over OpenBLAS (or the naive oracle)
//   sparse_input.h     the first layer from a batch's nonzeros
//   parallel.h         the core's thread team
//   scan.h             one-pass NaN / inf / range scan of the input
//   workspace.h        the buffers of a pass
// python/: the pybind11 binding (bindings.cpp; bind_engine.h, written once for
//   both engines; binding_util.h; kernels_binding.h, the kernels one by one for tests)
// cuda/: the CUDA engine, its kernels loops over model/'s PYVAE_HD functions (docs/layout.md)
#pragma once
#include "model/model.h"
