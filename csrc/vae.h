// The VAE core, one header per concept (docs/layout.md names where each
// equation lives):
//
//   hd.h             functions compiled for both engines (PYVAE_HD), scalar math
//   rng.h            the counter-based generator, noise keys, the epoch's shuffle
//   config.h         hyperparameters, the flat parameter layout, small records
//   standardized.h   the posterior families' standardized draw, density, score
//   fastmath.h       vectorizable float exp / log1p for the Bernoulli pass
//   matmul.h         blocked GEMM (OpenBLAS or the naive oracle)
//   dense.h          dense_forward / dense_backward
//   likelihood.h     <likelihood>_forward / _backward, one pair per likelihood
//   posterior.h      noise, log-variance clamp, reparameterization, KL, score function
//   elbo.h           the ELBO of a row (training and scoring), the importance bound
//   adam.h           adam_update over the flat buffer
//   workspace.h      the buffers of a pass
//   model.h          Model<T>: one training step, the epoch loop, data parallelism
//   model_inference.h  Model<T>: encode, decode, sampling, scores
#pragma once
#include "model.h"
