"""Steps of the example project."""
