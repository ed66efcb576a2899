"""Running the matrix: tiers and selection, the plan of cells, shards, resume, the runner, crash and timeout
isolation, progress. Nothing here needs pytest but the hook classes the plugin registers."""
