"""The source model every cell saves (seeded, perturbed weights, its reference output), and the meta device
the structural tier builds on."""
