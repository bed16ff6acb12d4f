"""The stochastic optimisers against AdamW at a fixed step budget, one
thread: time per step, and (track_) the final training loss at a learning
rate from the shared grid."""

from threadpoolctl import threadpool_limits

from benchmarks.harness_stochastic import (
    LR_GRID,
    NUMPY_METHODS,
    TORCH_METHODS,
    digits,
    mlp_run,
    softmax_run,
)

# Each method's best point of LR_GRID in `python -m secondorder bench stochastic` (the default: LR_GRID[2]).
SOFTMAX_LR = {"sophia-g": LR_GRID[1], "muon": LR_GRID[3], "namo": LR_GRID[3], "namo-d": LR_GRID[3], "mfac": LR_GRID[3]}
MLP_LR = {"AdaHessian": LR_GRID[3], "SophiaG": LR_GRID[1], "SophiaH": LR_GRID[1], "MFAC": LR_GRID[4]}


class SoftmaxDigits:
    params = (list(NUMPY_METHODS),)
    param_names = ("method",)
    timeout = 300
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, method):
        self.data = digits()
        self.lr = SOFTMAX_LR.get(method, LR_GRID[2])

    def time_10_epochs(self, method):
        with threadpool_limits(1):
            softmax_run(method, self.lr, 0, data=self.data)

    def track_final_loss(self, method):
        with threadpool_limits(1):
            return softmax_run(method, self.lr, 0, data=self.data)[0]


class MLPDigits:
    params = (list(TORCH_METHODS),)
    param_names = ("method",)
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, method):
        try:
            import torch
        except ImportError:
            raise NotImplementedError from None
        torch.set_num_threads(1)
        self.data = digits()
        self.lr = MLP_LR.get(method, LR_GRID[2])

    def time_2_epochs(self, method):
        mlp_run(method, self.lr, 0, data=self.data, epochs=2)

    def track_final_loss(self, method):
        return mlp_run(method, self.lr, 0, data=self.data)[0]
