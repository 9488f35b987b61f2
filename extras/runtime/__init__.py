"""What the two torch extras (milnce, howto100m) share to run training: device choice and
torch.distributed set-up, checkpoint files, timing, loop hooks, flags, the torchrun entry and
precise BatchNorm statistics (`precise_bn`).

`flags` and `launch` import neither torch nor anything heavy, so command modules use them at
import time; the other modules import torch.
"""
