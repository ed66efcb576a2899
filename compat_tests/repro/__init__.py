"""Standalone repro scripts: the templates, and the builder that pastes the exact functions a cell ran into
one file that needs only torch, timm, transformers and safetensors."""
