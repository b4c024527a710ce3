"""Small utilities shared by every layer (command-line error handling); imports no project package."""
