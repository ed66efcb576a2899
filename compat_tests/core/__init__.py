"""The data every stage passes on: a scenario (one cell), the evidence it leaves, its result and the installed
versions. Imports neither torch nor timm, so the report tools can read results without them."""
