"""Rule gwr_nnunet_predict: nnU-Net labels for every patient, on each patient's CT grid."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.nnunet import predict

# nnU-Net's process pools ("spawn") re-import this file from its path, without Snakemake's
# preamble: everything, `snakemake` included, stays under the guard
if __name__ == "__main__":
    snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)
    with rule_logging(snakemake.log[0]) as log:
        out = predict(
            snakemake.input.checkpoint,
            list(snakemake.input.ct),
            Path(snakemake.output[0]).parent,
            device=snakemake.params.device,
            use_mirroring=snakemake.params.mirroring,
        )
        log.info("predicted %d patients", len(out))
