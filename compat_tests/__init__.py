"""timm-compat: a matrix of timm models x loading paths x overrides, with a named cause for every failure."""
