"""Rule gwr_nnunet_plan: 3d_fullres plans, preprocessing; fold 0 = our split."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.nnunet import plan_and_preprocess, write_split

# nnU-Net's process pools ("spawn") re-import this file from its path, without Snakemake's
# preamble: everything, `snakemake` included, stays under the guard
if __name__ == "__main__":
    snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)
    with rule_logging(snakemake.log[0]) as log:
        root = Path(snakemake.output.plans).parents[2]
        dataset_id = snakemake.params.dataset_id
        plans = plan_and_preprocess(dataset_id, root, num_processes=max(snakemake.threads, 1))
        split = snakemake.params.split
        train = [p for p, s in split.items() if s == "train"]
        val = [p for p, s in split.items() if s == "val"]
        write_split(dataset_id, root, train, val)
        log.info("planned %s; fold 0 = %d train / %d val", plans, len(train), len(val))
