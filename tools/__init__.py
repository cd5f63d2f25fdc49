"""Thin adapters the agents call: pose estimation, SMPL fitting, trajectory geometry, motion
generation, rendering, export. No LangGraph imports here."""
