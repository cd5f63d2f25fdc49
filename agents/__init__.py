"""The LangGraph agent pipeline: state, nodes, routing, providers."""
