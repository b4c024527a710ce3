"""Connect Four's own parts of the agent layer (code that needs Connect Four positions or its solver)."""
