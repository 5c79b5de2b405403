"""GPU training throughput: pyvae's CUDA engine against PyTorch on the same GPU.

The same model as the issue asks (784-400-20, ReLU, Bernoulli likelihood,
analytic KL, one Monte Carlo sample, Adam at 1e-3), the same data already on
the device, a shuffled epoch of minibatches of 128 and of 4096 rows. Prints
samples per second and the ratios pyvae / PyTorch. Where no GPU is usable it
prints why and exits 0.

    python benchmarks/gpu.py [--rows 60000] [--epochs 3]
"""

import argparse
import sys
import time

import numpy as np


def pyvae_throughput(X, batch_size, epochs, graphs):
    from pyvae import _core
    from pyvae._cuda import load_engine

    engine = load_engine(n_features=X.shape[1], n_components=20, hidden_layer_sizes=[400], activation="relu",
                         likelihood="bernoulli", kl="analytic", posterior="gaussian",
                         gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False)
    engine.use_graphs = graphs
    params = engine.init_params(0)
    m, v = np.zeros_like(params), np.zeros_like(params)
    rows = np.arange(len(X), dtype=np.int64)
    state = {"step": 0}
    adam = _core.AdamSettings(learning_rate=1e-3)

    def epoch():
        out = engine.train_epoch(params, m, v, state["step"], 0.0, X, rows, batch_size, 1, adam)
        state["step"] = out["step"]

    epoch()  # warm-up: the data goes to the device, cuBLAS picks its kernels, the step graph is captured
    started = time.perf_counter()
    for _ in range(epochs):
        epoch()  # ends with the parameters copied back to the host: a synchronization
    return epochs * len(X) / (time.perf_counter() - started)


def torch_throughput(X, batch_size, epochs):
    import torch
    from torch import nn

    torch.manual_seed(0)
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # full FP32, as pyvae
    encoder = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 40)).to(dev)
    decoder = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784)).to(dev)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    data = torch.from_numpy(X).to(dev)

    def step(x):
        head = encoder(x)
        mu, logvar = head[:, :20], head[:, 20:]
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = decoder(z)
        recon = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(mu * mu + logvar.exp() - 1 - logvar)
        loss = (kl - recon) / x.shape[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def epoch():
        order = torch.randperm(len(data), device=dev)
        for start in range(0, len(data), batch_size):
            step(data[order[start:start + batch_size]])

    epoch()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(epochs):
        epoch()
    torch.cuda.synchronize()
    return epochs * len(X) / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 4096])
    args = parser.parse_args()

    from pyvae._cuda import cuda_available

    ok, reason = cuda_available()
    if not ok:
        print(f"benchmarks/gpu.py: skipped, no usable CUDA device: {reason}")
        return 0
    from pyvae import _cuda_core

    try:
        import torch

        torch_ok = torch.cuda.is_available()
        torch_note = "" if torch_ok else f"PyTorch {torch.__version__} sees no GPU"
    except ImportError:
        torch_ok, torch_note = False, "PyTorch is not installed"

    X = (np.random.default_rng(0).uniform(size=(args.rows, 784)) < 0.3).astype(np.float32)
    print(f"GPU: {', '.join(_cuda_core.device_names())}; {args.rows} rows x 784, 784-400-20, "
          f"{args.epochs} timed epochs after one warm-up")
    print(f"{'batch':>6} {'pyvae (graphs)':>16} {'pyvae (no graphs)':>18} {'PyTorch':>12} {'pyvae / PyTorch':>16}")
    for batch_size in args.batch_sizes:
        with_graphs = pyvae_throughput(X, batch_size, args.epochs, graphs=True)
        without = pyvae_throughput(X, batch_size, args.epochs, graphs=False)
        peer = torch_throughput(X, batch_size, args.epochs) if torch_ok else float("nan")
        ratio = f"{with_graphs / peer:16.2f}" if torch_ok else f"{'n/a':>16}"
        print(f"{batch_size:>6} {with_graphs:>16,.0f} {without:>18,.0f} {peer:>12,.0f} {ratio}  (samples/s)")
    if not torch_ok:
        print(f"no ratios: {torch_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
