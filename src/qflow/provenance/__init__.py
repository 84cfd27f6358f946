"""Provenance: lineage, run diffs, reproduction, tracked scripts, notebooks and clean-up."""
