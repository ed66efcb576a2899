"""What "loaded correctly" means: the oracle (state and output comparison), adapted loads, fused models. A
`Check` bundles a way of judging with the helpers and repro template that reproduce it."""
