"""How small can a study's networks get? Prune and compress every seed, beside SparseNet and SET of that size.

    python scripts/sweep.py sweeps/how_small.yaml          # the trained networks
    python scripts/how_small.py sweeps/runs/how_small [--tolerances 0.001 0.003 0.01] [--epochs N] [--jobs N]

Writes how_small.csv, how_small.md and how_small.png into the study folder; a rerun resumes.
See zoo/surgery/study.py.
"""

from zoo.surgery.study import main

if __name__ == "__main__":
    main()
