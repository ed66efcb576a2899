"""What several loading paths share: the override axis, foreign checkpoint layouts, the legacy manifest."""
