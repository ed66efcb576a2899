"""The source model every cell saves (seeded, perturbed weights, its reference output), the meta device the
structural tier builds on, and the quick initialisers of models a cell builds only to load into."""
