"""Prune, compress or merge trained networks.

    python scripts/surgery.py {prune,compress,merge} CKPT... --out OUT.ckpt


Writes an ordinary zoo checkpoint and beside it ``OUT.yaml``, the config that builds the new
model (``python -m zoo test --config OUT.yaml --ckpt_path OUT.ckpt``). See zoo/surgery/.
"""

from zoo.surgery.command import main

if __name__ == "__main__":
    main()
