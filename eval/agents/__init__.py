"""Scripted agent evaluations (`ikmo eval agents`): a suite of cases (`eval/cases/agents/*.yaml`),
expectation checks on what a user gets (`expectations`), the runner over providers with recorded
model calls (`runner`), and the reports (`report`)."""
