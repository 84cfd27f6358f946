"""Model serving: a FastAPI app over a registered model, and batch inference over files."""
