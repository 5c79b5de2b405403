"""Per-epoch progress of fit: one line per epoch with verbose >= 1, nothing otherwise."""

import sys


class EpochReporter:
    def __init__(self, verbose, max_epochs, stream=None):
        self.verbose = verbose
        self.max_epochs = max_epochs
        self.stream = stream if stream is not None else sys.stdout

    def epoch(self, n_iter, elbo, recon, kl, seconds, validation_score=None):
        if not self.verbose:
            return
        line = (f"Epoch {n_iter}: ELBO {elbo:.4f}, reconstruction {recon:.4f}, KL {kl:.4f}, "
                f"{seconds:.2f} s")
        if validation_score is not None:
            line += f", validation ELBO {validation_score:.4f}"
        print(line, file=self.stream, flush=True)

    def close(self):
        pass
