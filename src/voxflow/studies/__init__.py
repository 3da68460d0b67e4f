"""Study glue: each module wires the shared engine to one paper."""
