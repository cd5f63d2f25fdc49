"""Metrics, benchmarks, scripted agent evaluations, user-study replay."""
