"""Conformance suite: graph shapes × executors × faults, with the same invariants after each."""
