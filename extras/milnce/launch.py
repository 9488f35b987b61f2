"""The torchrun entry of MIL-NCE training, beside its command: every process runs
`y8m extras milnce train` with the same flags, as in
`torchrun --standalone --nproc_per_node=N -m extras.milnce.launch --train_dir=... ...`.
"""

from __future__ import annotations

from extras.milnce.commands import Commands
from extras.runtime.launch import torchrun_main


def main() -> None:
    torchrun_main(Commands().train)


if __name__ == "__main__":
    main()
