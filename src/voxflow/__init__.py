"""voxflow: one Snakemake workflow and library for five 3D medical-imaging studies."""

from voxflow.errors import VoxflowError

__version__ = "0.1.0"
__all__ = ["VoxflowError", "__version__"]
