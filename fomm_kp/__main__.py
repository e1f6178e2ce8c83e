"""``python -m fomm_kp ...`` is ``fomm-kp ...``; ``torchrun --nproc_per_node N -m fomm_kp train ...``
trains on N processes (DistributedDataParallel)."""

from fomm_kp.cli import main

if __name__ == "__main__":
    main()
