"""Scoring a network on text: the output temperature fitted on held-out text and the neural cache."""
