"""Solved games: rules, positions and (later) the common `Game` protocol and environments."""
