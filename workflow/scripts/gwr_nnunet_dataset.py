"""Rule gwr_nnunet_dataset: nnU-Net's raw dataset (CT in HU + registered landmarks, _0000)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.nnunet import write_raw_dataset
from voxflow.phantoms.gwr import STRUCTURES

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    inp = snakemake.input
    cases = list(zip(snakemake.params.patients, inp.ct, inp.labels, strict=True))
    root = Path(snakemake.output[0]).parents[2]
    labels = {"background": 0, **{name: value for value, name in STRUCTURES.items()}}
    folder = write_raw_dataset(cases, root, snakemake.params.dataset_id, "GWR", labels)
    log.info("nnU-Net raw dataset: %s (%d cases)", folder, len(cases))
