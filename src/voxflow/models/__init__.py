"""Networks: 3D U-Nets (plain and residual) and the studies' own models."""
