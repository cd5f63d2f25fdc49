"""Run-time context of the graph (`Runtime[Context]`): the settings and the tools, never in state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ikmo.tools.local import LocalToolbox
from ikmo.tools.toolbox import Toolbox

from .settings import AgentSettings


@dataclass
class Context:
    """Everything a node may need that is not the user's request.

    settings: the resolved settings (an `ikmo.config.Settings` in the application; any
    `AgentSettings` will do). toolbox: what the nodes call to read photos, generate and export
    (`LocalToolbox` in this process, `ikmo.tools.worker.ToolProcess` in a child); None = a
    `LocalToolbox` of the settings, made on first use. interactive: in a conversation, failures
    become questions (interrupts); in batch, clear errors. chat_model: a ready chat model,
    overriding `settings.provider` (notebooks).
    """

    settings: AgentSettings = field(default_factory=AgentSettings)
    toolbox: Toolbox | None = None
    interactive: bool = False
    chat_model: Any = None

    @property
    def tools(self) -> Toolbox:
        """The toolbox (made from the settings on first use when none was given)."""
        if self.toolbox is None:
            self.toolbox = LocalToolbox(self.settings)
        return self.toolbox
