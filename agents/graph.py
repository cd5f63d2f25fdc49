"""The IKMo agent graph.

```
START → begin → describe ─┬─ keyframe_pose ×N (Send, one per image) ─┐
                          └─ trajectory ─────────────────────────────┴→ validate
validate ─ok→ generate → critique ─accept→ respond → END
         │                        └retry→ generate (new seed / stronger guidance), replan→ describe
         ├retry→ describe | trajectory (the agent at fault, with the error; bounded)
         ├ask→ ask (interrupt: the user's answer is a follow-up) → describe
         └fail→ fail → respond
```

`builder` is exported for tests and for compiling with a checkpointer (`ikmo chat`); `graph` is the
compiled graph `langgraph dev` serves (langgraph.json).
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from ikmo.agents import nodes
from ikmo.agents.context import Context
from ikmo.agents.state import GraphState, InputState


def make_builder() -> StateGraph:
    b = StateGraph(GraphState, context_schema=Context, input_schema=InputState)
    b.add_node("begin", nodes.begin)
    b.add_node("describe", nodes.describe)
    b.add_node("keyframe_pose", nodes.keyframe_pose)
    b.add_node("trajectory", nodes.trajectory)
    b.add_node("validate", nodes.validate)
    b.add_node("ask", nodes.ask)
    b.add_node("fail", nodes.fail)
    b.add_node("generate", nodes.generate)
    b.add_node("critique", nodes.critique)
    b.add_node("respond", nodes.respond)
    b.add_edge(START, "begin")
    b.add_edge("begin", "describe")
    b.add_conditional_edges("describe", nodes.route_after_describe, ["keyframe_pose", "trajectory", "validate"])
    b.add_edge("keyframe_pose", "validate")
    b.add_edge("trajectory", "validate")
    b.add_conditional_edges("validate", nodes.route_after_validate,
                            ["generate", "describe", "trajectory", "ask", "fail"])
    b.add_edge("ask", "describe")
    b.add_edge("fail", "respond")
    b.add_conditional_edges("generate", lambda s: "respond" if s.get("status") == "failed" else "critique",
                            ["critique", "respond"])
    b.add_conditional_edges("critique", nodes.route_after_critique, ["generate", "describe", "respond"])
    b.add_edge("respond", END)
    return b


builder = make_builder()
graph = builder.compile()
graph.name = "ikmo"
