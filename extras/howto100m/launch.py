"""The torchrun entry of HowTo100M training, beside its command: every process runs
`y8m extras howto100m train` with the same flags, as in
`torchrun --nproc_per_node=N -m extras.howto100m.launch --captions=... --output_dir=... ...`.
"""

from __future__ import annotations

from extras.howto100m.commands import Commands
from extras.runtime.launch import torchrun_main


def main() -> None:
    torchrun_main(Commands().train)


if __name__ == "__main__":
    main()
