"""Failure names: one ordered catalog of signatures, each detected from evidence alone (so a report can be
re-classified later), and the known-failures baseline that says which of them a run expects."""
